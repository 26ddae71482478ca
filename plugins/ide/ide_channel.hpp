// One IDE channel in compatibility mode: the command block (data, error/
// features, sector count, LBA low/mid/high, device, status/command), the
// control block (alternate status / device control), two drive positions, and
// the ATA command set of a disk. DMA data moves through the bus master
// (bus_master.hpp), which pulls and pushes the drive's buffer.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>

#include <molt/sdk/rate_limited_log.hpp>
#include "disk_image.hpp"
#include "ide_state.hpp"
#include "identify.hpp"

namespace molt::ide {

struct DrivePosition {
  DiskImage* image = nullptr;  // null: no drive here
  DriveIdentity identity;
};

class IdeChannel {
 public:
  struct Hooks {
    std::function<void(bool asserted)> set_irq;
    // The selected drive now has a DMA data phase waiting for the bus master.
    std::function<void()> dma_ready;
  };

  IdeChannel(ChannelState& state, std::array<DrivePosition, 2> drives, Hooks hooks, sdk::RateLimitedLog& log);

  // Offsets 0-7 of the command block; `size` is 1, 2 or 4 (wider than a byte
  // only means something for the data register).
  std::uint32_t read_command_block(unsigned reg, unsigned size);
  void write_command_block(unsigned reg, unsigned size, std::uint32_t value);
  std::uint8_t read_alternate_status() const;
  void write_device_control(std::uint8_t value);

  // Power-on state of both drives and the registers.
  void reset();
  // Drives the IRQ line from the loaded state (after a state load).
  void update_irq();

  // ---- The bus master's side of a DMA data phase ----
  // True when the selected drive waits for DMA; `to_memory` is its direction.
  bool dma_pending(bool& to_memory) const;
  // The bytes of the current block not yet moved (non-empty while pending;
  // empty when loading the block failed and ended the command).
  std::span<std::uint8_t> dma_window();
  // A read's next whole block straight into `destination` (guest memory),
  // when it fits and none of it has moved yet: `bytes` 0 means not done this
  // way; `ok` false means the command ended in error.
  struct DirectRead {
    std::size_t bytes;
    bool ok;
  };
  DirectRead dma_read_direct(std::span<std::uint8_t> destination);
  // A write's next whole block straight from `source` (guest memory) to the image.
  DirectRead dma_write_direct(std::span<const std::uint8_t> source);
  // Before a save: blocks a DMA read has not loaded yet are loaded, so the
  // buffer in the state holds the data. After a load: the buffers are loaded.
  void load_pending_blocks();
  void mark_blocks_loaded();
  // `bytes` of the window moved; refills or writes out the block, completes
  // the command at its end. False when the command ended in error.
  bool dma_advance(std::size_t bytes);
  // The bus master failed (bad address, wrong direction): abort the command.
  void dma_abort();

  bool present(unsigned index) const { return drives_[index].image != nullptr; }

 private:
  DriveState& selected_drive() { return state_.drive(state_.selected()); }
  std::uint8_t read_register(unsigned reg);
  std::uint32_t read_data(unsigned size);
  void write_data(unsigned size, std::uint32_t value);
  void raise_irq(DriveState& drive);
  void set_signature();
  void end_transfer(DriveState& drive);
  void finish_ok(DriveState& drive);
  void finish_error(DriveState& drive, std::uint8_t error);
  // `stored`: a write's block already reached the image.
  bool block_done(DriveState& drive, bool stored = false);

  // ata_commands.cpp
  void execute(std::uint8_t command);
  void execute_diagnostic();
  bool command_range(DriveState& drive, bool ext, std::uint64_t& lba, std::uint32_t& count);
  void start_transfer(DriveState& drive, Transfer kind, bool ext, unsigned block_sectors);
  void start_identify(DriveState& drive);
  void set_features(DriveState& drive);
  void set_multiple_mode(DriveState& drive);
  void initialize_parameters(DriveState& drive);
  void flush(DriveState& drive);
  void verify(DriveState& drive, bool ext);
  const DrivePosition& position_of(const DriveState& drive) const;
  bool load_block(DriveState& drive);
  bool store_block(DriveState& drive);
  bool ensure_block_loaded(DriveState& drive, unsigned index);

  ChannelState& state_;
  std::array<DrivePosition, 2> drives_;
  Hooks hooks_;
  sdk::RateLimitedLog& log_;
  // Whether each drive's DMA-in buffer holds its block yet (not migrated:
  // pre_save loads every pending block, so a loaded state always has them).
  std::array<bool, 2> block_loaded_{true, true};
};

}  // namespace molt::ide
