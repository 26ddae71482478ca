// Shared pieces of the KVM migration tests (precopy, failures, cpr): machine
// files for a source and its destinations, molt processes started as source
// or destination, a JSON-RPC client for their monitors, waits on
// migrate.status, the guest's console over a unix socket, and parsers for the
// test guest's `@soak` and `@memtest` lines plus a check of the soak disk
// image (docs/testguest.md, "soak").
//
// Typical use:
//   GuestSpec spec{.vcpus = 1, .cmdline = "soak 32", .console_socket = ..., .disk_image = ...};
//   auto source = start_source(write_migration_machine(dir / "src.json", spec), src_monitor);
//   auto dest = start_destination(write_migration_machine(dir / "dst.json", dst_spec), dst_monitor,
//                                 "unix:" + path);
//   MonitorClient monitor(src_monitor);
//   monitor.call("migrate.start", {{"uri", "unix:" + path}});
//   const json::object status = wait_migration_final(monitor, 30s);
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "molt_process.hpp"

namespace molt::test {

namespace json = boost::json;

// ---- machine files ----

// A pc machine for migration tests: COM1 (id com1), debug-exit (exit), the
// i440FX host bridge (host), the PIIX3 ISA bridge (isa), optionally the RTC
// (rtc) and a PIIX3 IDE controller (ide0) with `disk_image` as primary master.
struct GuestSpec {
  unsigned vcpus = 1;
  std::string memory = "128M";
  std::string cmdline = "soak 32";
  // Empty: COM1 on stdio (MoltProcess::console()); else a unix-socket server
  // at this path that ConsoleSocket connects to.
  std::string console_socket;
  // Empty: no IDE controller (soak needs one; memtest does not).
  std::string disk_image;
  bool rtc = true;
  // Extra properties merged into a device's, by device id (e.g. {"rtc", {{"irq", 9}}}).
  std::map<std::string, json::object> properties;
};

// Writes the machine file for `spec` to `path`; returns `path`.
std::string write_migration_machine(const std::string& path, const GuestSpec& spec);

// Creates (or truncates) a zeroed raw disk image of `sectors` 512-byte sectors.
void create_disk_image(const std::string& path, std::uint32_t sectors);

// ---- processes ----

// `molt run MACHINE --api-socket MONITOR EXTRA...`, returned once the monitor
// answers (the guest is booting). Throws std::runtime_error, with molt's
// stderr, when the monitor does not come up within 20 s.
std::unique_ptr<MoltProcess> start_source(const std::string& machine, const std::string& monitor,
                                          std::vector<std::string> extra_args = {});
// `molt run MACHINE --api-socket MONITOR --incoming URI EXTRA...`, returned
// once migrate.status says "listening" (for URI "defer": once the monitor
// answers). Throws std::runtime_error otherwise.
std::unique_ptr<MoltProcess> start_destination(const std::string& machine, const std::string& monitor,
                                               const std::string& incoming_uri,
                                               std::vector<std::string> extra_args = {});

// Waits until molt's stderr shows `text`; false when it exits or `timeout` passes.
bool wait_for_log(MoltProcess& molt, const std::string& text, std::chrono::milliseconds timeout);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read
// back, released).
std::uint16_t free_tcp_port();

// A unix socket path in the temp dir, unique to this process, test and `tag`,
// short enough for sun_path.
std::string short_socket_path(const std::string& tag);

// ---- the monitor ----

// The monitor answered a JSON-RPC error; what() is its message.
class MonitorError : public std::runtime_error {
 public:
  MonitorError(const std::string& message, std::int64_t code) : std::runtime_error(message), code_(code) {}
  std::int64_t code() const { return code_; }

