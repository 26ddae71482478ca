// Snapshots that leave the guest's RAM in place (docs/cpr.md, "Snapshots"):
// the test guest's memtest runs with its RAM in a file under /dev/shm
// (memory.backend "file"), vm.snapshot with ram "in-place" writes only the
// rest, the old molt quits, and `molt run --restore` maps the same file and
// lets memtest carry on clean. Every refusal is asserted by its message
// (saving: resume, a memfd machine; restoring: a memfd machine, another path,
// another size, a missing file; a second molt on a locked RAM file), and a
// file-backed guest still moves by cpr-transfer and by a snapshot with its
// RAM in the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "migration_support.hpp"

namespace molt::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kGuestRam = 128ull << 20;

// The next memtest round on `molt`'s console.
std::optional<MemtestRound> next_round(MoltProcess& molt, std::chrono::milliseconds timeout) {
  const auto line = molt.wait_for_line("^@memtest round=", timeout);
  return line ? parse_memtest_round(*line) : std::nullopt;
}

// The rounds a stopped guest printed before it stopped (the console quiet
// for a moment), each clean; the last round number.
std::uint64_t drain_rounds(MoltProcess& molt, std::uint64_t last) {
  while (const auto r = next_round(molt, 300ms)) {
    EXPECT_TRUE(r->ok && r->errors == 0) << r->line;
    last = r->round;
  }
  return last;
}

