// Shared pieces of the boot loaders: image files, guest writes, the GDT, entry
// states, page tables, initrd placement.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <system_error>

#include <molt/sdk/device.hpp>

#include "core/boot/detail.hpp"

namespace molt::core::boot::detail {

std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
  return text;
}

void ImageFile::fail(const std::string& why) const {
  throw BootError(prefix() + why);
}

std::uint64_t ImageFile::le(std::uint64_t offset, unsigned width) const {
  if (!has(offset, width))
    fail("read of " + std::to_string(width) + " bytes at " + hex(offset) + " is past the end of the file");
  std::uint64_t value = 0;
  for (unsigned i = 0; i < width; ++i) value |= std::uint64_t{bytes[offset + i]} << (8 * i);
  return value;
}

std::span<const std::uint8_t> ImageFile::slice(std::uint64_t offset, std::uint64_t length) const {
  if (!has(offset, length))
    fail(hex(length) + " bytes at offset " + hex(offset) + " lie past the end of the file (" +
         std::to_string(bytes.size()) + " bytes)");
  return std::span<const std::uint8_t>(bytes).subspan(offset, length);
}

ImageFile read_image(const std::string& what, const std::filesystem::path& path) {
  ImageFile image{what, path, {}};
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) image.fail("file does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) image.fail("not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) image.fail("cannot be sized: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) image.fail("cannot be opened for reading");
  // One read of the whole file: a stream iterator costs ~200 ms for a vmlinux.
  image.bytes.resize(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(image.bytes.data()), static_cast<std::streamsize>(size));
  if (in.gcount() != static_cast<std::streamsize>(size)) image.fail("read failed or the file changed size");
  return image;
}

bool overlaps(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen) {
  if (alen == 0 || blen == 0) return false;
  return a < b + blen && b < a + alen;
}

bool ram_contains(const std::vector<MemoryRegion>& ram, std::uint64_t base, std::uint64_t size) {
  if (base + size < base) return false;
  return std::any_of(ram.begin(), ram.end(), [&](const MemoryRegion& r) {
    return base >= r.base && size <= r.size && base - r.base <= r.size - size;
  });
}

void put(sdk::GuestMemory& memory, std::uint64_t gpa, std::span<const std::uint8_t> bytes,
         const std::string& what) {
  if (!memory.write(gpa, bytes))
    throw BootError(what + " at " + hex(gpa) + " (" + hex(bytes.size()) +
                    " bytes) does not fit in guest RAM");
}

void put_zeros(sdk::GuestMemory& memory, std::uint64_t gpa, std::uint64_t length, const std::string& what) {
  constexpr std::uint64_t kChunk = 1 << 20;
  const std::vector<std::uint8_t> zeros(std::min(length, kChunk));
  for (std::uint64_t done = 0; done < length;) {
    const std::uint64_t n = std::min(kChunk, length - done);
    put(memory, gpa + done, std::span(zeros).first(n), what);
    done += n;
  }
}

void Blob::set(std::size_t offset, std::uint64_t value, unsigned width) {
  for (unsigned i = 0; i < width; ++i) bytes_.at(offset + i) = static_cast<std::uint8_t>(value >> (8 * i));
}

void Blob::set_bytes(std::size_t offset, std::span<const std::uint8_t> in) {
  if (offset > bytes_.size() || in.size() > bytes_.size() - offset)
    throw std::out_of_range("Blob::set_bytes");
  std::copy(in.begin(), in.end(), bytes_.begin() + static_cast<std::ptrdiff_t>(offset));
}

void require_boot_area(const BootConfig& config) {
  if (!ram_contains(config.ram, 0, kBootDataEnd))
    throw BootError("guest RAM must start at address 0 and cover at least " + hex(kBootDataEnd) +
                    " bytes for the boot data molt writes there");
}

// Descriptor for a flat 4 GiB segment: base 0, limit 0xfffff in 4 KiB units.
static std::uint64_t flat_descriptor(std::uint8_t access, std::uint8_t flags) {
  return 0xffffULL | (std::uint64_t{access} << 40) | (0xfULL << 48) | (std::uint64_t{flags} << 52);
}

void write_gdt(sdk::GuestMemory& memory) {
  Blob gdt(kGdtLimit + 1);
  gdt.set(kCode32Selector, flat_descriptor(0x9b, 0xc), 8);  // present, code r/x accessed; G, D
  gdt.set(kCode64Selector, flat_descriptor(0x9b, 0xa), 8);  // present, code r/x accessed; G, L
  gdt.set(kDataSelector, flat_descriptor(0x93, 0xc), 8);    // present, data r/w accessed; G, B
  // Busy TSS, base 0, limit 0x67: the PVH spec's TR. Upper 8 bytes stay zero.
  gdt.set(kTssSelector, 0x67 | (0x8bULL << 40), 8);
  put(memory, kGdtAddr, gdt.bytes(), "GDT");
}

