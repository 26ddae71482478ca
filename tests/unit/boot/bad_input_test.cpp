// Every kind of unbootable input is refused with a sentence naming the file and
// the problem, and corrupted images never crash the loader.
#include <gtest/gtest.h>

#include <molt/sdk/testing/fake_bus.hpp>

#include "core/boot/boot.hpp"
#include "tests/unit/boot/test_images.hpp"

namespace molt::core::boot {
namespace {

using sdk::testing::FakeGuestMemory;
using test::Bytes;

constexpr std::uint64_t kRamSize = 64 << 20;

class BadInput : public ::testing::Test {
 protected:
  BadInput() : memory_(kRamSize) {}
  BootConfig config(const Bytes& kernel) {
    BootConfig c;
    c.kernel = dir_.write("kernel", kernel);
    c.ram = {{0, kRamSize}};
    return c;
  }
  // The error message load_kernel gives, minus the "kernel <path>: " prefix.
  std::string problem(const BootConfig& c) {
    try {
      load_kernel(memory_, c);
    } catch (const BootError& e) {
      const std::string prefix = "kernel " + c.kernel.string() + ": ";
      const std::string m = e.what();
      return m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : "(unprefixed) " + m;
    }
    return "(no error)";
  }
  std::string problem(const Bytes& kernel) { return problem(config(kernel)); }

