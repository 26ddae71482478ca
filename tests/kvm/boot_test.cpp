// Boots the test guest with the real molt: hello, memtest and cpus with 1 and
// 2 vCPUs, exit statuses, and clean stops on signals.
#include <signal.h>

#include <gtest/gtest.h>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;

constexpr int kGuestPassed = 1;  // debug-exit 0 -> status 2*0+1

class TestGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
  }
  std::vector<std::string> args(const std::string& cmdline, unsigned vcpus = 1, const std::string& memory = "256M") {
    return {"run", source_dir() + "/machines/default.json", "--kernel", testguest_elf(), "--cmdline", cmdline,
            "--vcpus", std::to_string(vcpus), "--memory", memory};
  }
};

TEST_F(TestGuest, HelloPrintsReadyMarkerAndPasses) {
  const Finished f = run_molt(args("hello"), 60s);
  EXPECT_NE(f.console.find("@ready us="), std::string::npos) << f.console << f.errors;
  EXPECT_NE(f.console.find("@result pass"), std::string::npos) << f.console << f.errors;
  EXPECT_EQ(f.status, kGuestPassed) << f.errors;
}

class TestGuestVcpus : public TestGuest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(TestGuestVcpus, MemtestFindsNoCorruption) {
  const Finished f = run_molt(args("memtest 64 3", GetParam()), 120s);
  EXPECT_NE(f.console.find("@memtest round=3"), std::string::npos) << f.console << f.errors;
  EXPECT_EQ(f.console.find("corrupt"), std::string::npos) << f.console;
  EXPECT_NE(f.console.find("@result pass"), std::string::npos) << f.console << f.errors;
  EXPECT_EQ(f.status, kGuestPassed) << f.errors;
}

TEST_P(TestGuestVcpus, EveryVcpuReportsIn) {
  const unsigned n = GetParam();
  const Finished f = run_molt(args("cpus", n), 120s);
  const std::string expected = "@cpus expected=" + std::to_string(n) + " online=" + std::to_string(n);
  EXPECT_NE(f.console.find(expected), std::string::npos) << f.console << f.errors;
  for (unsigned apic = 0; apic < n; ++apic) {
    EXPECT_NE(f.console.find("@cpu apic=" + std::to_string(apic)), std::string::npos) << f.console;
  }
  EXPECT_EQ(f.status, kGuestPassed) << f.errors;
}

INSTANTIATE_TEST_SUITE_P(OneAndTwo, TestGuestVcpus, ::testing::Values(1u, 2u),
                         [](const ::testing::TestParamInfo<unsigned>& p) { return std::to_string(p.param) + "vcpu"; });

TEST_F(TestGuest, UnknownScenarioFailsWithGuestStatus) {
  const Finished f = run_molt(args("no-such-scenario"), 60s);
  EXPECT_NE(f.console.find("@result fail"), std::string::npos) << f.console;
  EXPECT_EQ(f.status, 3);  // debug-exit 1 -> 2*1+1
}

class StopSignal : public TestGuest, public ::testing::WithParamInterface<int> {};

TEST_P(StopSignal, StopsARunningGuestCleanly) {
  MoltProcess p(args("memtest 16 0"));
  ASSERT_TRUE(p.wait_for_line("@memtest round=1 ", 60s)) << p.console() << p.errors();
  p.signal(GetParam());
  const auto status = p.wait_exit(20s);
  ASSERT_TRUE(status.has_value()) << "molt did not stop on signal " << GetParam();
  EXPECT_EQ(*status, 0) << p.errors();
}

INSTANTIATE_TEST_SUITE_P(IntAndTerm, StopSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& p) { return p.param == SIGINT ? "SIGINT" : "SIGTERM"; });

}  // namespace
}  // namespace molt::test
