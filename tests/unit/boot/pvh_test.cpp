#include <gtest/gtest.h>

#include <algorithm>

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

constexpr std::uint64_t kRamSize = 64 << 20;
constexpr std::uint64_t kStartInfo = 0x1000;

Bytes pattern(std::size_t size, std::uint8_t seed) {
  Bytes b(size);
  for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
  return b;
}

class PvhLoad : public ::testing::Test {
 protected:
  PvhLoad() : memory_(kRamSize) {
    // Stale bytes everywhere, so zeroing the bss is observable.
    std::fill(memory_.bytes().begin(), memory_.bytes().end(), 0xaa);
  }
  BootConfig config(const Bytes& kernel) {
    BootConfig c;
    c.kernel = dir_.write("kernel.elf", kernel);
    c.cmdline = "console=ttyS0 scenario=memory";
    c.ram = {{0, kRamSize}};
    c.vcpus = 2;
    return c;
  }
  test::TempDir dir_;
  FakeGuestMemory memory_;
  const Bytes text_ = pattern(0x1234, 1);
  const Bytes data_ = pattern(0x100, 9);
};

TEST_F(PvhLoad, Elf64SegmentsBssStartInfoAndEntryState) {
  const Bytes elf = test::make_elf({true, {{0x100000, text_, 0x1234}, {0x200000, data_, 0x2000}}, 0x100010});
  const BootConfig c = config(elf);
  const BootResult r = load_kernel(memory_, c);

  EXPECT_EQ(r.kernel_kind, "pvh-elf");
  EXPECT_EQ(r.kernel_end, 0x202000u);
  EXPECT_EQ(peek_bytes(memory_, 0x100000, text_.size()), text_);
  EXPECT_EQ(peek_bytes(memory_, 0x200000, data_.size()), data_);
  const Bytes bss = peek_bytes(memory_, 0x200100, 0x2000 - 0x100);
  EXPECT_TRUE(std::all_of(bss.begin(), bss.end(), [](auto b) { return b == 0; })) << "bss zeroed";
  EXPECT_EQ(peek(memory_, 0x202000, 1), 0xaau) << "nothing written past the bss";

  EXPECT_EQ(peek(memory_, kStartInfo, 4), 0x336ec578u);
  EXPECT_EQ(peek(memory_, kStartInfo + 0x04, 4), 1u);
  EXPECT_EQ(peek(memory_, kStartInfo + 0x0c, 4), 0u) << "no modules without an initrd";
  EXPECT_EQ(peek_string(memory_, peek(memory_, kStartInfo + 0x18, 8)), c.cmdline);
  EXPECT_EQ(peek(memory_, kStartInfo + 0x20, 8), 0u) << "no ACPI RSDP";
  const auto memmap = peek(memory_, kStartInfo + 0x28, 8);
  const auto entries = peek(memory_, kStartInfo + 0x30, 4);
  EXPECT_EQ(peek(memory_, kStartInfo + 0x34, 4), 0u);
  ASSERT_EQ(entries, 3u);
  ASSERT_EQ(r.e820, build_e820(c.ram));
  for (std::uint64_t i = 0; i < entries; ++i) {
    EXPECT_EQ(peek(memory_, memmap + i * 24, 8), r.e820[i].addr);
    EXPECT_EQ(peek(memory_, memmap + i * 24 + 8, 8), r.e820[i].size);
    EXPECT_EQ(peek(memory_, memmap + i * 24 + 16, 4), r.e820[i].type);
    EXPECT_EQ(peek(memory_, memmap + i * 24 + 20, 4), 0u);
  }
  EXPECT_LT(memmap, 0x100000u) << "boot data stays below 1 MiB";

  const CpuEntryState& s = r.bsp;
  EXPECT_EQ(s.mode, EntryMode::Protected32);
  EXPECT_EQ(s.rip, 0x100010u);
  EXPECT_EQ(s.rbx, kStartInfo);
  EXPECT_EQ(s.cr0 & 0x80000001u, 1u) << "PE on, PG off";
  EXPECT_EQ(s.cr4, 0u);
  EXPECT_EQ(s.efer, 0u);
  EXPECT_EQ(s.rflags & (1u << 9), 0u) << "interrupts off";
  for (const Segment& seg : {s.code, s.data}) {
    EXPECT_EQ(seg.base, 0u);
    EXPECT_EQ(seg.limit, 0xffffffffu);
    EXPECT_EQ(seg.db, 1);
    EXPECT_EQ(seg.l, 0);
    EXPECT_EQ(seg.present, 1);
  }
  EXPECT_EQ(s.code.type & 0x8, 0x8) << "code";
  EXPECT_EQ(s.data.type & 0x8, 0) << "data";
  EXPECT_EQ(s.tr.type, 0xb);
  EXPECT_EQ(s.tr.limit, 0x67u);
  // The GDT in guest memory holds what the hidden segment parts say.
  EXPECT_EQ(peek(memory_, s.gdt_base + s.code.selector, 8), 0x00cf9b000000ffffu);
  EXPECT_EQ(peek(memory_, s.gdt_base + s.data.selector, 8), 0x00cf93000000ffffu);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(peek_bytes(memory_, r.mp_table_addr, 4).data()), 4),
            "_MP_");
  EXPECT_EQ(peek_bytes(memory_, peek(memory_, r.mp_table_addr + 4, 4) + 44, 1)[0], 0)
      << "first entry: a processor";
  EXPECT_EQ(peek(memory_, 0x40e, 2) << 4, r.mp_table_addr) << "BDA's EBDA segment leads to the MP table";
  EXPECT_EQ(peek(memory_, 0x413, 2), 639u) << "BDA's base memory size in KiB";
}

