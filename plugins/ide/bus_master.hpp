// The bus-master IDE engine of one channel (SFF-8038i, PIIX): command
// (start/stop, direction), status (active, error, interrupt; the last two
// write-one-to-clear) and the PRD table pointer. When both the engine is
// started and the selected drive has a DMA data phase, it walks the PRD table
// in guest memory and moves the data at once.
#pragma once

#include <cstdint>
#include <functional>

#include <molt/sdk/device.hpp>

#include <molt/sdk/rate_limited_log.hpp>
#include "ide_channel.hpp"
#include "ide_state.hpp"

namespace molt::ide {

class BusMaster {
 public:
  // `enabled` says whether the controller may master the bus (PCI command bit 2).
  BusMaster(ChannelState& state, IdeChannel& channel, sdk::GuestMemory& memory, sdk::RateLimitedLog& log,
            std::function<bool()> enabled);

  // Offsets 0-7 of this channel's block; any size, split into bytes.
  std::uint32_t read(unsigned offset, unsigned size) const;
  void write(unsigned offset, unsigned size, std::uint32_t value);

  // Moves data if the engine is started and the drive is waiting; called on
  // start, when a DMA command arrives, and when bus mastering is enabled.
  void run();

 private:
  std::uint8_t read_byte(unsigned offset) const;
  void write_byte(unsigned offset, std::uint8_t value);
  void write_command(std::uint8_t value);
  // Moves one descriptor's region; false when the transfer must stop (bus
  // error, or the drive ended the command).
  bool move_region(std::uint64_t address, std::uint32_t length, bool to_memory, std::uint32_t& left);
  void bus_error(const char* what, std::uint64_t address);

  ChannelState& state_;
  IdeChannel& channel_;
  sdk::GuestMemory& memory_;
  sdk::RateLimitedLog& log_;
  std::function<bool()> enabled_;
};

}  // namespace molt::ide
