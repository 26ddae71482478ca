// The migrating state of the PIIX IDE controller, its two channels and four
// drive positions, and the state descriptor ("piix3-ide", version 1).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <molt/sdk/pci.hpp>
#include <molt/sdk/state.hpp>

#include "ata.hpp"

namespace molt::ide {

// What the drive's data buffer is doing. "In" is device to host (reads).
enum class Transfer : std::uint8_t {
  None = 0,
  PioIn = 1,
  PioOut = 2,
  DmaIn = 3,
  DmaOut = 4,
};
inline constexpr std::uint8_t kTransferLast = 4;

struct DriveState {
  std::uint8_t status = kStatusIdle;
  std::uint8_t error = kDiagnosticPassed;
  // INTRQ asserted by this drive and not yet acknowledged (status read or command write).
  bool irq_pending = false;
  bool write_cache = true;
  // DRQ block size of READ/WRITE MULTIPLE; 0 until SET MULTIPLE MODE.
  std::uint8_t multiple_sectors = 0;
  // The SET FEATURES transfer mode value last accepted (kModeUltraDma | 5 at power-on).
  std::uint8_t transfer_mode = kModeUltraDma | kMaxUltraDmaMode;
  // Logical CHS geometry (INITIALIZE DEVICE PARAMETERS).
  std::uint8_t heads = 16;
  std::uint8_t sectors_per_track = 63;
  // The data transfer in progress: `buffer` holds the current DRQ block, whose
  // first sector is `lba`; `sectors_left` counts the command's sectors from
  // there on (the buffer's included); `buffer_pos` bytes of it have moved.
  Transfer transfer = Transfer::None;
  std::uint8_t block_sectors = 0;
  std::uint64_t lba = 0;
  std::uint32_t sectors_left = 0;
  std::uint32_t buffer_pos = 0;
  std::vector<std::uint8_t> buffer;

  bool operator==(const DriveState&) const = default;
};

struct ChannelState {
  // Command block registers, shared by both drives (writes reach both); the
  // hob_ copies hold the previous write, for the 48-bit commands.
  std::uint8_t feature = 0, hob_feature = 0;
  std::uint8_t sector_count = 1, hob_sector_count = 0;
  std::uint8_t lba_low = 1, hob_lba_low = 0;
  std::uint8_t lba_mid = 0, hob_lba_mid = 0;
  std::uint8_t lba_high = 0, hob_lba_high = 0;
  std::uint8_t device = 0;
  std::uint8_t control = 0;
  // Bus master.
  std::uint8_t bm_command = 0;
  std::uint8_t bm_status = 0;
  std::uint32_t bm_prd_table = 0;
  DriveState master;
  DriveState slave;

  DriveState& drive(unsigned index) { return index == 0 ? master : slave; }
  const DriveState& drive(unsigned index) const { return index == 0 ? master : slave; }
  unsigned selected() const { return (device & kDeviceSelect) ? 1 : 0; }
  bool operator==(const ChannelState&) const = default;
};

struct IdeState {
  ChannelState primary;
  ChannelState secondary;
  // Config space of PCI function 01.1 (command register, BAR4, IDETIM).
  sdk::PciFunctionState pci;

  ChannelState& channel(unsigned index) { return index == 0 ? primary : secondary; }
  const ChannelState& channel(unsigned index) const { return index == 0 ? primary : secondary; }
  bool operator==(const IdeState&) const = default;
};

// Capacity in sectors of each position (channel * 2 + drive), 0 when empty:
// loaded transfers are checked against the disks this process opened.
using DriveCapacities = std::array<std::uint64_t, 4>;

// Throws sdk::StateError naming the field when a loaded state could not have
// been produced by this controller with these disks.
void validate_ide_state(const IdeState& state, const DriveCapacities& capacities);

// The descriptor, with validation against `capacities`. Each device builds its
// own (the capacities differ); the layout is the same for all.
// `before_save` runs first when the state is saved (the device completes
// buffers it fills lazily).
std::unique_ptr<sdk::StateDescriptor> make_ide_state_descriptor(const DriveCapacities& capacities,
                                                                std::function<void()> before_save = {});

}  // namespace molt::ide
