// Migrations that fail (issue 5, point 5): an unreachable destination, one
// killed or cancelled while RAM moves, a handshake refused for a missing
// device, another RAM size or another property, a corrupted, truncated or
// unloadable stream, a cancel in setup and in the live phase. Each leaves the
// source's soak guest running with clean rounds, and a fresh migration from
// the same source then succeeds; a destination that fails exits with status
// 2 and a clear message and never runs the guest (its console stays empty).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "core/migration/stream.hpp"
#include "migration_support.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace mig = molt::core::migration;

constexpr std::uint32_t kImageSectors = 256;
constexpr std::uint64_t kSlowBandwidth = 4u << 20;  // bytes/s: the live phase lasts seconds

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Re-encodes the stream in `from` into `to` after `edit` changed its records
// (the end record's checksum is computed anew, so only the edit is wrong).
void rewrite_stream(const std::string& from, const std::string& to,
                    const std::function<void(std::vector<mig::Record>&)>& edit) {
  const std::vector<std::uint8_t> bytes = read_bytes(from);
  mig::SpanSource source(bytes);
  mig::StreamReader reader(source, mig::kKindMigration);
  std::vector<mig::Record> records;
  for (mig::Record r; reader.next(r);) records.push_back(r);
  edit(records);
  mig::VectorSink sink;
  mig::StreamWriter writer(sink, mig::kKindMigration);
  for (const mig::Record& r : records) writer.record(r.tag, r.name, r.payload);
  writer.finish();
  write_bytes(to, sink.data);
}

// The file offset of a byte of RAM page data (not a page word or a record
// header) at or after `near`, so that only the checksum can catch a flip of
// it; 0 when there is none.
std::size_t page_data_near(const std::vector<std::uint8_t>& bytes, std::size_t near) {
  mig::SpanSource source(bytes);
  mig::StreamReader reader(source, mig::kKindMigration);
  for (mig::Record r; reader.next(r);) {
    const std::size_t payload_at = r.offset + 11 + r.name.size();
    if (r.tag != mig::Tag::Chunk || r.name != "ram" || payload_at + r.payload.size() < near) continue;
    std::uint16_t name_length;
    std::memcpy(&name_length, r.payload.data(), 2);
    std::uint32_t pages;
    std::memcpy(&pages, r.payload.data() + 2 + name_length, 4);
    std::size_t at = 6 + name_length;
    for (std::uint32_t i = 0; i < pages; ++i) {
      std::uint64_t word;
      std::memcpy(&word, r.payload.data() + at, 8);
      at += 8;
      if (word & 1) continue;  // a zero page: nothing follows its word
      if (payload_at + at + 4096 > near) return payload_at + at + 2048;
      at += 4096;
    }
  }
  return 0;
}

// A unix socket that accepts connections (in the kernel's backlog) and never
// answers: a destination stuck before its handshake.
class SilentListener {
 public:
  explicit SilentListener(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ::unlink(path.c_str());
    listening_ =
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 4) == 0;
  }
  ~SilentListener() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool listening() const { return listening_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool listening_ = false;
};

class MigrationFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = fs::temp_directory_path() / ("molt-migfail-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    image_ = path("disk.img");
    create_disk_image(image_, kImageSectors);
    source_machine_ = write_migration_machine(path("source.json"), spec());
    source_monitor_ = short_socket_path("src");
    source_ = start_source(source_machine_, source_monitor_);
    ASSERT_TRUE(source_->wait_for_line("^@soak round=2 ", 30s)) << source_->console() << source_->errors();
    monitor_ = std::make_unique<MonitorClient>(source_monitor_);
    monitor_->subscribe({"migrate.state-changed"});
  }
  void TearDown() override {
    monitor_.reset();
    source_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // The source's machine; destinations differ only where a test says so.
  GuestSpec spec() const {
    GuestSpec spec;
    spec.memory = "256M";
    spec.cmdline = "soak 32";
    spec.disk_image = image_;
    return spec;
  }

  std::unique_ptr<MoltProcess> destination(const std::string& uri, GuestSpec machine,
                                           const std::string& tag) {
    destination_monitor_ = short_socket_path("dst" + tag);
    return start_destination(write_migration_machine(path("dst" + tag + ".json"), machine),
                             destination_monitor_, uri);
  }

  // migrate.start; the status once the migration has ended.
  json::object migrate(const std::string& uri) {
    monitor_->call("migrate.start", {{"uri", uri}});
    return wait_migration_final(*monitor_, 60s);
  }

  // The migrate.state-changed event for `state` (the source's).
  json::object source_event(const std::string& state) {
    const auto event = monitor_->wait_event(
        "migrate.state-changed", [&](const json::object& p) { return string_at(p, "state") == state; }, 5s);
    EXPECT_TRUE(event) << "no migrate.state-changed event with state " << state;
    return event.value_or(json::object{});
  }

  // The source's guest runs: vm.status says so and three more rounds come
  // after everything printed so far, all clean.
  void expect_source_runs_clean() {
    EXPECT_EQ(vm_state(*monitor_), "running");
    source_->wait_for_line("^@never-printed$", 100ms);  // skips the lines printed so far
    const std::vector<SoakRound> rounds = next_soak_rounds(*source_, 3, 10s);
    ASSERT_EQ(rounds.size(), 3u) << "the source's guest stopped:\n" << source_->errors();
    for (const SoakRound& r : rounds) EXPECT_TRUE(r.clean()) << r.line;
  }

  // A destination that failed: status 2, `message` in its stderr, and not a
  // byte of guest output (COM1 is its stdout).
  void expect_destination_failed(MoltProcess& d, const std::string& message) {
    const std::optional<int> status = d.wait_exit(20s);
    ASSERT_TRUE(status) << "the destination did not exit:\n" << d.errors();
    EXPECT_EQ(*status, 2) << d.errors();
    EXPECT_NE(d.errors().find(message), std::string::npos) << "expected \"" << message << "\" in:\n"
                                                           << d.errors();
    EXPECT_EQ(d.console(), "") << "the destination ran the guest";
  }

  // After a failure, the same source migrates to a fresh destination and the
  // guest goes on there: nothing was left behind (dirty logging, a paused
  // vCPU, a half-open channel, the bandwidth cap).
  void expect_fresh_migration_succeeds() {
    monitor_->call("migrate.set_parameters", {{"max_bandwidth", 0}});
    const std::string uri = "unix:" + short_socket_path("fresh");
    std::unique_ptr<MoltProcess> d = destination(uri, spec(), "fresh");
    const json::object status = migrate(uri);
    ASSERT_EQ(string_at(status, "state"), "completed") << json::serialize(status) << source_->errors();
    EXPECT_EQ(vm_state(*monitor_), "postmigrate");
    const std::vector<SoakRound> rounds = next_soak_rounds(*d, 2, 10s);
    ASSERT_EQ(rounds.size(), 2u) << d->console() << d->errors();
    for (const SoakRound& r : rounds) EXPECT_TRUE(r.clean()) << r.line;
    MonitorClient(destination_monitor_).call("vm.quit");
    d->wait_exit(10s);
  }

  // Starts a bandwidth-capped migration to `d` at `uri` and returns once RAM
  // is moving (state active, some bytes sent).
  void start_slow_migration(const std::string& uri) {
    monitor_->call("migrate.set_parameters", {{"max_bandwidth", kSlowBandwidth}});
    monitor_->call("migrate.start", {{"uri", uri}});
    wait_migration_state(*monitor_, "active", 20s, [](const json::object& s) {
      return number_at(s, {"bytes_sent"}).value_or(0) > (256u << 10);
    });
  }

  // Snapshots the running source into a file (vm.snapshot, resume), for
  // damaging; returns the file's path.
  std::string snapshot() {
    const std::string file = path("guest.molt");
    monitor_->call("vm.snapshot", {{"path", file}, {"resume", true}});
    const json::object status = wait_migration_final(*monitor_, 30s);
    EXPECT_EQ(string_at(status, "state"), "completed") << json::serialize(status);
    return file;
  }

  // `molt run` on the source's machine from `file`: must fail with `message`.
  void expect_restore_fails(const std::string& file, const std::string& message) {
    MoltProcess d({"run", source_machine_, "--incoming", "file:" + file});
    expect_destination_failed(d, message);
  }

  fs::path dir_;
  std::string image_, source_machine_, source_monitor_, destination_monitor_;
  std::unique_ptr<MoltProcess> source_;
  std::unique_ptr<MonitorClient> monitor_;
};

