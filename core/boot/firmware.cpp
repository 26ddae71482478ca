#include "core/boot/firmware.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <molt/sdk/device.hpp>

#include "core/boot/detail.hpp"

namespace molt::core::boot {

namespace {

constexpr std::uint64_t kRomGranule = 4096;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& why) {
  throw BootError("firmware " + path.string() + ": " + why);
}

std::string kib(std::uint64_t bytes) {
  return std::to_string(bytes >> 10) + " KiB";
}

// The whole image, read once: the file may change under us afterwards, the
// guest's ROM must not.
std::vector<std::uint8_t> read_firmware_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open it: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file; give the path of a BIOS image such as /usr/share/seabios/bios.bin");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < kFirmwareMinSize || size > kFirmwareMaxSize || size % kRomGranule != 0) {
    ::close(fd);
    fail(path, std::to_string(size) + " bytes; a firmware image is a multiple of 4 KiB from " +
                   kib(kFirmwareMinSize) + " to " + kib(kFirmwareMaxSize));
  }
  std::vector<std::uint8_t> bytes(size);
  std::uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, bytes.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = n < 0 ? errno : 0;
      ::close(fd);
      fail(path,
           error ? std::string("read failed: ") + std::strerror(error) : "the file shrank while being read");
    }
    done += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace

FirmwareRom::FirmwareRom(const std::filesystem::path& path) : path_(path) {
  const std::vector<std::uint8_t> bytes = read_firmware_file(path);
  void* map = ::mmap(nullptr, bytes.size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    fail(path, std::string("cannot map ") + kib(bytes.size()) + ": " + std::strerror(errno));
  host_ = static_cast<std::uint8_t*>(map);
  size_ = bytes.size();
  std::memcpy(host_, bytes.data(), size_);
}

FirmwareRom::~FirmwareRom() {
  if (host_) ::munmap(host_, size_);
}

FirmwareRom::FirmwareRom(FirmwareRom&& other) noexcept
    : path_(std::move(other.path_)), size_(other.size_), host_(other.host_) {
  other.host_ = nullptr;
  other.size_ = 0;
}

void FirmwareRom::refill() {
  const std::vector<std::uint8_t> bytes = read_firmware_file(path_);
  if (bytes.size() != size_)
    fail(path_, "changed size since molt started; restart molt to use the new image");
  std::memcpy(host_, bytes.data(), size_);
}

void write_bios_shadow(sdk::GuestMemory& memory, const FirmwareRom& rom) {
  const std::uint64_t length = std::min(rom.size(), kBiosShadowSize);
  const std::uint64_t target = kBiosShadowBase + kBiosShadowSize - length;
  const std::span<const std::uint8_t> tail = rom.bytes().subspan(rom.size() - length);
  if (!memory.write(target, tail)) {
    fail(rom.path(), "guest RAM does not cover the BIOS window " + detail::hex(target) + "-" +
                         detail::hex(kBiosShadowBase + kBiosShadowSize - 1) +
                         "; give the guest at least 1 MiB");
  }
}

CpuEntryState reset_vector_entry() {
  CpuEntryState s;
  // `mode` only distinguishes the kernel entry modes; the segments and CR0
  // below are what make this real mode.
  s.rip = 0xFFF0;
  s.rflags = 0x2;
  s.cr0 = 0x6000'0010;  // CD, NW and ET, as after RESET
  s.code =
      Segment{.base = 0xFFFF'0000, .limit = 0xFFFF, .selector = 0xF000, .type = 0xB, .present = 1, .s = 1};
  s.data = Segment{.base = 0, .limit = 0xFFFF, .selector = 0, .type = 0x3, .present = 1, .s = 1};
  s.tr = Segment{.base = 0, .limit = 0xFFFF, .selector = 0, .type = 0xB, .present = 1};
  s.gdt_limit = 0xFFFF;
  s.idt_limit = 0xFFFF;
  return s;
}

}  // namespace molt::core::boot
