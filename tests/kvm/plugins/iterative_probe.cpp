#include "iterative_probe.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include <molt/sdk/error.hpp>

#include "handover_probe.hpp"

namespace molt::iterative_probe {

namespace {

// Orders loads across every probe in this process: each chunk and each
// post_load takes the next number, so a test can tell which device loaded first.
std::atomic<std::uint64_t> g_load_sequence{0};

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t word_at(std::span<const std::uint8_t> bytes, std::size_t index) {
  std::uint64_t w;
  std::memcpy(&w, bytes.data() + index * 8, 8);
  return w;
}

std::uint32_t read_le32(std::span<const std::uint8_t> bytes) {
  std::uint32_t v = 0;
  for (unsigned i = 0; i < 4; ++i) v |= std::uint32_t{bytes[i]} << (8 * i);
  return v;
}

std::uint64_t pattern_word(std::uint64_t block_index, std::uint64_t generation, std::size_t word) {
  return mix((generation << 24) ^ (block_index << 9) ^ word);
}

const char* phase_name(ChunkPhase p) {
  switch (p) {
    case ChunkPhase::Early:
      return "early";
    case ChunkPhase::Live:
      return "live";
    case ChunkPhase::Final:
      return "final";
  }
  return "unknown";
}

}  // namespace

void fill_block(std::span<std::uint8_t> block, std::uint64_t block_index, std::uint64_t generation) {
  std::memcpy(block.data(), &generation, 8);
  std::memcpy(block.data() + 8, &block_index, 8);
  for (std::size_t i = 2; i < kBlockSize / 8; ++i) {
    const std::uint64_t w = pattern_word(block_index, generation, i);
    std::memcpy(block.data() + i * 8, &w, 8);
  }
}

bool block_is_valid(std::span<const std::uint8_t> block, std::uint64_t block_index,
                    std::uint64_t max_generation) {
  const std::uint64_t generation = word_at(block, 0);
  if (generation > max_generation || word_at(block, 1) != block_index) return false;
  for (std::size_t i = 2; i < kBlockSize / 8; ++i)
    if (word_at(block, i) != pattern_word(block_index, generation, i)) return false;
  return true;
}

std::uint64_t buffer_checksum(std::span<const std::uint8_t> buffer) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over 64-bit words
  for (std::size_t i = 0; i < buffer.size() / 8; ++i) h = (h ^ word_at(buffer, i)) * 0x100000001b3ull;
  return h;
}

const sdk::StateDescriptor& probe_state_descriptor() {
  static const sdk::StateDescriptor d = sdk::StateDescriptorBuilder<ProbeState>("iterative-probe", 1)
                                            .field("generation", &ProbeState::generation)
                                            .field("checksum", &ProbeState::checksum)
                                            .build();
  return d;
}

// ---- the device ----

void ProbeDevice::realize() {
  const sdk::Properties& props = ctx_.properties();
  const std::uint64_t size = props.get_uint("size");
  if (size % kBlockSize != 0)
    throw sdk::Error("size " + std::to_string(size) + " is not a multiple of the 4096-byte block; round it");
  buffer_.assign(size, 0);
  early_ = props.get_bool("early");
  priority_ = static_cast<int>(props.get_uint("priority"));
  timer_ = ctx_.create_timer([this] { tick(); });
}

void ProbeDevice::reset() {
  state_ = ProbeState{};
  for (std::uint64_t b = 0; b < block_count(); ++b) fill_block(block(b), b, 0);
  timer_->arm_after(kTickNs);
}

sdk::StateBinding ProbeDevice::state() {
  return sdk::StateBinding::of(probe_state_descriptor(), state_)
      .with_priority(priority_)
      .with_iterative(section_);
}

// The guest-independent activity a real device has (a backend filling a
// queue): one block rewritten per tick, marked dirty while migration tracks.
// The core holds the timer while the guest is not running here (from the
// source's pause on; on the destination until the guest starts), so nothing
// here changes the buffer between complete() and the save, or during a load.
void ProbeDevice::tick() {
  Entry entry(*this);
  ++state_.generation;
  const std::uint64_t b = state_.generation % block_count();
  fill_block(block(b), b, state_.generation);
  if (tracking_) {
    mark_dirty(b);
    ++blocks_dirtied_live_;
  }
  timer_->arm_after(kTickNs);
}

