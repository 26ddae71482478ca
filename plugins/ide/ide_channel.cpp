#include "ide_channel.hpp"

#include <algorithm>
#include <cstring>

namespace molt::ide {

IdeChannel::IdeChannel(ChannelState& state, std::array<DrivePosition, 2> drives, Hooks hooks,
                       sdk::RateLimitedLog& log)
    : state_(state), drives_(std::move(drives)), hooks_(std::move(hooks)), log_(log) {}

void IdeChannel::reset() {
  const std::uint8_t bm_status = state_.bm_status & kBmStatusReadWrite;
  state_ = ChannelState{};
  state_.bm_status = bm_status;
  for (unsigned i = 0; i < 2; ++i) {
    if (!present(i)) state_.drive(i).status = 0;
  }
  update_irq();
}

void IdeChannel::update_irq() {
  const unsigned sel = state_.selected();
  const bool level = present(sel) && state_.drive(sel).irq_pending && (state_.control & kControlNien) == 0;
  if (hooks_.set_irq) hooks_.set_irq(level);
}

void IdeChannel::raise_irq(DriveState& drive) {
  drive.irq_pending = true;
  // The bus master latches the rising edge of INTRQ, which nIEN holds low.
  if ((state_.control & kControlNien) == 0) state_.bm_status |= kBmStatusInterrupt;
  update_irq();
}

// The signature an ATA (non-packet) device leaves after a reset or diagnostic.
void IdeChannel::set_signature() {
  state_.sector_count = 1;
  state_.lba_low = 1;
  state_.lba_mid = 0;
  state_.lba_high = 0;
  state_.device = 0;
}

std::uint8_t IdeChannel::read_alternate_status() const {
  const unsigned sel = state_.selected();
  return present(sel) ? state_.drive(sel).status : 0;
}

void IdeChannel::write_device_control(std::uint8_t value) {
  const bool was_resetting = (state_.control & kControlSrst) != 0;
  const bool resetting = (value & kControlSrst) != 0;
  state_.control = value;
  if (resetting && !was_resetting) {
    // SRST asserted: both drives abandon what they were doing and stay busy.
    for (unsigned i = 0; i < 2; ++i) {
      if (!present(i)) continue;
      DriveState& drive = state_.drive(i);
      end_transfer(drive);
      drive.irq_pending = false;
      drive.status = kStatusBsy;
    }
  } else if (!resetting && was_resetting) {
    // SRST released: the reset completes, without an interrupt.
    set_signature();
    for (unsigned i = 0; i < 2; ++i) {
      if (!present(i)) continue;
      state_.drive(i).status = kStatusIdle;
      state_.drive(i).error = kDiagnosticPassed;
    }
  }
  update_irq();
}

std::uint8_t IdeChannel::read_register(unsigned reg) {
  const bool hob = (state_.control & kControlHob) != 0;
  switch (reg) {
    case kRegErrorFeature:
      return selected_drive().error;
    case kRegSectorCount:
      return hob ? state_.hob_sector_count : state_.sector_count;
    case kRegLbaLow:
      return hob ? state_.hob_lba_low : state_.lba_low;
    case kRegLbaMid:
      return hob ? state_.hob_lba_mid : state_.lba_mid;
    case kRegLbaHigh:
      return hob ? state_.hob_lba_high : state_.lba_high;
    case kRegDevice:
      return state_.device;
    default: {  // status: reading it acknowledges the interrupt
      DriveState& drive = selected_drive();
      if (drive.irq_pending) {
        drive.irq_pending = false;
        update_irq();
      }
      return drive.status;
    }
  }
}

std::uint32_t IdeChannel::read_command_block(unsigned reg, unsigned size) {
  if (reg == kRegData) return read_data(size);
  // Absent drive selected: nothing drives the bus, the registers read 0.
  if (!present(state_.selected())) return 0;
  return read_register(reg);
}

void IdeChannel::write_command_block(unsigned reg, unsigned size, std::uint32_t value) {
  if (reg == kRegData) {
    write_data(size, value);
    return;
  }
  const auto byte = static_cast<std::uint8_t>(value);
  // A command block write clears HOB; the 48-bit registers keep the previous
  // value as their "high order byte".
  auto shift_in = [&](std::uint8_t& current, std::uint8_t& previous) {
    previous = current;
    current = byte;
  };
  if (reg != kRegStatusCommand) state_.control &= static_cast<std::uint8_t>(~kControlHob);
  switch (reg) {
    case kRegErrorFeature:
      shift_in(state_.feature, state_.hob_feature);
      break;
    case kRegSectorCount:
      shift_in(state_.sector_count, state_.hob_sector_count);
      break;
    case kRegLbaLow:
      shift_in(state_.lba_low, state_.hob_lba_low);
      break;
    case kRegLbaMid:
      shift_in(state_.lba_mid, state_.hob_lba_mid);
      break;
    case kRegLbaHigh:
      shift_in(state_.lba_high, state_.hob_lba_high);
      break;
    case kRegDevice:
      state_.device = byte;
      update_irq();
      break;
    default:
      execute(byte);
      break;
  }
}

std::uint32_t IdeChannel::read_data(unsigned size) {
  DriveState& drive = selected_drive();
  const std::uint32_t all_ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  if (!present(state_.selected()) || drive.transfer != Transfer::PioIn) return all_ones;
  const std::size_t n = std::min<std::size_t>(size, drive.buffer.size() - drive.buffer_pos);
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < n; ++i) value |= std::uint32_t{drive.buffer[drive.buffer_pos + i]} << (8 * i);
  drive.buffer_pos += static_cast<std::uint32_t>(n);
  if (drive.buffer_pos == drive.buffer.size()) block_done(drive);
  return value;
}

