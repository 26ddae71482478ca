// The CMOS bytes PC firmware reads, filled from the machine's facts. Offsets
// and encodings as QEMU's PC machine writes them and SeaBIOS reads them
// (SeaBIOS src/hw/rtc.h, src/fw/paravirt.c qemu_preinit, src/boot.c boot_setup).
#pragma once

#include <array>
#include <cstdint>

#include <molt/sdk/device.hpp>

#include "rtc_state.hpp"

namespace molt::rtc {

enum CmosByte : std::uint8_t {
  kCmosShutdownStatus = 0x0f,
  kCmosFloppyTypes = 0x10,
  kCmosEquipment = 0x14,
  kCmosBaseMemoryLow = 0x15,  // KiB of conventional memory: 640
  kCmosBaseMemoryHigh = 0x16,
  kCmosExtendedMemoryLow = 0x17,  // KiB above 1 MiB, at most 0xffff
  kCmosExtendedMemoryHigh = 0x18,
  kCmosChecksumHigh = 0x2e,  // sum of bytes 0x10-0x2d
  kCmosChecksumLow = 0x2f,
  kCmosExtendedMemoryLow2 = 0x30,  // the same KiB count again (as POST found it)
  kCmosExtendedMemoryHigh2 = 0x31,
  kCmosMemoryAbove16MLow = 0x34,  // 64 KiB units above 16 MiB, below 4 GiB
  kCmosMemoryAbove16MHigh = 0x35,
  kCmosBootFlag1 = 0x38,         // bit 0: skip the floppy boot signature check; high nibble: 3rd boot device
  kCmosBootFlag2 = 0x3d,         // low nibble: 1st boot device, high nibble: 2nd
  kCmosMemoryAbove4GLow = 0x5b,  // 64 KiB units above 4 GiB, 24 bits
  kCmosMemoryAbove4GMid = 0x5c,
  kCmosMemoryAbove4GHigh = 0x5d,
  kCmosCpuCountMinusOne = 0x5f,
};

// SeaBIOS boot device codes in the boot flag nibbles.
inline constexpr std::uint8_t kBootFloppy = 1;
inline constexpr std::uint8_t kBootHardDisk = 2;
inline constexpr std::uint8_t kBootCdrom = 3;

// Equipment byte: bit 1 = math coprocessor present; no floppies (bit 0
// clear); bits 4-5 = 00, an EGA/VGA-class (or no) display.
inline constexpr std::uint8_t kEquipmentFpu = 0x02;

struct RamSplit {
  std::uint64_t below_4g = 0;
  std::uint64_t above_4g = 0;
};
RamSplit split_ram(const sdk::MachineInfo& info);

// Writes the firmware bytes and the checksum into `nvram`; other bytes are left alone.
void fill_firmware_bytes(std::array<std::uint8_t, kNvramSize>& nvram, const sdk::MachineInfo& info);

// The checksum of bytes 0x10-0x2d as stored at 0x2e (high) and 0x2f (low).
std::uint16_t cmos_checksum(const std::array<std::uint8_t, kNvramSize>& nvram);

}  // namespace molt::rtc
