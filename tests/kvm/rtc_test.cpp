// The MC146818 plugin under the test guest's `rtc` scenario: the guest's
// reading of the clock against the host's UTC time, an alarm that arrives as
// IRQ 8 through the IOAPIC, and three periodic rates measured against the TSC.
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;

constexpr int kGuestPassed = 1;

// The default machine plus the RTC, in a temporary directory.
class RtcGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    char pattern[] = "/tmp/molt-rtc-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    machine_ = dir_ / "rtc.json";
    std::ofstream(machine_) << R"({
  "machine": "molt-pc",
  "vcpus": 1,
  "memory": { "size": "256M" },
  "kernel": { "path": ")" << testguest_elf()
                            << R"(", "cmdline": "rtc" },
  "devices": [
    { "id": "com1", "type": "serial-16550a", "properties": { "backend": "stdio" } },
    { "id": "exit", "type": "debug-exit" },
    { "id": "rtc", "type": "mc146818-rtc" }
  ]
})";
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::filesystem::path machine_;
};

std::int64_t utc_seconds(const std::smatch& m) {
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  return ::timegm(&tm);
}

TEST_F(RtcGuest, ClockAlarmAndPeriodicRates) {
  MoltProcess p({"run", machine_.string()});
  const auto time_line = p.wait_for_line("@rtc time=", 60s);
  const auto host_now = std::chrono::system_clock::now();
  ASSERT_TRUE(time_line) << p.console() << p.errors();
  const auto status = p.wait_exit(90s);
  ASSERT_TRUE(status.has_value()) << "the rtc scenario did not finish\n" << p.console() << p.errors();
  const std::string& console = p.console();

  // The guest's second, which began at most a second before the host read
  // its clock (plus the console's latency).
  std::smatch m;
  const std::regex time_re(R"(@rtc time=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d))");
  ASSERT_TRUE(std::regex_search(*time_line, m, time_re)) << *time_line;
  const double host = std::chrono::duration<double>(host_now.time_since_epoch()).count();
  const double guest = static_cast<double>(utc_seconds(m));
  EXPECT_LE(std::fabs(host - (guest + 0.5)), 1.0)
      << "guest " << *time_line << ", host " << std::fixed << host;

  const std::regex alarm_re(R"(@rtc alarm fired=1 after_ms=(\d+) flags=0x([0-9a-f]+))");
  ASSERT_TRUE(std::regex_search(console, m, alarm_re)) << console;
  EXPECT_EQ(std::stoi(m[2], nullptr, 16) & 0xa0, 0xa0) << "IRQF and AF in register C";

  const std::regex rate_re(R"(@rtc periodic hz=(\d+) interrupts=(\d+) us=(\d+) measured_mhz=(\d+))");
  unsigned rates = 0;
  for (auto it = std::sregex_iterator(console.begin(), console.end(), rate_re); it != std::sregex_iterator();
       ++it) {
    const double nominal = std::stod((*it)[1]);
    const double measured = std::stod((*it)[4]) / 1000.0;
    EXPECT_NEAR(measured, nominal, nominal * 0.02) << it->str();
    EXPECT_GE(std::stoul((*it)[2]), static_cast<unsigned long>(nominal)) << it->str();
    ++rates;
  }
  EXPECT_EQ(rates, 3u) << console;
  EXPECT_NE(console.find("@result pass"), std::string::npos) << console << p.errors();
  EXPECT_EQ(*status, kGuestPassed) << p.errors();
}

}  // namespace
}  // namespace molt::test
