// Live migration of real guests between molt processes (issue 5, point 6):
// the soak guest (memtest on every vCPU, a DMA sector per round, the RTC, an
// echoing console) moves busy over UNIX sockets with 1 vCPU and over TCP with
// 2, then on to a third process; at every stop the destination's console
// goes on with clean rounds past the source's last one, answers typed input
// and shows the host's time, and the disk image holds only valid soak
// sectors at the end. An idle guest moves over one channel, then two; a
// migration into a file dumps as JSON and restores.
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "migration_support.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::uint32_t kImageSectors = 256;
constexpr std::uint32_t kSoakSectors = 64;  // the soak scenario's default DISK_SECTORS

// One molt in the chain: the process, its monitor and, for the soak guest,
// its console socket.
struct Node {
  std::unique_ptr<MoltProcess> molt;
  std::string monitor;
  std::unique_ptr<ConsoleSocket> console;
};

// The highest `@soak round=` in `text` (the source's console after it paused).
std::optional<SoakRound> last_soak_round(const std::string& text) {
  std::optional<SoakRound> last;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (auto r = parse_soak_round(line); r && (!last || r->round > last->round)) last = std::move(r);
  }
  return last;
}

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = fs::temp_directory_path() / ("molt-migration-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    image_ = (dir_ / "disk.img").string();
    create_disk_image(image_, kImageSectors);
  }
  void TearDown() override {
    nodes_.clear();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A soak guest's machine for node `index`: all alike but the console socket.
  GuestSpec soak_spec(unsigned vcpus, std::size_t index) const {
    GuestSpec spec;
    spec.vcpus = vcpus;
    spec.cmdline = "soak 32";
    spec.console_socket = short_socket_path("con" + std::to_string(index));
    spec.disk_image = image_;
    return spec;
  }

  // Starts node `index` (0: the source; others wait for `incoming`) and
  // connects to its console.
  Node& start_node(const GuestSpec& spec, std::size_t index, const std::string& incoming = "") {
    Node node;
    node.monitor = short_socket_path("mon" + std::to_string(index));
    const std::string machine = write_migration_machine(path("node" + std::to_string(index) + ".json"), spec);
    node.molt = incoming.empty() ? start_source(machine, node.monitor)
                                 : start_destination(machine, node.monitor, incoming);
    if (!spec.console_socket.empty()) {
      node.console = std::make_unique<ConsoleSocket>(spec.console_socket);
      EXPECT_TRUE(node.console->connected()) << "no console at " << spec.console_socket;
    }
    nodes_.push_back(std::move(node));
    return nodes_.back();
  }

  // Waits for clean soak rounds on the source: three after round 1 and, with
  // APs, two finished AP rounds (an AP's first round pays for touching its
  // pages and may span several BSP rounds).
  void wait_for_clean_soak(Node& node, unsigned vcpus) {
    ASSERT_TRUE(node.console->wait_for_line("^@soak start ", 30s))
        << node.console->text() << node.molt->errors();
    const auto deadline = std::chrono::steady_clock::now() + 40s;
    for (std::size_t clean = 0; clean < 3;) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << node.console->text();
      const auto rounds = next_soak_rounds(*node.console, 1, 10s);
      ASSERT_EQ(rounds.size(), 1u) << node.console->text() << node.molt->errors();
      ASSERT_TRUE(rounds[0].clean()) << rounds[0].line;
      if (rounds[0].round >= 2 && (vcpus == 1 || rounds[0].ap_rounds >= 2)) ++clean;
    }
  }

  // Migrates `from` to `to` (listening on `uri`) and checks both ends: the
  // source completed (downtime measured, at least one RAM pass) and waits in
  // postmigrate; the destination runs and its console goes on with clean
  // rounds past the source's last, the AP's rounds grow, typed text echoes
  // and the RTC shows the host's time. Returns the last round seen.
  std::uint64_t migrate_soak(Node& from, Node& to, const std::string& uri, unsigned vcpus,
                             json::object parameters = {}) {
    MonitorClient source(from.monitor), destination(to.monitor);
    if (!parameters.empty()) source.call("migrate.set_parameters", parameters);
    source.call("migrate.start", {{"uri", uri}});
    const json::object status = wait_migration_final(source, 60s);
    EXPECT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << from.molt->errors();
    EXPECT_TRUE(number_at(status, {"downtime", "actual_us"})) << json::serialize(status);
    EXPECT_GE(number_at(status, {"ram", "iterations"}).value_or(0), 1u) << json::serialize(status);
    EXPECT_EQ(vm_state(source), "postmigrate");
    const json::object arrived = wait_migration_final(destination, 20s);
    EXPECT_EQ(string_at(arrived, "state"), "completed") << json::serialize(arrived) << to.molt->errors();
    EXPECT_EQ(vm_state(destination), "running");

    // Whatever the source printed before it paused.
    from.console->wait_for_line("^@never-printed$", 200ms);
    const std::optional<SoakRound> before = last_soak_round(from.console->text());
    EXPECT_TRUE(before) << "the source printed no round";
    const std::uint64_t last_round = before ? before->round : 0;
    const std::uint64_t last_ap_rounds = before ? before->ap_rounds : 0;

    // Not a byte of console output lost or doubled: a line the switchover cut
    // is completed by the destination, and the rounds go on without a gap.
    const std::string& said = from.console->text();
    const std::string cut = said.substr(said.rfind('\n') + 1);
    const std::optional<std::string> first = to.console->wait_for_line("", 10s);
    EXPECT_TRUE(first) << "the destination printed nothing:\n" << to.molt->errors();
    const std::optional<SoakRound> joined = parse_soak_round(cut + first.value_or(""));
    EXPECT_TRUE(joined && joined->round == last_round + 1 && joined->clean())
        << "the source's console ended with round " << last_round << " and '" << cut
        << "', the destination's began with '" << first.value_or("") << "'";

    std::vector<SoakRound> after = next_soak_rounds(*to.console, 3, 10s);
    EXPECT_EQ(after.size(), 3u) << "the destination's console:\n" << to.console->text() << to.molt->errors();
    for (const SoakRound& r : after) {
      EXPECT_GT(r.round, last_round) << r.line;
      EXPECT_TRUE(r.clean()) << r.line;
      EXPECT_EQ(r.aps, vcpus - 1) << r.line;
      const std::optional<double> offset = rtc_offset_seconds(r.rtc);
      EXPECT_TRUE(offset) << r.line;
      EXPECT_LE(std::abs(offset.value_or(1e9)), 3.0)
          << "the guest's RTC is off the host's UTC by " << offset.value_or(0) << " s: " << r.line;
    }
    // The AP runs at the destination too: its round count grows past the source's.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (vcpus > 1 && !after.empty() && after.back().ap_rounds <= last_ap_rounds &&
           std::chrono::steady_clock::now() < deadline) {
      auto more = next_soak_rounds(*to.console, 1, 10s);
      if (more.empty()) break;
      EXPECT_TRUE(more[0].clean()) << more[0].line;
      after.push_back(std::move(more[0]));
    }
    if (vcpus > 1 && !after.empty()) {
      EXPECT_GT(after.back().ap_rounds, last_ap_rounds) << "the AP did not run on at the destination";
    }

    const std::string text = "migrated " + std::to_string(last_round);
    EXPECT_TRUE(to.console->type(text + "\r\n"));
    EXPECT_TRUE(to.console->wait_for_line("^@echo " + text + "$", 10s)) << to.console->text();
    const std::vector<SoakRound> last = next_soak_rounds(*to.console, 1, 10s);
    EXPECT_EQ(last.size(), 1u);
    if (!last.empty()) {
      EXPECT_TRUE(last[0].clean()) << last[0].line;
    }
    return last.empty() ? last_round : last[0].round;
  }

  // Quits every node, the guest's last one by SIGTERM, and checks the disk.
  void stop_and_check_image(std::uint64_t last_round) {
    Node& running = nodes_.back();
    running.molt->signal(SIGTERM);
    EXPECT_TRUE(running.molt->wait_exit(10s)) << "the last destination did not stop";
    for (std::size_t i = 0; i + 1 < nodes_.size(); ++i) {
      MonitorClient(nodes_[i].monitor).call("vm.quit");
      EXPECT_TRUE(nodes_[i].molt->wait_exit(10s)) << "node " << i << " did not quit from postmigrate";
    }
    const std::vector<std::string> problems = check_soak_image(image_, kSoakSectors, last_round);
    for (const std::string& p : problems) ADD_FAILURE() << image_ << ": " << p;
  }

  // Source, destination over `first_uri`, then a third node over `second_uri`.
  void busy_chain(unsigned vcpus, const std::string& first_uri, const std::string& second_uri) {
    Node& source = start_node(soak_spec(vcpus, 0), 0);
    wait_for_clean_soak(source, vcpus);
    if (HasFatalFailure()) return;
    Node& second = start_node(soak_spec(vcpus, 1), 1, first_uri);
    migrate_soak(nodes_[0], second, first_uri, vcpus);
    if (HasFatalFailure()) return;
    Node& third = start_node(soak_spec(vcpus, 2), 2, second_uri);
    const std::uint64_t last_round = migrate_soak(nodes_[1], third, second_uri, vcpus);
    if (HasFatalFailure()) return;
    stop_and_check_image(last_round);
  }

  std::string tcp_uri() const { return "tcp:127.0.0.1:" + std::to_string(free_tcp_port()); }

  fs::path dir_;
  std::string image_;
  std::vector<Node> nodes_;
};

