// moltctl against a running test guest: status, pause (the memtest lines
// stop), resume (they restart), device list, trace, events watch, errors, and
// quit (molt exits 0).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;


using Moltctl = MoltctlProcess;

class MoltctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    socket_ = test_socket_path("molt-kvm-ctl-");
    molt_ = start_memtest_with_monitor(socket_);
    if (::testing::Test::HasFailure()) return;
  }
  void TearDown() override { std::filesystem::remove(socket_); }
  // Runs moltctl to completion with the socket prepended.
  Moltctl run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", socket_});
    Moltctl m(std::move(args));
    status = m.finish();
    return m;
  }
  void pump(std::chrono::milliseconds d) { molt_->wait_for_line("^@never-printed$", d); }

  std::string socket_;
  std::unique_ptr<MoltProcess> molt_;
  int status = -1;
};

TEST_F(MoltctlTest, StatusPauseResumeQuit) {
  Moltctl s = run({"vm", "status"});
  EXPECT_EQ(status, 0) << s.err;
  EXPECT_NE(s.out.find("state:   running"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("vcpus:   1"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("memory:  256 MiB"), std::string::npos) << s.out;

  EXPECT_EQ(run({"vm", "pause"}).out, "paused\n");
  pump(200ms);
  const std::size_t paused_at = memtest_lines(*molt_);
  pump(1000ms);
  EXPECT_EQ(memtest_lines(*molt_), paused_at) << "memtest kept printing while paused";
  Moltctl again = run({"vm", "pause"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(again.err.find("error -32000"), std::string::npos) << again.err;

  EXPECT_EQ(run({"vm", "resume"}).out, "running\n");
  pump(1000ms);
  EXPECT_GT(memtest_lines(*molt_), paused_at + 3) << "memtest did not restart after resume";

  EXPECT_EQ(run({"vm", "quit"}).out, "shutting-down\n");
  EXPECT_EQ(status, 0);
  const auto exit = molt_->wait_exit(20s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 0) << molt_->errors();
}

TEST_F(MoltctlTest, DeviceListShowsDevicesAndIdePciAddress) {
  Moltctl text = run({"device", "list"});
  ASSERT_EQ(status, 0) << text.err;
  for (const char* id : {"com1", "rtc", "ide0"}) EXPECT_NE(text.out.find(id), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("0x03f8-0x03ff"), std::string::npos) << text.out;

  Moltctl raw = run({"--json", "device", "list"});
  ASSERT_EQ(status, 0) << raw.err;
  const boost::json::array devices = boost::json::parse(raw.out).as_array();
  const auto ide = std::find_if(devices.begin(), devices.end(), [](const boost::json::value& d) {
    return d.at("id") == boost::json::value("ide0");
  });
  ASSERT_NE(ide, devices.end());
  EXPECT_EQ(ide->at("type"), boost::json::value("piix3-ide"));
  ASSERT_FALSE(ide->at("pci").as_array().empty());
  EXPECT_EQ(ide->at("pci").at(0), boost::json::value("00:01.1"));

  Moltctl irq = run({"device", "get", "com1", "irq"});
  EXPECT_EQ(irq.out, "com1.irq = 4\n");
  Moltctl refused = run({"device", "set", "com1", "irq", "3"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(refused.err.find("error -32001"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("com1"), std::string::npos) << refused.err;
  EXPECT_EQ(run({"device", "get", "com1", "irq"}).out, "com1.irq = 4\n");
}

TEST_F(MoltctlTest, TraceSetChangesLoggerLevels) {
  Moltctl set = run({"trace", "set", "dev.*", "debug"});
  ASSERT_EQ(status, 0) << set.err;
  EXPECT_NE(set.out.find("dev.com1"), std::string::npos) << set.out;
  Moltctl list = run({"--json", "trace", "list"});
  ASSERT_EQ(status, 0) << list.err;
  const boost::json::value v = boost::json::parse(list.out);
  bool rtc_debug = false, machine_not_debug = false;
  for (const auto& l : v.at("loggers").as_array()) {
    if (l.at("name") == boost::json::value("dev.rtc"))
      rtc_debug = l.at("level") == boost::json::value("debug");
    if (l.at("name") == boost::json::value("core.machine"))
      machine_not_debug = l.at("level") != boost::json::value("debug");
  }
  EXPECT_TRUE(rtc_debug) << list.out;
  EXPECT_TRUE(machine_not_debug) << list.out;
  Moltctl bad = run({"trace", "set", "dev.*", "loud"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(bad.err.find("error -32602"), std::string::npos) << bad.err;
}

TEST_F(MoltctlTest, EventsWatchPrintsStateChanges) {
  Moltctl watch({"--socket", socket_, "events", "watch", "--event", "vm.state-changed", "--count", "2"});
  pump(500ms);  // let it subscribe
  run({"vm", "pause"});
  run({"vm", "resume"});
  EXPECT_EQ(watch.finish(10s), 0) << watch.err;
  EXPECT_NE(watch.out.find("vm.state-changed state=paused"), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("vm.state-changed state=running"), std::string::npos) << watch.out;
}

TEST(MoltctlHelp, EverySubcommandHasHelp) {
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{{"vm", "status"},
                                                                                   {"vm", "pause"},
                                                                                   {"device", "set"},
                                                                                   {"trace", "set"},
                                                                                   {"plugin", "list"},
                                                                                   {"events", "watch"},
                                                                                   {"call"}}) {
    std::vector<std::string> args = cmd;
    args.push_back("--help");
    Moltctl m(args);
    EXPECT_EQ(m.finish(), 0) << cmd[0] << " " << m.err;
    EXPECT_NE(m.out.find("Usage"), std::string::npos) << m.out;
  }
}

TEST(MoltctlErrors, NoMonitorIsAConnectionError) {
  Moltctl m({"--socket", "/nonexistent/molt.sock", "vm", "status"});
  EXPECT_EQ(m.finish(), 2);
  EXPECT_NE(m.err.find("cannot connect"), std::string::npos) << m.err;
}

}  // namespace
}  // namespace molt::test

namespace molt::test {
namespace {

// A reset starts the guest again from its entry (its banner and memtest's
// first round come again), and the VM keeps running.
TEST_F(MoltctlTest, ResetStartsTheGuestAgain) {
  ASSERT_TRUE(molt_->wait_for_line("@memtest round=3 ", 30s)) << molt_->console();
  Moltctl r = run({"vm", "reset"});
  EXPECT_EQ(status, 0) << r.err;
  EXPECT_EQ(r.out, "running\n");
  // Not anchored: the reset can cut the line the guest was printing.
  EXPECT_TRUE(molt_->wait_for_line("testguest: command line \"memtest 16 0\"", 30s))
      << "the guest did not start again:\n" << molt_->console() << molt_->errors();
  EXPECT_TRUE(molt_->wait_for_line("^@memtest round=1 .* ok$", 30s)) << molt_->console();
  EXPECT_TRUE(molt_->wait_for_line("^@memtest round=2 .* ok$", 30s)) << molt_->console();
  EXPECT_EQ(molt_->console().find("corrupt"), std::string::npos);
  Moltctl s = run({"vm", "status"});
  EXPECT_NE(s.out.find("state:   running"), std::string::npos) << s.out;
  run({"vm", "quit"});
  const auto exit = molt_->wait_exit(20s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(*exit, 0) << molt_->errors();
}

}  // namespace
}  // namespace molt::test