void ProbeDevice::mark_dirty(std::uint64_t b) {
  if (!dirty_[b]) {
    dirty_[b] = true;
    ++dirty_count_;
  }
}

void ProbeDevice::pre_save() {
  state_.checksum = buffer_checksum(buffer_);
}

// Destination: the descriptor just arrived; the buffer came as chunks before
// it. Checks the whole buffer against what the source's descriptor says.
void ProbeDevice::post_load() {
  Entry entry(*this);
  std::string why;
  std::uint64_t bad_blocks = 0;
  for (std::uint64_t b = 0; b < block_count(); ++b)
    if (!block_is_valid(block(b), b, state_.generation)) ++bad_blocks;
  if (chunks_loaded_ == 0)
    why = "no chunk arrived";
  else if (blocks_received_ != block_count())
    why = std::to_string(blocks_received_) + " of " + std::to_string(block_count()) + " blocks arrived";
  else if (bad_blocks != 0)
    why = std::to_string(bad_blocks) + " blocks hold no valid pattern";
  else if (buffer_checksum(buffer_) != state_.checksum)
    why = "the buffer's checksum differs from the source's";
  ctx_.emit_event("migration-verified", {{"ok", why.empty()},
                                         {"why", why},
                                         {"chunks", chunks_loaded_},
                                         {"early_chunks", early_chunks_loaded_},
                                         {"blocks", blocks_received_},
                                         {"generation", state_.generation},
                                         {"first_final_chunk", first_final_chunk_seq_},
                                         {"load_order", ++g_load_sequence},
                                         {"overlaps", overlaps_}});
  receiving_ = false;
  timer_->arm_after(kTickNs);
}

void ProbeDevice::emit_source_report() {
  ctx_.emit_event("migration-source", {{"setup_calls", setup_calls_},
                                       {"iterate_calls", iterate_calls_},
                                       {"complete_calls", complete_calls_},
                                       {"chunks_sent", chunks_sent_},
                                       {"blocks_dirtied_live", blocks_dirtied_live_},
                                       {"overlaps", overlaps_}});
}

// ---- the iterative hooks ----

bool ProbeBufferSection::early() const {
  return device_.early_;
}
int ProbeBufferSection::priority() const {
  return device_.priority_;
}

void ProbeBufferSection::setup() {
  ProbeDevice::Entry entry(device_);
  ++device_.setup_calls_;
  device_.tracking_ = true;
  device_.dirty_.assign(device_.block_count(), true);  // everything is still to send
  device_.dirty_count_ = device_.block_count();
  cursor_ = 0;
}

std::uint64_t ProbeBufferSection::pending() {
  ProbeDevice::Entry entry(device_);
  return device_.dirty_count_ * kBlockSize;
}

void ProbeBufferSection::send_block(sdk::ChunkWriter& out, std::uint64_t b, ChunkPhase phase) {
  std::uint8_t chunk[kChunkSize] = {};
  chunk[0] = static_cast<std::uint8_t>(phase);
  const auto index = static_cast<std::uint32_t>(b);
  for (unsigned i = 0; i < 4; ++i) chunk[4 + i] = static_cast<std::uint8_t>(index >> (8 * i));
  std::memcpy(chunk + kChunkHeader, device_.block(b).data(), kBlockSize);
  out.write(chunk);
  device_.dirty_[b] = false;
  --device_.dirty_count_;
  ++device_.chunks_sent_;
}

bool ProbeBufferSection::iterate(sdk::ChunkWriter& out, std::uint64_t budget) {
  ProbeDevice::Entry entry(device_);
  ++device_.iterate_calls_;
  const ChunkPhase phase = device_.early_ ? ChunkPhase::Early : ChunkPhase::Live;
  std::uint64_t sent = 0;
  for (std::size_t scanned = 0; scanned < device_.block_count() && device_.dirty_count_ > 0 && sent < budget;
       ++scanned) {
    const std::uint64_t b = cursor_;
    cursor_ = (cursor_ + 1) % device_.block_count();
    if (!device_.dirty_[b]) continue;
    send_block(out, b, phase);
    sent += kChunkSize;
  }
  return device_.dirty_count_ == 0;
}

