// Guest RAM: named RAM blocks, each one host mapping (a memfd mapped
// MAP_SHARED by default, so a new molt process can take it over), laid out in
// guest-physical regions around the PC's MMIO hole.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

#include "core/kvm/kvm.hpp"

namespace molt::core::memory {

enum class RamBacking { Memfd, Anonymous };

class RamBlock {
 public:
  // Throws sdk::Error naming the block when the host can't provide it.
  RamBlock(std::string name, std::uint64_t size, RamBacking backing);
  // Maps a memfd another molt process created (cpr-transfer): the same pages
  // at a new address. Throws when the fd is not `size` bytes long.
  RamBlock(std::string name, std::uint64_t size, kvm::Fd memfd);
  ~RamBlock();
  RamBlock(const RamBlock&) = delete;
  RamBlock& operator=(const RamBlock&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }
  RamBacking backing() const { return backing_; }
  std::uint8_t* host() const { return host_; }
  // The memfd, or -1 for anonymous RAM.
  int fd() const { return fd_.get(); }
  // Gives every page back to the host: the block reads as zeros again.
  void discard();
  // [offset, end) ranges that may hold non-zero bytes, in order. The rest are
  // holes that read as zeros without ever having been touched; a memfd knows
  // them (SEEK_DATA), anonymous RAM reports itself whole.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> data_extents() const;

 private:
  std::string name_;
  std::uint64_t size_;
  RamBacking backing_;
  kvm::Fd fd_;
  std::uint8_t* host_ = nullptr;
};

// A piece of a RAM block placed at a guest-physical address; one KVM slot.
struct RamRegion {
  std::uint64_t gpa;
  std::uint64_t size;
  RamBlock* block;
  std::uint64_t block_offset;
  std::uint8_t* host() const { return block->host() + block_offset; }
};

// Pages written by devices (DMA), which KVM's dirty log does not see. One bit
// per 4 KiB page of each region; set from any thread.
class DeviceDirtyLog {
 public:
  explicit DeviceDirtyLog(std::uint64_t pages) : bits_((pages + 63) / 64) {}
  void mark(std::uint64_t first_page, std::uint64_t count);
  bool test(std::uint64_t page) const;
  // Returns and clears the bitmap.
  std::vector<std::uint64_t> take();

 private:
  std::vector<std::atomic<std::uint64_t>> bits_;
};

class GuestRam final : public sdk::GuestMemory {
 public:
  static constexpr std::uint64_t kHoleStart = 0xC000'0000;  // 3 GiB
  static constexpr std::uint64_t kHighStart = 0x1'0000'0000;  // 4 GiB

  // The pc layout: one block "pc.ram" split around the MMIO hole.
  GuestRam(std::uint64_t size, RamBacking backing);
  // The same layout around a block handed over by another process.
  GuestRam(std::uint64_t size, kvm::Fd memfd);

  const std::vector<std::unique_ptr<RamBlock>>& blocks() const { return blocks_; }
  const std::vector<RamRegion>& regions() const { return regions_; }
  std::uint64_t total_size() const;

  bool read(std::uint64_t gpa, std::span<std::uint8_t> out) override;
  bool write(std::uint64_t gpa, std::span<const std::uint8_t> in) override;
  std::span<std::uint8_t> map(std::uint64_t gpa, std::uint64_t len) override;
  void mark_dirty(std::uint64_t gpa, std::uint64_t len) override;

  DeviceDirtyLog& device_dirty(std::size_t region) { return *dirty_[region]; }

 private:
  void lay_out(std::unique_ptr<RamBlock> block);
  const RamRegion* find(std::uint64_t gpa, std::uint64_t len, std::size_t* index = nullptr) const;
  std::vector<std::unique_ptr<RamBlock>> blocks_;
  std::vector<RamRegion> regions_;
  std::vector<std::unique_ptr<DeviceDirtyLog>> dirty_;
};

}  // namespace molt::core::memory