 private:
  std::int64_t code_;
};

// One connection to a molt monitor (newline-delimited JSON-RPC 2.0).
// Notifications that arrive before a reply are kept in events().
class MonitorClient {
 public:
  // Connects, retrying until `timeout`; throws std::runtime_error if it can't.
  explicit MonitorClient(const std::string& socket,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~MonitorClient();
  MonitorClient(const MonitorClient&) = delete;
  MonitorClient& operator=(const MonitorClient&) = delete;

  // The method's result. Throws MonitorError for an error reply and
  // std::runtime_error when no reply comes within `timeout` or the
  // connection closes.
  json::value call(const std::string& method, json::object params = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The error message of a call expected to fail; throws std::runtime_error
  // (naming the result) when it succeeded.
  std::string call_error(const std::string& method, json::object params = {});
  // events.subscribe; all events when `names` is empty.
  void subscribe(const std::vector<std::string>& names = {});
  // The first notification named `event` (from events() or arriving within
  // `timeout`) whose params satisfy `match`; its params, or nullopt.
  std::optional<json::object> wait_event(const std::string& event,
                                         const std::function<bool(const json::object&)>& match,
                                         std::chrono::milliseconds timeout);
  // Every notification received so far: {"method", "params"} objects.
  const std::vector<json::object>& events() const { return events_; }
  // Forgets the notifications received so far (wait_event then sees only newer ones).
  void clear_events() { events_.clear(); }

 private:
  // The next message, or null after `timeout` or when the connection closed.
  json::value next_message(std::chrono::milliseconds timeout);

  std::string socket_;
  int fd_ = -1;
  std::int64_t next_id_ = 1;
  std::string buffer_;
  std::vector<json::object> events_;
};

// Connects, calls, returns the result (throws like MonitorClient::call).
json::value monitor_call(const std::string& socket, const std::string& method, json::object params = {});

// vm.status's state ("running", "paused", "incoming", "postmigrate", ...).
std::string vm_state(MonitorClient& monitor);

// ---- migrate.status ----

// completed, failed or cancelled (and none: nothing ever started).
bool is_final_migration_state(std::string_view state);
// Polls migrate.status (every 10 ms) until its state is final; returns it.
// Throws std::runtime_error with the last status when `timeout` passes.
json::object wait_migration_final(MonitorClient& monitor, std::chrono::milliseconds timeout);
// Polls until migrate.status's state is `state` and `ready` (when given)
// holds for it; returns it. Throws std::runtime_error when the migration
// ends in another state first or `timeout` passes.
json::object wait_migration_state(MonitorClient& monitor, std::string_view state,
                                  std::chrono::milliseconds timeout,
                                  const std::function<bool(const json::object&)>& ready = {});
// The string at `key` of a status (empty when absent or not a string).
std::string string_at(const json::object& object, std::string_view key);
// The unsigned number at a path of keys ("ram", "iterations"), or nullopt.
std::optional<std::uint64_t> number_at(const json::object& object,
                                       std::initializer_list<std::string_view> path);

// ---- the guest's console over a unix socket ----

// Connects to the serial port's unix-socket backend (retrying up to
// `timeout`; connected() says whether it worked), reads lines, types.
class ConsoleSocket {
 public:
  explicit ConsoleSocket(const std::string& path,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~ConsoleSocket();
  ConsoleSocket(const ConsoleSocket&) = delete;
  ConsoleSocket& operator=(const ConsoleSocket&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Writes all of `text`; false on error.
  bool type(const std::string& text);
  // The next line (after the last one returned) matching `pattern`, or
  // nullopt on timeout or a closed socket.
  std::optional<std::string> wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout);
  // Reads what arrives for `duration` without consuming lines, as a client
  // that keeps reading its console does.
  void pump(std::chrono::milliseconds duration);
  // Everything read so far.
  const std::string& text() const { return text_; }

 private:
  int fd_ = -1;
  std::string text_;
  std::size_t scanned_ = 0;
};

// ---- the guest's lines ----

// `@soak round=` (docs/testguest.md).
struct SoakRound {
  std::uint64_t round = 0, mib = 0, errors = 0, sector = 0, aps = 0, ap_rounds = 0, ap_errors = 0,
                disk_errors = 0, us = 0;
  bool disk_ok = false;
  std::string rtc;  // YYYY-MM-DDThh:mm:ss
  std::string line;
  // errors, ap_errors and disk_errors 0 and disk=ok.
  bool clean() const { return errors == 0 && ap_errors == 0 && disk_errors == 0 && disk_ok; }
};
std::optional<SoakRound> parse_soak_round(const std::string& line);

// `@memtest round=`.
struct MemtestRound {
  std::uint64_t round = 0, mib = 0, errors = 0;
  bool ok = false;
  std::string line;
};
std::optional<MemtestRound> parse_memtest_round(const std::string& line);

// The seconds between a soak line's rtc= time (read as UTC) and the host's
// UTC time now; nullopt when it does not parse.
std::optional<double> rtc_offset_seconds(const std::string& rtc);

// The next `count` soak rounds on `console` (a MoltProcess or a
// ConsoleSocket), each within `per_round`; fewer when they stop coming.
template <class Console>
std::vector<SoakRound> next_soak_rounds(Console& console, std::size_t count,
                                        std::chrono::milliseconds per_round) {
  std::vector<SoakRound> rounds;
  while (rounds.size() < count) {
    const std::optional<std::string> line = console.wait_for_line("^@soak round=", per_round);
    if (!line) break;
    if (auto parsed = parse_soak_round(*line)) rounds.push_back(std::move(*parsed));
  }
  return rounds;
}

// The soak scenario's sector pattern: the round a 512-byte sector holds, or
// nullopt when it is not a valid soak sector for `lba`.
std::optional<std::uint32_t> soak_sector_round(const std::uint8_t* sector, std::uint32_t lba);
// Checks a stopped guest's disk image: every sector below `soak_sectors` is
// zero or a valid soak sector of a round that maps to it, the sector of
// `last_round` holds that round or a later one, nothing beyond was written.
// Returns the problems found (empty: the image is good).
std::vector<std::string> check_soak_image(const std::string& path, std::uint32_t soak_sectors,
                                          std::uint64_t last_round);

}  // namespace molt::test
