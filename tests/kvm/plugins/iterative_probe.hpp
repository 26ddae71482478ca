// `iterative-probe`: a test-only device whose private buffer (too large for a
// state descriptor) migrates through the SDK's iterative hooks, while a timer
// keeps rewriting one 4 KiB block per millisecond so blocks get dirty during
// the live phase. Its descriptor holds only the generation counter and a
// checksum of the buffer; on the destination post_load checks the received
// buffer against them and reports the verdict as the device event
// "migration-verified". The source reports its side of the lifecycle as
// "migration-source" when cleanup() runs. The same plugin holds the
// `handover-probe` device (handover_probe.hpp).
//
// A chunk is one block: u8 phase (0 early, 1 live, 2 final) | 3 zero bytes |
// u32 block index (little-endian) | 4096 bytes of block data.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/migration.hpp>
#include <molt/sdk/plugin.hpp>
#include <molt/sdk/state.hpp>

namespace molt::iterative_probe {

inline constexpr std::uint64_t kBlockSize = 4096;
inline constexpr std::size_t kChunkHeader = 8;
inline constexpr std::size_t kChunkSize = kChunkHeader + kBlockSize;
inline constexpr std::uint64_t kTickNs = 1'000'000;

enum class ChunkPhase : std::uint8_t { Early = 0, Live = 1, Final = 2 };

// What migrates in the descriptor: small, so it goes with the guest stopped.
struct ProbeState {
  std::uint64_t generation = 0;  // blocks rewritten since reset
  std::uint64_t checksum = 0;    // buffer_checksum() of the buffer at the save
  bool operator==(const ProbeState&) const = default;
};

const sdk::StateDescriptor& probe_state_descriptor();

// The content block `block` holds after its rewrite at `generation`: word 0
// the generation, word 1 the block index, the rest derived from both.
void fill_block(std::span<std::uint8_t> block, std::uint64_t block_index, std::uint64_t generation);
// True when `block` is exactly what fill_block wrote for some generation up
// to `max_generation`.
bool block_is_valid(std::span<const std::uint8_t> block, std::uint64_t block_index,
                    std::uint64_t max_generation);
std::uint64_t buffer_checksum(std::span<const std::uint8_t> buffer);

class ProbeDevice;

// The iterative hooks over the probe's buffer. The core calls them under the
// device's lock, as it does the timer; `active_` catches any overlap anyway.
class ProbeBufferSection final : public sdk::IterativeState {
 public:
  explicit ProbeBufferSection(ProbeDevice& device) : device_(device) {}
  bool early() const override;
  int priority() const override;
  void setup() override;
  std::uint64_t pending() override;
  bool iterate(sdk::ChunkWriter& out, std::uint64_t budget) override;
  void complete(sdk::ChunkWriter& out) override;
  void load(std::span<const std::uint8_t> chunk) override;
  void cleanup() override;

 private:
  void send_block(sdk::ChunkWriter& out, std::uint64_t block, ChunkPhase phase);
  ProbeDevice& device_;
  std::size_t cursor_ = 0;  // where the next iterate() resumes its scan
};

class ProbeDevice final : public sdk::Device {
 public:
  explicit ProbeDevice(sdk::DeviceContext& ctx) : ctx_(ctx), section_(*this) {}
  void realize() override;
  void reset() override;
  sdk::StateBinding state() override;
  void pre_save() override;
  void post_load() override;

 private:
  friend class ProbeBufferSection;
  // A guard for every callback and hook: counts entries that found another
  // one still running (the core promises there are none).
  class Entry {
   public:
    explicit Entry(ProbeDevice& d) : d_(d) {
      if (d_.active_.fetch_add(1) != 0) ++d_.overlaps_;
    }
    ~Entry() { d_.active_.fetch_sub(1); }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;

   private:
    ProbeDevice& d_;
  };

  void tick();
  void mark_dirty(std::uint64_t block);
  std::uint64_t block_count() const { return buffer_.size() / kBlockSize; }
  std::span<std::uint8_t> block(std::uint64_t index) {
    return std::span(buffer_).subspan(index * kBlockSize, kBlockSize);
  }
  void emit_source_report();

  sdk::DeviceContext& ctx_;
  ProbeBufferSection section_;
  ProbeState state_;
  std::vector<std::uint8_t> buffer_;
  bool early_ = false;
  int priority_ = sdk::kPriorityDefault;
  std::unique_ptr<sdk::Timer> timer_;
  std::atomic<int> active_{0};
  std::uint64_t overlaps_ = 0;

  // Source side, between setup() and cleanup().
  bool tracking_ = false;
  std::vector<bool> dirty_;
  std::uint64_t dirty_count_ = 0;
  std::uint64_t setup_calls_ = 0, iterate_calls_ = 0, complete_calls_ = 0, chunks_sent_ = 0;
  std::uint64_t blocks_dirtied_live_ = 0;

  // Destination side, from the first load() to post_load().
  bool receiving_ = false;
  ChunkPhase last_phase_ = ChunkPhase::Early;
  std::vector<bool> received_;
  std::uint64_t chunks_loaded_ = 0, early_chunks_loaded_ = 0, blocks_received_ = 0;
  std::uint64_t first_final_chunk_seq_ = 0;  // the plugin-wide load sequence number of it
};

const sdk::PluginInfo* describe_iterative_probe_plugin();

}  // namespace molt::iterative_probe
