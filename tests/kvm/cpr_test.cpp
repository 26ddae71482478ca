// cpr-transfer and snapshots with real guests (docs/cpr.md): the test guest's
// memtest and soak scenarios handed from molt to molt on this host with their
// RAM left in place (twice in a row, 1 and 2 vCPUs), every blocker refused by
// migrate.start before anything moves, a mismatched or killed new molt
// leaving the guest running, and a snapshot restored in a new process.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <molt/sdk/error.hpp>
#include <molt/sdk/plugin.hpp>

#include "core/machine/description.hpp"
#include "core/machine/machine.hpp"
#include "core/machine/machine_types.hpp"
#include "core/migration/engine.hpp"
#include "core/plugin/registry.hpp"
#include "migration_support.hpp"

namespace molt::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kGuestRam = 256ull << 20;
constexpr std::uint32_t kSoakSectors = 64;

// One molt in a chain of cpr-transfers, with the sockets it was started with.
struct Node {
  std::unique_ptr<MoltProcess> molt;
  std::string machine, monitor, main, cpr, console_path;
  std::unique_ptr<ConsoleSocket> console;  // soak: COM1 on a unix socket; memtest: molt's stdout
  std::uint64_t last_round = 0, last_ap_rounds = 0;
};

// One guest round: memtest's on molt's stdout, or soak's on the console socket.
struct Round {
  std::uint64_t round = 0, ap_rounds = 0;
  bool clean = false;
  std::string line;
};

std::optional<Round> next_round(Node& n, std::chrono::milliseconds timeout) {
  if (n.console) {
    const auto line = n.console->wait_for_line("^@soak round=", timeout);
    const auto soak = line ? parse_soak_round(*line) : std::nullopt;
    if (!soak) return std::nullopt;
    return Round{soak->round, soak->ap_rounds, soak->clean(), soak->line};
  }
  const auto line = n.molt->wait_for_line("^@memtest round=", timeout);
  const auto memtest = line ? parse_memtest_round(*line) : std::nullopt;
  if (!memtest) return std::nullopt;
  return Round{memtest->round, 0, memtest->errors == 0 && memtest->ok, memtest->line};
}

// The rounds a stopped guest printed before it stopped: reads until the
// console has been quiet for a moment; returns the last round number.
std::uint64_t drain_rounds(Node& n) {
  while (const auto r = next_round(n, 300ms)) {
    EXPECT_TRUE(r->clean) << r->line;
    n.last_round = r->round;
    n.last_ap_rounds = r->ap_rounds;
  }
  return n.last_round;
}

// Reads `count` rounds on `n`, each clean, the first after `after` and at
// most `slack` later (the line the guest was printing when it paused, and
// soak output printed before the console socket connected, may be cut), the
// rest consecutive; with APs, also until the APs' count moved past
// `ap_rounds`. Returns the last round.
std::uint64_t expect_rounds_continue(Node& n, std::uint64_t after, std::size_t count, std::uint64_t slack,
                                     std::uint64_t ap_rounds = 0, bool want_ap_progress = false) {
  std::uint64_t previous = 0;
  for (std::size_t i = 0; i < count || (want_ap_progress && n.last_ap_rounds <= ap_rounds && i < count + 200);
       ++i) {
    const auto r = next_round(n, 10s);
    if (!r) {
      ADD_FAILURE() << "no round after round " << (previous ? previous : after) << "\nstderr:\n"
                    << n.molt->errors() << (n.console ? "\nconsole:\n" + n.console->text() : "");
      return previous;
    }
    EXPECT_TRUE(r->clean) << r->line;
    if (previous == 0) {
      EXPECT_GT(r->round, after) << "the round counter went back: " << r->line;
      EXPECT_LE(r->round, after + slack) << "rounds went missing: " << r->line << "\n"
                                         << (n.console ? n.console->text() : n.molt->console());
    } else {
      EXPECT_EQ(r->round, previous + 1) << r->line;
    }
    previous = r->round;
    n.last_round = r->round;
    n.last_ap_rounds = r->ap_rounds;
  }
  if (want_ap_progress) {
    EXPECT_GT(n.last_ap_rounds, ap_rounds) << "the AP stopped working";
  }
  return previous;
}

std::string fmt_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

json::object cpr_request(const Node& to) {
  return {{"uri", "unix:" + to.main}, {"mode", "cpr-transfer"}, {"cpr_uri", "unix:" + to.cpr}};
}

class CprTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("molt-cpr-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    fs::create_directories(dir_);
    disk_ = (dir_ / "disk.img").string();
    create_disk_image(disk_, 256);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A 256 MiB machine running memtest (COM1 on stdio), or soak on the disk
  // with COM1 on a unix socket of its own (set per node by node_machine()).
  GuestSpec spec(bool soak, unsigned vcpus) const {
    GuestSpec s;
    s.vcpus = vcpus;
    s.memory = "256M";
    s.cmdline = soak ? "soak 32 " + std::to_string(kSoakSectors) : "memtest 16 0";
    if (soak) s.disk_image = disk_;
    return s;
  }
  std::string node_machine(GuestSpec s, const std::string& tag, Node& n) {
    if (!s.disk_image.empty()) n.console_path = s.console_socket = short_socket_path(tag + "-com1");
    n.machine = write_migration_machine((dir_ / (tag + ".json")).string(), s);
    if (!extra_devices_.empty()) {
      std::stringstream text;
      text << std::ifstream(n.machine).rdbuf();
      json::object m = json::parse(text.str()).as_object();
      for (const json::object& d : extra_devices_) m["devices"].as_array().push_back(d);
      std::ofstream(n.machine, std::ios::trunc) << json::serialize(m) << "\n";
    }
    return n.machine;
  }

  // The first molt: boots the guest and shows its first clean rounds.
  Node start_guest(const GuestSpec& s, const std::string& tag = "old") {
    Node n;
    n.monitor = short_socket_path(tag + "-api");
    n.molt = start_source(node_machine(s, tag, n), n.monitor, extra_args_);
    if (!n.console_path.empty()) n.console = std::make_unique<ConsoleSocket>(n.console_path);
    const auto first = next_round(n, 20s);
    EXPECT_TRUE(first && first->clean) << (first ? first->line : n.molt->errors());
    if (first) n.last_round = first->round;
    return n;
  }

  // A new molt waiting on its cpr channel (`incoming`: "main" for
  // unix:MAIN, or "defer"); returned once it says it listens there. (The
  // socket file appears a moment before it listens, and the source does not
  // retry a refused cpr connection, so the file's existence is not enough.)
  Node start_new_molt(const GuestSpec& s, const std::string& tag, const std::string& incoming = "main") {
    Node n;
    n.monitor = short_socket_path(tag + "-api");
    n.main = short_socket_path(tag + "-main");
    n.cpr = short_socket_path(tag + "-cpr");
    std::vector<std::string> args{
        "--log-level",   "info",         "run",        node_machine(s, tag, n),
        "--api-socket",  n.monitor,      "--incoming", incoming == "defer" ? "defer" : "unix:" + n.main,
        "--cpr-channel", "unix:" + n.cpr};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    n.molt = std::make_unique<MoltProcess>(args);
    EXPECT_TRUE(wait_for_log(*n.molt, "waiting on unix:" + n.cpr + " for the source's RAM", 20s))
        << n.molt->errors();
    return n;
  }

  // migrate.start cpr-transfer from `from` to `to`; the final migrate.status.
  json::object cpr_transfer(Node& from, Node& to) {
    MonitorClient monitor(from.monitor);
    monitor.call("migrate.start", cpr_request(to));
    // soak: be on the new console before the guest resumes there.
    if (!to.console_path.empty()) to.console = std::make_unique<ConsoleSocket>(to.console_path, 10s);
    return wait_migration_final(monitor, 30s);
  }

  // A successful hop: the old molt stopped in postmigrate having sent a tiny
  // fraction of RAM, the new one runs the guest on from where it was.
  void expect_hop(Node& from, Node& to, const json::object& status, bool aps) {
    ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
    EXPECT_EQ(string_at(status, "mode"), "cpr-transfer");
    const auto sent = number_at(status, {"bytes_sent"});
    ASSERT_TRUE(sent) << json::serialize(status);
    EXPECT_GT(*sent, 0u);
    EXPECT_LT(*sent, kGuestRam / 100) << "the main channel carried RAM: " << json::serialize(status);
    EXPECT_TRUE(number_at(status, {"downtime", "actual_us"})) << json::serialize(status);
    MonitorClient old_monitor(from.monitor), new_monitor(to.monitor);
    EXPECT_EQ(vm_state(old_monitor), "postmigrate");
    EXPECT_EQ(vm_state(new_monitor), "running");
    const std::uint64_t before = drain_rounds(from);
    const std::uint64_t ap_before = from.last_ap_rounds;
    expect_rounds_continue(to, before, 4, to.console ? 10 : 2, ap_before, aps);
    EXPECT_FALSE(next_round(from, 0ms)) << "the old molt's guest ran on after the handover";
  }

  // The source refused a cpr-transfer and nothing moved: the guest runs and
  // its rounds go on clean, no migration started.
  void expect_untouched(Node& source) {
    MonitorClient monitor(source.monitor);
    EXPECT_EQ(vm_state(monitor), "running");
    EXPECT_EQ(string_at(monitor.call("migrate.status").as_object(), "state"), "none");
    source.last_round = expect_rounds_continue(source, source.last_round, 3, 2);
  }

  void quit(Node& n, int expected_status = 0) {
    monitor_call(n.monitor, "vm.quit");
    const auto status = n.molt->wait_exit(10s);
    ASSERT_TRUE(status) << n.molt->errors();
    EXPECT_EQ(*status, expected_status) << n.molt->errors();
  }

  fs::path dir_;
  std::string disk_;
  // Devices added to every node's machine (a test plugin's), and the molt
  // arguments that load their plugin.
  std::vector<json::object> extra_devices_;
  std::vector<std::string> extra_args_;
};

