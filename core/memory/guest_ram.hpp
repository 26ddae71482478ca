// Guest RAM: named RAM blocks, each one host mapping (a memfd mapped
// MAP_SHARED by default, so a new molt process can take it over; or a named
// file, e.g. on /dev/shm, which also outlives the process), laid out in
// guest-physical regions around the PC's MMIO hole.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

#include "core/kvm/kvm.hpp"

namespace molt::core::memory {

enum class RamBacking { Memfd, Anonymous, File };

// A RAM block held in a named file (RamBacking::File), mapped MAP_SHARED. The
// file is created (mode 0600) if missing and locked (flock, exclusive) for as
// long as any process holds its open file description, so no second molt maps
// the same RAM; a cpr-transfer hands that description, lock included, over.
struct RamFile {
  std::filesystem::path path;
  // false: fresh RAM (a boot, an incoming migration): the file is emptied,
  // truncated to 0 and then to the block's size, so it reads as zeros and
  // holds no page. true: an in-place snapshot's restore: the pages are kept
  // and the file must exist with exactly the block's size.
  bool keep_contents = false;
};

class RamBlock {
 public:
  // Throws sdk::Error naming the block when the host can't provide it.
  RamBlock(std::string name, std::uint64_t size, RamBacking backing);
  // A block in a named file. Throws sdk::Error naming memory.path when the
  // file can't be opened, is locked by another process, or (keep_contents)
  // is missing or another size.
  RamBlock(std::string name, std::uint64_t size, const RamFile& file);
  // Maps a memfd (or RAM file) another molt process created (cpr-transfer):
  // the same pages at a new address. Throws when the fd is not `size` bytes
  // long, or when `file_path` is given and the fd is not that file.
  RamBlock(std::string name, std::uint64_t size, kvm::Fd memfd,
           const std::optional<std::filesystem::path>& file_path = std::nullopt);
  ~RamBlock();
  RamBlock(const RamBlock&) = delete;
  RamBlock& operator=(const RamBlock&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }
  RamBacking backing() const { return backing_; }
  std::uint8_t* host() const { return host_; }
  // The memfd or RAM file, or -1 for anonymous RAM.
  int fd() const { return fd_.get(); }
  // The RAM file's path (RamBacking::File), else empty.
  const std::filesystem::path& path() const { return path_; }
  // The pages were kept from before this process (an in-place restore, or a
  // cpr-transfer), not emptied when the block was created.
  bool contents_kept() const { return contents_kept_; }
  // Writes the RAM file's pages to its storage (fdatasync), so a file on a
  // disk-backed filesystem holds them after a host reboot. Nothing to do for
  // a memfd or anonymous RAM. Throws sdk::Error naming the path.
  void sync() const;
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
  std::filesystem::path path_;
  bool contents_kept_ = false;
  std::uint8_t* host_ = nullptr;
  void map_shared(const std::string& what);
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
  // The same layout around a block in a named file.
  GuestRam(std::uint64_t size, const RamFile& file);
  // The same layout around a block handed over by another process; with
  // `file_path`, the fd must be that RAM file (the machine's memory.path).
  GuestRam(std::uint64_t size, kvm::Fd memfd,
           const std::optional<std::filesystem::path>& file_path = std::nullopt);

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
