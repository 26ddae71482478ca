// Firmware boot (SeaBIOS and the like): the image is a ROM at the top of the
// 32-bit address space, its last 128 KiB are also copied to 0xE0000-0xFFFFF
// in low RAM (where a PC's BIOS sits, and where SeaBIOS runs from and keeps
// its data), and the boot vCPU starts at the x86 reset vector in real mode.
// Like the rest of core/boot this knows nothing about KVM: the core maps
// FirmwareRom::bytes() as a read-only memory slot at FirmwareRom::base().
// docs/firmware.md describes the layout and what must agree with it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "core/boot/boot.hpp"

namespace molt::core::boot {

// The smallest and largest images molt maps: a 64 KiB option-ROM-sized BIOS
// up to 16 MiB (the whole flash window QEMU's pc machines offer below 4 GiB).
inline constexpr std::uint64_t kFirmwareMinSize = 64ull << 10;
inline constexpr std::uint64_t kFirmwareMaxSize = 16ull << 20;
inline constexpr std::uint64_t kFirmwareTop = 0x1'0000'0000;  // 4 GiB
// The low-memory copy: the legacy BIOS segment E000:0-F000:FFFF.
inline constexpr std::uint64_t kBiosShadowBase = 0xE0000;
inline constexpr std::uint64_t kBiosShadowSize = 128ull << 10;

// A firmware image read whole into its own host mapping (page-aligned, so
// the core can hand it to KVM as a memory slot). Move-only.
class FirmwareRom {
 public:
  // Throws BootError naming the file: unreadable, not a multiple of 4 KiB, or
  // outside [kFirmwareMinSize, kFirmwareMaxSize].
  explicit FirmwareRom(const std::filesystem::path& path);
  ~FirmwareRom();
  FirmwareRom(FirmwareRom&& other) noexcept;
  FirmwareRom& operator=(FirmwareRom&&) = delete;
  FirmwareRom(const FirmwareRom&) = delete;
  FirmwareRom& operator=(const FirmwareRom&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  // Guest-physical address of the first byte: 4 GiB - size.
  std::uint64_t base() const { return kFirmwareTop - size_; }
  std::uint8_t* host() const { return host_; }
  std::span<const std::uint8_t> bytes() const { return {host_, size_}; }

  // Restores the pristine image (for a host without read-only memory slots,
  // where the guest could have written to it).
  void refill();

 private:
  std::filesystem::path path_;
  std::uint64_t size_ = 0;
  std::uint8_t* host_ = nullptr;
};

// Copies the image's last 128 KiB (the whole image if smaller, ending at
// 0xFFFFF) into low RAM. Throws BootError if RAM does not cover that window.
void write_bios_shadow(sdk::GuestMemory& memory, const FirmwareRom& rom);

// The state an x86 CPU leaves reset in: real mode, CS selector 0xF000 with
// base 0xFFFF0000, IP 0xFFF0, so the first instruction is fetched 16 bytes
// below 4 GiB, from the ROM.
CpuEntryState reset_vector_entry();

}  // namespace molt::core::boot