void IdeChannel::write_data(unsigned size, std::uint32_t value) {
  DriveState& drive = selected_drive();
  if (!present(state_.selected()) || drive.transfer != Transfer::PioOut) return;
  const std::size_t n = std::min<std::size_t>(size, drive.buffer.size() - drive.buffer_pos);
  for (std::size_t i = 0; i < n; ++i)
    drive.buffer[drive.buffer_pos + i] = static_cast<std::uint8_t>(value >> (8 * i));
  drive.buffer_pos += static_cast<std::uint32_t>(n);
  if (drive.buffer_pos == drive.buffer.size()) block_done(drive);
}

void IdeChannel::end_transfer(DriveState& drive) {
  drive.transfer = Transfer::None;
  drive.sectors_left = 0;
  drive.buffer_pos = 0;
  drive.buffer.clear();
}

void IdeChannel::finish_ok(DriveState& drive) {
  end_transfer(drive);
  drive.status = kStatusIdle;
  raise_irq(drive);
}

void IdeChannel::finish_error(DriveState& drive, std::uint8_t error) {
  end_transfer(drive);
  drive.error = error;
  drive.status = kStatusIdle | kStatusErr;
  raise_irq(drive);
}

// The current block has moved completely. Reads load the next block (or end
// quietly: the last PIO block raises no interrupt); writes store it and ask
// for the next (or complete). False when the command ended in error.
bool IdeChannel::block_done(DriveState& drive, bool stored) {
  const bool in = drive.transfer == Transfer::PioIn || drive.transfer == Transfer::DmaIn;
  const bool dma = drive.transfer == Transfer::DmaIn || drive.transfer == Transfer::DmaOut;
  const auto moved = static_cast<std::uint32_t>(drive.buffer.size() / kSectorSize);
  if (!in && !stored && !store_block(drive)) return false;
  drive.lba += moved;
  drive.sectors_left -= moved;
  drive.buffer_pos = 0;
  if (drive.sectors_left == 0) {
    if (!in && !drive.write_cache && !drives_[state_.selected()].image->flush()) {
      finish_error(drive, kErrorAbrt);
      return false;
    }
    if (in && !dma) {
      end_transfer(drive);
      drive.status = kStatusIdle;
    } else {
      finish_ok(drive);
    }
    return true;
  }
  drive.buffer.resize(std::size_t{std::min<std::uint32_t>(drive.block_sectors, drive.sectors_left)} *
                      kSectorSize);
  if (dma) {
    block_loaded_[state_.selected()] = false;  // loaded when the bus master asks for it
    return true;
  }
  if (in && !load_block(drive)) return false;
  raise_irq(drive);  // the next DRQ block is ready
  return true;
}

