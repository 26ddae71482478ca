// Internals shared by the boot loaders: the low-memory layout, bounded reads
// from kernel images, checked writes to guest RAM. Not for use outside core/boot.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/boot/boot.hpp"

namespace molt::core::boot::detail {

// Fixed low-memory layout (docs/boot.md). Everything molt writes for the guest,
// other than the kernel and initrd, lives in [kBootDataStart, kBootDataEnd) or in
// the reserved window where the MP table goes.
inline constexpr std::uint64_t kGdtAddr = 0x500;
inline constexpr std::uint64_t kStartInfoAddr = 0x1000;   // PVH hvm_start_info
inline constexpr std::uint64_t kModlistAddr = 0x1040;     // PVH hvm_modlist_entry[1]
inline constexpr std::uint64_t kMemmapAddr = 0x2000;      // PVH hvm_memmap_table_entry[]
inline constexpr std::uint64_t kMaxMemmapEntries = 128;   // 3 KiB, up to 0x2c00
inline constexpr std::uint64_t kBootParamsAddr = 0x7000;  // bzImage zero page
inline constexpr std::uint64_t kStackTop = 0x8ff0;        // stack 0x8000-0x8fff
inline constexpr std::uint64_t kPml4Addr = 0x9000;
inline constexpr std::uint64_t kPdptAddr = 0xa000;
inline constexpr std::uint64_t kPdAddr = 0xb000;  // four page directories, to 0xefff
inline constexpr std::uint64_t kCmdlineAddr = 0x20000;
inline constexpr std::uint64_t kCmdlineMax = 0x10000;  // including the NUL
inline constexpr std::uint64_t kBootDataStart = 0x500;
inline constexpr std::uint64_t kBootDataEnd = kCmdlineAddr + kCmdlineMax;
inline constexpr std::uint64_t kReservedStart = 0x9fc00;  // EBDA .. end of BIOS ROM
inline constexpr std::uint64_t kReservedEnd = 0x100000;
inline constexpr std::uint64_t kPageSize = 0x1000;

// GDT selectors: one table serves both entry modes.
inline constexpr std::uint16_t kCode32Selector = 0x08;
inline constexpr std::uint16_t kCode64Selector = 0x10;  // Linux's __BOOT_CS
inline constexpr std::uint16_t kDataSelector = 0x18;    // Linux's __BOOT_DS
inline constexpr std::uint16_t kTssSelector = 0x20;     // 16-byte system descriptor
inline constexpr std::uint16_t kGdtLimit = 0x2f;

std::string hex(std::uint64_t value);

// A kernel or initrd file read whole; `what` ("kernel", "initrd") and the path
// start every error message about it.
struct ImageFile {
  std::string what;
  std::filesystem::path path;
  std::vector<std::uint8_t> bytes;

  std::string prefix() const { return what + " " + path.string() + ": "; }
  [[noreturn]] void fail(const std::string& why) const;
  bool has(std::uint64_t offset, std::uint64_t length) const {
    return offset <= bytes.size() && length <= bytes.size() - offset;
  }
  // Little-endian integers; callers check has() first, these throw if they didn't.
  std::uint8_t u8(std::uint64_t offset) const { return static_cast<std::uint8_t>(le(offset, 1)); }
  std::uint16_t u16(std::uint64_t offset) const { return static_cast<std::uint16_t>(le(offset, 2)); }
  std::uint32_t u32(std::uint64_t offset) const { return static_cast<std::uint32_t>(le(offset, 4)); }
  std::uint64_t u64(std::uint64_t offset) const { return le(offset, 8); }
  std::uint64_t le(std::uint64_t offset, unsigned width) const;
  std::span<const std::uint8_t> slice(std::uint64_t offset, std::uint64_t length) const;
};

ImageFile read_image(const std::string& what, const std::filesystem::path& path);

// True if [base, base + size) lies inside one RAM region (no wrap-around).
bool ram_contains(const std::vector<MemoryRegion>& ram, std::uint64_t base, std::uint64_t size);
// True if [a, a + alen) and [b, b + blen) share a byte.
bool overlaps(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen);

// Guest RAM writes that throw BootError naming `what` when RAM doesn't hold them.
void put(sdk::GuestMemory& memory, std::uint64_t gpa, std::span<const std::uint8_t> bytes,
         const std::string& what);
void put_zeros(sdk::GuestMemory& memory, std::uint64_t gpa, std::uint64_t length, const std::string& what);

// A little-endian byte buffer for building guest structures.
class Blob {
 public:
  explicit Blob(std::size_t size) : bytes_(size) {}
  void set(std::size_t offset, std::uint64_t value, unsigned width);
  void set_bytes(std::size_t offset, std::span<const std::uint8_t> in);
  std::span<const std::uint8_t> bytes() const { return bytes_; }
  std::vector<std::uint8_t>& raw() { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

// Checks that RAM holds molt's boot data area and that the kernel's own ranges
// stay clear of it; writes the GDT.
void require_boot_area(const BootConfig& config);
void write_gdt(sdk::GuestMemory& memory);
// The BIOS Data Area fields guests read before scanning for the MP table: the
// EBDA segment (0x40e) and the KiB of base memory (0x413), as a PC BIOS leaves them.
void write_bios_data_area(sdk::GuestMemory& memory);
// Writes the NUL-terminated command line at kCmdlineAddr; `limit` counts the NUL.
void write_cmdline(sdk::GuestMemory& memory, const std::string& cmdline, std::uint64_t limit);

// The highest page-aligned address where `size` bytes fit in RAM, at or above
// `floor` and ending at or below `ceiling`; nullopt if nowhere.
std::optional<std::uint64_t> place_high(const std::vector<MemoryRegion>& ram, std::uint64_t size,
                                        std::uint64_t floor, std::uint64_t ceiling);

// Reads the initrd and puts it as high as place_high allows; throws if it doesn't fit.
struct PlacedInitrd {
  std::uint64_t addr = 0, size = 0;
};
PlacedInitrd load_initrd(sdk::GuestMemory& memory, const BootConfig& config, std::uint64_t floor,
                         std::uint64_t ceiling);

CpuEntryState protected32_entry(std::uint64_t rip, std::uint64_t rbx);
CpuEntryState long64_entry(std::uint64_t rip, std::uint64_t rsi);
// Identity maps the first 4 GiB with 2 MiB pages (PML4, PDPT, four PDs).
void write_identity_page_tables(sdk::GuestMemory& memory);

BootResult load_pvh(sdk::GuestMemory& memory, const BootConfig& config, const ImageFile& kernel,
                    std::uint64_t entry);
// The PVH entry point if `kernel` is an ELF with a XEN_ELFNOTE_PHYS32_ENTRY
// note, nullopt if it has no such note; throws on a malformed ELF.
std::optional<std::uint64_t> find_pvh_entry(const ImageFile& kernel);
bool is_elf(const ImageFile& kernel);
bool has_hdrs_magic(const ImageFile& kernel);
BootResult load_bzimage(sdk::GuestMemory& memory, const BootConfig& config, const ImageFile& kernel);

}  // namespace molt::core::boot::detail