TEST_F(MigrationTest, BusyOneVcpuOverUnixThenOnToAThirdProcessOverTcp) {
  busy_chain(1, "unix:" + short_socket_path("mig1"), tcp_uri());
}

TEST_F(MigrationTest, BusyTwoVcpusOverTcpThenOnToAThirdProcessOverUnix) {
  busy_chain(2, tcp_uri(), "unix:" + short_socket_path("mig2"));
}

// The idle guest (memtest over 1 MiB, console on stdio): one channel, then
// two RAM channels on to a third process.
TEST_F(MigrationTest, IdleGuestOverOneChannelThenTwoChannels) {
  GuestSpec spec;
  spec.cmdline = "memtest 1 0";
  Node& source = start_node(spec, 0);
  ASSERT_TRUE(source.molt->wait_for_line("^@memtest round=3 .* ok$", 30s)) << source.molt->errors();
  const std::vector<std::pair<std::string, unsigned>> hops = {{"unix:" + short_socket_path("idle"), 1},
                                                              {tcp_uri(), 2}};
  for (std::size_t hop = 0; hop < hops.size(); ++hop) {
    const auto& [uri, channels] = hops[hop];
    Node& to = start_node(spec, hop + 1, uri);
    Node& from = nodes_[hop];
    MonitorClient monitor(from.monitor);
    monitor.call("migrate.set_parameters", {{"channels", channels}});
    monitor.call("migrate.start", {{"uri", uri}});
    const json::object status = wait_migration_final(monitor, 30s);
    ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << from.molt->errors();
    EXPECT_EQ(status.at("channels").as_array().size(), channels) << json::serialize(status);
    EXPECT_TRUE(number_at(status, {"downtime", "actual_us"})) << json::serialize(status);
    EXPECT_EQ(vm_state(monitor), "postmigrate");

    from.molt->wait_for_line("^@never-printed$", 200ms);
    std::uint64_t last = 0;
    for (const std::string& line : from.molt->console_lines())
      if (auto r = parse_memtest_round(line)) last = std::max(last, r->round);
    const auto next = to.molt->wait_for_line("^@memtest round=", 10s);
    ASSERT_TRUE(next) << to.molt->console() << to.molt->errors();
    const auto round = parse_memtest_round(*next);
    ASSERT_TRUE(round) << *next;
    EXPECT_GT(round->round, last) << *next;
    for (int i = 0; i < 20; ++i) {
      const auto line = to.molt->wait_for_line("^@memtest ", 10s);
      ASSERT_TRUE(line) << to.molt->console();
      const auto r = parse_memtest_round(*line);
      ASSERT_TRUE(r && r->ok && r->errors == 0) << *line;
    }
    MonitorClient arrived(to.monitor);
    EXPECT_EQ(vm_state(arrived), "running");
  }
}