// ---- the guest survives two hops (old -> new -> newer) ----

struct Load {
  bool soak;
  unsigned vcpus;
};

class CprTransferChain : public CprTest, public ::testing::WithParamInterface<Load> {};

TEST_P(CprTransferChain, GuestRunsOnTwiceInARowWithRamLeftInPlace) {
  const auto [soak, vcpus] = GetParam();
  Node old_molt = start_guest(spec(soak, vcpus));
  Node new_molt = start_new_molt(spec(soak, vcpus), "new");
  // The new molt serves no monitor before it has the RAM (docs/cpr.md).
  EXPECT_FALSE(fs::exists(new_molt.monitor));
  expect_hop(old_molt, new_molt, cpr_transfer(old_molt, new_molt), soak && vcpus > 1);

  Node newer = start_new_molt(spec(soak, vcpus), "newer");
  expect_hop(new_molt, newer, cpr_transfer(new_molt, newer), soak && vcpus > 1);
  if (soak) {
    ASSERT_TRUE(newer.console->type("after two hops\r\n"));
    EXPECT_TRUE(newer.console->wait_for_line("^@echo after two hops$", 10s)) << newer.console->text();
  }
  quit(old_molt);
  quit(new_molt);
  const auto last = next_round(newer, 10s);  // the newest guest still runs alone
  ASSERT_TRUE(last) << newer.molt->errors();
  EXPECT_TRUE(last->clean) << last->line;
  quit(newer);
  if (soak) {
    for (const std::string& problem : check_soak_image(disk_, kSoakSectors, last->round))
      ADD_FAILURE() << problem;
  }
}

INSTANTIATE_TEST_SUITE_P(Loads, CprTransferChain,
                         ::testing::Values(Load{false, 1}, Load{false, 2}, Load{true, 1}, Load{true, 2}),
                         [](const ::testing::TestParamInfo<Load>& load) {
                           return std::string(load.param.soak ? "Soak" : "Memtest") +
                                  std::to_string(load.param.vcpus) + "Vcpus";
                         });

// ---- blockers: refused by migrate.start itself, every reason named ----

// A unix socket listening where a new molt's cpr channel would be, to show
// that a refused cpr-transfer never connects to it.
class FakeCprChannel {
 public:
  explicit FakeCprChannel(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    listening_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 4) == 0;
  }
  ~FakeCprChannel() { ::close(fd_); }
  bool listening() const { return listening_; }
  bool was_contacted() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }

 private:
  int fd_ = -1;
  bool listening_ = false;
};