// `count` clean rounds, the first just after `after` (the round being
// printed at the pause may be cut), the rest consecutive.
void expect_rounds_continue(MoltProcess& molt, std::uint64_t after, int count) {
  std::uint64_t previous = 0;
  for (int i = 0; i < count; ++i) {
    const auto r = next_round(molt, 10s);
    ASSERT_TRUE(r) << "no round after " << (previous ? previous : after) << "\nstderr:\n" << molt.errors();
    EXPECT_TRUE(r->ok && r->errors == 0) << r->line;
    if (previous == 0) {
      EXPECT_GT(r->round, after) << r->line;
      EXPECT_LE(r->round, after + 2) << "rounds went missing: " << r->line;
    } else {
      EXPECT_EQ(r->round, previous + 1) << r->line;
    }
    previous = r->round;
  }
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    static std::atomic<int> counter{0};
    const fs::path shm = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    dir_ = shm / ("molt-snap-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    fs::create_directories(dir_);
    ram_ = (dir_ / "guest.ram").string();
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A memtest machine; with `ram_file`, its RAM is that file.
  std::string machine(const std::string& tag, const std::string& ram_file, const std::string& size = "128M") {
    GuestSpec spec;
    spec.memory = size;
    spec.cmdline = "memtest 16 0";
    const std::string path = write_migration_machine((dir_ / (tag + ".json")).string(), spec);
    if (ram_file.empty()) return path;
    std::ifstream in(path);
    json::object doc = json::parse(std::string(std::istreambuf_iterator<char>(in), {})).as_object();
    doc["memory"] = json::object{{"size", size}, {"backend", "file"}, {"path", ram_file}};
    std::ofstream(path, std::ios::trunc) << json::serialize(doc) << "\n";
    return path;
  }

  // A molt running `machine_file` with its monitor, once memtest's first round passed.
  struct Guest {
    std::unique_ptr<MoltProcess> molt;
    std::string monitor;
    std::uint64_t last_round = 0;
  };
  Guest start(const std::string& machine_file, const std::string& tag) {
    Guest g;
    g.monitor = short_socket_path(tag + "-api");
    g.molt = start_source(machine_file, g.monitor);
    const auto first = next_round(*g.molt, 20s);
    EXPECT_TRUE(first && first->ok) << (first ? first->line : g.molt->errors());
    if (first) g.last_round = first->round;
    return g;
  }

  json::object snapshot(Guest& g, const std::string& file, json::object extra = {}) {
    MonitorClient monitor(g.monitor);
    extra["path"] = file;
    monitor.call("vm.snapshot", extra);
    return wait_migration_final(monitor, 30s);
  }

  void quit(Guest& g) {
    monitor_call(g.monitor, "vm.quit");
    const auto status = g.molt->wait_exit(10s);
    ASSERT_TRUE(status) << g.molt->errors();
    EXPECT_EQ(*status, 0) << g.molt->errors();
  }

  // The guest was refused and nothing changed: it runs on clean, no migration started.
  void expect_untouched(Guest& g) {
    MonitorClient monitor(g.monitor);
    EXPECT_EQ(vm_state(monitor), "running");
    EXPECT_EQ(string_at(monitor.call("migrate.status").as_object(), "state"), "none");
    expect_rounds_continue(*g.molt, g.last_round, 2);  // lines are read in order: the next is last_round + 1
  }

  // An in-place snapshot of a guest on `ram_`, the guest then quit: the snapshot file.
  std::string saved_in_place(std::uint64_t* saved_round = nullptr) {
    Guest g = start(machine("saved", ram_), "saved");
    const std::string file = (dir_ / "guest.snap").string();
    const json::object status = snapshot(g, file, {{"ram", "in-place"}});
    EXPECT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
    const std::uint64_t last = drain_rounds(*g.molt, g.last_round);
    if (saved_round) *saved_round = last;
    quit(g);
    return file;
  }

  fs::path dir_;
  std::string ram_;
};

// ---- saved with RAM in place, restored by a new process ----

TEST_F(SnapshotTest, InPlaceSnapshotRestoredAfterTheOldMoltQuitResumesMemtest) {
  Guest old_molt = start(machine("old", ram_), "old");
  const std::string file = (dir_ / "guest.snap").string();
  const json::object status = snapshot(old_molt, file, {{"ram", "in-place"}});
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  // The status names the file the RAM stayed in; no page went into the snapshot.
  const json::value* in_place = status.if_contains("ram_in_place");
  ASSERT_TRUE(in_place && in_place->is_array() && in_place->as_array().size() == 1)
      << json::serialize(status);
  const json::object& block = in_place->as_array()[0].as_object();
  EXPECT_EQ(string_at(block, "block"), "pc.ram");
  EXPECT_EQ(string_at(block, "path"), ram_);
  EXPECT_EQ(number_at(block, {"size"}), kGuestRam);
  EXPECT_FALSE(status.contains("ram")) << json::serialize(status);
  EXPECT_LT(fs::file_size(file), 1u << 20) << "the snapshot holds RAM pages";
  MonitorClient monitor(old_molt.monitor);
  EXPECT_EQ(vm_state(monitor), "postmigrate");
  const std::uint64_t saved = drain_rounds(*old_molt.molt, old_molt.last_round);
  quit(old_molt);

  // The dump shows where the RAM is.
  const Finished dump = run_molt({"migration", "dump", "--summary", file}, 10s);
  ASSERT_EQ(dump.status, 0) << dump.errors;
  const json::object dumped = json::parse(dump.console).as_object();
  ASSERT_TRUE(dumped.contains("ram_in_place")) << dump.console;
  EXPECT_EQ(dumped.at("ram_in_place").as_array()[0].as_object().at("path"), json::value(ram_));

  MoltProcess restored({"run", machine("restored", ram_), "--restore", file});
  expect_rounds_continue(restored, saved, 5);
  EXPECT_EQ(restored.console().find("testguest: command line"), std::string::npos) << "the guest booted anew";
}

TEST_F(SnapshotTest, InPlaceSnapshotThroughMigrateStartToAFile) {
  Guest g = start(machine("old", ram_), "old");
  const std::string file = (dir_ / "guest.snap").string();
  MonitorClient monitor(g.monitor);
  monitor.call("migrate.start", {{"uri", "file:" + file}, {"ram", "in-place"}});
  const json::object status = wait_migration_final(monitor, 30s);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  EXPECT_TRUE(status.contains("ram_in_place")) << json::serialize(status);
  const std::uint64_t saved = drain_rounds(*g.molt, g.last_round);
  quit(g);
  MoltProcess restored({"run", machine("restored", ram_), "--restore", file});
  expect_rounds_continue(restored, saved, 3);
}

// ---- refused when saving: synchronously, nothing changes ----

TEST_F(SnapshotTest, InPlaceWithResumeIsRefused) {
  Guest g = start(machine("g", ram_), "g");
  const std::string file = (dir_ / "guest.snap").string();
  MonitorClient monitor(g.monitor);
  EXPECT_EQ(monitor.call_error("vm.snapshot", {{"path", file}, {"ram", "in-place"}, {"resume", true}}),
            "vm.snapshot: the guest would go on changing the RAM the snapshot leaves in place; snapshot with "
            "resume false (the guest stays stopped), or with ram \"file\" to let it run on");
  EXPECT_FALSE(fs::exists(file));
  expect_untouched(g);
}

TEST_F(SnapshotTest, InPlaceOfAMemfdMachineIsRefused) {
  Guest g = start(machine("g", ""), "g");
  const std::string file = (dir_ / "guest.snap").string();
  MonitorClient monitor(g.monitor);
  EXPECT_EQ(
      monitor.call_error("vm.snapshot", {{"path", file}, {"ram", "in-place"}}),
      "vm.snapshot: ram in-place needs the guest's RAM in a named file: set memory.backend to \"file\" with "
      "a path, for example on /dev/shm; this machine's RAM is a memfd");
  EXPECT_NE(monitor.call_error("vm.snapshot", {{"path", file}, {"ram", "elsewhere"}})
                .find("ram: expected \"file\" or \"in-place\", got \"elsewhere\""),
            std::string::npos);
  EXPECT_FALSE(fs::exists(file));
  expect_untouched(g);
}

// ---- refused when restoring: a sentence, exit status 2, no guest ----

TEST_F(SnapshotTest, RestoreRefusesAMachineThatDoesNotMapTheSameFile) {
  const std::string file = saved_in_place();
  const std::string left = "molt: the snapshot left RAM in place in " + ram_;
  struct Case {
    std::string machine, message;
  };
  const std::string other = (dir_ / "other.ram").string();
  for (const Case& c :
       {Case{machine("memfd", ""),
             left +
                 "; this machine's memory.backend is memfd: set \"memory\": {\"backend\": "
                 "\"file\", \"path\": \"" +
                 ram_ + "\"} in its machine file"},
        Case{machine("path", other),
             left + "; this machine's memory.path is " + other + ": give it the same path"},
        Case{machine("size", ram_, "64M"),
             left + " (128 MiB); this machine's memory.size is 64 MiB: give it the same size"}}) {
    const Finished run = run_molt({"run", c.machine, "--restore", file}, 20s);
    EXPECT_EQ(run.status, 2) << run.errors;
    EXPECT_NE(run.errors.find(c.message), std::string::npos) << run.errors;
    EXPECT_EQ(run.console.find("@memtest"), std::string::npos) << "a refused restore ran the guest";
  }
  EXPECT_FALSE(fs::exists(other)) << "a refused restore created a RAM file";
  EXPECT_EQ(fs::file_size(ram_), kGuestRam);
}

TEST_F(SnapshotTest, RestoreRefusesAMissingOrChangedRamFile) {
  const std::string file = saved_in_place();
  const std::string machine_file = machine("restore", ram_);
  fs::resize_file(ram_, kGuestRam / 2);
  Finished run = run_molt({"run", machine_file, "--restore", file}, 20s);
  EXPECT_EQ(run.status, 2) << run.errors;
  EXPECT_NE(run.errors.find("molt: the snapshot left RAM in place in " + ram_ +
                            " (128 MiB); the file now holds 64 MiB: it changed since the snapshot"),
            std::string::npos)
      << run.errors;
  fs::remove(ram_);  // what a host reboot does to /dev/shm
  run = run_molt({"run", machine_file, "--restore", file}, 20s);
  EXPECT_EQ(run.status, 2) << run.errors;
  EXPECT_NE(
      run.errors.find("molt: the snapshot left RAM in place in " + ram_ +
                      ", which does not exist any more (files on /dev/shm do not survive a host reboot)"),
      std::string::npos)
      << run.errors;
  EXPECT_EQ(run.console.find("@memtest"), std::string::npos);
  EXPECT_FALSE(fs::exists(ram_)) << "a refused restore created the RAM file";
}

TEST_F(SnapshotTest, ASecondMoltOnALockedRamFileIsRefused) {
  const std::string machine_file = machine("g", ram_);
  Guest g = start(machine_file, "g");
  const Finished second = run_molt({"run", machine_file}, 20s);
  EXPECT_EQ(second.status, 2) << second.errors;
  EXPECT_NE(second.errors.find("memory.path " + ram_ + ": in use by another process (it holds the lock)"),
            std::string::npos)
      << second.errors;
  EXPECT_EQ(second.console.find("@memtest"), std::string::npos);
  // The refused molt emptied nothing: the first guest's RAM checks out round after round.
  expect_untouched(g);
}

// ---- a file-backed guest still moves the other ways ----

TEST_F(SnapshotTest, InFileSnapshotOfAFileBackedGuestLoadsIntoTheEmptiedFile) {
  Guest g = start(machine("old", ram_), "old");
  const std::string file = (dir_ / "guest.snap").string();
  const json::object status = snapshot(g, file);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  EXPECT_FALSE(status.contains("ram_in_place"));
  const std::uint64_t saved = drain_rounds(*g.molt, g.last_round);
  quit(g);
  // Scribble over the RAM file: the restore must empty it and take every page from the snapshot.
  {
    std::ofstream scribble(ram_, std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(1 << 20, '\xa5');
    for (int mib = 0; mib < 32; ++mib) scribble.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  MoltProcess restored({"run", machine("restored", ram_), "--restore", file});
  expect_rounds_continue(restored, saved, 4);
}

TEST_F(SnapshotTest, CprTransferOfAFileBackedGuestHandsTheFileAndItsLockOver) {
  Guest old_molt = start(machine("old", ram_), "old");
  const std::string monitor = short_socket_path("new-api"), main = short_socket_path("new-main"),
                    cpr = short_socket_path("new-cpr");
  MoltProcess new_molt({"--log-level", "info", "run", machine("new", ram_), "--api-socket", monitor,
                        "--incoming", "unix:" + main, "--cpr-channel", "unix:" + cpr});
  ASSERT_TRUE(wait_for_log(new_molt, "waiting on unix:" + cpr + " for the source's RAM", 20s))
      << new_molt.errors();
  MonitorClient old_monitor(old_molt.monitor);
  old_monitor.call("migrate.start",
                   {{"uri", "unix:" + main}, {"mode", "cpr-transfer"}, {"cpr_uri", "unix:" + cpr}});
  const json::object status = wait_migration_final(old_monitor, 30s);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << "\n" << new_molt.errors();
  EXPECT_LT(*number_at(status, {"bytes_sent"}), kGuestRam / 100) << "RAM went over the main channel";
  const std::uint64_t before = drain_rounds(*old_molt.molt, old_molt.last_round);
  quit(old_molt);
  expect_rounds_continue(new_molt, before, 4);
  // The new molt holds the file's lock now: a third molt is refused.
  const Finished third = run_molt({"run", machine("third", ram_)}, 20s);
  EXPECT_EQ(third.status, 2) << third.errors;
  EXPECT_NE(third.errors.find("in use by another process"), std::string::npos) << third.errors;
  monitor_call(monitor, "vm.quit");
  EXPECT_EQ(new_molt.wait_exit(10s), 0) << new_molt.errors();
}

}  // namespace
}  // namespace molt::test