// migrate.start file:PATH writes the guest into a file; `molt migration dump`
// shows every part of it, and `molt run --restore` brings the guest back.
TEST_F(MigrationTest, AMigrationIntoAFileDumpsAsJsonAndRestores) {
  GuestSpec spec;
  spec.vcpus = 2;
  spec.cmdline = "soak 8";
  spec.disk_image = image_;
  Node& source = start_node(spec, 0);
  ASSERT_TRUE(source.molt->wait_for_line("^@soak round=3 ", 30s)) << source.molt->errors();
  const std::string file = path("guest.molt");
  MonitorClient monitor(source.monitor);
  monitor.call("migrate.start", {{"uri", "file:" + file}});
  const json::object status = wait_migration_final(monitor, 30s);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
  EXPECT_EQ(vm_state(monitor), "postmigrate");

  const Finished dump = run_molt({"migration", "dump", file}, 30s);
  ASSERT_EQ(dump.status, 0) << dump.errors;
  const json::object out = json::parse(dump.console).as_object();
  EXPECT_EQ(out.at("kind"), "migration");
  const json::array& records = out.at("records").as_array();
  ASSERT_FALSE(records.empty());
  const json::object& first = records[0].as_object();
  ASSERT_EQ(first.at("tag"), "fingerprint");
  std::map<std::string, std::string> descriptors;  // device id -> descriptor, from the fingerprint
  for (const json::value& d : first.at("json").at("devices").as_array())
    if (!d.at("descriptor").as_string().empty())
      descriptors[std::string(d.at("id").as_string())] = std::string(d.at("descriptor").as_string());
  EXPECT_TRUE(descriptors.contains("com1") && descriptors.contains("ide0") && descriptors.contains("rtc"))
      << json::serialize(first);

  std::size_t ram_chunks = 0;
  std::uint64_t data_pages = 0;
  std::set<std::string> cpus, machine_states, devices;
  for (const json::value& v : records) {
    const json::object& r = v.as_object();
    const std::string tag(r.at("tag").as_string()), name(r.at("name").as_string());
    if (tag == "chunk" && name == "ram") {
      ++ram_chunks;
      EXPECT_EQ(r.at("ram").at("block"), "pc.ram");
      data_pages += r.at("ram").at("data_pages").to_number<std::uint64_t>();
    } else if (tag == "device-state") {
      devices.insert(name);
      ASSERT_TRUE(r.contains("state")) << json::serialize(r);
      EXPECT_EQ(r.at("state").at("descriptor"), json::value(descriptors[name])) << json::serialize(r);
    } else if (tag == "cpu-state") {
      cpus.insert(name);
      EXPECT_TRUE(r.contains("state")) << json::serialize(r);
    } else if (tag == "machine-state") {
      machine_states.insert(name);
    }
  }
  EXPECT_GT(ram_chunks, 0u);
  // At least the soak region (8 MiB, rewritten every round) went as data.
  EXPECT_GE(data_pages * 4096, 8u << 20) << "the file holds fewer data pages than the guest's soak region";
  std::set<std::string> expected_devices;
  for (const auto& [id, descriptor] : descriptors) expected_devices.insert(id);
  EXPECT_EQ(devices, expected_devices);
  EXPECT_EQ(cpus, (std::set<std::string>{"cpu0", "cpu1"}));
  EXPECT_FALSE(machine_states.empty());
  EXPECT_EQ(out.at("end").at("verified"), true) << json::serialize(out.at("end"));

  // The file is the guest now: a new molt runs it on from where it stopped.
  monitor.call("vm.quit");
  source.molt->wait_exit(10s);
  std::uint64_t last = 0;
  for (const std::string& line : source.molt->console_lines())
    if (auto r = parse_soak_round(line)) last = std::max(last, r->round);
  MoltProcess restored({"run", path("node0.json"), "--restore", file});
  const auto rounds = next_soak_rounds(restored, 3, 10s);
  ASSERT_EQ(rounds.size(), 3u) << restored.console() << restored.errors();
  for (const SoakRound& r : rounds) {
    EXPECT_GT(r.round, last) << r.line;
    EXPECT_TRUE(r.clean()) << r.line;
  }
}

}  // namespace
}  // namespace molt::test