void write_bios_data_area(sdk::GuestMemory& memory) {
  Blob ebda_segment(2), base_kib(2);
  ebda_segment.set(0, kReservedStart >> 4, 2);
  base_kib.set(0, kReservedStart >> 10, 2);
  put(memory, 0x40e, ebda_segment.bytes(), "BIOS data area");
  put(memory, 0x413, base_kib.bytes(), "BIOS data area");
}

static Segment segment(std::uint16_t selector, std::uint8_t type, bool long_mode) {
  Segment s;
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = long_mode ? 1 : 0;
  s.db = long_mode ? 0 : 1;
  return s;
}

static CpuEntryState common_entry() {
  CpuEntryState state;
  state.data = segment(kDataSelector, 0x3, false);
  state.tr = Segment{0, 0x67, kTssSelector, 0xb, 1, 0, 0, 0, 0, 0, 0};
  state.gdt_base = kGdtAddr;
  state.gdt_limit = kGdtLimit;
  state.rsp = kStackTop;
  return state;
}

CpuEntryState protected32_entry(std::uint64_t rip, std::uint64_t rbx) {
  CpuEntryState state = common_entry();
  state.mode = EntryMode::Protected32;
  state.code = segment(kCode32Selector, 0xb, false);
  state.rip = rip;
  state.rbx = rbx;
  state.cr0 = 0x1;  // PE only: paging off, as PVH requires
  return state;
}

CpuEntryState long64_entry(std::uint64_t rip, std::uint64_t rsi) {
  CpuEntryState state = common_entry();
  state.mode = EntryMode::Long64;
  state.code = segment(kCode64Selector, 0xb, true);
  state.rip = rip;
  state.rsi = rsi;
  state.cr0 = 0x80000001;  // PE | PG
  state.cr3 = kPml4Addr;
  state.cr4 = 0x20;    // PAE
  state.efer = 0x500;  // LME | LMA
  return state;
}

void write_identity_page_tables(sdk::GuestMemory& memory) {
  constexpr std::uint64_t kPresentWritable = 0x3, kLargePage = 0x80;
  Blob pml4(kPageSize), pdpt(kPageSize), pds(4 * kPageSize);
  pml4.set(0, kPdptAddr | kPresentWritable, 8);
  for (unsigned i = 0; i < 4; ++i) pdpt.set(i * 8, (kPdAddr + i * kPageSize) | kPresentWritable, 8);
  for (std::uint64_t i = 0; i < 4 * 512; ++i) pds.set(i * 8, (i << 21) | kPresentWritable | kLargePage, 8);
  put(memory, kPml4Addr, pml4.bytes(), "PML4");
  put(memory, kPdptAddr, pdpt.bytes(), "page directory pointer table");
  put(memory, kPdAddr, pds.bytes(), "page directories");
}

void write_cmdline(sdk::GuestMemory& memory, const std::string& cmdline, std::uint64_t limit) {
  limit = std::min(limit, kCmdlineMax);
  if (cmdline.size() + 1 > limit)
    throw BootError("command line is " + std::to_string(cmdline.size()) +
                    " bytes; this kernel takes at most " + std::to_string(limit - 1));
  if (cmdline.find('\0') != std::string::npos) throw BootError("command line contains a NUL byte");
  std::vector<std::uint8_t> bytes(cmdline.begin(), cmdline.end());
  bytes.push_back(0);
  put(memory, kCmdlineAddr, bytes, "command line");
}

std::optional<std::uint64_t> place_high(const std::vector<MemoryRegion>& ram, std::uint64_t size,
                                        std::uint64_t floor, std::uint64_t ceiling) {
  std::optional<std::uint64_t> best;
  for (const MemoryRegion& r : ram) {
    const std::uint64_t region_end = r.base + r.size < r.base ? UINT64_MAX : r.base + r.size;
    const std::uint64_t top = std::min(region_end, ceiling);
    const std::uint64_t low = std::max(r.base, floor);
    if (top < size || top - size < low) continue;
    const std::uint64_t addr = (top - size) & ~(kPageSize - 1);
    if (addr < low) continue;
    if (!best || addr > *best) best = addr;
  }
  return best;
}

PlacedInitrd load_initrd(sdk::GuestMemory& memory, const BootConfig& config, std::uint64_t floor,
                         std::uint64_t ceiling) {
  if (!config.initrd) return {};
  const ImageFile initrd = read_image("initrd", *config.initrd);
  if (initrd.bytes.empty()) initrd.fail("file is empty");
  const auto addr = place_high(config.ram, initrd.bytes.size(), floor, ceiling);
  if (!addr)
    initrd.fail(std::to_string(initrd.bytes.size()) +
                " bytes do not fit in guest RAM between the kernel's end at " + hex(floor) +
                " and the limit " + hex(ceiling) + "; give the guest more RAM or use a smaller initrd");
  put(memory, *addr, initrd.bytes, "initrd");
  return {*addr, initrd.bytes.size()};
}

}  // namespace molt::core::boot::detail
