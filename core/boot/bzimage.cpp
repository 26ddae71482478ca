// Linux bzImage through the 64-bit boot protocol (Documentation/x86/boot.rst):
// the protected-mode kernel is loaded high, boot_params (the "zero page") carries
// the setup header, command line, initrd and e820 map, and the CPU enters at
// load address + 0x200 in long mode on identity-mapped page tables.
#include <algorithm>

#include <molt/sdk/device.hpp>

#include "core/boot/detail.hpp"

namespace molt::core::boot::detail {

namespace {

// Offsets into the image's first sectors, which are also offsets into boot_params.
constexpr std::uint64_t kSetupSects = 0x1f1;
constexpr std::uint64_t kSyssize = 0x1f4;
constexpr std::uint64_t kHeaderMagic = 0x202;
constexpr std::uint64_t kVersion = 0x206;
constexpr std::uint64_t kTypeOfLoader = 0x210;
constexpr std::uint64_t kCode32Start = 0x214;
constexpr std::uint64_t kRamdiskImage = 0x218;
constexpr std::uint64_t kRamdiskSize = 0x21c;
constexpr std::uint64_t kCmdLinePtr = 0x228;
constexpr std::uint64_t kInitrdAddrMax = 0x22c;
constexpr std::uint64_t kKernelAlignment = 0x230;
constexpr std::uint64_t kRelocatableKernel = 0x234;
constexpr std::uint64_t kXloadflags = 0x236;
constexpr std::uint64_t kCmdlineSize = 0x238;
constexpr std::uint64_t kPrefAddress = 0x258;
constexpr std::uint64_t kInitSize = 0x260;
constexpr std::uint64_t kSetupHeaderMin = 0x264;  // through init_size: protocol 2.12
constexpr std::uint64_t kSetupHeaderMax = 0x290;  // boot_params fields follow here
constexpr std::uint64_t kE820Entries = 0x1e8;
constexpr std::uint64_t kE820Table = 0x2d0;
constexpr std::uint64_t kE820Max = 128;

constexpr std::uint16_t kMinProtocol = 0x020c;
constexpr std::uint16_t kXlfKernel64 = 1 << 0;
constexpr std::uint64_t kEntry64Offset = 0x200;
constexpr std::uint64_t kOneMiB = 0x100000;
constexpr std::uint64_t kFourGiB = 1ULL << 32;

struct BzImage {
  std::uint64_t header_end = 0;  // file offset just past the setup header
  std::uint64_t kernel_offset = 0, kernel_size = 0;
  std::uint64_t memory_size = 0;  // bytes the kernel needs from its load address (init_size)
  std::uint64_t pref_address = 0, alignment = 0;
  bool relocatable = false;
  std::uint64_t cmdline_limit = 0, initrd_addr_max = 0;
};

std::string protocol(std::uint16_t version) {
  char text[16];
  std::snprintf(text, sizeof text, "%u.%02u", version >> 8, version & 0xff);
  return text;
}

BzImage parse(const ImageFile& k) {
  BzImage z;
  const std::uint16_t version = k.u16(kVersion);
  if (version < kMinProtocol)
    k.fail("Linux boot protocol " + protocol(version) +
           " is older than 2.12, the first with the 64-bit entry");
  z.header_end = std::min<std::uint64_t>(0x202 + k.u8(0x201), kSetupHeaderMax);
  if (z.header_end < kSetupHeaderMin)
    k.fail("setup header is too short for boot protocol " + protocol(version));
  if (!k.has(0, z.header_end)) k.fail("file is truncated inside the setup header");
  if (!(k.u16(kXloadflags) & kXlfKernel64))
    k.fail("kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)");

  const std::uint64_t setup_sects = k.u8(kSetupSects) == 0 ? 4 : k.u8(kSetupSects);
  z.kernel_offset = (setup_sects + 1) * 512;
  if (z.kernel_offset >= k.bytes.size())
    k.fail("file is truncated: it ends inside the real-mode setup (" + std::to_string(setup_sects) +
           " sectors)");
  const std::uint64_t remaining = k.bytes.size() - z.kernel_offset;
  z.kernel_size = std::uint64_t{k.u32(kSyssize)} * 16;
  if (z.kernel_size == 0) z.kernel_size = remaining;
  if (z.kernel_size > remaining)
    k.fail("file is truncated: the protected-mode kernel should have " + std::to_string(z.kernel_size) +
           " bytes, the file holds " + std::to_string(remaining));
  z.memory_size = std::max<std::uint64_t>(k.u32(kInitSize), z.kernel_size);
  z.pref_address = k.u64(kPrefAddress);
  z.alignment = k.u32(kKernelAlignment);
  z.relocatable = k.u8(kRelocatableKernel) != 0;
  z.cmdline_limit = std::uint64_t{k.u32(kCmdlineSize)} + 1;
  z.initrd_addr_max = k.u32(kInitrdAddrMax);
  return z;
}

bool kernel_fits(const BootConfig& config, std::uint64_t addr, std::uint64_t size) {
  return addr >= kOneMiB && addr <= kFourGiB && size <= kFourGiB - addr &&
         ram_contains(config.ram, addr, size);
}

// pref_address when RAM holds the kernel there; otherwise, for a relocatable
// kernel, the lowest suitably aligned address from 1 MiB up.
std::uint64_t choose_load_address(const ImageFile& k, const BootConfig& config, const BzImage& z) {
  if (kernel_fits(config, z.pref_address, z.memory_size)) {
    if (!z.relocatable || z.alignment == 0 || z.pref_address % z.alignment == 0) return z.pref_address;
  }
  const std::string need = hex(z.memory_size) + " bytes (init_size)";
  if (!z.relocatable)
    k.fail("kernel is not relocatable and guest RAM cannot hold " + need + " at " + hex(z.pref_address));
  if (z.alignment == 0 || (z.alignment & (z.alignment - 1)) != 0)
    k.fail("kernel_alignment " + hex(z.alignment) + " is not a power of two");
  std::vector<MemoryRegion> ram = config.ram;
  std::sort(ram.begin(), ram.end(), [](const auto& a, const auto& b) { return a.base < b.base; });
  for (const MemoryRegion& r : ram) {
    const std::uint64_t start = std::max(r.base, kOneMiB);
    const std::uint64_t addr = (start + z.alignment - 1) & ~(z.alignment - 1);
    if (addr >= start && kernel_fits(config, addr, z.memory_size)) return addr;
  }
  k.fail("guest RAM below 4 GiB has no room for the kernel's " + need);
}

std::vector<std::uint8_t> build_boot_params(const ImageFile& k, const BzImage& z, std::uint64_t load_addr,
                                            const PlacedInitrd& initrd, const std::vector<E820Entry>& e820) {
  Blob params(kPageSize);
  params.set_bytes(kSetupSects, k.slice(kSetupSects, z.header_end - kSetupSects));
  params.set(kTypeOfLoader, 0xff, 1);  // an unregistered boot loader
  params.set(kCode32Start, load_addr, 4);
  params.set(kCmdLinePtr, kCmdlineAddr, 4);
  params.set(kRamdiskImage, initrd.addr, 4);
  params.set(kRamdiskSize, initrd.size, 4);
  if (e820.size() > kE820Max) throw BootError("the memory map has more entries than boot_params can carry");
  params.set(kE820Entries, e820.size(), 1);
  for (std::size_t i = 0; i < e820.size(); ++i) {
    params.set(kE820Table + i * 20, e820[i].addr, 8);
    params.set(kE820Table + i * 20 + 8, e820[i].size, 8);
    params.set(kE820Table + i * 20 + 16, e820[i].type, 4);
  }
  return std::move(params.raw());
}

}  // namespace

bool has_hdrs_magic(const ImageFile& kernel) {
  return kernel.has(kHeaderMagic, 4) && kernel.u32(kHeaderMagic) == 0x53726448;  // "HdrS"
}

BootResult load_bzimage(sdk::GuestMemory& memory, const BootConfig& config, const ImageFile& kernel) {
  require_boot_area(config);
  const BzImage z = parse(kernel);
  const std::uint64_t load_addr = choose_load_address(kernel, config, z);

  BootResult result;
  result.kernel_kind = "bzimage";
  result.kernel_end = load_addr + z.memory_size;
  result.e820 = build_e820(config.ram);
  put(memory, load_addr, kernel.slice(z.kernel_offset, z.kernel_size), "kernel");
  write_cmdline(memory, config.cmdline, z.cmdline_limit);

  const std::uint64_t initrd_floor = (result.kernel_end + kPageSize - 1) & ~(kPageSize - 1);
  const std::uint64_t initrd_ceiling = std::min<std::uint64_t>(z.initrd_addr_max + 1, kFourGiB);
  const PlacedInitrd initrd = load_initrd(memory, config, initrd_floor, initrd_ceiling);
  result.initrd_addr = initrd.addr;
  result.initrd_size = initrd.size;

  put(memory, kBootParamsAddr, build_boot_params(kernel, z, load_addr, initrd, result.e820), "boot_params");
  write_identity_page_tables(memory);
  write_gdt(memory);
  write_bios_data_area(memory);
  result.mp_table_addr = write_mp_table(memory, config.vcpus, config.pci);
  result.bsp = long64_entry(load_addr + kEntry64Offset, kBootParamsAddr);
  return result;
}

}  // namespace molt::core::boot::detail
