// The `soak` test-guest scenario, the load the migration tests run: memtest
// rounds, a DMA sector written and read back each round, the RTC and an
// echoing console. The console is a unix-socket serial backend, so the test
// reads the guest's lines from it and types into it; afterwards the disk
// image must hold valid soak sectors (docs/testguest.md, "soak").
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kImageSectors = 256;
constexpr std::uint32_t kSoakSectors = 64;  // the scenario's DISK_SECTORS

// ---- the guest's sector pattern (guest/testguest/soak.c) ----
std::uint32_t crc32_ieee(const std::uint8_t* p, std::size_t n) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

std::uint32_t soak_word(std::uint32_t round, std::uint32_t sector, unsigned i) {
  std::uint32_t x = round * 0x9e3779b1u ^ sector * 0x85ebca77u ^ i * 0xc2b2ae3du;
  x ^= x >> 16;
  x *= 0x7feb352du;
  return x ^ (x >> 15);
}

// The round a sector holds, or nullopt when it is not a valid soak sector for
// `lba` (wrong magic, sector field, CRC or words).
std::optional<std::uint32_t> soak_round(const std::uint32_t* words, std::uint32_t lba) {
  if (std::memcmp(words, "SOAK", 4) != 0 || words[2] != lba) return std::nullopt;
  if (words[3] != crc32_ieee(reinterpret_cast<const std::uint8_t*>(words + 4), 512 - 16)) return std::nullopt;
  for (unsigned i = 4; i < 128; ++i)
    if (words[i] != soak_word(words[1], lba, i)) return std::nullopt;
  return words[1];
}

// The guest console over the serial port's unix-socket backend.
class SocketConsole {
 public:
  explicit SocketConsole(const std::string& path) {
    const auto deadline = Clock::now() + 10s;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    while (Clock::now() < deadline) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) return;
      ::close(fd_);
      fd_ = -1;
      std::this_thread::sleep_for(20ms);
    }
  }
  ~SocketConsole() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }

  void type(const std::string& text) {
    ASSERT_EQ(::write(fd_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

  // The next line matching `pattern`, or nullopt on timeout or a closed socket.
  std::optional<std::string> wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout) {
    const std::regex re(pattern);
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      for (std::size_t nl; (nl = text_.find('\n', scanned_)) != std::string::npos;) {
        std::string line = text_.substr(scanned_, nl - scanned_);
        scanned_ = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (std::regex_search(line, re)) return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[65536];
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n <= 0) return std::nullopt;
      text_.append(buffer, static_cast<std::size_t>(n));
    }
  }
  const std::string& text() const { return text_; }

 private:
  int fd_ = -1;
  std::string text_;
  std::size_t scanned_ = 0;
};

// `key=value` from a line, as a number.
std::uint64_t field(const std::string& line, const std::string& key) {
  std::smatch m;
  const std::regex re("(^| )" + key + "=([0-9]+)");
  if (!std::regex_search(line, m, re)) ADD_FAILURE() << "no " << key << "= in: " << line;
  return m.empty() ? 0 : std::stoull(m[2]);
}

class SoakScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = std::filesystem::temp_directory_path() / ("molt-soak-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    image_ = (dir_ / "disk.img").string();
    socket_ = test_socket_path("molt-soak-");
    std::ofstream(image_, std::ios::binary | std::ios::trunc).close();
    std::filesystem::resize_file(image_, std::uint64_t{kImageSectors} * 512);
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A pc machine with the RTC, the disk as primary master and COM1 on a
  // unix socket the test connects to.
  std::string machine_file(unsigned vcpus) {
    const std::string path = (dir_ / "machine.json").string();
    std::ofstream(path) << R"({
  "machine": "molt-pc",
  "vcpus": )" << vcpus << R"(,
  "memory": { "size": "128M" },
  "kernel": { "path": ")"
                        << testguest_elf() << R"(", "cmdline": "soak 32 )" << kSoakSectors << R"(" },
  "devices": [
    { "id": "com1", "type": "serial-16550a", "properties": { "backend": "unix-socket", "path": ")"
                        << socket_ << R"(" } },
    { "id": "exit", "type": "debug-exit" },
    { "id": "host", "type": "i440fx-host" },
    { "id": "isa", "type": "piix3-isa" },
    { "id": "rtc", "type": "mc146818-rtc" },
    { "id": "ide0", "type": "piix3-ide", "properties": { "primary-master": ")"
                        << image_ << R"(" } }
  ]
})";
    return path;
  }

  // Three clean rounds, an echoed line, a clean stop and a valid image.
  void run_soak(unsigned vcpus) {
    MoltProcess molt({"run", machine_file(vcpus)});
    SocketConsole console(socket_);
    ASSERT_TRUE(console.connected()) << "no console socket at " << socket_ << "\n" << molt.errors();
    const auto start = console.wait_for_line("^@soak start ", 20s);
    ASSERT_TRUE(start) << console.text() << molt.errors();
    EXPECT_EQ(field(*start, "aps"), vcpus - 1) << *start;
    EXPECT_EQ(field(*start, "disk_sectors"), kSoakSectors) << *start;

    // Three read-backs (round 1 has nothing to read back) and, with an AP,
    // two finished AP rounds: the AP's first round pays the first touch of
    // its pages and may span several BSP rounds.
    const auto deadline = Clock::now() + 30s;
    std::string line;
    for (std::uint64_t clean = 0; clean < 3 || (vcpus > 1 && field(line, "ap_rounds") < 2);) {
      ASSERT_LT(Clock::now(), deadline) << line;
      const auto round = console.wait_for_line("^@soak round=", 10s);
      ASSERT_TRUE(round) << console.text() << molt.errors();
      line = *round;
      EXPECT_EQ(field(line, "errors"), 0u) << line;
      EXPECT_EQ(field(line, "ap_errors"), 0u) << line;
      EXPECT_NE(line.find(" disk=ok "), std::string::npos) << line;
      EXPECT_TRUE(
          std::regex_search(line, std::regex(" rtc=20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                                             "[0-5][0-9] ")))
          << line;
      EXPECT_EQ(field(line, "aps"), vcpus - 1) << line;
      clean += field(line, "round") >= 2 ? 1 : 0;
    }

    console.type("hello from the host\r\n");
    ASSERT_TRUE(console.wait_for_line("^@echo hello from the host$", 10s)) << console.text();
    const auto last = console.wait_for_line("^@soak round=", 10s);
    ASSERT_TRUE(last) << console.text();
    EXPECT_EQ(field(*last, "disk_errors"), 0u) << *last;

    molt.signal(SIGTERM);
    ASSERT_TRUE(molt.wait_exit(10s).has_value()) << molt.errors();
    check_image(field(*last, "round"));
  }

  // Every sector the guest reached holds a valid soak sector of a round that
  // maps to it; the newest printed round's sector holds that round or later;
  // sectors beyond DISK_SECTORS were never touched.
  void check_image(std::uint64_t last_round) {
    std::ifstream in(image_, std::ios::binary);
    std::vector<std::uint32_t> words(std::size_t{kImageSectors} * 128);
    in.read(reinterpret_cast<char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
    ASSERT_TRUE(in) << image_;
    std::uint32_t valid = 0;
    for (std::uint32_t lba = 0; lba < kImageSectors; ++lba) {
      const std::uint32_t* sector = &words[std::size_t{lba} * 128];
      const bool zero = std::all_of(sector, sector + 128, [](std::uint32_t w) { return w == 0; });
      if (lba >= kSoakSectors || zero) {
        EXPECT_TRUE(zero) << "sector " << lba << " was written";
        continue;
      }
      const auto round = soak_round(sector, lba);
      ASSERT_TRUE(round) << "sector " << lba << " is not a valid soak sector";
      EXPECT_EQ(*round % kSoakSectors, lba);
      ++valid;
    }
    EXPECT_GE(valid, std::min<std::uint64_t>(last_round, kSoakSectors));
    const std::uint32_t newest = static_cast<std::uint32_t>(last_round % kSoakSectors);
    const auto round = soak_round(&words[std::size_t{newest} * 128], newest);
    ASSERT_TRUE(round);
    EXPECT_GE(*round, last_round);
  }

  std::filesystem::path dir_;
  std::string image_, socket_;
};

TEST_F(SoakScenario, OneVcpuRoundsStayCleanTheConsoleEchoesAndTheImageHoldsThePattern) {
  run_soak(1);
}

TEST_F(SoakScenario, TwoVcpusTheApLoopsItsOwnSliceToo) {
  run_soak(2);
}

}  // namespace
}  // namespace molt::test
