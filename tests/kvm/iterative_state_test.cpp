// The SDK's iterative migration hooks (issue 5, point 2) on a real device
// through the real engine: the test-only `iterative-probe` plugin
// (tests/kvm/plugins/) keeps rewriting a private 1 MiB buffer while the
// memtest guest runs; its buffer travels only as "device/<id>" chunks and its
// descriptor holds a generation and checksum. After a live migration over a
// unix socket the destination's probes report, through device.list, that the
// buffer they received matches the source's checksum, that blocks dirtied
// during the live phase were sent again, that the early probe's buffer came
// before RAM (chunks marked early), and that the higher priority loaded
// first. A destination whose probe has another size is refused by the
// handshake with the exact difference, and the source runs on.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "migration_support.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::uint64_t kProbeBlocks = (1u << 20) / 4096;  // the default 1 MiB buffer

std::string probe_plugin_dir() {
  return std::string(MOLT_BUILD_DIR) + "/tests/kvm-plugins";
}

// A probe device entry for the machine file.
json::object probe(const char* id, bool early, std::uint64_t priority, const char* size = "1M") {
  return json::object{{"id", id},
                      {"type", "iterative-probe"},
                      {"properties", {{"size", size}, {"early", early}, {"priority", priority}}}};
}

// The latest data of event `event` of device `id` in a device.list result.
json::object device_event(const json::value& list, const std::string& id, const std::string& event) {
  for (const json::value& d : list.as_array()) {
    const json::object& device = d.as_object();
    if (string_at(device, "id") != id) continue;
    const json::value* found = device.at("events").as_object().if_contains(event);
    return found && found->is_object() ? found->as_object() : json::object{};
  }
  return {};
}

std::uint64_t number(const json::object& o, std::string_view key) {
  return number_at(o, {key}).value_or(~0ull);
}

class IterativeStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    ASSERT_TRUE(fs::exists(probe_plugin_dir() + "/molt-iterative-probe.so"))
        << "the test plugin is not built in " << probe_plugin_dir();
    dir_ = fs::temp_directory_path() / ("molt-iterative-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // The memtest guest with `probes` added to its devices.
  std::string machine(const std::string& name, const std::vector<json::object>& probes) {
    GuestSpec spec;
    spec.memory = "128M";
    spec.cmdline = "memtest 32 0";
    spec.rtc = false;
    const std::string path = write_migration_machine((dir_ / name).string(), spec);
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    json::object m = json::parse(text.str()).as_object();
    for (const json::object& p : probes) m["devices"].as_array().push_back(p);
    std::ofstream(path, std::ios::trunc) << json::serialize(m) << "\n";
    return path;
  }

  // A source whose guest passed its first memtest round.
  std::unique_ptr<MoltProcess> start_busy_source(const std::string& machine_file,
                                                 const std::string& monitor) {
    auto source = start_source(machine_file, monitor, {"--plugin-dir", probe_plugin_dir()});
    EXPECT_TRUE(source->wait_for_line("^@memtest round=1 ", 20s)) << source->console() << source->errors();
    return source;
  }

  fs::path dir_;
};

