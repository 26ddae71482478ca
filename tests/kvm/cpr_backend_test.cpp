// cpr-transfer with the in-tree plugins handing their backends over: the
// serial port's listening socket and its connected console client, and the
// IDE drive's open disk image. One console connection and one disk image
// serve the guest through old -> new -> newer, all three molts started from
// the same machine file.
#include <gtest/gtest.h>

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "migration_support.hpp"

namespace molt::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kSoakSectors = 64;

// A molt and the sockets it was started with.
struct Molt {
  std::unique_ptr<MoltProcess> process;
  std::string monitor, main, cpr;
};

// The fd names migrate.status says `device` handed over (or took).
std::vector<std::string> handed_over(const json::object& status, const std::string& device) {
  std::vector<std::string> names;
  const json::value* list = status.if_contains("handed_over");
  if (!list || !list->is_array()) return names;
  for (const json::value& entry : list->as_array()) {
    if (!entry.is_object() || string_at(entry.as_object(), "device") != device) continue;
    if (const json::value* fds = entry.as_object().if_contains("fds"); fds && fds->is_array())
      for (const json::value& f : fds->as_array())
        if (f.is_string()) names.emplace_back(f.as_string());
  }
  return names;
}

// Every soak round the connection received, in order: each must follow the
// one before by exactly one, as on a console that never lost a byte.
std::vector<SoakRound> rounds_in(const std::string& text) {
  std::vector<SoakRound> rounds;
  const std::regex line("@soak round=[^\r\n]*");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator(); ++it)
    if (auto r = parse_soak_round(it->str())) rounds.push_back(*r);
  return rounds;
}

// Polls migrate.status until it is final, reading the console meanwhile as a
// live client does (one that stops reading leaves output queued in the old
// molt, which cpr-transfer does not carry; docs/devices/serial.md).
json::object wait_final_reading(MonitorClient& monitor, ConsoleSocket& console) {
  const auto deadline = Clock::now() + 30s;
  for (;;) {
    const json::object status = monitor.call("migrate.status").as_object();
    if (is_final_migration_state(string_at(status, "state")) || Clock::now() > deadline) return status;
    console.pump(5ms);
  }
}

class CprBackends : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("molt-cpr-backends-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    fs::create_directories(dir_);
    disk_ = (dir_ / "disk.img").string();
    create_disk_image(disk_, 256);
    console_path_ = short_socket_path("com1");
    GuestSpec spec;
    spec.memory = "256M";
    spec.cmdline = "soak 32 " + std::to_string(kSoakSectors);
    spec.console_socket = console_path_;
    spec.disk_image = disk_;
    machine_ = write_migration_machine((dir_ / "vm.json").string(), spec);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  Molt start_new_molt(const std::string& tag) {
    Molt m;
    m.monitor = short_socket_path(tag + "-api");
    m.main = short_socket_path(tag + "-main");
    m.cpr = short_socket_path(tag + "-cpr");
    m.process = std::make_unique<MoltProcess>(std::vector<std::string>{
        "--log-level", "info", "run", machine_, "--api-socket", m.monitor, "--incoming", "unix:" + m.main,
        "--cpr-channel", "unix:" + m.cpr});
    EXPECT_TRUE(wait_for_log(*m.process, "waiting on unix:" + m.cpr + " for the source's RAM", 20s))
        << m.process->errors();
    return m;
  }

  // One hop; the old molt is told to quit afterwards, as an operator would.
  // A monitor that stops answering fails the test with both molts' logs.
  void hop(Molt& from, Molt& to, ConsoleSocket& console, const std::string& words) {
    try {
      hop_or_throw(from, to, console, words);
    } catch (const std::exception& e) {
      const auto from_exit = from.process->wait_exit(200ms), to_exit = to.process->wait_exit(200ms);
      FAIL() << e.what() << "\nfrom (" << (from_exit ? "exited " + std::to_string(*from_exit) : "running")
             << "):\n" << from.process->errors() << "\nto (" << (to_exit ? "exited " + std::to_string(*to_exit) : "running")
             << "):\n" << to.process->errors();
    }
  }
  void hop_or_throw(Molt& from, Molt& to, ConsoleSocket& console, const std::string& words) {
    MonitorClient monitor(from.monitor);
    monitor.call("migrate.start",
                 {{"uri", "unix:" + to.main}, {"mode", "cpr-transfer"}, {"cpr_uri", "unix:" + to.cpr}});
    const json::object status = wait_final_reading(monitor, console);
    ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << to.process->errors();
    EXPECT_EQ(handed_over(status, "com1"), (std::vector<std::string>{"listener", "client"}))
        << json::serialize(status);
    EXPECT_EQ(handed_over(status, "ide0"), std::vector<std::string>{"image-primary-master"})
        << json::serialize(status);
    MonitorClient new_monitor(to.monitor);
    EXPECT_EQ(handed_over(new_monitor.call("migrate.status").as_object(), "com1"),
              (std::vector<std::string>{"listener", "client"}));
    EXPECT_EQ(vm_state(new_monitor), "running");

    // The same connection: the guest's rounds go on, and typed input reaches it.
    EXPECT_EQ(next_soak_rounds(console, 3, 10s).size(), 3u) << console.text() << to.process->errors();
    ASSERT_TRUE(console.type(words + "\r\n"));
    EXPECT_TRUE(console.wait_for_line("^@echo " + words + "$", 10s)) << console.text();

    monitor.call("vm.quit");
    ASSERT_TRUE(from.process->wait_exit(10s)) << from.process->errors();
    EXPECT_TRUE(fs::exists(console_path_)) << "the old molt removed the socket path the new molt serves";
  }

  fs::path dir_;
  std::string disk_, console_path_, machine_;
};

TEST_F(CprBackends, ConsoleClientStaysConnectedAndTheDiskFollowsItsOpenImage) {
  Molt old;
  old.monitor = short_socket_path("old-api");
  old.process = start_source(machine_, old.monitor);
  ConsoleSocket console(console_path_);
  ASSERT_TRUE(console.connected());
  ASSERT_EQ(next_soak_rounds(console, 2, 20s).size(), 2u) << console.text() << old.process->errors();

  // The image moves away on disk: only its open fd leads to it now.
  const std::string moved = disk_ + ".moved";
  fs::rename(disk_, moved);

  Molt fresh = start_new_molt("new");
  hop(old, fresh, console, "after one hop");
  Molt newer = start_new_molt("newer");
  hop(fresh, newer, console, "after two hops");

  monitor_call(newer.monitor, "vm.quit");
  ASSERT_TRUE(newer.process->wait_exit(10s)) << newer.process->errors();

  const std::vector<SoakRound> rounds = rounds_in(console.text());
  const std::string logs = "\nold molt:\n" + old.process->errors() + "\nnew molt:\n" + fresh.process->errors() +
                           "\nnewer molt:\n" + newer.process->errors();
  ASSERT_GE(rounds.size(), 8u) << console.text() << logs;  // 2 before the hops, 3 after each
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_TRUE(rounds[i].clean()) << rounds[i].line;
    if (i > 0) {
      EXPECT_EQ(rounds[i].round, rounds[i - 1].round + 1) << "the console lost or repeated output between\n"
                                                          << rounds[i - 1].line << "\n"
                                                          << rounds[i].line << logs;
    }
  }
  EXPECT_FALSE(fs::exists(disk_)) << "a molt opened the image path again instead of taking the open image";
  EXPECT_EQ(check_soak_image(moved, kSoakSectors, rounds.back().round), std::vector<std::string>{});
}

}  // namespace
}  // namespace molt::test