void ProbeBufferSection::complete(sdk::ChunkWriter& out) {
  ProbeDevice::Entry entry(device_);
  ++device_.complete_calls_;
  for (std::uint64_t b = 0; b < device_.block_count(); ++b)
    if (device_.dirty_[b]) send_block(out, b, ChunkPhase::Final);
}

void ProbeBufferSection::cleanup() {
  ProbeDevice::Entry entry(device_);
  device_.emit_source_report();
  device_.tracking_ = false;
  device_.dirty_.clear();
  device_.dirty_count_ = 0;
}

// Everything the chunk says is bounded before it touches the buffer.
void ProbeBufferSection::load(std::span<const std::uint8_t> chunk) {
  ProbeDevice::Entry entry(device_);
  if (chunk.size() != kChunkSize)
    throw sdk::StateError("chunk", "holds " + std::to_string(chunk.size()) + " bytes; a block chunk holds " +
                                       std::to_string(kChunkSize));
  if (chunk[0] > static_cast<std::uint8_t>(ChunkPhase::Final))
    throw sdk::StateError("phase", std::to_string(chunk[0]) + " is not 0 (early), 1 (live) or 2 (final)");
  if (chunk[1] != 0 || chunk[2] != 0 || chunk[3] != 0)
    throw sdk::StateError("reserved", "bytes 1-3 of a chunk must be 0");
  const auto phase = static_cast<ChunkPhase>(chunk[0]);
  if (phase == ChunkPhase::Early && !device_.early_)
    throw sdk::StateError("phase", "an early chunk for a probe whose early property is false");
  if (phase < device_.last_phase_)
    throw sdk::StateError("phase", std::string("a ") + phase_name(phase) + " chunk after a " +
                                       phase_name(device_.last_phase_) + " one");
  const std::uint32_t index = read_le32(chunk.subspan(4, 4));
  if (index >= device_.block_count())
    throw sdk::StateError("block", "index " + std::to_string(index) + " is beyond the buffer's " +
                                       std::to_string(device_.block_count()) + " blocks");

  if (!device_.receiving_) {  // the first chunk
    device_.receiving_ = true;
    device_.received_.assign(device_.block_count(), false);
  }
  const std::uint64_t sequence = ++g_load_sequence;
  if (phase == ChunkPhase::Final && device_.first_final_chunk_seq_ == 0)
    device_.first_final_chunk_seq_ = sequence;
  device_.last_phase_ = phase;
  std::memcpy(device_.block(index).data(), chunk.data() + kChunkHeader, kBlockSize);
  if (!device_.received_[index]) {
    device_.received_[index] = true;
    ++device_.blocks_received_;
  }
  ++device_.chunks_loaded_;
  if (phase == ChunkPhase::Early) ++device_.early_chunks_loaded_;
}

// ---- registration ----

const sdk::PluginInfo* describe_iterative_probe_plugin() {
  using sdk::PropertyType;
  static const sdk::PluginInfo info{{sdk::DeviceType{
      .name = "iterative-probe",
      .description =
          "test device: a private buffer rewritten every millisecond, migrated through iterative hooks",
      .properties =
          {
              {.name = "size",
               .type = PropertyType::Size,
               .default_value = std::uint64_t{1} << 20,
               .doc = "bytes of device-private memory, a multiple of 4096",
               .min = kBlockSize,
               .max = std::uint64_t{64} << 20},
              {.name = "early",
               .type = PropertyType::Bool,
               .default_value = false,
               .doc = "send the buffer before guest RAM (IterativeState::early)"},
              {.name = "priority",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{sdk::kPriorityDefault},
               .doc = "load priority on the destination, higher first",
               .max = 1000},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<ProbeDevice>(ctx);
      },
  }, handover_probe_type()}};
  return &info;
}

}  // namespace molt::iterative_probe