TEST_F(MigrationFailureTest, NobodyListensAtTheDestination) {
  for (const std::string& uri :
       {"unix:" + path("nobody.sock"), "tcp:127.0.0.1:" + std::to_string(free_tcp_port())}) {
    const json::object status = migrate(uri);
    EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
    EXPECT_NE(string_at(status, "error").find(uri), std::string::npos)
        << "the error does not name " << uri << ": " << string_at(status, "error");
    EXPECT_NE(string_at(source_event("failed"), "error").find(uri), std::string::npos);
    expect_source_runs_clean();
    monitor_->clear_events();
  }
  expect_fresh_migration_succeeds();
}

TEST_F(MigrationFailureTest, DestinationKilledWhileRamMoves) {
  const std::string uri = "unix:" + short_socket_path("mig");
  std::unique_ptr<MoltProcess> d = destination(uri, spec(), "");
  start_slow_migration(uri);
  d->signal(SIGKILL);
  const json::object status = wait_migration_final(*monitor_, 30s);
  EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
  EXPECT_FALSE(string_at(status, "error").empty()) << json::serialize(status);
  EXPECT_EQ(d->wait_exit(10s), 128 + SIGKILL);
  EXPECT_EQ(d->console(), "") << "the destination ran the guest";
  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

TEST_F(MigrationFailureTest, DestinationCancelsWhileRamMoves) {
  const std::string uri = "unix:" + short_socket_path("mig");
  std::unique_ptr<MoltProcess> d = destination(uri, spec(), "");
  start_slow_migration(uri);
  MonitorClient(destination_monitor_).call("migrate.cancel");
  const json::object status = wait_migration_final(*monitor_, 30s);
  EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
  EXPECT_FALSE(string_at(status, "error").empty()) << json::serialize(status);
  expect_destination_failed(*d, "incoming migration failed: cancelled");
  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

TEST_F(MigrationFailureTest, SourceCancelsWhileRamMoves) {
  const std::string uri = "unix:" + short_socket_path("mig");
  std::unique_ptr<MoltProcess> d = destination(uri, spec(), "");
  start_slow_migration(uri);
  EXPECT_EQ(string_at(monitor_->call("migrate.cancel").as_object(), "role"), "source");
  const json::object status = wait_migration_final(*monitor_, 30s);
  EXPECT_EQ(string_at(status, "state"), "cancelled") << json::serialize(status);
  source_event("cancelled");
  expect_destination_failed(*d, "incoming migration failed");
  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

TEST_F(MigrationFailureTest, SourceCancelsWhileTheDestinationNeverAnswers) {
  const std::string socket = short_socket_path("silent");
  SilentListener silent(socket);
  ASSERT_TRUE(silent.listening()) << socket;
  monitor_->call("migrate.start", {{"uri", "unix:" + socket}});
  // The fingerprint went out; the source waits for the handshake's answer.
  wait_migration_state(*monitor_, "setup", 5s,
                       [](const json::object& s) { return number_at(s, {"bytes_sent"}).value_or(0) > 0; });
  monitor_->call("migrate.cancel");
  const json::object status = wait_migration_final(*monitor_, 10s);
  EXPECT_EQ(string_at(status, "state"), "cancelled") << json::serialize(status);
  source_event("cancelled");
  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

// Each mismatch is refused with its exact sentence: in migrate.status's
// differences and error, in the failed event, and in the destination's error.
TEST_F(MigrationFailureTest, MismatchedMachinesAreRefusedWithTheExactDifference) {
  struct Mismatch {
    std::string what;
    GuestSpec machine;
    std::string difference;
  };
  std::vector<Mismatch> cases;
  GuestSpec no_rtc = spec();
  no_rtc.rtc = false;
  cases.push_back({"missing device", no_rtc, "device rtc: present at source, absent here"});
  GuestSpec small = spec();
  small.memory = "128M";
  cases.push_back({"RAM size", small, "ram block pc.ram: 256 MiB at source, 128 MiB here"});
  GuestSpec other_irq = spec();
  other_irq.properties["rtc"] = json::object{{"irq", 9}};
  cases.push_back({"property", other_irq, "device rtc: property 'irq' is 8 at source, 9 here"});

  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].what);
    const std::string uri = "unix:" + short_socket_path("mig" + std::to_string(i));
    std::unique_ptr<MoltProcess> d = destination(uri, cases[i].machine, std::to_string(i));
    const json::object status = migrate(uri);
    EXPECT_EQ(string_at(status, "state"), "failed") << json::serialize(status);
    EXPECT_EQ(status.if_contains("differences") ? *status.if_contains("differences") : json::value(),
              json::value(json::array{json::string(cases[i].difference)}))
        << json::serialize(status);
    EXPECT_EQ(string_at(status, "error"), "the destination refused the migration: " + cases[i].difference);
    const json::object event = source_event("failed");
    EXPECT_EQ(event.if_contains("differences") ? *event.if_contains("differences") : json::value(),
              json::value(json::array{json::string(cases[i].difference)}))
        << json::serialize(event);
    EXPECT_EQ(string_at(event, "error"), "the destination refused the migration: " + cases[i].difference);
    expect_destination_failed(*d, cases[i].difference);
    expect_source_runs_clean();
    monitor_->clear_events();
  }
  expect_fresh_migration_succeeds();
}

// A snapshot with a flipped byte, or cut short, is refused before anything
// runs: the stream's checksum, or its framing, says so.
TEST_F(MigrationFailureTest, CorruptedAndTruncatedStreamsAreRefused) {
  const std::string file = snapshot();
  expect_source_runs_clean();
  std::vector<std::uint8_t> bytes = read_bytes(file);
  ASSERT_GT(bytes.size(), 1u << 20);

  std::vector<std::uint8_t> flipped = bytes;
  const std::size_t target = page_data_near(bytes, bytes.size() / 2);
  ASSERT_NE(target, 0u) << "no RAM page data in the snapshot";
  flipped[target] ^= 0x01;
  write_bytes(path("flipped.molt"), flipped);
  expect_restore_fails(path("flipped.molt"), "checksum mismatch at the end");

  write_bytes(path("cut.molt"), std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  expect_restore_fails(path("cut.molt"), "inside a record");

  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

// A well-formed stream whose device state this machine can't load (COM1's
// record replaced by the RTC's): refused by name before the guest runs.
TEST_F(MigrationFailureTest, ADeviceStateTheDestinationCannotLoadIsRefused) {
  const std::string file = snapshot();
  std::vector<std::uint8_t> rtc_state;
  rewrite_stream(file, path("swapped.molt"), [&](std::vector<mig::Record>& records) {
    for (const mig::Record& r : records)
      if (r.tag == mig::Tag::DeviceState && r.name == "rtc") rtc_state = r.payload;
    for (mig::Record& r : records)
      if (r.tag == mig::Tag::DeviceState && r.name == "com1") r.payload = rtc_state;
  });
  ASSERT_FALSE(rtc_state.empty()) << "the snapshot holds no rtc state";
  expect_restore_fails(path("swapped.molt"), "device com1: ");
  // The unedited file, re-encoded the same way, restores: only the edit was wrong.
  rewrite_stream(file, path("same.molt"), [](std::vector<mig::Record>&) {});
  EXPECT_EQ(read_bytes(path("same.molt")), read_bytes(file));

  expect_source_runs_clean();
  expect_fresh_migration_succeeds();
}

}  // namespace
}  // namespace molt::test
