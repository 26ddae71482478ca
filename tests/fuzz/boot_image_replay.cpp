// Replays the kernel image fuzz entry without libFuzzer, so every build (and
// CI) runs it: synthetic PVH ELF64/ELF32 kernels and bzImages built from the
// specifications (tests/unit/boot/test_images), the first 64 KiB of Debian's
// bzImage and vmlinux when guest/linux/fetch-kernel.sh has left them in
// guest/linux/cache, each seed cut short around its headers, a few thousand
// deterministic mutations that favour header fields, and any files named on the
// command line (crash reproducers saved by a libFuzzer run).
//
//   molt_fuzz_boot_image_replay                    # seeds + mutations
//   molt_fuzz_boot_image_replay crash-1234 ...     # replay files as well
//   molt_fuzz_boot_image_replay --write-seeds DIR  # the seeds as a corpus
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "replay_driver.hpp"
#include "tests/unit/boot/test_images.hpp"

namespace {

namespace test = molt::core::boot::test;
using test::Bytes;
constexpr auto run = [](const Bytes& input) { molt::fuzz::feed(input); };

constexpr std::uint64_t kMiB = 1 << 20;
// Debian's kernels are large; their headers are all the loaders parse up front.
constexpr std::size_t kCachedHead = 64 * 1024;
// Header fields live in the first bytes: ELF and program headers, the bzImage
// setup header (0x1f1-0x290). Mutations that overwrite fields aim there.
constexpr std::size_t kHeaderSpan = 0x300;
// Sanitizer builds read large kernel files slowly; mutants are cut to this (Debian's setup code and a bit of its kernel)
// to keep the replay within a few seconds there too.
constexpr std::size_t kMutantMax = 24 * 1024;

std::vector<Bytes> elf_seeds() {
  const Bytes code(0x200, 0x90);  // small: every byte is read per load
  return {
      test::make_elf(
          {.is64 = true, .segments = {{.paddr = kMiB, .data = code, .memsz = 0x3000}}, .pvh_entry = kMiB}),
      test::make_elf({.is64 = false,
                      .segments = {{.paddr = kMiB, .data = code, .memsz = 0x2000},
                                   {.paddr = 2 * kMiB, .data = Bytes(0x100, 0xc3), .memsz = 0x10000}},
                      .pvh_entry = kMiB + 0x10}),
      test::make_elf({.is64 = true,
                      .segments = {{.paddr = 0x40000, .data = code, .memsz = 0x2000},
                                   {.paddr = 48 * kMiB, .data = Bytes(0x40, 1), .memsz = 0x40}},
                      .pvh_entry = 0x40000,
                      .entry_desc_size = 8}),
      // Not a PVH kernel: no XEN_ELFNOTE_PHYS32_ENTRY note.
      test::make_elf({.is64 = true, .segments = {{.paddr = kMiB, .data = code, .memsz = 0x2000}}}),
  };
}

// setup_sects 0 means 4 sectors; the builder puts the kernel after sector 1, so
// syssize 0 ("the rest of the file") keeps the image consistent.
Bytes setup_sects_zero() {
  Bytes image = test::make_bzimage({.setup_sects = 0, .kernel = Bytes(0xc00, 0xf4)});
  test::put_le(image, 0x1f4, 0, 4);
  return image;
}

std::vector<Bytes> bzimage_seeds() {
  const Bytes kernel(0x400, 0xcc);
  return {
      test::make_bzimage({.kernel = kernel}),
      test::make_bzimage({.pref_address = kMiB, .relocatable = 0, .kernel = kernel}),
      setup_sects_zero(),
      // Preferred address in the split layout's hole, initrd limited below 32 MiB.
      test::make_bzimage(
          {.pref_address = 42 * kMiB, .init_size = 0x800000, .initrd_addr_max = 0x1ffffff, .kernel = kernel}),
      test::make_bzimage({.version = 0x020b, .kernel = kernel}),
      test::make_bzimage({.kernel_alignment = 0x300000, .cmdline_size = 4, .kernel = kernel}),
  };
}

Bytes read_head(const std::filesystem::path& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  Bytes bytes(limit);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(limit));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

// The heads of Debian's kernels, when present. Cut at 64 KiB, the bzImage's
// syssize says it is truncated; a copy with syssize 0 ("the rest of the file")
// lets mutations of its real setup header reach placement and loading.
std::vector<Bytes> cached_seeds() {
  const std::filesystem::path cache = MOLT_LINUX_CACHE;
  std::vector<Bytes> seeds;
  for (const char* name : {"bzImage", "vmlinux"}) {
    if (!std::filesystem::exists(cache / name)) {
      std::printf("note: %s is absent (guest/linux/fetch-kernel.sh fetches it); replaying without it\n",
                  (cache / name).c_str());
      continue;
    }
    seeds.push_back(read_head(cache / name, kCachedHead));
    if (std::string(name) == "bzImage" && seeds.back().size() >= 0x1f8) {
      Bytes whole_rest = seeds.back();
      test::put_le(whole_rest, 0x1f4, 0, 4);
      seeds.push_back(std::move(whole_rest));
    }
  }
  return seeds;
}

std::vector<Bytes> seeds() {
  std::vector<Bytes> all = elf_seeds();
  for (auto& seed : bzimage_seeds()) all.push_back(std::move(seed));
  for (auto& seed : cached_seeds()) all.push_back(std::move(seed));
  return all;
}

// Values that sit on the loaders' boundaries: zero, all ones, sign bits, the
// 1 MiB and 4 GiB marks, the fake RAM's hole and end.
constexpr std::array<std::uint64_t, 14> kInteresting = {0,
                                                        1,
                                                        0x7f,
                                                        0xff,
                                                        0xffff,
                                                        0x7fffffff,
                                                        0x80000000,
                                                        0xffffffff,
                                                        0x100000,
                                                        0x20000,
                                                        40 * kMiB,
                                                        128 * kMiB,
                                                        std::uint64_t{1} << 32,
                                                        ~std::uint64_t{0}};

Bytes mutate(Bytes image, std::mt19937& rng) {
  const unsigned rounds = 1 + rng() % 3;
  for (unsigned r = 0; r < rounds && !image.empty(); ++r) {
    const std::size_t at = rng() % image.size();
    switch (rng() % 5) {
      case 0:
        image[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        image[at] = static_cast<std::uint8_t>(rng());
        break;
      case 2:
        image.resize(at);
        break;
      default: {  // a header field of 2, 4 or 8 bytes set to a boundary value
        const unsigned width = 2u << (rng() % 3);
        const std::size_t field = (rng() % std::min(image.size(), kHeaderSpan)) & ~std::size_t{width - 1};
        if (field + width <= image.size())
          test::put_le(image, field, kInteresting[rng() % kInteresting.size()], width);
        break;
      }
    }
  }
  return image;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto status = molt::fuzz::handle_command_line(argc, argv, seeds())) return *status;
  const std::vector<Bytes> all = seeds();
  for (const Bytes& seed : all) {
    run(seed);
    // Every cut inside the headers, then coarser ones through the rest.
    for (std::size_t length = 0; length < seed.size(); length += length < kHeaderSpan ? 1 : 0x1000)
      run(Bytes(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(length)));
  }
  std::mt19937 rng(0x5eed);
  constexpr unsigned kMutations = 4000;
  // The synthetic seeds thrice, Debian's large heads once: cheaper mutants, and
  // the same header fields to aim at.
  std::vector<const Bytes*> pool;
  for (const Bytes& seed : all) pool.insert(pool.end(), seed.size() > kMutantMax / 4 ? 1 : 3, &seed);
  for (unsigned i = 0; i < kMutations; ++i) {
    const Bytes& seed = *pool[i % pool.size()];
    run(mutate(
        Bytes(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(std::min(seed.size(), kMutantMax))),
        rng));
  }
  std::printf("replayed %zu seeds, their truncations and %u mutations\n", all.size(), kMutations);
  return 0;
}