TEST_F(PvhLoad, Elf32WithEightByteEntryNote) {
  test::ElfOptions o{false, {{0x400000, text_, 0x3000}}, 0x400100};
  o.entry_desc_size = 8;
  const BootResult r = load_kernel(memory_, config(test::make_elf(o)));
  EXPECT_EQ(r.bsp.rip, 0x400100u);
  EXPECT_EQ(r.kernel_end, 0x403000u);
  EXPECT_EQ(peek_bytes(memory_, 0x400000, text_.size()), text_);
}

TEST_F(PvhLoad, InitrdBecomesModuleZeroPlacedHighAndPageAligned) {
  BootConfig c = config(test::make_elf({true, {{0x100000, text_, 0x1234}}, 0x100000}));
  const Bytes initrd = pattern(0x12345, 3);
  c.initrd = dir_.write("initrd.cpio", initrd);
  const BootResult r = load_kernel(memory_, c);

  ASSERT_EQ(peek(memory_, kStartInfo + 0x0c, 4), 1u);
  const auto modlist = peek(memory_, kStartInfo + 0x10, 8);
  const auto addr = peek(memory_, modlist, 8);
  EXPECT_EQ(peek(memory_, modlist + 8, 8), initrd.size());
  EXPECT_EQ(peek(memory_, modlist + 16, 8), 0u) << "no module command line";
  EXPECT_EQ(addr % 4096, 0u);
  EXPECT_EQ(addr, (kRamSize - initrd.size()) & ~0xfffULL) << "as high as RAM allows";
  EXPECT_EQ(peek_bytes(memory_, addr, initrd.size()), initrd);
  EXPECT_EQ(r.initrd_addr, addr);
  EXPECT_EQ(r.initrd_size, initrd.size());

  // A page-multiple initrd ends exactly at the end of RAM.
  c.initrd = dir_.write("initrd2.cpio", Bytes(2 << 20, 7));
  EXPECT_EQ(load_kernel(memory_, c).initrd_addr, kRamSize - (2 << 20));
}

TEST_F(PvhLoad, EntryPointOutsideEverySegmentIsRefused) {
  const BootConfig c = config(test::make_elf({true, {{0x100000, text_, 0x1234}}, 0x900000}));
  EXPECT_THROW(
      {
        try {
          load_kernel(memory_, c);
        } catch (const BootError& e) {
          EXPECT_EQ(std::string(e.what()),
                    "kernel " + c.kernel.string() +
                        ": PVH entry point 0x900000 is not inside any loadable segment");
          throw;
        }
      },
      BootError);
}

TEST_F(PvhLoad, CommandLineTooLongForTheBufferIsRefused) {
  BootConfig c = config(test::make_elf({true, {{0x100000, text_, 0x1234}}, 0x100000}));
  c.cmdline.assign(0x10000, 'x');
  EXPECT_THROW(load_kernel(memory_, c), BootError);
}

}  // namespace
}  // namespace molt::core::boot