class CprBlockers : public CprTest {
 protected:
  // migrate.start with `params` is refused with exactly "cpr-transfer
  // blocked: " + `reasons`, and nothing happened.
  void expect_blocked(Node& source, json::object params, const std::string& reasons) {
    const std::string cpr = short_socket_path("cpr");
    FakeCprChannel channel(cpr);
    ASSERT_TRUE(channel.listening());
    params["mode"] = "cpr-transfer";
    if (params.contains("cpr_uri") && params["cpr_uri"].as_string() == "unix:CPR")
      params["cpr_uri"] = "unix:" + cpr;
    MonitorClient monitor(source.monitor);
    try {
      monitor.call("migrate.start", params);
      ADD_FAILURE() << "migrate.start " << json::serialize(params) << " was accepted";
    } catch (const MonitorError& e) {
      EXPECT_EQ(e.code(), -32000);
      EXPECT_EQ(std::string(e.what()), "migrate.start: cpr-transfer blocked: " + reasons);
    }
    expect_untouched(source);
    EXPECT_FALSE(channel.was_contacted()) << "a refused cpr-transfer connected to its cpr channel";
    ::unlink(cpr.c_str());
  }
};

TEST_F(CprBlockers, AnonymousRamNamesTheMachineFileChange) {
  Node source;
  source.monitor = short_socket_path("anon-api");
  GuestSpec s = spec(false, 1);
  const std::string path = write_migration_machine((dir_ / "anon.json").string(), s);
  json::value machine =
      json::parse(std::string(std::istreambuf_iterator<char>(std::ifstream(path).rdbuf()), {}));
  machine.as_object()["memory"].as_object()["backend"] = "anonymous";
  std::ofstream(path, std::ios::trunc) << json::serialize(machine);
  source.molt = start_source(path, source.monitor);
  ASSERT_TRUE(next_round(source, 20s)) << source.molt->errors();
  expect_blocked(source, {{"uri", "unix:" + short_socket_path("main")}, {"cpr_uri", "unix:CPR"}},
                 "RAM block pc.ram is anonymous private memory, which no other process can map; set "
                 "\"memory\": {\"backend\": \"memfd\"} in the machine file");
}

