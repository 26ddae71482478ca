#include "ide_state.hpp"

#include <algorithm>
#include <string>

#include <molt/sdk/error.hpp>

namespace molt::ide {

namespace {

const sdk::StateDescriptor& drive_descriptor(bool slave) {
  auto build = [](const char* name) {
    return sdk::StateDescriptorBuilder<DriveState>(name, 1, 1)
        .field("status", &DriveState::status)
        .field("error", &DriveState::error)
        .field("irq_pending", &DriveState::irq_pending)
        .field("write_cache", &DriveState::write_cache)
        .field("multiple_sectors", &DriveState::multiple_sectors)
        .field("transfer_mode", &DriveState::transfer_mode)
        .field("heads", &DriveState::heads)
        .field("sectors_per_track", &DriveState::sectors_per_track)
        .field("transfer", &DriveState::transfer)
        .field("block_sectors", &DriveState::block_sectors)
        .field("lba", &DriveState::lba)
        .field("sectors_left", &DriveState::sectors_left)
        .field("buffer_pos", &DriveState::buffer_pos)
        .field("buffer", &DriveState::buffer)
        .build();
  };
  static const sdk::StateDescriptor master = build("master");
  static const sdk::StateDescriptor slave_descriptor = build("slave");
  return slave ? slave_descriptor : master;
}

bool always(const ChannelState&) {
  return true;
}

const sdk::StateDescriptor& channel_descriptor(bool secondary) {
  auto build = [](const char* name) {
    return sdk::StateDescriptorBuilder<ChannelState>(name, 1, 1)
        .field("feature", &ChannelState::feature)
        .field("hob_feature", &ChannelState::hob_feature)
        .field("sector_count", &ChannelState::sector_count)
        .field("hob_sector_count", &ChannelState::hob_sector_count)
        .field("lba_low", &ChannelState::lba_low)
        .field("hob_lba_low", &ChannelState::hob_lba_low)
        .field("lba_mid", &ChannelState::lba_mid)
        .field("hob_lba_mid", &ChannelState::hob_lba_mid)
        .field("lba_high", &ChannelState::lba_high)
        .field("hob_lba_high", &ChannelState::hob_lba_high)
        .field("device", &ChannelState::device)
        .field("control", &ChannelState::control)
        .field("bm_command", &ChannelState::bm_command)
        .field("bm_status", &ChannelState::bm_status)
        .field("bm_prd_table", &ChannelState::bm_prd_table)
        .subsection(drive_descriptor(false), &ChannelState::master, always)
        .subsection(drive_descriptor(true), &ChannelState::slave, always)
        .build();
  };
  static const sdk::StateDescriptor primary = build("primary");
  static const sdk::StateDescriptor secondary_descriptor = build("secondary");
  return secondary ? secondary_descriptor : primary;
}

bool valid_transfer_mode(std::uint8_t mode) {
  const unsigned level = mode & 0x07;
  switch (mode & 0xf8) {
    case kModePioDefault:
      return level <= 1;  // 00h default PIO, 01h default PIO with IORDY disabled
    case kModePioFlowControl:
      return level <= kMaxPioMode;
    case kModeMultiwordDma:
      return level <= kMaxMultiwordDmaMode;
    case kModeUltraDma:
      return level <= kMaxUltraDmaMode;
    default:
      return false;
  }
}

void fail(const std::string& field, const std::string& why) {
  throw sdk::StateError(field, why);
}

void validate_transfer(const DriveState& d, const std::string& at, std::uint64_t capacity) {
  if (d.transfer == Transfer::None) {
    if (d.sectors_left != 0 || !d.buffer.empty() || d.buffer_pos != 0)
      fail(at + "sectors_left", "a drive with no transfer holds no data");
    return;
  }
  if (capacity == 0) fail(at + "transfer", "a transfer is in progress at a position with no disk");
  const bool dma = d.transfer == Transfer::DmaIn || d.transfer == Transfer::DmaOut;
  const unsigned max_block = dma ? kDmaBlockSectors : kMaxMultipleSectors;
  if (d.block_sectors == 0 || d.block_sectors > max_block)
    fail(at + "block_sectors", std::to_string(d.block_sectors) + " is not a block size of 1 to " +
                                   std::to_string(max_block) + " sectors");
  if (d.sectors_left == 0) fail(at + "sectors_left", "a transfer in progress has sectors left");
  if (d.lba > capacity || d.sectors_left > capacity - d.lba)
    fail(at + "lba", "sectors " + std::to_string(d.lba) + "+" + std::to_string(d.sectors_left) +
                         " pass the end of the disk (" + std::to_string(capacity) + " sectors)");
  const std::size_t expected =
      std::size_t{std::min<std::uint32_t>(d.block_sectors, d.sectors_left)} * kSectorSize;
  if (d.buffer.size() != expected)
    fail(at + "buffer", "holds " + std::to_string(d.buffer.size()) + " bytes where the block is " +
                            std::to_string(expected));
  if (d.buffer_pos >= d.buffer.size())
    fail(at + "buffer_pos", std::to_string(d.buffer_pos) + " is not inside the " +
                                std::to_string(d.buffer.size()) + "-byte block");
}

void validate_drive(const DriveState& d, const std::string& at, std::uint64_t capacity) {
  if (static_cast<std::uint8_t>(d.transfer) > kTransferLast)
    fail(at + "transfer", std::to_string(static_cast<unsigned>(d.transfer)) + " is not a transfer kind");
  if (d.multiple_sectors > kMaxMultipleSectors || (d.multiple_sectors & (d.multiple_sectors - 1)) != 0)
    fail(at + "multiple_sectors",
         std::to_string(d.multiple_sectors) + " is not 0 or a power of two up to 16");
  if (!valid_transfer_mode(d.transfer_mode))
    fail(at + "transfer_mode", std::to_string(d.transfer_mode) + " is not a transfer mode this drive offers");
  if (d.heads == 0 || d.heads > 16) fail(at + "heads", "a drive has 1 to 16 heads");
  if (d.sectors_per_track == 0) fail(at + "sectors_per_track", "a track holds at least one sector");
  validate_transfer(d, at, capacity);
}

}  // namespace

void validate_ide_state(const IdeState& state, const DriveCapacities& capacities) {
  for (unsigned c = 0; c < 2; ++c) {
    const ChannelState& ch = state.channel(c);
    const std::string at = c == 0 ? "primary." : "secondary.";
    if ((ch.bm_command & ~kBmCmdWritable) != 0) fail(at + "bm_command", "sets reserved bits");
    if ((ch.bm_status & ~kBmStatusValid) != 0) fail(at + "bm_status", "sets reserved bits");
    if ((ch.bm_prd_table & 3) != 0) fail(at + "bm_prd_table", "a PRD table is dword aligned");
    for (unsigned d = 0; d < 2; ++d)
      validate_drive(ch.drive(d), at + (d == 0 ? "master." : "slave."), capacities[c * 2 + d]);
  }
}

std::unique_ptr<sdk::StateDescriptor> make_ide_state_descriptor(const DriveCapacities& capacities,
                                                                std::function<void()> before_save) {
  auto always_channel = [](const IdeState&) { return true; };
  return std::make_unique<sdk::StateDescriptor>(
      sdk::StateDescriptorBuilder<IdeState>("piix3-ide", 1, 1)
          .subsection(channel_descriptor(false), &IdeState::primary, always_channel)
          .subsection(channel_descriptor(true), &IdeState::secondary, always_channel)
          .subsection(sdk::pci_function_descriptor(), &IdeState::pci, always_channel)
          .pre_save([before_save = std::move(before_save)](IdeState&) {
            if (before_save) before_save();
          })
          .post_load([capacities](const IdeState& s, std::uint32_t) { validate_ide_state(s, capacities); })
          .build());
}

}  // namespace molt::ide