  static Bytes good_elf(std::uint64_t paddr = 0x100000) {
    return test::make_elf({true, {{paddr, Bytes(0x800, 0x90), 0x1000}}, paddr});
  }
  test::TempDir dir_;
  FakeGuestMemory memory_;
};

TEST_F(BadInput, MissingFile) {
  BootConfig c = config({});
  c.kernel = dir_.path() / "no-such-kernel";
  EXPECT_EQ(problem(c), "file does not exist");
}

TEST_F(BadInput, DirectoryInsteadOfFile) {
  BootConfig c = config({});
  c.kernel = dir_.path();
  EXPECT_EQ(problem(c), "not a regular file");
}

TEST_F(BadInput, TooSmall) {
  EXPECT_EQ(problem(Bytes{0x7f, 'E', 'L', 'F'}), "file is too small to be a kernel (4 bytes)");
}

TEST_F(BadInput, NeitherElfNorBzImage) {
  EXPECT_EQ(problem(Bytes(4096, 0x41)), "not an ELF file and not a Linux bzImage (no HdrS magic)");
}

TEST_F(BadInput, ElfWithoutPvhNote) {
  EXPECT_EQ(problem(test::make_elf({true, {{0x100000, Bytes(64, 1), 64}}, std::nullopt})),
            "not a PVH ELF (no XEN_ELFNOTE_PHYS32_ENTRY note) and not a Linux bzImage (no HdrS magic)");
}

TEST_F(BadInput, TruncatedElf) {
  Bytes elf = good_elf();
  elf.resize(100);  // inside the program headers
  EXPECT_EQ(problem(elf), "ELF file is truncated: its program headers end past the end of the file");
  elf = good_elf();
  elf.resize(elf.size() - 0x100);  // inside the segment's data
  EXPECT_NE(problem(elf).find("ELF program header 1 points at file bytes"), std::string::npos)
      << problem(elf);
}

TEST_F(BadInput, SegmentOutsideRam) {
  EXPECT_EQ(problem(good_elf(0x8000000)), "ELF segment 1 (0x8000000+0x1000) lies outside guest RAM");
  EXPECT_EQ(problem(good_elf(kRamSize - 0x800)), "ELF segment 1 (0x3fff800+0x1000) lies outside guest RAM")
      << "straddling the end of RAM";
}

TEST_F(BadInput, SegmentOverBootData) {
  EXPECT_NE(problem(good_elf(0x8000)).find("overlaps memory molt reserves"), std::string::npos);
  EXPECT_NE(problem(good_elf(0xa0000)).find("overlaps memory molt reserves"), std::string::npos);
}

TEST_F(BadInput, NoteRunningPastItsSegment) {
  Bytes elf = good_elf();
  test::put_le(elf, 64 + 2 * 56 + 4, 0x7fffffff, 4);  // first note's descsz
  EXPECT_NE(problem(elf).find("runs past the end of its PT_NOTE segment"), std::string::npos) << problem(elf);
}

TEST_F(BadInput, BigEndianAndForeignMachineElf) {
  Bytes elf = good_elf();
  elf[5] = 2;
  EXPECT_EQ(problem(elf), "ELF file is big-endian; x86 kernels are little-endian");
  elf = good_elf();
  test::put_le(elf, 18, 183, 2);  // EM_AARCH64
  EXPECT_EQ(problem(elf), "ELF machine 183 is not x86");
}

TEST_F(BadInput, BadHdrSMagic) {
  Bytes image = test::make_bzimage({});
  image[0x205] = 'X';
  EXPECT_EQ(problem(image), "not an ELF file and not a Linux bzImage (no HdrS magic)");
}

TEST_F(BadInput, ProtocolTooOld) {
  test::BzOptions o;
  o.version = 0x020a;
  EXPECT_EQ(problem(test::make_bzimage(o)),
            "Linux boot protocol 2.10 is older than 2.12, the first with the 64-bit entry");
}

TEST_F(BadInput, TruncatedBzImage) {
  Bytes image = test::make_bzimage({});
  image.resize(image.size() - 16);
  EXPECT_EQ(problem(image),
            "file is truncated: the protected-mode kernel should have 12288 bytes, the file holds 12272");
  image.resize(0x300);
  EXPECT_EQ(problem(image), "file is truncated: it ends inside the real-mode setup (3 sectors)");
}

TEST_F(BadInput, MissingInitrd) {
  BootConfig c = config(good_elf());
  c.initrd = dir_.path() / "missing-initrd";
  try {
    load_kernel(memory_, c);
    ADD_FAILURE() << "missing initrd accepted";
  } catch (const BootError& e) {
    EXPECT_EQ(std::string(e.what()), "initrd " + c.initrd->string() + ": file does not exist");
  }
}

TEST_F(BadInput, RamThatDoesNotCoverTheBootArea) {
  BootConfig c = config(good_elf());
  c.ram = {{0x100000, kRamSize - 0x100000}};
  EXPECT_EQ(problem(c),
            "(unprefixed) guest RAM must start at address 0 and cover at least 0x30000 bytes for the "
            "boot data molt writes there");
}

// Truncations and single-byte corruptions of valid images: each load either
// succeeds or throws BootError; nothing else escapes and nothing crashes.
void expect_only_boot_errors(FakeGuestMemory& memory, const test::TempDir& dir, const Bytes& image) {
  BootConfig c;
  c.ram = {{0, kRamSize}};
  unsigned loaded = 0, refused = 0;
  const auto attempt = [&](const Bytes& bytes) {
    c.kernel = dir.write("mutant", bytes);
    try {
      load_kernel(memory, c);
      ++loaded;
    } catch (const BootError&) {
      ++refused;
    }
  };
  for (std::size_t size = 0; size < image.size(); size += 37)
    attempt(Bytes(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(size)));
  for (std::size_t at = 0; at < std::min<std::size_t>(image.size(), 0x300); ++at) {
    for (std::uint8_t value : {0x00, 0xff, 0x80}) {
      Bytes mutant = image;
      mutant[at] = value;
      attempt(mutant);
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(loaded, 0u);
}

TEST_F(BadInput, CorruptedPvhElfNeverCrashes) {
  expect_only_boot_errors(memory_, dir_, good_elf());
}

TEST_F(BadInput, CorruptedBzImageNeverCrashes) {
  expect_only_boot_errors(memory_, dir_, test::make_bzimage({}));
}

}  // namespace
}  // namespace molt::core::boot
