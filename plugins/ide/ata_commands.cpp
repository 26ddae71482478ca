// The ATA command set of a disk: what a write to the command register does.
#include <algorithm>
#include <cstring>

#include "ide_channel.hpp"

namespace molt::ide {

namespace {

bool is_write(Transfer kind) {
  return kind == Transfer::PioOut || kind == Transfer::DmaOut;
}

}  // namespace

void IdeChannel::execute(std::uint8_t command) {
  const unsigned sel = state_.selected();
  if (command == kCmdExecuteDiagnostic) {
    execute_diagnostic();
    return;
  }
  if (!present(sel)) return;  // nobody listens
  DriveState& drive = state_.drive(sel);
  if (drive.status & kStatusBsy) return;  // in reset: the write is lost
  // A new command acknowledges the interrupt and ends any earlier transfer.
  drive.irq_pending = false;
  end_transfer(drive);
  drive.error = 0;
  update_irq();
  const unsigned multiple = drive.multiple_sectors;
  switch (command) {
    case kCmdIdentifyDevice:
      return start_identify(drive);
    case kCmdReadSectors:
    case kCmdReadSectorsNoRetry:
      return start_transfer(drive, Transfer::PioIn, false, 1);
    case kCmdReadSectorsExt:
      return start_transfer(drive, Transfer::PioIn, true, 1);
    case kCmdWriteSectors:
    case kCmdWriteSectorsNoRetry:
      return start_transfer(drive, Transfer::PioOut, false, 1);
    case kCmdWriteSectorsExt:
      return start_transfer(drive, Transfer::PioOut, true, 1);
    case kCmdReadMultiple:
    case kCmdReadMultipleExt:
    case kCmdWriteMultiple:
    case kCmdWriteMultipleExt: {
      if (multiple == 0) return finish_error(drive, kErrorAbrt);  // multiple mode is off
      const bool ext = command == kCmdReadMultipleExt || command == kCmdWriteMultipleExt;
      const bool read = command == kCmdReadMultiple || command == kCmdReadMultipleExt;
      return start_transfer(drive, read ? Transfer::PioIn : Transfer::PioOut, ext, multiple);
    }
    case kCmdReadDma:
    case kCmdReadDmaNoRetry:
      return start_transfer(drive, Transfer::DmaIn, false, kDmaBlockSectors);
    case kCmdReadDmaExt:
      return start_transfer(drive, Transfer::DmaIn, true, kDmaBlockSectors);
    case kCmdWriteDma:
    case kCmdWriteDmaNoRetry:
      return start_transfer(drive, Transfer::DmaOut, false, kDmaBlockSectors);
    case kCmdWriteDmaExt:
      return start_transfer(drive, Transfer::DmaOut, true, kDmaBlockSectors);
    case kCmdReadVerify:
    case kCmdReadVerifyNoRetry:
      return verify(drive, false);
    case kCmdReadVerifyExt:
      return verify(drive, true);
    case kCmdFlushCache:
    case kCmdFlushCacheExt:
      return flush(drive);
    case kCmdSetFeatures:
      return set_features(drive);
    case kCmdSetMultipleMode:
      return set_multiple_mode(drive);
    case kCmdInitializeParameters:
      return initialize_parameters(drive);
    case kCmdCheckPowerMode:
      state_.sector_count = 0xff;  // active or idle
      return finish_ok(drive);
    case kCmdStandbyImmediate:
    case kCmdIdleImmediate:
    case kCmdStandby:
    case kCmdIdle:
    case kCmdSeek:
      return finish_ok(drive);
    default:
      if ((command & 0xf0) == kCmdRecalibrate) return finish_ok(drive);
      // DEVICE RESET (08h) belongs to packet devices; a disk aborts it like
      // every command it does not implement.
      log_.warn("{} drive: command {:#04x} is not supported; aborted", sel == 0 ? "master" : "slave",
                command);
      return finish_error(drive, kErrorAbrt);
  }
}

void IdeChannel::execute_diagnostic() {
  set_signature();
  for (unsigned i = 0; i < 2; ++i) {
    if (!present(i)) continue;
    DriveState& drive = state_.drive(i);
    end_transfer(drive);
    drive.error = kDiagnosticPassed;
    drive.status = kStatusIdle;
  }
  // Device 0 (now selected by the signature) reports completion.
  if (present(0)) raise_irq(state_.drive(0));
}

// The sectors a read/write/verify command addresses: 48-bit from the HOB
// pairs, 28-bit LBA, or CHS through the logical geometry. Ends the command
// with IDNF (and returns false) when they are not all on the disk.
bool IdeChannel::command_range(DriveState& drive, bool ext, std::uint64_t& lba, std::uint32_t& count) {
  const std::uint64_t capacity = drives_[state_.selected()].image->sectors();
  if (ext) {
    lba = std::uint64_t{state_.hob_lba_high} << 40 | std::uint64_t{state_.hob_lba_mid} << 32 |
          std::uint64_t{state_.hob_lba_low} << 24 | std::uint64_t{state_.lba_high} << 16 |
          std::uint64_t{state_.lba_mid} << 8 | state_.lba_low;
    count = std::uint32_t{state_.hob_sector_count} << 8 | state_.sector_count;
    if (count == 0) count = 65536;
  } else {
    count = state_.sector_count == 0 ? 256 : state_.sector_count;
    if (state_.device & kDeviceLba) {
      lba = std::uint64_t{state_.device & 0x0fu} << 24 | std::uint64_t{state_.lba_high} << 16 |
            std::uint64_t{state_.lba_mid} << 8 | state_.lba_low;
    } else {
      const std::uint64_t cylinder = std::uint64_t{state_.lba_high} << 8 | state_.lba_mid;
      const unsigned head = state_.device & 0x0fu;
      const unsigned sector = state_.lba_low;
      if (sector == 0 || sector > drive.sectors_per_track || head >= drive.heads) {
        finish_error(drive, kErrorIdnf);
        return false;
      }
      lba = (cylinder * drive.heads + head) * drive.sectors_per_track + sector - 1;
    }
  }
  if (lba > capacity || count > capacity - lba) {
    finish_error(drive, kErrorIdnf);
    return false;
  }
  return true;
}

void IdeChannel::start_transfer(DriveState& drive, Transfer kind, bool ext, unsigned block_sectors) {
  const DrivePosition& position = drives_[state_.selected()];
  if (is_write(kind) && position.image->read_only()) {
    log_.warn("write to read-only disk {} refused (command aborted)", position.image->path());
    return finish_error(drive, kErrorAbrt);
  }
  std::uint64_t lba = 0;
  std::uint32_t count = 0;
  if (!command_range(drive, ext, lba, count)) return;
  drive.transfer = kind;
  drive.block_sectors = static_cast<std::uint8_t>(block_sectors);
  drive.lba = lba;
  drive.sectors_left = count;
  drive.buffer_pos = 0;
  drive.buffer.assign(std::size_t{std::min(block_sectors, count)} * kSectorSize, 0);
  // PIO blocks load now; DMA blocks when the bus master asks (and perhaps
  // straight into guest memory).
  if (kind == Transfer::PioIn && !load_block(drive)) return;
  block_loaded_[state_.selected()] = kind != Transfer::DmaIn;
  drive.status = kStatusIdle | kStatusDrq;
  if (kind == Transfer::PioIn) {
    raise_irq(drive);  // the first block is ready
  } else if (kind == Transfer::DmaIn || kind == Transfer::DmaOut) {
    if (hooks_.dma_ready) hooks_.dma_ready();
  }
  // PIO out: DRQ without an interrupt; the host sends the first block.
}

void IdeChannel::start_identify(DriveState& drive) {
  const auto words = identify_words(drives_[state_.selected()].identity, drive);
  drive.transfer = Transfer::PioIn;
  drive.block_sectors = 1;
  drive.lba = 0;
  drive.sectors_left = 1;
  drive.buffer_pos = 0;
  drive.buffer.resize(kSectorSize);
  for (unsigned i = 0; i < words.size(); ++i) {
    drive.buffer[2 * i] = static_cast<std::uint8_t>(words[i]);
    drive.buffer[2 * i + 1] = static_cast<std::uint8_t>(words[i] >> 8);
  }
  drive.status = kStatusIdle | kStatusDrq;
  raise_irq(drive);
}

// The drive's own image: a pending DMA block of the unselected drive is loaded
// too (before a save), so never go by the selected one.
const DrivePosition& IdeChannel::position_of(const DriveState& drive) const {
  return drives_[&drive == &state_.drive(0) ? 0 : 1];
}

bool IdeChannel::load_block(DriveState& drive) {
  const DrivePosition& position = position_of(drive);
  if (position.image->read(drive.lba, drive.buffer)) return true;
  log_.warn("read of sector {} from {} failed; the command ends with UNC", drive.lba, position.image->path());
  finish_error(drive, kErrorUnc | kErrorAbrt);
  return false;
}

bool IdeChannel::store_block(DriveState& drive) {
  const DrivePosition& position = position_of(drive);
  if (position.image->write(drive.lba, drive.buffer)) return true;
  log_.warn("write of sector {} to {} failed; the command is aborted", drive.lba, position.image->path());
  finish_error(drive, kErrorAbrt);
  return false;
}

void IdeChannel::verify(DriveState& drive, bool ext) {
  std::uint64_t lba = 0;
  std::uint32_t count = 0;
  if (command_range(drive, ext, lba, count)) finish_ok(drive);
}

void IdeChannel::flush(DriveState& drive) {
  const DrivePosition& position = drives_[state_.selected()];
  if (position.image->flush()) return finish_ok(drive);
  log_.warn("flush of {} failed; FLUSH CACHE ends with an error", position.image->path());
  finish_error(drive, kErrorAbrt);
}

void IdeChannel::set_features(DriveState& drive) {
  switch (state_.feature) {
    case kFeatureEnableWriteCache:
      drive.write_cache = true;
      return finish_ok(drive);
    case kFeatureDisableWriteCache:
      drive.write_cache = false;
      return finish_ok(drive);
    case kFeatureSetTransferMode: {
      const std::uint8_t mode = state_.sector_count;
      const unsigned level = mode & 7;
      const bool valid = (mode & 0xf8) == kModePioDefault       ? level <= 1
                         : (mode & 0xf8) == kModePioFlowControl ? level <= kMaxPioMode
                         : (mode & 0xf8) == kModeMultiwordDma   ? level <= kMaxMultiwordDmaMode
                         : (mode & 0xf8) == kModeUltraDma       ? level <= kMaxUltraDmaMode
                                                                : false;
      if (!valid) return finish_error(drive, kErrorAbrt);
      // PIO modes leave the selected DMA mode alone; a DMA mode replaces it.
      if ((mode & 0xf8) == kModeMultiwordDma || (mode & 0xf8) == kModeUltraDma) drive.transfer_mode = mode;
      return finish_ok(drive);
    }
    case kFeatureDisableReadLookAhead:
    case kFeatureEnableReadLookAhead:
    case kFeatureDisableRevertingDefaults:
    case kFeatureEnableRevertingDefaults:
      return finish_ok(drive);
    default:
      return finish_error(drive, kErrorAbrt);
  }
}

void IdeChannel::set_multiple_mode(DriveState& drive) {
  const unsigned count = state_.sector_count;
  if (count > kMaxMultipleSectors || (count & (count - 1)) != 0) return finish_error(drive, kErrorAbrt);
  drive.multiple_sectors = static_cast<std::uint8_t>(count);  // 0 turns multiple mode off
  finish_ok(drive);
}

void IdeChannel::initialize_parameters(DriveState& drive) {
  if (state_.sector_count == 0) return finish_error(drive, kErrorAbrt);
  drive.heads = static_cast<std::uint8_t>((state_.device & 0x0f) + 1);
  drive.sectors_per_track = state_.sector_count;
  finish_ok(drive);
}

}  // namespace molt::ide
