#include "bus_master.hpp"

#include <algorithm>
#include <array>

namespace molt::ide {

BusMaster::BusMaster(ChannelState& state, IdeChannel& channel, sdk::GuestMemory& memory,
                     sdk::RateLimitedLog& log, std::function<bool()> enabled)
    : state_(state), channel_(channel), memory_(memory), log_(log), enabled_(std::move(enabled)) {}

std::uint32_t BusMaster::read(unsigned offset, unsigned size) const {
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size && i < 4; ++i) value |= std::uint32_t{read_byte(offset + i)} << (8 * i);
  return value;
}

void BusMaster::write(unsigned offset, unsigned size, std::uint32_t value) {
  for (unsigned i = 0; i < size && i < 4; ++i)
    write_byte(offset + i, static_cast<std::uint8_t>(value >> (8 * i)));
}

std::uint8_t BusMaster::read_byte(unsigned offset) const {
  switch (offset) {
    case kBmCommand:
      return state_.bm_command;
    case kBmStatus:
      return state_.bm_status;
    case kBmPrdTable:
    case kBmPrdTable + 1:
    case kBmPrdTable + 2:
    case kBmPrdTable + 3:
      return static_cast<std::uint8_t>(state_.bm_prd_table >> (8 * (offset - kBmPrdTable)));
    default:
      return 0;  // reserved
  }
}

void BusMaster::write_byte(unsigned offset, std::uint8_t value) {
  switch (offset) {
    case kBmCommand:
      write_command(value);
      return;
    case kBmStatus:
      state_.bm_status = static_cast<std::uint8_t>(
          (state_.bm_status & ~(kBmStatusReadWrite | (value & kBmStatusWriteOneToClear))) |
          (value & kBmStatusReadWrite));
      return;
    case kBmPrdTable:
    case kBmPrdTable + 1:
    case kBmPrdTable + 2:
    case kBmPrdTable + 3: {
      const unsigned shift = 8 * (offset - kBmPrdTable);
      std::uint32_t table = (state_.bm_prd_table & ~(0xffu << shift)) | (std::uint32_t{value} << shift);
      state_.bm_prd_table = table & ~3u;  // dword aligned
      return;
    }
    default:
      return;
  }
}

void BusMaster::write_command(std::uint8_t value) {
  const bool was_started = (state_.bm_command & kBmCmdStart) != 0;
  state_.bm_command = value & kBmCmdWritable;
  if ((value & kBmCmdStart) && !was_started) {
    state_.bm_status |= kBmStatusActive;
    run();
  } else if (!(value & kBmCmdStart) && was_started) {
    // Stop: the engine lets go; a drive still in its data phase stays there
    // until the host resets it or starts the engine again.
    state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
  }
}

void BusMaster::bus_error(const char* what, std::uint64_t address) {
  log_.warn("bus master: {} at guest address {:#x}; the transfer ends with an error", what, address);
  state_.bm_status = static_cast<std::uint8_t>((state_.bm_status & ~kBmStatusActive) | kBmStatusError);
  channel_.dma_abort();
}

bool BusMaster::move_region(std::uint64_t address, std::uint32_t length, bool to_memory,
                            std::uint32_t& left) {
  left = length;
  bool to_memory_now = false;
  // Each step moves at least one byte, so this ends within `length` steps;
  // it is bounded further by the drive's block size (whole blocks per step).
  while (left > 0 && channel_.dma_pending(to_memory_now)) {
    {
      // Whole blocks go between the image and guest RAM directly when the
      // region holds them: no copy through the drive's buffer.
      const std::span<std::uint8_t> ram = memory_.map(address, left);
      const IdeChannel::DirectRead direct =
          to_memory ? channel_.dma_read_direct(ram) : channel_.dma_write_direct(ram);
      if (to_memory && direct.bytes != 0) memory_.mark_dirty(address, direct.bytes);
      if (!direct.ok) {
        state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
        return false;
      }
      if (direct.bytes != 0) {
        address += direct.bytes;
        left -= static_cast<std::uint32_t>(direct.bytes);
        continue;
      }
    }
    const std::span<std::uint8_t> window = channel_.dma_window();
    if (window.empty()) {  // loading the block failed; the drive ended the command
      state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
      return false;
    }
    const std::size_t n = std::min<std::size_t>(left, window.size());
    const bool ok =
        to_memory ? memory_.write(address, window.first(n)) : memory_.read(address, window.first(n));
    if (!ok) {
      bus_error(to_memory ? "write to memory that is not RAM" : "read from memory that is not RAM", address);
      return false;
    }
    address += n;
    left -= static_cast<std::uint32_t>(n);
    if (!channel_.dma_advance(n)) {
      // The drive ended the command with an error (it raised the interrupt).
      state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
      return false;
    }
  }
  return true;
}

void BusMaster::run() {
  if (!(state_.bm_command & kBmCmdStart) || !(state_.bm_status & kBmStatusActive) || !enabled_()) return;
  bool to_memory = false;
  if (!channel_.dma_pending(to_memory)) return;  // waits for the command
  if (to_memory != ((state_.bm_command & kBmCmdToMemory) != 0)) {
    bus_error(to_memory ? "the engine is set to read memory but the drive is reading"
                        : "the engine is set to write memory but the drive is writing",
              state_.bm_prd_table);
    return;
  }
  std::uint64_t descriptor = state_.bm_prd_table;
  // Bounded by the descriptor cap even when no descriptor carries the end bit.
  for (unsigned i = 0; i < kMaxPrdDescriptors; ++i, descriptor += kPrdSize) {
    std::array<std::uint8_t, kPrdSize> raw{};  // copied out before use
    if (!memory_.read(descriptor, raw)) return bus_error("PRD table outside RAM", descriptor);
    const std::uint32_t base = raw[0] | raw[1] << 8 | raw[2] << 16 | std::uint32_t{raw[3]} << 24;
    const std::uint32_t control = raw[4] | raw[5] << 8 | raw[6] << 16 | std::uint32_t{raw[7]} << 24;
    std::uint32_t length = control & 0xfffe;
    if (length == 0) length = kPrdMaxBytes;
    const bool end_of_table = (control & kPrdEndOfTable) != 0;
    std::uint32_t left = 0;
    if (!move_region(base & ~1u, length, to_memory, left)) return;
    bool still_pending = false;
    if (!channel_.dma_pending(still_pending)) {
      // The transfer is complete. A table that ended exactly here stops the
      // engine; one with more room left stays active (SFF-8038i: "PRD larger
      // than the transfer": interrupt and active both set).
      if (end_of_table && left == 0) state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
      return;
    }
    if (end_of_table) {
      // Short table: the drive still wants data. Active clears without an
      // interrupt, the drive keeps DRQ.
      state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
      return;
    }
  }
  log_.warn("bus master: PRD table at {:#x} has no end bit in {} descriptors; stopped", state_.bm_prd_table,
            kMaxPrdDescriptors);
  state_.bm_status &= static_cast<std::uint8_t>(~kBmStatusActive);
}

}  // namespace molt::ide
