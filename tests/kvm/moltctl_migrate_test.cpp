// `moltctl migrate`: a real migration of the memtest guest between two molt
// processes over a UNIX socket, driven and reported by moltctl (plain
// progress lines, as stderr is a pipe); a migration to a socket nobody
// listens on (exit 1, the source runs on); the parameters; --incoming defer
// with `migrate incoming` and a detached start followed by `migrate watch`;
// Ctrl-C cancelling a migration; and, without a monitor, the progress and
// report text.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "migrate_format.hpp"
#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;


using MoltctlRun = MoltctlProcess;

std::size_t count_matches(const std::string& text, const std::regex& line) {
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), line), std::sregex_iterator()));
}

const std::regex kMemtestOk("(^|\n)@memtest round=[0-9]+ mib=64 .* errors=0 ok(?=\r?\n)");

class MoltctlMigrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    machine_ = write_pc_machine(test_socket_path("molt-kvm-mig-machine-") + ".json", "memtest 64 0");
    source_socket_ = test_socket_path("molt-kvm-mig-src-");
    source_ = std::make_unique<MoltProcess>(
        std::vector<std::string>{"run", machine_, "--api-socket", source_socket_});
    ASSERT_TRUE(source_->wait_for_line("^@memtest round=1 .* ok", 60s))
        << source_->console() << source_->errors();
  }
  void TearDown() override {
    for (const std::string& path : {machine_, source_socket_, destination_socket_, migration_socket_})
      if (!path.empty()) fs::remove(path);
  }

  MoltctlRun moltctl(const std::string& socket, std::vector<std::string> args,
                     std::chrono::milliseconds timeout = 20s) {
    args.insert(args.begin(), {"--socket", socket});
    MoltctlRun run(std::move(args));
    status = run.finish(timeout);
    return run;
  }
  void pump(MoltProcess& p, std::chrono::milliseconds d) { p.wait_for_line("^@never-printed$", d); }
  // Waits (bounded) until `path` exists: the destination listens.
  bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!fs::exists(path)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  std::string machine_, source_socket_, destination_socket_, migration_socket_;
  std::unique_ptr<MoltProcess> source_;
  int status = -1;
};

TEST_F(MoltctlMigrateTest, StartFollowsAMigrationToTheEndAndTheGuestRunsOnAtTheDestination) {
  destination_socket_ = test_socket_path("molt-kvm-mig-dst-");
  migration_socket_ = test_socket_path("molt-kvm-mig-");
  MoltProcess destination(std::vector<std::string>{"run", machine_, "--incoming", "unix:" + migration_socket_,
                                                   "--api-socket", destination_socket_});
  ASSERT_TRUE(wait_for_path(migration_socket_, 20s)) << "the destination never listened:\n"
                                                     << destination.errors();

  MoltctlRun run = moltctl(source_socket_, {"migrate", "start", "unix:" + migration_socket_}, 60s);
  pump(destination, 100ms);
  ASSERT_EQ(status, 0) << "stdout:\n"
                       << run.out << "stderr:\n"
                       << run.err << "destination:\n"
                       << destination.errors() << "source:\n"
                       << source_->errors();
  // Plain progress lines (stderr is a pipe): elapsed time, then the state.
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << run.err;
  EXPECT_GE(count_matches(run.err, std::regex("(^|\n) +[0-9]+\\.[0-9] s  (setup|active|device) ")), 1u)
      << run.err;
  // The final figures.
  EXPECT_NE(run.out.find("state:      completed (source)"), std::string::npos) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex("\ndowntime:   [0-9.]+ (us|ms|s) \\(expected ")))
      << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex("\n  ram +[0-9.]+ (us|ms)\n"))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex("\nbytes:      [0-9.]+ MiB sent, "))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex("\n  unix:[^ ]+ +[0-9.]+ MiB sent, "))) << run.out;
  EXPECT_TRUE(std::regex_search(run.out, std::regex("\nRAM:        128.0 MiB guest, 100.0% in sync, ")))
      << run.out;

  // The guest runs on at the destination: new memtest rounds, no errors.
  EXPECT_TRUE(destination.wait_for_line("^@memtest round=[0-9]+ .* ok", 30s))
      << destination.console() << destination.errors();
  EXPECT_TRUE(destination.wait_for_line("^@memtest round=[0-9]+ .* ok", 30s)) << destination.console();
  EXPECT_GE(count_matches(destination.console(), kMemtestOk), 2u) << destination.console();
  EXPECT_EQ(destination.console().find("fail"), std::string::npos) << destination.console();
  EXPECT_EQ(destination.console().find("corrupt"), std::string::npos) << destination.console();

  // The source stays in postmigrate, and says how the migration went.
  MoltctlRun vm = moltctl(source_socket_, {"vm", "status"});
  EXPECT_NE(vm.out.find("state:   postmigrate"), std::string::npos) << vm.out << vm.err;
  MoltctlRun raw = moltctl(source_socket_, {"--json", "migrate", "status"});
  ASSERT_EQ(status, 0) << raw.err;
  const json::value final_status = json::parse(raw.out);
  EXPECT_EQ(final_status.at("state"), json::value("completed"));
  EXPECT_TRUE(final_status.at("downtime").as_object().contains("actual_us")) << raw.out;

  moltctl(destination_socket_, {"vm", "quit"});
  EXPECT_EQ(destination.wait_exit(20s), std::optional<int>(0)) << destination.errors();
  moltctl(source_socket_, {"vm", "quit"});
  EXPECT_TRUE(source_->wait_exit(20s).has_value());
}