// Two probes: `live` (priority late, listed first) iterates with RAM;
// `early` (priority early, listed second) is sent whole before RAM.
TEST_F(IterativeStateTest, DeviceBuffersMigrateThroughIterativeHooks) {
  const std::vector<json::object> probes{probe("live", false, 0), probe("early", true, 300)};
  const std::string src_monitor = short_socket_path("src"), dst_monitor = short_socket_path("dst");
  const std::string uri = "unix:" + short_socket_path("mig");
  auto source = start_busy_source(machine("src.json", probes), src_monitor);
  auto destination =
      start_destination(machine("dst.json", probes), dst_monitor, uri, {"--plugin-dir", probe_plugin_dir()});

  MonitorClient src(src_monitor), dst(dst_monitor);
  src.call("migrate.start", {{"uri", uri}});
  const json::object status = wait_migration_final(src, 20s);
  ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << source->errors();

  const json::value at_destination = dst.call("device.list");
  const json::value at_source = src.call("device.list");
  for (const char* id : {"live", "early"}) {
    SCOPED_TRACE(id);
    const bool early = std::string(id) == "early";
    const json::object verified = device_event(at_destination, id, "migration-verified");
    ASSERT_FALSE(verified.empty()) << json::serialize(at_destination);
    EXPECT_EQ(verified.at("ok"), json::value(true)) << json::serialize(verified);
    EXPECT_EQ(number(verified, "blocks"), kProbeBlocks) << json::serialize(verified);
    // Blocks the timer rewrote after they were first sent went again.
    EXPECT_GT(number(verified, "chunks"), kProbeBlocks) << json::serialize(verified);
    if (early)
      EXPECT_GE(number(verified, "early_chunks"), kProbeBlocks) << json::serialize(verified);
    else
      EXPECT_EQ(number(verified, "early_chunks"), 0u) << json::serialize(verified);
    EXPECT_EQ(number(verified, "overlaps"), 0u) << json::serialize(verified);

    // The source ran the lifecycle once and sent what the destination loaded.
    const json::object sent = device_event(at_source, id, "migration-source");
    ASSERT_FALSE(sent.empty()) << json::serialize(at_source);
    EXPECT_EQ(number(sent, "setup_calls"), 1u) << json::serialize(sent);
    EXPECT_EQ(number(sent, "complete_calls"), 1u) << json::serialize(sent);
    EXPECT_GE(number(sent, "iterate_calls"), 1u) << json::serialize(sent);
    EXPECT_GT(number(sent, "blocks_dirtied_live"), 0u) << json::serialize(sent);
    EXPECT_EQ(number(sent, "chunks_sent"), number(verified, "chunks")) << json::serialize(sent);
    EXPECT_EQ(number(sent, "overlaps"), 0u) << json::serialize(sent);
  }
  // Descriptor states load by priority, not by their order in the machine.
  EXPECT_LT(number(device_event(at_destination, "early", "migration-verified"), "load_order"),
            number(device_event(at_destination, "live", "migration-verified"), "load_order"));
  // Iterative sections are sent, and their final chunks loaded, in the same
  // order (0: a probe had nothing left to send at the switchover).
  const std::uint64_t early_final =
      number(device_event(at_destination, "early", "migration-verified"), "first_final_chunk");
  const std::uint64_t live_final =
      number(device_event(at_destination, "live", "migration-verified"), "first_final_chunk");
  if (early_final != 0 && live_final != 0) {
    EXPECT_LT(early_final, live_final);
  }

  // The guest runs on at the destination with its memory intact.
  const auto round = destination->wait_for_line("^@memtest round=", 20s);
  ASSERT_TRUE(round) << destination->console() << destination->errors();
  EXPECT_TRUE(parse_memtest_round(*round) && parse_memtest_round(*round)->ok) << *round;
  EXPECT_EQ(vm_state(src), "postmigrate");
}

// The probe's size is a migration-relevant property: the handshake refuses a
// destination whose probe holds another size, before any RAM moves.
TEST_F(IterativeStateTest, ADifferentProbeSizeIsRefusedByTheHandshake) {
  const std::string src_monitor = short_socket_path("src"), dst_monitor = short_socket_path("dst");
  const std::string uri = "unix:" + short_socket_path("mig");
  auto source = start_busy_source(machine("src.json", {probe("live", false, 0)}), src_monitor);
  auto destination = start_destination(machine("dst.json", {probe("live", false, 0, "2M")}), dst_monitor, uri,
                                       {"--plugin-dir", probe_plugin_dir()});

  MonitorClient src(src_monitor);
  src.call("migrate.start", {{"uri", uri}});
  const json::object status = wait_migration_final(src, 20s);
  const std::string difference = "device live: property 'size' is 1048576 at source, 2097152 here";
  EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
  EXPECT_EQ(string_at(status, "error"), "the destination refused the migration: " + difference);
  EXPECT_EQ(status.if_contains("differences") ? *status.if_contains("differences") : json::value(),
            json::value(json::array{json::string(difference)}))
      << json::serialize(status);

  // The destination never ran the guest; the source's guest runs on and its
  // probe never started the live phase.
  EXPECT_EQ(destination->wait_exit(10s), std::optional<int>(2)) << destination->errors();
  EXPECT_NE(destination->errors().find(difference), std::string::npos) << destination->errors();
  EXPECT_EQ(vm_state(src), "running");
  EXPECT_TRUE(device_event(src.call("device.list"), "live", "migration-source").empty());
  const std::size_t seen = source->console_lines().size();
  ASSERT_TRUE(source->wait_for_line("^@memtest round=", 20s)) << source->console();
  EXPECT_GT(source->console_lines().size(), seen);
}

}  // namespace
}  // namespace molt::test
