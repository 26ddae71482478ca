#include "tests/unit/boot/test_images.hpp"

#include <stdlib.h>

#include <fstream>
#include <stdexcept>

namespace molt::core::boot::test {

void put_le(Bytes& bytes, std::size_t offset, std::uint64_t value, unsigned width) {
  if (bytes.size() < offset + width) bytes.resize(offset + width);
  for (unsigned i = 0; i < width; ++i) bytes[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint64_t get_le(const Bytes& bytes, std::size_t offset, unsigned width) {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < width; ++i) value |= std::uint64_t{bytes.at(offset + i)} << (8 * i);
  return value;
}

Bytes peek_bytes(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa, std::size_t length) {
  Bytes out(length);
  if (!memory.read(gpa, out)) throw std::out_of_range("peek outside fake guest memory");
  return out;
}

std::uint64_t peek(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa, unsigned width) {
  return get_le(peek_bytes(memory, gpa, width), 0, width);
}

std::string peek_string(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa) {
  std::string s;
  for (std::uint64_t at = gpa; s.size() < 0x10000; ++at) {
    const auto c = static_cast<char>(peek(memory, at, 1));
    if (c == '\0') return s;
    s.push_back(c);
  }
  throw std::runtime_error("unterminated string in guest memory");
}

static void append_note(Bytes& notes, const std::string& name, std::uint32_t type, const Bytes& desc) {
  const std::size_t at = notes.size();
  put_le(notes, at, name.size() + 1, 4);
  put_le(notes, at + 4, desc.size(), 4);
  put_le(notes, at + 8, type, 4);
  notes.insert(notes.end(), name.begin(), name.end());
  notes.push_back(0);
  while (notes.size() % 4) notes.push_back(0);
  notes.insert(notes.end(), desc.begin(), desc.end());
  while (notes.size() % 4) notes.push_back(0);
}

Bytes make_elf(const ElfOptions& o) {
  const std::size_t ehsize = o.is64 ? 64 : 52, phentsize = o.is64 ? 56 : 32;
  const std::size_t phnum = 1 + o.segments.size();
  Bytes notes;
  append_note(notes, "GNU", 3, Bytes{1, 2, 3, 4});  // a build-id-like note the loader must skip
  if (o.pvh_entry) {
    Bytes desc;
    put_le(desc, 0, *o.pvh_entry, o.entry_desc_size);
    append_note(notes, "Xen", 18, desc);
  }
  Bytes elf;
  std::size_t offset = ehsize + phnum * phentsize;
  const auto phdr = [&](std::size_t index, std::uint32_t type, std::uint64_t file_offset, std::uint64_t paddr,
                        std::uint64_t filesz, std::uint64_t memsz) {
    const std::size_t at = ehsize + index * phentsize;
    put_le(elf, at, type, 4);
    if (o.is64) {
      put_le(elf, at + 8, file_offset, 8);
      put_le(elf, at + 16, paddr, 8);
      put_le(elf, at + 24, paddr, 8);
      put_le(elf, at + 32, filesz, 8);
      put_le(elf, at + 40, memsz, 8);
    } else {
      put_le(elf, at + 4, file_offset, 4);
      put_le(elf, at + 8, paddr, 4);
      put_le(elf, at + 12, paddr, 4);
      put_le(elf, at + 16, filesz, 4);
      put_le(elf, at + 20, memsz, 4);
    }
  };
  elf.resize(offset);
  phdr(0, 4, offset, 0, notes.size(), notes.size());
  elf.insert(elf.end(), notes.begin(), notes.end());
  for (std::size_t i = 0; i < o.segments.size(); ++i) {
    while (elf.size() % 16) elf.push_back(0);
    const ElfSegment& s = o.segments[i];
    phdr(1 + i, 1, elf.size(), s.paddr, s.data.size(), s.memsz);
    elf.insert(elf.end(), s.data.begin(), s.data.end());
  }
  const Bytes magic{0x7f, 'E', 'L', 'F', static_cast<std::uint8_t>(o.is64 ? 2 : 1), 1, 1};
  std::copy(magic.begin(), magic.end(), elf.begin());
  put_le(elf, 0x10, 2, 2);                // ET_EXEC
  put_le(elf, 0x12, o.is64 ? 62 : 3, 2);  // EM_X86_64 / EM_386
  put_le(elf, 0x14, 1, 4);
  put_le(elf, 0x18, 0xdead0000, o.is64 ? 8 : 4);  // e_entry: not what PVH uses
  put_le(elf, o.is64 ? 0x20 : 0x1c, ehsize, o.is64 ? 8 : 4);
  put_le(elf, o.is64 ? 0x34 : 0x28, ehsize, 2);
  put_le(elf, o.is64 ? 0x36 : 0x2a, phentsize, 2);
  put_le(elf, o.is64 ? 0x38 : 0x2c, phnum, 2);
  return elf;
}

Bytes make_bzimage(const BzOptions& o) {
  const std::size_t kernel_offset = (o.setup_sects + 1) * 512;
  Bytes image(kernel_offset, 0);
  image.insert(image.end(), o.kernel.begin(), o.kernel.end());
  put_le(image, 0x1f1, o.setup_sects, 1);
  put_le(image, 0x1f2, 1, 2);  // root_flags: checked to be copied into boot_params
  put_le(image, 0x1f4, o.kernel.size() / 16, 4);
  put_le(image, 0x1fa, 0xffff, 2);  // vid_mode
  put_le(image, 0x1fe, 0xaa55, 2);
  put_le(image, 0x200, 0xeb, 1);
  put_le(image, 0x201, 0x280 - 0x202, 1);  // setup header ends at 0x280
  put_le(image, 0x202, 0x53726448, 4);     // "HdrS"
  put_le(image, 0x206, o.version, 2);
  put_le(image, 0x211, 0x01, 1);  // LOADED_HIGH
  put_le(image, 0x214, 0x100000, 4);
  put_le(image, 0x22c, o.initrd_addr_max, 4);
  put_le(image, 0x230, o.kernel_alignment, 4);
  put_le(image, 0x234, o.relocatable, 1);
  put_le(image, 0x235, 21, 1);
  put_le(image, 0x236, o.xloadflags, 2);
  put_le(image, 0x238, o.cmdline_size, 4);
  put_le(image, 0x258, o.pref_address, 8);
  put_le(image, 0x260, o.init_size, 4);
  return image;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "molt-boot-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(const std::string& name, const Bytes& bytes) const {
  const auto file = path_ / name;
  // A fresh inode each time: ext4 flushes a file rewritten through O_TRUNC when
  // it is closed, which would make the corruption tests wait on the disk.
  std::filesystem::remove(file);
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
  return file;
}

}  // namespace molt::core::boot::test