TEST_F(CprBlockers, FileMainChannelIsRefusedAndNoFileIsWritten) {
  Node source = start_guest(spec(false, 1));
  const std::string file = (dir_ / "state.bin").string();
  expect_blocked(source, {{"uri", "file:" + file}, {"cpr_uri", "unix:CPR"}},
                 "main channel file:" + file +
                     ": cpr-transfer needs a two-way channel the new molt answers on; use unix:PATH or "
                     "tcp:HOST:PORT");
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(CprBlockers, TcpPortZeroIsRefused) {
  Node source = start_guest(spec(false, 1));
  expect_blocked(
      source, {{"uri", "tcp:127.0.0.1:0"}, {"cpr_uri", "unix:CPR"}},
      "main channel tcp:127.0.0.1:0: port 0 names no listener; give the port the new molt listens on");
}

TEST_F(CprBlockers, CprChannelThatIsNotAUnixSocketIsRefused) {
  Node source = start_guest(spec(false, 1));
  const std::string cpr = "tcp:127.0.0.1:" + std::to_string(free_tcp_port());
  expect_blocked(source, {{"uri", "unix:" + short_socket_path("main")}, {"cpr_uri", cpr}},
                 "cpr channel " + cpr + ": file descriptors only travel over UNIX sockets; use unix:PATH");
}

TEST_F(CprBlockers, MissingCprChannelIsRefused) {
  Node source = start_guest(spec(false, 1));
  expect_blocked(source, {{"uri", "unix:" + short_socket_path("main")}},
                 "no cpr channel: give cpr_uri, the unix:PATH the new molt was started with (--cpr-channel)");
}

TEST_F(CprBlockers, EveryReasonIsNamedInOneRefusal) {
  Node source = start_guest(spec(false, 1));
  expect_blocked(
      source, {{"uri", "tcp:127.0.0.1:0"}, {"cpr_uri", "file:/tmp/x"}},
      "main channel tcp:127.0.0.1:0: port 0 names no listener; give the port the new molt listens "
      "on; cpr channel file:/tmp/x: file descriptors only travel over UNIX sockets; use unix:PATH");
}

// A device that pins host memory it cannot hand over: no plugin ships one, so
// this test builds the machine in-process with the type added, runs the
// guest on a thread and asks its Migration for a cpr-transfer.
class PinnedDevice final : public sdk::Device {
 public:
  void realize() override {}
  sdk::StateBinding state() override {
    return sdk::StateBinding::unmigratable("it holds host pages pinned for DMA");
  }
};

TEST_F(CprBlockers, UnmigratableDeviceIsNamedWithItsReason) {
  core::plugin::Registry registry;
  registry.load_directory(fs::path(molt_binary()).parent_path() / "plugins");
  GuestSpec s = spec(false, 1);
  s.cmdline = "memtest 1 0";
  s.properties["com1"] = {{"backend", "none"}};  // no console for a guest inside the test process
  const core::machine::MachineDescription d =
      core::machine::load_machine_file(write_migration_machine((dir_ / "pinned.json").string(), s));
  const core::machine::MachineType& type = core::machine::resolve_machine_type(d.machine_type, d.source);
  core::machine::MachineConfig config;
  config.machine_type = type.name;
  config.memory_size = d.memory_size;
  config.kernel = d.kernel.path;
  config.cmdline = d.kernel.cmdline;
  for (core::machine::ResolvedDevice& r : core::machine::resolve_devices(d, registry.types(), type.compat)) {
    const core::plugin::LoadedPlugin& from = *registry.plugin_of(r.type->name);
    config.devices.push_back({r.config->id, r.type, from.name, std::move(r.properties), from.version});
  }
  const sdk::DeviceType pinned{"cpr-test-pinned", "holds pinned host pages", {}, [](sdk::DeviceContext&) {
                                 return std::make_unique<PinnedDevice>();
                               }};
  config.devices.push_back({"pin0", &pinned, "cpr-test", {}, "1.0.0"});

  core::machine::Machine vm(config);
  std::thread runner([&vm] { (void)vm.run(); });
  const auto deadline = Clock::now() + 10s;
  while (vm.state() != core::machine::RunState::Running && Clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  EXPECT_EQ(vm.state(), core::machine::RunState::Running);
  {
    core::migration::Migration migration(vm, {});
    try {
      migration.start(core::migration::StartRequest{"unix:" + short_socket_path("main"), "cpr-transfer",
                                                    "unix:" + short_socket_path("cpr")});
      ADD_FAILURE() << "a cpr-transfer with an unmigratable device started";
    } catch (const sdk::Error& e) {
      EXPECT_EQ(
          std::string(e.what()),
          "cpr-transfer blocked: device pin0 (cpr-test-pinned) cannot migrate: it holds host pages pinned "
          "for DMA");
    }
    EXPECT_EQ(migration.state(), core::migration::MigrationState::None);
    EXPECT_EQ(vm.state(), core::machine::RunState::Running);
  }
  vm.stop("the test is over");
  runner.join();
}

// ---- a new molt that does not match, or dies, leaves the guest running ----

class CprRefusals : public CprTest {
 protected:
  // The new molt built from `other` refuses the handover with exactly
  // `difference`; the old guest runs on, and a matching new molt then takes it.
  void expect_mismatch(const GuestSpec& other, const std::string& difference) {
    Node old_molt = start_guest(spec(false, 1));
    Node wrong = start_new_molt(other, "wrong");
    const json::object status = cpr_transfer(old_molt, wrong);
    EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
    EXPECT_EQ(string_at(status, "error"), "the new molt refused the migration: " + difference);
    const json::value* differences = status.if_contains("differences");
    ASSERT_TRUE(differences && differences->is_array()) << json::serialize(status);
    EXPECT_EQ(json::serialize(*differences), json::serialize(json::array{json::string(difference)}));
    EXPECT_EQ(wrong.molt->wait_exit(10s).value_or(-1), 2);
    EXPECT_NE(wrong.molt->errors().find("cpr-transfer refused: " + difference), std::string::npos)
        << wrong.molt->errors();
    EXPECT_EQ(number_at(status, {"bytes_sent"}).value_or(1), 0u) << "state moved before the refusal";
    MonitorClient monitor(old_molt.monitor);
    EXPECT_EQ(vm_state(monitor), "running");
    old_molt.last_round = expect_rounds_continue(old_molt, old_molt.last_round, 3, 2);

    Node right = start_new_molt(spec(false, 1), "right");
    expect_hop(old_molt, right, cpr_transfer(old_molt, right), false);
  }
};

TEST_F(CprRefusals, DifferentVcpuCountIsRefusedWithTheDifference) {
  GuestSpec other = spec(false, 1);
  other.vcpus = 2;
  expect_mismatch(other, "vcpus: 1 at source, 2 here");
}

TEST_F(CprRefusals, MissingDeviceIsRefusedWithTheDifference) {
  GuestSpec other = spec(false, 1);
  other.rtc = false;
  expect_mismatch(other, "device rtc: present at source, absent here");
}

TEST_F(CprRefusals, DifferentRamSizeIsRefusedBeforeTheNewMoltBuildsItsVm) {
  GuestSpec other = spec(false, 1);
  other.memory = "128M";
  expect_mismatch(other, "ram block pc.ram: 256 MiB at source, 128 MiB here");
}

// The new molt (--incoming defer) took the RAM, built its VM and accepted,
// then dies while the old one waits to send the state: the old guest, whose
// RAM the dead process had mapped, runs on uncorrupted and a fresh new molt
// takes it afterwards.
TEST_F(CprRefusals, NewMoltKilledDuringTheHandoverLeavesTheGuestRunning) {
  Node old_molt = start_guest(spec(false, 1));
  MonitorClient monitor(old_molt.monitor);
  monitor.call("migrate.set_parameters", {{"connect_timeout_ms", 1500}});
  Node doomed = start_new_molt(spec(false, 1), "doomed", "defer");
  monitor.call("migrate.start", cpr_request(doomed));
  MonitorClient doomed_monitor(doomed.monitor);  // exists once the RAM is mapped and the VM built
  EXPECT_EQ(vm_state(doomed_monitor), "incoming");
  EXPECT_EQ(string_at(monitor.call("migrate.status").as_object(), "state"), "setup");
  doomed.molt->signal(SIGKILL);
  EXPECT_EQ(doomed.molt->wait_exit(10s).value_or(-1), 128 + SIGKILL);

  const json::object status = wait_migration_final(monitor, 20s);
  EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
  EXPECT_EQ(vm_state(monitor), "running");
  old_molt.last_round = expect_rounds_continue(old_molt, old_molt.last_round, 5, 2);

  Node fresh = start_new_molt(spec(false, 1), "fresh");
  expect_hop(old_molt, fresh, cpr_transfer(old_molt, fresh), false);
}

// The seed's other order: the new molt starts with --incoming defer, the old
// one is told to migrate first, and only then does the new one's monitor
// appear and take migrate.incoming.
TEST_F(CprRefusals, DeferredIncomingOrderWorks) {
  Node old_molt = start_guest(spec(false, 1));
  Node new_molt = start_new_molt(spec(false, 1), "deferred", "defer");
  EXPECT_FALSE(fs::exists(new_molt.monitor));
  MonitorClient monitor(old_molt.monitor);
  monitor.call("migrate.start", cpr_request(new_molt));
  MonitorClient new_monitor(new_molt.monitor);
  EXPECT_EQ(vm_state(new_monitor), "incoming");
  new_monitor.call("migrate.incoming", {{"uri", "unix:" + new_molt.main}});
  expect_hop(old_molt, new_molt, wait_migration_final(monitor, 20s), false);
}

// ---- backend fds handed over; device callbacks held while the guest is elsewhere ----

// The test plugin's `handover-probe` (tests/kvm/plugins/handover_probe.hpp)
// logs its realize, timer and handover_completed, with the molt's pid, to a
// file it hands over as "file".
class CprHandover : public CprBlockers {
 protected:
  void use_probe(json::object properties) {
    extra_args_ = {"--plugin-dir", std::string(MOLT_BUILD_DIR) + "/tests/kvm-plugins"};
    extra_devices_ = {json::object{{"id", "probe"}, {"type", "handover-probe"}, {"properties", properties}}};
  }
  static std::vector<std::string> lines_of(const fs::path& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // Waits until `path` holds `line`; false when `timeout` passes first.
  static bool wait_for_file_line(const fs::path& path, const std::string& line,
                                 std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      for (const std::string& l : lines_of(path))
        if (l == line) return true;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  static std::string pid(const Node& n) { return std::to_string(n.molt->pid()); }
};

TEST_F(CprHandover, DeviceWhoseBackendCannotMoveBlocksWithItsReason) {
  use_probe({{"handover_blocker", "its backend is pinned to this process; detach it first"}});
  Node source = start_guest(spec(false, 1));
  expect_blocked(source, {{"uri", "unix:" + short_socket_path("main")}, {"cpr_uri", "unix:CPR"}},
                 "device probe: its backend is pinned to this process; detach it first");
}

// old -> new -> newer with the probe's log file renamed after the old molt
// opened it: only the handed-over fd still reaches the renamed file, so its
// lines show each new molt took it, and the handover's completion on both
// sides. The probe's timer is armed at reset to fire at once; on the new
// molts it fires only after the state loaded (held until the guest starts).
TEST_F(CprHandover, BackendFdMovesAlongAndDeviceTimersWaitForTheGuest) {
  const fs::path log = dir_ / "probe.log", moved = dir_ / "probe-moved.log";
  use_probe({{"handover_file", log.string()}});
  Node old_molt = start_guest(spec(false, 1));
  ASSERT_TRUE(wait_for_file_line(log, "timer pid=" + pid(old_molt) + " loaded=no", 10s));
  fs::rename(log, moved);

  Node new_molt = start_new_molt(spec(false, 1), "new");
  const json::object status = cpr_transfer(old_molt, new_molt);
  const json::value handed = json::parse(R"([{"device": "probe", "fds": ["file"]}])");
  EXPECT_EQ(status.at("handed_over"), handed) << json::serialize(status);
  expect_hop(old_molt, new_molt, status, false);
  MonitorClient new_monitor(new_molt.monitor);
  const json::object taken = wait_migration_final(new_monitor, 10s);
  EXPECT_EQ(taken.at("handed_over"), handed) << json::serialize(taken);
  ASSERT_TRUE(wait_for_file_line(moved, "completed destination pid=" + pid(new_molt), 10s));
  ASSERT_TRUE(wait_for_file_line(moved, "timer pid=" + pid(new_molt) + " loaded=yes", 10s));

  Node newer = start_new_molt(spec(false, 1), "newer");
  expect_hop(new_molt, newer, cpr_transfer(new_molt, newer), false);
  MonitorClient newer_monitor(newer.monitor);
  EXPECT_EQ(string_at(wait_migration_final(newer_monitor, 10s), "state"), "completed");
  ASSERT_TRUE(wait_for_file_line(moved, "completed destination pid=" + pid(newer), 10s));
  ASSERT_TRUE(wait_for_file_line(moved, "timer pid=" + pid(newer) + " loaded=yes", 10s));
  quit(old_molt);
  quit(new_molt);
  quit(newer);

  EXPECT_FALSE(fs::exists(log)) << "a new molt opened the path again instead of taking the fd";
  // Each hop: the new molt realizes with the fd before either side completes;
  // the source's completion and the new molt's timer and completion follow in
  // any order, all before the next hop.
  const std::vector<std::vector<std::string>> segments{
      {"realize pid=" + pid(old_molt) + " took=no"},
      {"timer pid=" + pid(old_molt) + " loaded=no"},
      {"realize pid=" + pid(new_molt) + " took=yes"},
      {"completed source pid=" + pid(old_molt), "timer pid=" + pid(new_molt) + " loaded=yes",
       "completed destination pid=" + pid(new_molt)},
      {"realize pid=" + pid(newer) + " took=yes"},
      {"completed source pid=" + pid(new_molt), "timer pid=" + pid(newer) + " loaded=yes",
       "completed destination pid=" + pid(newer)},
  };
  const std::vector<std::string> lines = lines_of(moved);
  std::size_t at = 0;
  for (std::vector<std::string> segment : segments) {
    std::sort(segment.begin(), segment.end());
    ASSERT_LE(at + segment.size(), lines.size()) << "the log ends early:\n" << fmt_lines(lines);
    std::vector<std::string> got(lines.begin() + at, lines.begin() + at + segment.size());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, segment) << "at line " << at << " of:\n" << fmt_lines(lines);
    at += segment.size();
  }
  EXPECT_EQ(at, lines.size()) << fmt_lines(lines);
}

// A precopy destination holds its devices too: the probe's timer, armed at
// reset, fires there only once the guest started, after its state loaded.
TEST_F(CprHandover, IncomingMachineHoldsDeviceTimersUntilTheGuestStarts) {
  const fs::path log = dir_ / "probe.log";
  use_probe({{"handover_file", log.string()}});
  Node source = start_guest(spec(false, 1));
  Node target;
  target.monitor = short_socket_path("dst-api");
  target.main = short_socket_path("dst-main");
  target.molt = start_destination(node_machine(spec(false, 1), "dst", target), target.monitor,
                                  "unix:" + target.main, extra_args_);
  // The destination realized its probe (and armed its timer) before it listened.
  ASSERT_TRUE(wait_for_file_line(log, "realize pid=" + pid(target) + " took=no", 10s));
  MonitorClient monitor(source.monitor);
  monitor.call("migrate.start", {{"uri", "unix:" + target.main}});
  ASSERT_EQ(string_at(wait_migration_final(monitor, 30s), "state"), "completed");
  ASSERT_TRUE(wait_for_file_line(log, "timer pid=" + pid(target) + " loaded=yes", 10s))
      << fmt_lines(lines_of(log));
  const std::vector<std::string> lines = lines_of(log);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "timer pid=" + pid(target) + " loaded=no"), 0)
      << fmt_lines(lines);
  quit(source);
  quit(target);
}

// ---- snapshots: the whole guest in a file, restored by a new process ----

class CprSnapshots : public CprTest {
 protected:
  json::object snapshot(Node& n, const std::string& path, bool resume) {
    MonitorClient monitor(n.monitor);
    monitor.call("vm.snapshot", {{"path", path}, {"resume", resume}});
    return wait_migration_final(monitor, 30s);
  }
  Node restore(const std::string& path, const std::string& machine) {
    Node n;
    n.molt = std::make_unique<MoltProcess>(std::vector<std::string>{"run", machine, "--restore", path});
    return n;
  }
};

TEST_F(CprSnapshots, RestoredInANewProcessAfterTheOldQuitResumesMemtest) {
  Node old_molt = start_guest(spec(false, 1));
  const std::string file = (dir_ / "guest.snap").string();
  const json::object status = snapshot(old_molt, file, false);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  MonitorClient monitor(old_molt.monitor);
  EXPECT_EQ(vm_state(monitor), "postmigrate");
  const std::uint64_t saved = drain_rounds(old_molt);
  quit(old_molt);  // its memfd is gone: the file is the only copy of the RAM

  Node restored = restore(file, old_molt.machine);
  expect_rounds_continue(restored, saved, 5, 2);
  EXPECT_EQ(restored.molt->console().find("testguest: command line"), std::string::npos)
      << "the restored guest booted anew";
}

TEST_F(CprSnapshots, WithResumeTheOriginalRunsOnAndTheCopyToo) {
  Node original = start_guest(spec(false, 1));
  const std::uint64_t before = original.last_round;
  const std::string file = (dir_ / "guest.snap").string();
  const json::object status = snapshot(original, file, true);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  MonitorClient monitor(original.monitor);
  EXPECT_EQ(vm_state(monitor), "running");
  const std::uint64_t now = expect_rounds_continue(original, original.last_round, 3, 2);

  Node copy = restore(file, original.machine);
  const auto first = next_round(copy, 10s);
  ASSERT_TRUE(first) << copy.molt->errors();
  EXPECT_TRUE(first->clean) << first->line;
  EXPECT_GT(first->round, before);
  EXPECT_LE(first->round, now + 2) << "the copy is ahead of the original";
  expect_rounds_continue(copy, first->round, 3, 1);
  expect_rounds_continue(original, original.last_round, 3, 2);
}

TEST_F(CprSnapshots, RestoreRefusesABadFileOrAnotherMachine) {
  Node old_molt = start_guest(spec(false, 1));
  const std::string file = (dir_ / "guest.snap").string();
  ASSERT_EQ(string_at(snapshot(old_molt, file, false), "state"), "completed");
  const std::string garbage = (dir_ / "garbage.snap").string();
  std::ofstream(garbage) << "not a snapshot\n";
  const std::string truncated = (dir_ / "truncated.snap").string();
  fs::copy_file(file, truncated);
  fs::resize_file(truncated, fs::file_size(file) / 2);
  GuestSpec two = spec(false, 2);
  Node other;
  node_machine(two, "two", other);

  struct Case {
    std::string machine, file, message;
  };
  for (const Case& c : {Case{old_molt.machine, garbage, "not a molt migration stream (bad magic at byte 0)"},
                        Case{old_molt.machine, truncated, "the stream ends at byte"},
                        Case{other.machine, file,
                             "the source's machine differs from this one: vcpus: 1 at source, "
                             "2 here"}}) {
    const Finished run = run_molt({"run", c.machine, "--restore", c.file}, 20s);
    EXPECT_EQ(run.status, 2) << c.file << "\n" << run.errors;
    EXPECT_NE(run.errors.find(c.message), std::string::npos) << run.errors;
    EXPECT_EQ(run.console.find("@memtest"), std::string::npos) << "a refused restore ran the guest";
  }
}

}  // namespace
}  // namespace molt::test
