// Synthetic kernels for the boot tests: PVH ELFs and bzImages built byte by
// byte from the specifications, written to a per-test temporary directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/testing/fake_bus.hpp>

namespace molt::core::boot::test {

using Bytes = std::vector<std::uint8_t>;

void put_le(Bytes& bytes, std::size_t offset, std::uint64_t value, unsigned width);
std::uint64_t get_le(const Bytes& bytes, std::size_t offset, unsigned width);

// A little-endian integer or NUL-terminated string read back from guest memory.
std::uint64_t peek(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa, unsigned width);
std::string peek_string(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa);
Bytes peek_bytes(sdk::testing::FakeGuestMemory& memory, std::uint64_t gpa, std::size_t length);

struct ElfSegment {
  std::uint64_t paddr = 0;
  Bytes data;
  std::uint64_t memsz = 0;  // >= data.size(); the rest is bss
};

struct ElfOptions {
  bool is64 = true;
  std::vector<ElfSegment> segments;
  std::optional<std::uint64_t> pvh_entry;  // no XEN_ELFNOTE_PHYS32_ENTRY note when empty
  unsigned entry_desc_size = 4;            // 4 or 8, as kernels emit either
};
Bytes make_elf(const ElfOptions& options);

struct BzOptions {
  std::uint16_t version = 0x020f;
  std::uint16_t xloadflags = 0x1;  // XLF_KERNEL_64
  std::uint8_t setup_sects = 3;
  std::uint64_t pref_address = 0x1000000;
  std::uint32_t kernel_alignment = 0x200000;
  std::uint8_t relocatable = 1;
  std::uint32_t init_size = 0x400000;
  std::uint32_t initrd_addr_max = 0x7fffffff;
  std::uint32_t cmdline_size = 2047;
  Bytes kernel = Bytes(0x3000, 0xcc);  // the protected-mode part; multiple of 16
};
Bytes make_bzimage(const BzOptions& options);

// A directory under the system's temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path write(const std::string& name, const Bytes& bytes) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace molt::core::boot::test