bool IdeChannel::dma_pending(bool& to_memory) const {
  const unsigned sel = state_.selected();
  const DriveState& drive = state_.drive(sel);
  if (!present(sel)) return false;
  if (drive.transfer != Transfer::DmaIn && drive.transfer != Transfer::DmaOut) return false;
  to_memory = drive.transfer == Transfer::DmaIn;
  return true;
}

bool IdeChannel::ensure_block_loaded(DriveState& drive, unsigned index) {
  if (drive.transfer != Transfer::DmaIn || block_loaded_[index]) return true;
  if (!load_block(drive)) return false;
  block_loaded_[index] = true;
  return true;
}

void IdeChannel::load_pending_blocks() {
  for (unsigned i = 0; i < 2; ++i)
    if (present(i)) ensure_block_loaded(state_.drive(i), i);
}

void IdeChannel::mark_blocks_loaded() {
  block_loaded_ = {true, true};
}

std::span<std::uint8_t> IdeChannel::dma_window() {
  DriveState& drive = selected_drive();
  if (!ensure_block_loaded(drive, state_.selected())) return {};
  return std::span(drive.buffer).subspan(drive.buffer_pos);
}

IdeChannel::DirectRead IdeChannel::dma_read_direct(std::span<std::uint8_t> destination) {
  const unsigned sel = state_.selected();
  DriveState& drive = state_.drive(sel);
  if (drive.transfer != Transfer::DmaIn || block_loaded_[sel] || drive.buffer_pos != 0 ||
      destination.size() < drive.buffer.size())
    return {0, true};
  const std::size_t bytes = drive.buffer.size();
  if (!drives_[sel].image->read(drive.lba, destination.first(bytes))) {
    log_.warn("read of sector {} from {} failed; the command ends with UNC", drive.lba,
              drives_[sel].image->path());
    finish_error(drive, kErrorUnc | kErrorAbrt);
    return {0, false};
  }
  // The block went straight to guest memory; the buffer is skipped.
  drive.buffer_pos = static_cast<std::uint32_t>(bytes);
  return {bytes, block_done(drive)};
}

IdeChannel::DirectRead IdeChannel::dma_write_direct(std::span<const std::uint8_t> source) {
  const unsigned sel = state_.selected();
  DriveState& drive = state_.drive(sel);
  if (drive.transfer != Transfer::DmaOut || drive.buffer_pos != 0 || source.size() < drive.buffer.size())
    return {0, true};
  const std::size_t bytes = drive.buffer.size();
  if (!drives_[sel].image->write(drive.lba, source.first(bytes))) {
    log_.warn("write of sector {} to {} failed; the command is aborted", drive.lba,
              drives_[sel].image->path());
    finish_error(drive, kErrorAbrt);
    return {0, false};
  }
  drive.buffer_pos = static_cast<std::uint32_t>(bytes);
  return {bytes, block_done(drive, true)};
}

bool IdeChannel::dma_advance(std::size_t bytes) {
  DriveState& drive = selected_drive();
  drive.buffer_pos += static_cast<std::uint32_t>(std::min(bytes, drive.buffer.size() - drive.buffer_pos));
  if (drive.buffer_pos < drive.buffer.size()) return true;
  return block_done(drive);
}

void IdeChannel::dma_abort() {
  finish_error(selected_drive(), kErrorAbrt);
}

}  // namespace molt::ide
