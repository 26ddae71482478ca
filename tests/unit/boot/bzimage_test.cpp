#include <gtest/gtest.h>

#include <molt/sdk/testing/fake_bus.hpp>

#include "core/boot/boot.hpp"
#include "tests/unit/boot/test_images.hpp"

namespace molt::core::boot {
namespace {

using sdk::testing::FakeGuestMemory;
using test::Bytes;
using test::peek;
using test::peek_bytes;
using test::peek_string;

constexpr std::uint64_t MiB = 1 << 20;
constexpr std::uint64_t kBootParams = 0x7000;

std::string message_of(FakeGuestMemory& memory, const BootConfig& c) {
  try {
    load_kernel(memory, c);
  } catch (const BootError& e) {
    return e.what();
  }
  return "(no error)";
}

class BzImageLoad : public ::testing::Test {
 protected:
  explicit BzImageLoad(std::uint64_t ram = 64 * MiB) : memory_(ram) {}
  BootConfig config(const test::BzOptions& o, std::uint64_t ram = 64 * MiB) {
    BootConfig c;
    c.kernel = dir_.write("bzImage", test::make_bzimage(o));
    c.cmdline = "console=ttyS0 earlyprintk=serial";
    c.ram = {{0, ram}};
    c.vcpus = 1;
    return c;
  }
  test::TempDir dir_;
  FakeGuestMemory memory_;
};

TEST_F(BzImageLoad, LoadsAtPrefAddressAndFillsBootParams) {
  test::BzOptions o;
  for (std::size_t i = 0; i < o.kernel.size(); ++i) o.kernel[i] = static_cast<std::uint8_t>(i * 13);
  const BootConfig c = config(o);
  const BootResult r = load_kernel(memory_, c);

  EXPECT_EQ(r.kernel_kind, "bzimage");
  EXPECT_EQ(r.kernel_end, 0x1000000u + o.init_size);
  EXPECT_EQ(peek_bytes(memory_, 0x1000000, o.kernel.size()), o.kernel);
  // The setup header is copied from the image...
  EXPECT_EQ(peek(memory_, kBootParams + 0x202, 4), 0x53726448u);
  EXPECT_EQ(peek(memory_, kBootParams + 0x206, 2), o.version);
  EXPECT_EQ(peek(memory_, kBootParams + 0x1f2, 2), 1u) << "root_flags";
  EXPECT_EQ(peek(memory_, kBootParams + 0x1fa, 2), 0xffffu) << "vid_mode";
  EXPECT_EQ(peek(memory_, kBootParams + 0x260, 4), o.init_size);
  // ...and the loader's fields are filled in.
  EXPECT_EQ(peek(memory_, kBootParams + 0x210, 1), 0xffu) << "type_of_loader";
  EXPECT_EQ(peek_string(memory_, peek(memory_, kBootParams + 0x228, 4)), c.cmdline);
  EXPECT_EQ(peek(memory_, kBootParams + 0x218, 4), 0u) << "no ramdisk";
  EXPECT_EQ(peek(memory_, kBootParams + 0x21c, 4), 0u);
  ASSERT_EQ(peek(memory_, kBootParams + 0x1e8, 1), 3u) << "e820_entries";
  const auto e820 = build_e820(c.ram);
  for (std::size_t i = 0; i < e820.size(); ++i) {
    EXPECT_EQ(peek(memory_, kBootParams + 0x2d0 + i * 20, 8), e820[i].addr);
    EXPECT_EQ(peek(memory_, kBootParams + 0x2d0 + i * 20 + 8, 8), e820[i].size);
    EXPECT_EQ(peek(memory_, kBootParams + 0x2d0 + i * 20 + 16, 4), e820[i].type);
  }
  EXPECT_EQ(peek(memory_, kBootParams + 0x2d0 + 3 * 20, 8), 0u) << "nothing past the last entry";
  EXPECT_EQ(r.e820, e820);
}

TEST_F(BzImageLoad, EntersLongModeOnIdentityPageTables) {
  const BootResult r = load_kernel(memory_, config({}));
  const CpuEntryState& s = r.bsp;
  EXPECT_EQ(s.mode, EntryMode::Long64);
  EXPECT_EQ(s.rip, 0x1000200u);
  EXPECT_EQ(s.rsi, kBootParams);
  EXPECT_EQ(s.cr0 & 0x80000001u, 0x80000001u) << "PE and PG";
  EXPECT_EQ(s.cr4 & 0x20u, 0x20u) << "PAE";
  EXPECT_EQ(s.efer & 0x500u, 0x500u) << "LME and LMA";
  EXPECT_EQ(s.code.selector, 0x10) << "__BOOT_CS";
  EXPECT_EQ(s.data.selector, 0x18) << "__BOOT_DS";
  EXPECT_EQ(s.code.l, 1);
  EXPECT_EQ(s.code.db, 0);
  EXPECT_EQ(s.rflags & (1u << 9), 0u);
  EXPECT_EQ(peek(memory_, s.gdt_base + 0x10, 8), 0x00af9b000000ffffu) << "flat 64-bit code";
  EXPECT_EQ(peek(memory_, s.gdt_base + 0x18, 8), 0x00cf93000000ffffu) << "flat data";
  EXPECT_GE(s.gdt_limit, 0x1f);

  // Walk the tables for a few addresses as the MMU would (2 MiB pages).
  for (std::uint64_t va : {0x0ULL, 0x1000200ULL, 0x7fffffffULL, 0xbfe00000ULL, 0xfee00000ULL}) {
    const auto pml4e = peek(memory_, s.cr3 + ((va >> 39) & 511) * 8, 8);
    ASSERT_EQ(pml4e & 1, 1u);
    const auto pdpte = peek(memory_, (pml4e & ~0xfffULL) + ((va >> 30) & 511) * 8, 8);
    ASSERT_EQ(pdpte & 1, 1u);
    const auto pde = peek(memory_, (pdpte & ~0xfffULL) + ((va >> 21) & 511) * 8, 8);
    ASSERT_EQ(pde & 0x83, 0x83u) << "present, writable, 2 MiB";
    EXPECT_EQ((pde & ~0x1fffffULL & 0xffffffffffULL) | (va & 0x1fffff), va) << std::hex << va;
  }
}

TEST_F(BzImageLoad, InitrdGoesHighBelowInitrdAddrMaxAndRamEnd) {
  test::BzOptions o;
  o.initrd_addr_max = 48 * MiB - 1;
  BootConfig c = config(o);
  Bytes initrd(MiB + 5);
  for (std::size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<std::uint8_t>(i ^ (i >> 8));
  c.initrd = dir_.write("initrd", initrd);
  const BootResult r = load_kernel(memory_, c);

  const auto image = peek(memory_, kBootParams + 0x218, 4);
  EXPECT_EQ(peek(memory_, kBootParams + 0x21c, 4), initrd.size());
  EXPECT_EQ(image, (48 * MiB - initrd.size()) & ~0xfffULL);
  EXPECT_GE(image, r.kernel_end);
  EXPECT_EQ(peek_bytes(memory_, image, initrd.size()), initrd);
  EXPECT_EQ(r.initrd_addr, image);

  // Without the limit it goes to the top of RAM.
  o.initrd_addr_max = 0x7fffffff;
  c.kernel = dir_.write("bzImage", test::make_bzimage(o));
  EXPECT_EQ(load_kernel(memory_, c).initrd_addr, (64 * MiB - initrd.size()) & ~0xfffULL);
}

TEST_F(BzImageLoad, InitrdThatDoesNotFitIsRefused) {
  BootConfig c = config({});
  c.initrd = dir_.write("big-initrd", Bytes(50 * MiB, 1));
  const std::string message = message_of(memory_, c);
  EXPECT_EQ(message,
            "initrd " + c.initrd->string() +
                ": 52428800 bytes do not fit in guest RAM between the kernel's end at 0x1400000 and the "
                "limit 0x80000000; give the guest more RAM or use a smaller initrd");
}

TEST_F(BzImageLoad, RelocatableKernelMovesDownWhenPrefAddressIsNotInRam) {
  const BootResult r = load_kernel(memory_, config({}, 16 * MiB));
  EXPECT_EQ(r.bsp.rip, 0x200200u) << "lowest 2 MiB-aligned address above 1 MiB";
  EXPECT_EQ(peek(memory_, 0x200000, 1), 0xccu);
  EXPECT_EQ(peek(memory_, kBootParams + 0x214, 4), 0x200000u) << "code32_start follows the load address";
}

TEST_F(BzImageLoad, NonRelocatableKernelOutsideRamIsRefused) {
  test::BzOptions o;
  o.relocatable = 0;
  const BootConfig c = config(o, 16 * MiB);
  EXPECT_EQ(message_of(memory_, c),
            "kernel " + c.kernel.string() +
                ": kernel is not relocatable and guest RAM cannot hold 0x400000 bytes "
                "(init_size) at 0x1000000");
}

TEST_F(BzImageLoad, CommandLineLongerThanCmdlineSizeIsRefused) {
  test::BzOptions o;
  o.cmdline_size = 16;
  BootConfig c = config(o);
  c.cmdline = std::string(16, 'a');
  EXPECT_NO_THROW(load_kernel(memory_, c));
  c.cmdline += 'b';
  EXPECT_EQ(message_of(memory_, c), "command line is 17 bytes; this kernel takes at most 16");
}

TEST_F(BzImageLoad, KernelWithoutSixtyFourBitEntryIsRefused) {
  test::BzOptions o;
  o.xloadflags = 0x2;
  const BootConfig c = config(o);
  EXPECT_EQ(message_of(memory_, c),
            "kernel " + c.kernel.string() + ": kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)");
}

}  // namespace
}  // namespace molt::core::boot
