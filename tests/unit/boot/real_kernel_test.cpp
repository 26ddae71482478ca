// Debian's own kernel as an outside witness: guest/linux/fetch-kernel.sh leaves
// bzImage and the vmlinux extracted from it in guest/linux/cache.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <molt/sdk/testing/fake_bus.hpp>

#include "core/boot/boot.hpp"
#include "tests/unit/boot/test_images.hpp"

namespace molt::core::boot {
namespace {

using sdk::testing::FakeGuestMemory;
using test::Bytes;
using test::get_le;
using test::peek;
using test::peek_bytes;

constexpr std::uint64_t kRamSize = 512 << 20;
const std::filesystem::path kCache = MOLT_LINUX_CACHE;

// Fails, saying how to fetch it, when the file is absent (scripts/test.sh
// fetches Debian's kernel before it runs the tests).
#define REQUIRE_CACHED(file)                                                                               \
  do {                                                                                                     \
    if (!std::filesystem::exists(kCache / (file))) {                                                       \
      GTEST_FAIL() << (kCache / (file)).string() << " is absent; run guest/linux/fetch-kernel.sh";         \
    }                                                                                                      \
  } while (0)

Bytes read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

BootConfig debian_config(const std::filesystem::path& kernel) {
  BootConfig c;
  c.kernel = kernel;
  c.cmdline = "console=ttyS0 earlyprintk=ttyS0 panic=-1";
  c.ram = {{0, kRamSize}};
  c.vcpus = 2;
  return c;
}

TEST(DebianKernel, VmlinuxBootsThroughPvh) {
  REQUIRE_CACHED("vmlinux");
  FakeGuestMemory memory(kRamSize);
  const BootConfig c = debian_config(kCache / "vmlinux");
  const BootResult r = load_kernel(memory, c);
  EXPECT_EQ(r.kernel_kind, "pvh-elf");
  EXPECT_EQ(r.bsp.mode, EntryMode::Protected32);
  // Linux's pvh_start_xen (arch/x86/platform/pvh/head.S) begins with CLD.
  EXPECT_EQ(peek(memory, r.bsp.rip, 1), 0xfcu) << std::hex << "entry " << r.bsp.rip;
  EXPECT_GE(r.bsp.rip, 0x1000000u);
  EXPECT_LT(r.bsp.rip, r.kernel_end);
  EXPECT_LE(r.kernel_end, kRamSize);

  // The first PT_LOAD, found independently of the loader, is in place.
  const Bytes file = read_all(c.kernel);
  const auto phoff = get_le(file, 0x20, 8);
  ASSERT_EQ(get_le(file, phoff, 4), 1u) << "first program header is PT_LOAD";
  const auto offset = get_le(file, phoff + 8, 8), paddr = get_le(file, phoff + 24, 8);
  EXPECT_EQ(peek_bytes(memory, paddr, 4096),
            Bytes(file.begin() + static_cast<std::ptrdiff_t>(offset),
                  file.begin() + static_cast<std::ptrdiff_t>(offset + 4096)));
  EXPECT_EQ(peek(memory, r.bsp.rbx, 4), 0x336ec578u);
  EXPECT_EQ(test::peek_string(memory, peek(memory, r.bsp.rbx + 0x18, 8)), c.cmdline);
  EXPECT_EQ(peek(memory, r.bsp.rbx + 0x30, 4), r.e820.size());
}

TEST(DebianKernel, BzImageBootsThroughTheSixtyFourBitProtocol) {
  REQUIRE_CACHED("bzImage");
  FakeGuestMemory memory(kRamSize);
  test::TempDir dir;
  BootConfig c = debian_config(kCache / "bzImage");
  Bytes initrd(3 << 20);
  for (std::size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<std::uint8_t>(i * 31);
  c.initrd = dir.write("initrd", initrd);
  const BootResult r = load_kernel(memory, c);

  const Bytes file = read_all(c.kernel);
  const std::uint64_t pref_address = get_le(file, 0x258, 8);
  const std::uint64_t setup_sects = file[0x1f1] ? file[0x1f1] : 4;
  EXPECT_EQ(r.kernel_kind, "bzimage");
  EXPECT_EQ(r.bsp.mode, EntryMode::Long64);
  EXPECT_EQ(r.bsp.rip, pref_address + 0x200);
  EXPECT_EQ(r.kernel_end, pref_address + get_le(file, 0x260, 4));
  // startup_64 in arch/x86/boot/compressed/head_64.S begins with CLD; CLI.
  EXPECT_EQ(peek(memory, r.bsp.rip, 2), 0xfafcu);
  const std::uint64_t kernel_offset = (setup_sects + 1) * 512;
  EXPECT_EQ(peek_bytes(memory, pref_address, 4096),
            Bytes(file.begin() + static_cast<std::ptrdiff_t>(kernel_offset),
                  file.begin() + static_cast<std::ptrdiff_t>(kernel_offset + 4096)));

  const std::uint64_t params = r.bsp.rsi;
  EXPECT_EQ(peek(memory, params + 0x202, 4), 0x53726448u);
  EXPECT_GE(peek(memory, params + 0x206, 2), 0x020cu);
  EXPECT_EQ(peek(memory, params + 0x210, 1), 0xffu);
  EXPECT_EQ(test::peek_string(memory, peek(memory, params + 0x228, 4)), c.cmdline);
  EXPECT_EQ(peek(memory, params + 0x1e8, 1), r.e820.size());
  const auto ramdisk = peek(memory, params + 0x218, 4);
  EXPECT_EQ(peek(memory, params + 0x21c, 4), initrd.size());
  EXPECT_GE(ramdisk, r.kernel_end);
  EXPECT_LE(ramdisk + initrd.size() - 1, get_le(file, 0x22c, 4)) << "below initrd_addr_max";
  EXPECT_EQ(peek_bytes(memory, ramdisk, initrd.size()), initrd);
}

}  // namespace
}  // namespace molt::core::boot
