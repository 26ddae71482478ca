// libFuzzer entry for the kernel image loaders: any byte string becomes the
// kernel file given to boot::load_kernel, which loads it into 128 MiB of fake
// guest RAM (enough for the init_size of Debian's kernel) laid out as one block and as two blocks with a
// hole, each with and without an initrd. The loaders may refuse a kernel only with BootError; anything else
// (another exception, a crash, a sanitizer report) is a bug. Every byte they write must land in RAM the
// layout declares, whether the load then succeeds or not, and a load that succeeds must keep the promises of
// boot.hpp.
//
// core/boot reads kernels from files, so the input is written to a memfd and
// handed over as /proc/self/fd/N: no disk, nothing to clean up.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/testing/fake_bus.hpp>

#include "core/boot/boot.hpp"

namespace {

namespace boot = molt::core::boot;
using molt::sdk::testing::FakeGuestMemory;

constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kGuestBytes = 128 * kMiB;
constexpr std::uint64_t kFourGiB = std::uint64_t{1} << 32;
constexpr std::size_t kInitrdBytes = 5000;  // not a whole page, so placement rounds
// FakeGuestMemory logs every write; a fresh one bounds that log's growth.
constexpr std::size_t kMaxDirtyLog = 1 << 16;

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "boot image fuzz: %s\n", what.c_str());
  std::abort();
}

// An in-memory file reachable by path.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) bug("memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  void assign(std::span<const std::uint8_t> bytes) const {
    if (ftruncate(fd_, 0) != 0) bug("ftruncate failed");
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) bug("pwrite failed");
      done += static_cast<std::size_t>(n);
    }
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

struct Fixture {
  MemFile kernel{"kernel"};
  MemFile initrd{"initrd"};
  std::vector<std::uint8_t> initrd_bytes;
  std::unique_ptr<FakeGuestMemory> memory;
  // One block, and two blocks with a hole at 40-48 MiB the loaders must not touch.
  std::vector<std::vector<boot::MemoryRegion>> layouts{{{0, kGuestBytes}},
                                                       {{0, 40 * kMiB}, {48 * kMiB, 80 * kMiB}}};

  Fixture() {
    for (std::size_t i = 0; i < kInitrdBytes; ++i)
      initrd_bytes.push_back(static_cast<std::uint8_t>(i * 7 + 3));
    initrd.assign(initrd_bytes);
  }
  FakeGuestMemory& fresh_enough_memory() {
    if (!memory || memory->dirty().size() > kMaxDirtyLog)
      memory = std::make_unique<FakeGuestMemory>(kGuestBytes);
    return *memory;
  }
};

bool in_ram(const std::vector<boot::MemoryRegion>& ram, std::uint64_t base, std::uint64_t size) {
  for (const auto& r : ram) {
    if (base >= r.base && size <= r.size && base - r.base <= r.size - size) return true;
  }
  return false;
}

void check_writes(const FakeGuestMemory& memory, std::size_t first, const boot::BootConfig& config) {
  const auto& log = memory.dirty();
  for (std::size_t i = first; i < log.size(); ++i) {
    if (!in_ram(config.ram, log[i].first, log[i].second))
      bug("wrote " + std::to_string(log[i].second) + " bytes at " + std::to_string(log[i].first) +
          ", outside the RAM layout");
  }
}

void check_initrd(FakeGuestMemory& memory, const boot::BootResult& result, const boot::BootConfig& config,
                  const std::vector<std::uint8_t>& expected) {
  if (!config.initrd) {
    if (result.initrd_addr != 0 || result.initrd_size != 0) bug("placed an initrd that was not given");
    return;
  }
  if (result.initrd_size != expected.size()) bug("initrd size differs from the file's");
  if (result.initrd_addr % 4096 != 0) bug("initrd is not page aligned");
  if (result.initrd_addr < result.kernel_end) bug("initrd overlaps the kernel");
  if (result.initrd_addr + result.initrd_size > kFourGiB) bug("initrd ends above 4 GiB");
  if (!in_ram(config.ram, result.initrd_addr, result.initrd_size)) bug("initrd is outside RAM");
  std::vector<std::uint8_t> placed(expected.size());
  if (!memory.read(result.initrd_addr, placed) || placed != expected)
    bug("the initrd in guest RAM is not the file's bytes (overwritten by a later write?)");
}

// What load_kernel promises about a kernel it accepted.
void check_result(FakeGuestMemory& memory, const boot::BootResult& result, const boot::BootConfig& config,
                  const std::vector<std::uint8_t>& initrd) {
  if (result.kernel_kind == "bzimage") {
    if (result.bsp.mode != boot::EntryMode::Long64) bug("bzImage not entered in long mode");
    const std::uint64_t load = result.bsp.rip - 0x200;
    if (load < kMiB || load >= result.kernel_end || !in_ram(config.ram, load, result.kernel_end - load))
      bug("bzImage loaded outside RAM or below 1 MiB");
  } else if (result.kernel_kind == "pvh-elf") {
    if (result.bsp.mode != boot::EntryMode::Protected32) bug("PVH kernel not entered in protected mode");
    if (!in_ram(config.ram, result.bsp.rip, 1) || result.bsp.rip >= kFourGiB) bug("PVH entry outside RAM");
    if (result.kernel_end == 0 || !in_ram(config.ram, result.kernel_end - 1, 1))
      bug("PVH kernel end outside RAM");
  } else {
    bug("unknown kernel kind " + result.kernel_kind);
  }
  if (result.e820 != boot::build_e820(config.ram)) bug("the e820 map is not the layout's");
  if (result.mp_table_addr != 0x9fc00 && result.mp_table_addr != 0xf0000) bug("MP table in an odd place");
  check_initrd(memory, result, config, initrd);
}

void load(Fixture& fixture, const std::vector<boot::MemoryRegion>& ram, bool with_initrd) {
  boot::BootConfig config{
      .kernel = fixture.kernel.path(), .cmdline = "console=ttyS0 molt.fuzz=1", .ram = ram, .vcpus = 2};
  if (with_initrd) config.initrd = fixture.initrd.path();
  FakeGuestMemory& memory = fixture.fresh_enough_memory();
  const std::size_t first_write = memory.dirty().size();
  try {
    const boot::BootResult result = boot::load_kernel(memory, config);
    check_writes(memory, first_write, config);
    check_result(memory, result, config, fixture.initrd_bytes);
  } catch (const boot::BootError&) {
    check_writes(memory, first_write, config);
  } catch (const std::exception& e) {
    bug(std::string("an exception other than BootError escaped: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture fixture;
  fixture.kernel.assign(std::span<const std::uint8_t>(data, size));
  for (const auto& layout : fixture.layouts) {
    load(fixture, layout, false);
    load(fixture, layout, true);
  }
  return 0;
}
