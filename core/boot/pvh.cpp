// PVH boot: an ELF kernel with a XEN_ELFNOTE_PHYS32_ENTRY note, entered in
// 32-bit protected mode with paging off and EBX pointing at hvm_start_info
// (xen/include/public/arch-x86/hvm/start_info.h).
#include <algorithm>
#include <cstring>

#include <molt/sdk/device.hpp>

#include "core/boot/detail.hpp"

namespace molt::core::boot::detail {

namespace {

constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kPtNote = 4;
constexpr std::uint32_t kXenElfnotePhys32Entry = 18;
constexpr std::uint16_t kEmI386 = 3;
constexpr std::uint16_t kEmX86_64 = 62;
constexpr std::uint32_t kStartInfoMagic = 0x336ec578;
constexpr std::uint64_t kFourGiB = 1ULL << 32;

struct ElfLayout {
  bool is64 = false;
  std::uint64_t phoff = 0;
  std::uint64_t phentsize = 0;
  std::uint64_t phnum = 0;
};

struct ProgramHeader {
  std::uint32_t type = 0;
  std::uint64_t offset = 0, paddr = 0, filesz = 0, memsz = 0;
};

std::uint64_t align4(std::uint64_t n) {
  return (n + 3) & ~std::uint64_t{3};
}

ElfLayout elf_layout(const ImageFile& k) {
  if (!k.has(0, 0x34)) k.fail("ELF file is truncated: its header is incomplete");
  ElfLayout e;
  const std::uint8_t elf_class = k.u8(4);
  if (elf_class != 1 && elf_class != 2)
    k.fail("ELF class " + std::to_string(elf_class) + " is neither ELF32 nor ELF64");
  if (k.u8(5) != 1) k.fail("ELF file is big-endian; x86 kernels are little-endian");
  const std::uint16_t machine = k.u16(18);
  if (machine != kEmI386 && machine != kEmX86_64)
    k.fail("ELF machine " + std::to_string(machine) + " is not x86");
  e.is64 = elf_class == 2;
  if (e.is64) {
    if (!k.has(0, 0x40)) k.fail("ELF file is truncated: its header is incomplete");
    e.phoff = k.u64(0x20);
    e.phentsize = k.u16(0x36);
    e.phnum = k.u16(0x38);
  } else {
    e.phoff = k.u32(0x1c);
    e.phentsize = k.u16(0x2a);
    e.phnum = k.u16(0x2c);
  }
  const std::uint64_t min_entsize = e.is64 ? 56 : 32;
  if (e.phnum == 0) k.fail("ELF file has no program headers");
  if (e.phentsize < min_entsize)
    k.fail("ELF program header size " + std::to_string(e.phentsize) + " is too small");
  if (!k.has(e.phoff, e.phentsize * e.phnum))
    k.fail("ELF file is truncated: its program headers end past the end of the file");
  return e;
}

ProgramHeader program_header(const ImageFile& k, const ElfLayout& e, std::uint64_t index) {
  const std::uint64_t at = e.phoff + index * e.phentsize;
  ProgramHeader p;
  p.type = k.u32(at);
  if (e.is64) {
    p.offset = k.u64(at + 8);
    p.paddr = k.u64(at + 24);
    p.filesz = k.u64(at + 32);
    p.memsz = k.u64(at + 40);
  } else {
    p.offset = k.u32(at + 4);
    p.paddr = k.u32(at + 12);
    p.filesz = k.u32(at + 16);
    p.memsz = k.u32(at + 20);
  }
  if (!k.has(p.offset, p.filesz))
    k.fail("ELF program header " + std::to_string(index) + " points at file bytes " + hex(p.offset) + "+" +
           hex(p.filesz) + " past the end of the file (" + std::to_string(k.bytes.size()) + " bytes)");
  return p;
}

// Walks one PT_NOTE segment; every note is bounds-checked against the segment.
std::optional<std::uint64_t> pvh_entry_in_notes(const ImageFile& k, const ProgramHeader& note) {
  std::uint64_t pos = note.offset;
  const std::uint64_t end = note.offset + note.filesz;
  while (end - pos >= 12) {
    const std::uint64_t namesz = k.u32(pos), descsz = k.u32(pos + 4), type = k.u32(pos + 8);
    const std::uint64_t name_at = pos + 12, desc_at = name_at + align4(namesz);
    const std::uint64_t next = desc_at + align4(descsz);
    if (next > end)
      k.fail("ELF note at file offset " + hex(pos) + " runs past the end of its PT_NOTE segment");
    const bool xen = namesz == 4 && std::memcmp(&k.bytes[name_at], "Xen", 4) == 0;
    if (xen && type == kXenElfnotePhys32Entry) {
      if (descsz != 4 && descsz != 8)
        k.fail("XEN_ELFNOTE_PHYS32_ENTRY note has a " + std::to_string(descsz) +
               "-byte value; expected 4 or 8");
      const std::uint64_t entry = descsz == 4 ? k.u32(desc_at) : k.u64(desc_at);
      if (entry >= kFourGiB) k.fail("PVH entry point " + hex(entry) + " is above 4 GiB");
      return entry;
    }
    pos = next;
  }
  return std::nullopt;
}

std::vector<ProgramHeader> load_segments(const ImageFile& k, const BootConfig& config) {
  const ElfLayout e = elf_layout(k);
  std::vector<ProgramHeader> loads;
  for (std::uint64_t i = 0; i < e.phnum; ++i) {
    const ProgramHeader p = program_header(k, e, i);
    if (p.type != kPtLoad || p.memsz == 0) continue;
    const std::string name =
        "ELF segment " + std::to_string(i) + " (" + hex(p.paddr) + "+" + hex(p.memsz) + ")";
    if (p.filesz > p.memsz) k.fail(name + " has more file bytes (" + hex(p.filesz) + ") than memory bytes");
    if (!ram_contains(config.ram, p.paddr, p.memsz)) k.fail(name + " lies outside guest RAM");
    if (overlaps(p.paddr, p.memsz, 0, kBootDataEnd) ||
        overlaps(p.paddr, p.memsz, kReservedStart, kReservedEnd - kReservedStart))
      k.fail(name + " overlaps memory molt reserves for boot data (below " + hex(kBootDataEnd) +
             ") or the BIOS area (" + hex(kReservedStart) + "-" + hex(kReservedEnd - 1) + ")");
    loads.push_back(p);
  }
  if (loads.empty()) k.fail("ELF file has no loadable segments");
  return loads;
}

void write_start_info(sdk::GuestMemory& memory, const std::vector<E820Entry>& e820,
                      const PlacedInitrd& initrd) {
  if (e820.size() > kMaxMemmapEntries)
    throw BootError("the memory map has too many entries for the PVH start info");
  Blob memmap(e820.size() * 24);
  for (std::size_t i = 0; i < e820.size(); ++i) {
    memmap.set(i * 24, e820[i].addr, 8);
    memmap.set(i * 24 + 8, e820[i].size, 8);
    memmap.set(i * 24 + 16, e820[i].type, 4);  // hvm_memmap types 1 and 2 match e820's
  }
  put(memory, kMemmapAddr, memmap.bytes(), "PVH memory map");

  Blob info(0x38);
  info.set(0x00, kStartInfoMagic, 4);
  info.set(0x04, 1, 4);  // version 1: has the memory map fields
  if (initrd.size != 0) {
    Blob module(32);
    module.set(0, initrd.addr, 8);
    module.set(8, initrd.size, 8);
    put(memory, kModlistAddr, module.bytes(), "PVH module list");
    info.set(0x0c, 1, 4);
    info.set(0x10, kModlistAddr, 8);
  }
  info.set(0x18, kCmdlineAddr, 8);
  info.set(0x28, kMemmapAddr, 8);
  info.set(0x30, e820.size(), 4);
  put(memory, kStartInfoAddr, info.bytes(), "PVH start info");
}

}  // namespace

bool is_elf(const ImageFile& kernel) {
  static constexpr std::uint8_t kMagic[4] = {0x7f, 'E', 'L', 'F'};
  return kernel.has(0, 4) && std::equal(kMagic, kMagic + 4, kernel.bytes.begin());
}

std::optional<std::uint64_t> find_pvh_entry(const ImageFile& kernel) {
  const ElfLayout e = elf_layout(kernel);
  for (std::uint64_t i = 0; i < e.phnum; ++i) {
    const ProgramHeader p = program_header(kernel, e, i);
    if (p.type != kPtNote) continue;
    if (auto entry = pvh_entry_in_notes(kernel, p)) return entry;
  }
  return std::nullopt;
}

BootResult load_pvh(sdk::GuestMemory& memory, const BootConfig& config, const ImageFile& kernel,
                    std::uint64_t entry) {
  require_boot_area(config);
  const std::vector<ProgramHeader> loads = load_segments(kernel, config);
  const bool entry_loaded = std::any_of(loads.begin(), loads.end(), [&](const ProgramHeader& p) {
    return entry >= p.paddr && entry - p.paddr < p.memsz;
  });
  if (!entry_loaded) kernel.fail("PVH entry point " + hex(entry) + " is not inside any loadable segment");

  BootResult result;
  result.kernel_kind = "pvh-elf";
  for (const ProgramHeader& p : loads) {
    put(memory, p.paddr, kernel.slice(p.offset, p.filesz), "kernel segment");
    put_zeros(memory, p.paddr + p.filesz, p.memsz - p.filesz, "kernel bss");
    result.kernel_end = std::max(result.kernel_end, p.paddr + p.memsz);
  }
  write_cmdline(memory, config.cmdline, kCmdlineMax);
  result.e820 = build_e820(config.ram);
  const std::uint64_t initrd_floor = (result.kernel_end + kPageSize - 1) & ~(kPageSize - 1);
  const PlacedInitrd initrd = load_initrd(memory, config, initrd_floor, kFourGiB);
  result.initrd_addr = initrd.addr;
  result.initrd_size = initrd.size;
  write_start_info(memory, result.e820, initrd);
  result.mp_table_addr = write_mp_table(memory, config.vcpus, config.pci);
  write_gdt(memory);
  write_bios_data_area(memory);
  result.bsp = protected32_entry(entry, kStartInfoAddr);
  return result;
}

}  // namespace molt::core::boot::detail