TEST_F(MoltctlMigrateTest, NobodyListeningFailsWithTheErrorAndTheSourceRunsOn) {
  migration_socket_ = test_socket_path("molt-kvm-mig-nobody-");
  fs::remove(migration_socket_);
  MoltctlRun run = moltctl(source_socket_, {"migrate", "start", "unix:" + migration_socket_}, 30s);
  EXPECT_EQ(status, 1) << run.out << run.err;
  EXPECT_TRUE(std::regex_search(run.err, std::regex("moltctl: migration failed: .+"))) << run.err;
  EXPECT_NE(run.out.find("state:      failed (source)"), std::string::npos) << run.out;

  MoltctlRun vm = moltctl(source_socket_, {"vm", "status"});
  EXPECT_NE(vm.out.find("state:   running"), std::string::npos) << vm.out << vm.err;
  const std::size_t rounds = count_matches(source_->console(), kMemtestOk);
  EXPECT_TRUE(source_->wait_for_line("^@memtest round=[0-9]+ .* ok", 30s)) << source_->console();
  EXPECT_GT(count_matches(source_->console(), kMemtestOk), rounds);

  // watch on a migration that already ended reports it the same way.
  MoltctlRun watch = moltctl(source_socket_, {"migrate", "watch"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(watch.err.find("moltctl: migration failed: "), std::string::npos) << watch.err;
}

TEST_F(MoltctlMigrateTest, ModeCprAndRamOptionsReachMigrateStartAndItsRefusalsAreShown) {
  // Both are refused by migrate.start itself, synchronously: the options got there.
  const std::string snapshot = test_socket_path("molt-kvm-mig-inplace-") + ".snap";
  MoltctlRun in_place = moltctl(source_socket_, {"migrate", "start", "file:" + snapshot, "--ram", "in-place"});
  EXPECT_NE(status, 0);
  EXPECT_NE(in_place.err.find("RAM in a named file"), std::string::npos) << in_place.err;
  EXPECT_FALSE(fs::exists(snapshot));

  MoltctlRun cpr = moltctl(source_socket_, {"migrate", "start", "unix:/nonexistent/main.sock", "--mode",
                                            "cpr-transfer", "--cpr", "tcp:127.0.0.1:7"});
  EXPECT_NE(status, 0);
  EXPECT_NE(cpr.err.find("cpr channel tcp:127.0.0.1:7: file descriptors only travel over UNIX sockets"),
            std::string::npos)
      << cpr.err;

  MoltctlRun bad = moltctl(source_socket_, {"migrate", "start", "file:" + snapshot, "--ram", "elsewhere"});
  EXPECT_NE(status, 0);
  EXPECT_NE(bad.err.find("--ram"), std::string::npos) << bad.err;
  MoltctlRun vm = moltctl(source_socket_, {"vm", "status"});
  EXPECT_NE(vm.out.find("state:   running"), std::string::npos) << vm.out << vm.err;
}

TEST_F(MoltctlMigrateTest, ParametersAreSetAndReadBackAndBadOnesRefused) {
  MoltctlRun set = moltctl(source_socket_, {"migrate", "set-parameters", "--bandwidth", "1G",
                                            "--downtime-limit", "50", "--max-iterations", "7"});
  ASSERT_EQ(status, 0) << set.err;
  EXPECT_NE(set.out.find("bandwidth cap:   1.00 GiB/s (1073741824 bytes/s)"), std::string::npos) << set.out;
  MoltctlRun get = moltctl(source_socket_, {"--json", "migrate", "get-parameters"});
  ASSERT_EQ(status, 0) << get.err;
  const json::value p = json::parse(get.out);
  EXPECT_EQ(p.at("max_bandwidth"), json::value(1073741824));
  EXPECT_EQ(p.at("downtime_limit_ms"), json::value(50));
  EXPECT_EQ(p.at("max_iterations"), json::value(7));
  EXPECT_EQ(p.at("channels"), json::value(1));

  MoltctlRun bad = moltctl(source_socket_, {"migrate", "set-parameters", "--channels", "99"});
  EXPECT_EQ(status, 1);
  EXPECT_NE(bad.err.find("moltctl: error -32"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("channels"), std::string::npos) << bad.err;
  MoltctlRun size = moltctl(source_socket_, {"migrate", "set-parameters", "--bandwidth", "lots"});
  EXPECT_EQ(status, 2);
  EXPECT_NE(size.err.find("'lots' is not a byte size"), std::string::npos) << size.err;
  MoltctlRun none = moltctl(source_socket_, {"migrate", "status"});
  EXPECT_EQ(none.out, "state:      none (no migration has run)\n");
  moltctl(source_socket_, {"migrate", "watch"});
  EXPECT_EQ(status, 1);
}

// A destination started with --incoming defer listens where `migrate
// incoming` says (tcp port 0 resolved); a detached start is followed to its
// end by `migrate watch`.
TEST_F(MoltctlMigrateTest, IncomingPrintsTheAddressAndWatchFollowsADetachedMigration) {
  destination_socket_ = test_socket_path("molt-kvm-mig-dst-");
  MoltProcess destination(
      std::vector<std::string>{"run", machine_, "--incoming", "defer", "--api-socket", destination_socket_});
  ASSERT_TRUE(wait_for_path(destination_socket_, 20s)) << destination.errors();
  MoltctlRun incoming = moltctl(destination_socket_, {"migrate", "incoming", "tcp:127.0.0.1:0"});
  ASSERT_EQ(status, 0) << incoming.err;
  std::smatch port;
  ASSERT_TRUE(std::regex_match(incoming.out, port, std::regex("tcp:127\\.0\\.0\\.1:([1-9][0-9]*)\n")))
      << incoming.out;

  MoltctlRun start = moltctl(
      source_socket_, {"migrate", "start", "--detach", incoming.out.substr(0, incoming.out.size() - 1)});
  ASSERT_EQ(status, 0) << start.err;
  EXPECT_NE(start.out.find("migration to tcp:127.0.0.1:" + port[1].str() + " started: "), std::string::npos)
      << start.out;
  MoltctlRun watch = moltctl(source_socket_, {"migrate", "watch"}, 60s);
  EXPECT_EQ(status, 0) << watch.out << watch.err << destination.errors();
  EXPECT_NE(watch.out.find("state:      completed (source)"), std::string::npos) << watch.out;
  EXPECT_TRUE(destination.wait_for_line("^@memtest round=[0-9]+ .* ok", 30s)) << destination.errors();
  moltctl(destination_socket_, {"vm", "quit"});
  EXPECT_EQ(destination.wait_exit(20s), std::optional<int>(0)) << destination.errors();
}

// Ctrl-C during `migrate start` cancels the migration: exit 1, "migration
// cancelled", and the source guest runs on.
TEST_F(MoltctlMigrateTest, InterruptCancelsTheMigrationAndTheSourceRunsOn) {
  destination_socket_ = test_socket_path("molt-kvm-mig-dst-");
  migration_socket_ = test_socket_path("molt-kvm-mig-");
  MoltProcess destination(std::vector<std::string>{"run", machine_, "--incoming", "unix:" + migration_socket_,
                                                   "--api-socket", destination_socket_});
  ASSERT_TRUE(wait_for_path(migration_socket_, 20s)) << destination.errors();
  // 8 MiB/s: 64 MiB of memtest pattern takes seconds, time enough to interrupt.
  MoltctlRun run(
      {"--socket", source_socket_, "migrate", "start", "unix:" + migration_socket_, "--bandwidth", "8M"});
  pump(*source_, 700ms);
  run.signal(SIGINT);
  EXPECT_EQ(run.finish(20s), 1) << run.out << run.err;
  EXPECT_NE(run.err.find("moltctl: migration cancelled"), std::string::npos) << run.err;
  EXPECT_NE(run.out.find("state:      cancelled (source)"), std::string::npos) << run.out;
  MoltctlRun vm = moltctl(source_socket_, {"vm", "status"});
  EXPECT_NE(vm.out.find("state:   running"), std::string::npos) << vm.out << vm.err;
  const std::size_t rounds = count_matches(source_->console(), kMemtestOk);
  EXPECT_TRUE(source_->wait_for_line("^@memtest round=[0-9]+ .* ok", 30s)) << source_->console();
  EXPECT_GT(count_matches(source_->console(), kMemtestOk), rounds);
  // The destination never ran the guest: it ends with an error.
  const auto exit = destination.wait_exit(20s);
  ASSERT_TRUE(exit.has_value());
  EXPECT_NE(*exit, 0);
  EXPECT_EQ(count_matches(destination.console(), kMemtestOk), 0u) << destination.console();
}

TEST(MoltctlMigrateHelp, EveryMigrateSubcommandHasHelp) {
  for (const char* sub :
       {"start", "incoming", "status", "watch", "cancel", "switchover", "set-parameters", "get-parameters"}) {
    MoltctlRun m({"migrate", sub, "--help"});
    EXPECT_EQ(m.finish(10s), 0) << sub << " " << m.err;
    EXPECT_NE(m.out.find("Usage"), std::string::npos) << m.out;
  }
}

// The text, from a status shaped like the monitor's.
const char* const kCompletedStatus = R"({
  "uri": "unix:/tmp/mig/mig.sock", "total_ms": 3029,
  "phases_us": {"setup": 436, "active": 174872, "device": 29731},
  "bytes_sent": 175677503, "bytes_received": 146,
  "channels": [{"name": "unix:/tmp/mig/mig.sock", "bytes_sent": 175677503, "bytes_received": 146}],
  "ram": {"total_bytes": 268435456, "remaining_bytes": 0, "transferred_bytes": 175658732, "data_pages": 42801,
          "zero_pages": 175, "dirtied_pages": 9949, "dirty_pages_per_s": 61489, "iterations": 1,
          "bandwidth_bytes_per_s": 833307502},
  "downtime": {"expected_us": 48902, "actual_us": 31000,
               "breakdown_us": {"ram": 20000, "device:com1": 12, "vcpus": 300, "send": 10,
                                "destination-load": 900}},
  "state": "completed", "role": "source", "parameters": {"downtime_limit_ms": 300}
})";

TEST(MoltctlMigrateText, ProgressLineShowsShareRateIterationDirtyRateAndDowntime) {
  json::value s = json::parse(kCompletedStatus);
  s.at("state") = "active";
  s.at("ram").at("remaining_bytes") = 268435456 / 4;
  EXPECT_EQ(moltctl::format_progress(s),
            "active     75.0%  167.5 MiB sent  794.7 MiB/s  pass 2  dirty 61489 pages/s  downtime ~48.9 ms");
  EXPECT_NE(moltctl::format_progress(s, 10.0 * 1024 * 1024).find(" sent  10.0 MiB/s  pass 2"),
            std::string::npos);
  EXPECT_EQ(moltctl::format_progress_bar(s, 8).substr(0, 11), "[######--] ");
  // Before the first pass ends there is no rate, dirty rate or estimate yet.
  s.at("ram").at("iterations") = 0;
  s.at("ram").at("bandwidth_bytes_per_s") = 0;
  EXPECT_EQ(moltctl::format_progress(s), "active     75.0%  167.5 MiB sent  pass 1");
  // Setup: no RAM figures at all.
  EXPECT_EQ(moltctl::format_progress(json::parse(R"({"state":"setup","role":"source","bytes_sent":90})")),
            "setup      90 B sent");
  EXPECT_EQ(
      moltctl::format_progress(json::parse(R"({"state":"receiving","role":"destination","bytes_received":
      3145728})")),
      "receiving  3.0 MiB received");
}

TEST(MoltctlMigrateText, ReportListsDowntimeBreakdownLargestFirstAndEveryChannel) {
  const std::string report = moltctl::format_migrate_report(json::parse(kCompletedStatus));
  EXPECT_NE(report.find("state:      completed (source)\n"), std::string::npos) << report;
  EXPECT_NE(report.find("total time: 3.03 s\n"), std::string::npos) << report;
  EXPECT_NE(report.find("downtime:   31.0 ms (expected 48.9 ms, limit 300 ms)\n"), std::string::npos)
      << report;
  const auto at = [&](const char* name) { return report.find(std::string("\n  ") + name + " "); };
  ASSERT_NE(at("ram"), std::string::npos) << report;
  EXPECT_LT(at("ram"), at("destination-load"));
  EXPECT_LT(at("destination-load"), at("vcpus"));
  EXPECT_LT(at("vcpus"), at("device:com1"));
  EXPECT_LT(at("device:com1"), at("send"));
  EXPECT_NE(report.find("  ram                  20.0 ms\n"), std::string::npos) << report;
  EXPECT_NE(
      report.find("RAM:        256.0 MiB guest, 100.0% in sync, 167.5 MiB moved in 1 pass at 794.7 MiB/s\n"
                  "pages:      42801 data, 175 zero, 9949 dirtied again (61489 pages/s)\n"),
      std::string::npos)
      << report;
  EXPECT_NE(report.find("  unix:/tmp/mig/mig.sock  167.5 MiB sent, 146 B received\n"), std::string::npos)
      << report;
  EXPECT_NE(report.find("phases:     setup 436 us, active 174.9 ms, device 29.7 ms\n"), std::string::npos)
      << report;
}

TEST(MoltctlMigrateText, FailureNamesTheErrorAndEachDifferenceOnItsOwnLine) {
  const json::value s = json::parse(R"({"state":"failed","role":"source","error":"the destination refused",
      "differences":["ram block pc.ram: 1024 MiB at source, 512 MiB here","device disk0: present at source, absent here"]})");
  EXPECT_EQ(moltctl::format_migrate_failure(s),
            "migration failed: the destination refused\n"
            "  ram block pc.ram: 1024 MiB at source, 512 MiB here\n"
            "  device disk0: present at source, absent here\n");
  EXPECT_EQ(moltctl::format_migrate_failure(json::parse(R"({"state":"cancelled","role":"source"})")),
            "migration cancelled\n");
}

TEST(MoltctlMigrateText, ByteSizesTakeBinarySuffixes) {
  EXPECT_EQ(moltctl::parse_byte_size("0"), 0u);
  EXPECT_EQ(moltctl::parse_byte_size("1048576"), 1048576u);
  EXPECT_EQ(moltctl::parse_byte_size("512K"), 512u * 1024);
  EXPECT_EQ(moltctl::parse_byte_size("100M"), 100u * 1024 * 1024);
  EXPECT_EQ(moltctl::parse_byte_size("1G"), 1073741824u);
  EXPECT_EQ(moltctl::parse_byte_size("2GiB"), 2147483648u);
  EXPECT_EQ(moltctl::parse_byte_size("1.5g"), 1610612736u);
  EXPECT_EQ(moltctl::parse_byte_size("1T"), 1099511627776u);
  for (const char* bad : {"", "G", "1.5", "-1M", "1X", "1Gb/s", "lots", "inf"})
    EXPECT_THROW(moltctl::parse_byte_size(bad), std::invalid_argument) << bad;
}

}  // namespace
}  // namespace molt::test
