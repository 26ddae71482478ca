// Guest RAM as an iterative migration section (molt/sdk/migration.hpp), the
// same loop a device's iterative state goes through.
//
// Source: setup() turns on KVM's dirty logging and marks every page that may
// hold data (holes in the memfd are known zero and skipped); each pass sends
// the marked pages, then pending() folds in what KVM and devices' DMA dirtied
// meanwhile. Zero pages travel as a flag. With several lanes (the main channel
// plus extra RAM channels) a page always goes on the lane its 2 MiB granule
// maps to, so the destination sees each page's versions in order.
//
// Destination: load() checks every block name, offset and length before a
// byte lands in guest RAM; lanes load in parallel (disjoint pages).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include <molt/sdk/migration.hpp>

#include "core/memory/guest_ram.hpp"

namespace molt::core::machine {
class Machine;
}

namespace molt::core::migration {

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::uint64_t kZeroPageFlag = 1;
inline constexpr std::uint32_t kPagesPerChunk = 256;  // 1 MiB of data at most

struct RamCounters {
  std::atomic<std::uint64_t> data_pages{0};
  std::atomic<std::uint64_t> zero_pages{0};
  std::atomic<std::uint64_t> bytes{0};       // chunk payload bytes written
  std::atomic<std::uint64_t> dirtied_pages{0};  // pages found dirty after the first pass
};

class RamSection final : public sdk::IterativeState {
 public:
  // Source: `machine` provides dirty logging; destination: nullptr.
  RamSection(memory::GuestRam& ram, machine::Machine* machine);
  ~RamSection() override;

  // Source: where the extra lanes' chunks go (lane 0 is iterate()'s `out`).
  // Each writer is used from its own thread.
  void set_extra_lanes(std::vector<sdk::ChunkWriter*> lanes);

  int priority() const override { return sdk::kPriorityPlatform; }
  void setup() override;
  std::uint64_t pending() override;
  bool iterate(sdk::ChunkWriter& out, std::uint64_t budget) override;
  void complete(sdk::ChunkWriter& out) override;
  void load(std::span<const std::uint8_t> chunk) override;
  void cleanup() override;

  const RamCounters& counters() const { return counters_; }
  std::uint64_t total_pages() const { return total_pages_; }
  // Pages marked to send right now (as of the last pending()).
  std::uint64_t remaining_pages() const { return remaining_.load(); }

 private:
  struct Region;
  // Sends up to `budget` bytes of marked pages of lane `lane`; true when the
  // lane has none left.
  bool send_lane(unsigned lane, sdk::ChunkWriter& out, std::uint64_t budget);
  void sync_dirty();
  unsigned lane_count() const { return 1 + static_cast<unsigned>(extra_.size()); }

  memory::GuestRam& ram_;
  machine::Machine* machine_;
  std::vector<Region> regions_;
  std::vector<sdk::ChunkWriter*> extra_;
  std::uint64_t total_pages_ = 0;
  std::atomic<std::uint64_t> remaining_{0};
  bool logging_ = false;
  RamCounters counters_;
  // Destination: pages that received data, so a zero page for a page still a
  // hole needs no write (and no allocation).
  std::vector<std::vector<std::atomic<std::uint64_t>>> written_;
};

}  // namespace molt::core::migration
