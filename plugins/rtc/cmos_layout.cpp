#include "cmos_layout.hpp"

#include <algorithm>

namespace molt::rtc {

namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t k4GiB = 4096 * kMiB;
constexpr std::uint64_t k64KiB = 64 * kKiB;
constexpr std::uint64_t kLowRamLimit = 3072 * kMiB;  // the pc machine's RAM below 4 GiB ends at 3 GiB

void put16(std::array<std::uint8_t, kNvramSize>& nvram, unsigned low, std::uint64_t value) {
  nvram[low] = static_cast<std::uint8_t>(value);
  nvram[low + 1] = static_cast<std::uint8_t>(value >> 8);
}

}  // namespace

RamSplit split_ram(const sdk::MachineInfo& info) {
  RamSplit split;
  if (info.ram.empty()) {
    split.below_4g = std::min(info.ram_size, kLowRamLimit);
    split.above_4g = info.ram_size - split.below_4g;
    return split;
  }
  for (const sdk::MemoryRange& range : info.ram) {
    if (range.base >= k4GiB) {
      split.above_4g += range.size;
    } else {
      const std::uint64_t end = std::min(range.base + range.size, k4GiB);
      split.below_4g += end - range.base;
      split.above_4g += range.size - (end - range.base);
    }
  }
  return split;
}

std::uint16_t cmos_checksum(const std::array<std::uint8_t, kNvramSize>& nvram) {
  unsigned sum = 0;
  for (unsigned i = kCmosFloppyTypes; i < kCmosChecksumHigh; ++i) sum += nvram[i];
  return static_cast<std::uint16_t>(sum);
}

void fill_firmware_bytes(std::array<std::uint8_t, kNvramSize>& nvram, const sdk::MachineInfo& info) {
  const RamSplit ram = split_ram(info);
  nvram[kCmosShutdownStatus] = 0;
  nvram[kCmosFloppyTypes] = 0;
  nvram[kCmosEquipment] = kEquipmentFpu;
  put16(nvram, kCmosBaseMemoryLow, 640);
  const std::uint64_t extended_kib =
      ram.below_4g > kMiB ? std::min<std::uint64_t>((ram.below_4g - kMiB) / kKiB, 0xffff) : 0;
  put16(nvram, kCmosExtendedMemoryLow, extended_kib);
  put16(nvram, kCmosExtendedMemoryLow2, extended_kib);
  const std::uint64_t above_16m =
      ram.below_4g > 16 * kMiB ? std::min<std::uint64_t>((ram.below_4g - 16 * kMiB) / k64KiB, 0xffff) : 0;
  put16(nvram, kCmosMemoryAbove16MLow, above_16m);
  const std::uint64_t above_4g = std::min<std::uint64_t>(ram.above_4g / k64KiB, 0xffffff);
  nvram[kCmosMemoryAbove4GLow] = static_cast<std::uint8_t>(above_4g);
  nvram[kCmosMemoryAbove4GMid] = static_cast<std::uint8_t>(above_4g >> 8);
  nvram[kCmosMemoryAbove4GHigh] = static_cast<std::uint8_t>(above_4g >> 16);
  nvram[kCmosCpuCountMinusOne] =
      static_cast<std::uint8_t>(info.vcpus == 0 ? 0 : std::min(info.vcpus - 1, 255u));
  // Boot from the hard disk, then the CD-ROM; no floppy signature check.
  nvram[kCmosBootFlag2] = static_cast<std::uint8_t>(kBootHardDisk | (kBootCdrom << 4));
  nvram[kCmosBootFlag1] = 0x01;
  const std::uint16_t sum = cmos_checksum(nvram);
  nvram[kCmosChecksumHigh] = static_cast<std::uint8_t>(sum >> 8);
  nvram[kCmosChecksumLow] = static_cast<std::uint8_t>(sum);
}

}  // namespace molt::rtc
