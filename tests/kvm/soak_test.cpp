// The `soak` test-guest scenario, the load the migration tests run: memtest
// rounds, a DMA sector written and read back each round, the RTC and an
// echoing console. The console is a unix-socket serial backend, so the test
// reads the guest's lines from it and types into it; afterwards the disk
// image must hold valid soak sectors (docs/testguest.md, "soak").
#include <gtest/gtest.h>

#include <signal.h>
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

#include "migration_support.hpp"
#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kImageSectors = 256;
constexpr std::uint32_t kSoakSectors = 64;  // the scenario's DISK_SECTORS

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
    ConsoleSocket console(socket_);
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

    ASSERT_TRUE(console.type("hello from the host\r\n"));
    ASSERT_TRUE(console.wait_for_line("^@echo hello from the host$", 10s)) << console.text();
    const auto last = console.wait_for_line("^@soak round=", 10s);
    ASSERT_TRUE(last) << console.text();
    EXPECT_EQ(field(*last, "disk_errors"), 0u) << *last;

    molt.signal(SIGTERM);
    ASSERT_TRUE(molt.wait_exit(10s).has_value()) << molt.errors();
    for (const std::string& problem : check_soak_image(image_, kSoakSectors, field(*last, "round")))
      ADD_FAILURE() << problem;
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
