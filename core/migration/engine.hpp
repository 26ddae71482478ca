// The migration engine: moves a running guest to another molt process
// (precopy over tcp/unix/fd, several RAM channels), or into a file, and
// receives one. One Migration per machine serves both roles; the monitor's
// migrate.* methods drive it (core/monitor/migration_methods.cpp).
//
// Source, on its own thread:
//   setup      connect, send the fingerprint, wait for the destination's
//              accept (a refusal lists every difference and ends here)
//   active     RAM and iterative device sections while the guest runs, pass
//              after pass, until the estimated remaining transfer fits the
//              downtime limit at the measured bandwidth (or a forced
//              switchover, or the iteration cap)
//   device     guest paused: the last dirty pages, device states, vCPUs,
//              irqchip, PIT, kvmclock; then the destination loads and
//              validates everything and says "loaded"
//   completed  the source commits ("go"); the destination runs the guest and
//              the source stays in postmigrate until quit
// Anything that fails before the commit resumes the source guest (if the
// migration paused it) and leaves it as it was: failed / cancelled.
//
// Destination (`molt run --incoming URI`, or migrate.incoming after
// `--incoming defer`): accepts, compares fingerprints and answers, loads
// RAM as it arrives and everything else into validated scratch state, applies
// it only when the stream's checksum checked out, and runs the guest only
// after the source's commit. Any failure ends the process with an error and
// the guest never runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "core/migration/channel.hpp"

namespace molt::core::machine {
class Machine;
}

namespace molt::core::migration {

namespace json = boost::json;

struct MigrationParameters {
  std::uint64_t downtime_limit_ms = 300;  // the pause the switchover may cause
  std::uint64_t max_bandwidth = 0;        // bytes per second over all channels; 0: unlimited
  unsigned channels = 1;                  // connections carrying RAM (the main one included)
  unsigned max_iterations = 0;            // switch over after this many passes; 0: no cap
  std::uint64_t connect_timeout_ms = 5000;
};

// Throws sdk::Error naming the parameter ("channels: expected 1 to 16").
void apply_parameters(MigrationParameters& params, const json::object& changes);
json::object to_json(const MigrationParameters& params);

enum class MigrationState {
  None,       // nothing started
  Setup,      // connecting, handshake
  Active,     // live: guest running, RAM moving
  Device,     // guest paused: final state moving
  Completed,  // the destination took over (source) / runs the guest (destination)
  Failed,
  Cancelled,
  Listening,  // destination: waiting for the source
  Receiving,  // destination: stream arriving
};
const char* to_string(MigrationState state);

// What migrate.start asks for.
struct StartRequest {
  std::string uri;             // the main channel
  std::string mode = "precopy";  // or "cpr-transfer"
  std::string cpr_uri;         // cpr-transfer: unix:PATH the new molt takes the RAM fds on
  bool resume_after = false;   // a snapshot: the guest runs on here once the file is written
  // A snapshot (file:) that leaves the RAM in place in the guest's RAM files
  // (memory.backend "file") and writes everything else (ram_layout.hpp).
  bool ram_in_place = false;
};

class Migration {
 public:
  // `publish` receives every state change as a "migrate.state-changed" event
  // (thread-safe; e.g. MonitorServer::publish); may be empty.
  using Publish = std::function<void(const std::string& event, json::object params)>;
  Migration(machine::Machine& machine, Publish publish);
  ~Migration();
  Migration(const Migration&) = delete;
  Migration& operator=(const Migration&) = delete;

  // Source. Checks blockers and the URI and starts the migration thread;
  // throws sdk::Error (nothing changed) when it can't start: an unmigratable
  // device, a migration already running, a VM not running or paused, a bad URI.
  void start(const StartRequest& request);
  void start(const std::string& uri) { start(StartRequest{uri}); }
  // Why cpr-transfer to these channels can't work, each with what to change
  // (a device whose backend can't be handed over: "device <id>: <its
  // reason>"); empty when it can.
  std::vector<std::string> cpr_blockers(const StartRequest& request) const;
  // Why a snapshot can't leave the RAM in place (ram_in_place), each with
  // what to change; empty when it can or was not asked to.
  std::vector<std::string> in_place_blockers(const StartRequest& request) const;
  // Destination: listens on `uri` now (errors thrown here), then receives on
  // a thread. The machine must have been built with `incoming`.
  void listen(const std::string& uri);
  // The address the destination listens on (tcp port 0 resolved), or empty.
  std::string listen_address() const;

  void set_parameters(const json::object& changes);
  MigrationParameters parameters() const;
  // Source: stop iterating and switch over at the end of the current pass.
  void force_switchover();
  // Stops a migration in any state before the commit; the source guest runs
  // on. Throws sdk::Error when there is nothing to cancel or it is too late.
  void cancel();

  MigrationState state() const;
  // migrate.status: state, role, times, bytes per channel, RAM figures,
  // downtime and its breakdown, the error or the handshake's differences.
  json::object status() const;

 private:
  struct Stats;
  void run_source(StartRequest request);
  // cpr-transfer: hands the RAM memfds and the devices' backend fds to the
  // new molt; returns once it accepted.
  void hand_over(const StartRequest& request, const json::value& fingerprint);
  // In-place snapshots: the ram-layout record naming the RAM files, and
  // flushing them (and the snapshot file) to storage before completion.
  void record_in_place_layout(StreamWriter& out);
  void sync_snapshot(Channel& snapshot, bool ram_files);
  void run_destination();
  void set_state(MigrationState state, const std::string& error = {});
  void join();

  machine::Machine& machine_;
  Publish publish_;
  mutable std::mutex mutex_;
  MigrationParameters params_;
  MigrationState state_ = MigrationState::None;
  std::string role_;
  std::unique_ptr<Stats> stats_;
  // cpr-transfer source: [{"device", "fds": [names]}] sent with the RAM.
  json::array handed_over_;
  std::unique_ptr<Listener> listener_;
  std::vector<Channel*> live_channels_;  // for cancel(): shut down to unblock I/O
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> switchover_requested_{false};
  std::atomic<bool> committed_{false};
  std::thread thread_;
};

}  // namespace molt::core::migration
