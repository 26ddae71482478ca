#include "core/migration/engine.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <molt/sdk/error.hpp>

#include "core/log.hpp"
#include "core/machine/machine.hpp"
#include "core/migration/cpr.hpp"
#include "core/migration/engine_detail.hpp"
#include "core/migration/ram_layout.hpp"

namespace molt::core::migration {

const char* to_string(MigrationState state) {
  switch (state) {
    case MigrationState::None: return "none";
    case MigrationState::Setup: return "setup";
    case MigrationState::Active: return "active";
    case MigrationState::Device: return "device";
    case MigrationState::Completed: return "completed";
    case MigrationState::Failed: return "failed";
    case MigrationState::Cancelled: return "cancelled";
    case MigrationState::Listening: return "listening";
    case MigrationState::Receiving: return "receiving";
  }
  return "unknown";
}

namespace {

std::uint64_t get_uint(const json::value& v, const char* name, std::uint64_t min, std::uint64_t max) {
  std::uint64_t out = 0;
  if (v.is_uint64()) out = v.as_uint64();
  else if (v.is_int64() && v.as_int64() >= 0) out = static_cast<std::uint64_t>(v.as_int64());
  else throw sdk::Error(fmt::format("{}: expected a non-negative integer", name));
  if (out < min || out > max) throw sdk::Error(fmt::format("{}: {} is outside {} to {}", name, out, min, max));
  return out;
}

// A cpr-transfer destination's migrate.status: the handed-over fds its devices took.
json::array taken_over(machine::Machine& m) {
  json::array out;
  for (const auto& host : m.devices()) {
    if (host->taken_handed_over_fds().empty()) continue;
    json::array names;
    for (const std::string& name : host->taken_handed_over_fds()) names.push_back(json::string(name));
    out.push_back(json::object{{"device", host->id()}, {"fds", std::move(names)}});
  }
  return out;
}

bool finished(MigrationState s) {
  return s == MigrationState::None || s == MigrationState::Completed || s == MigrationState::Failed ||
         s == MigrationState::Cancelled;
}

}  // namespace

void apply_parameters(MigrationParameters& params, const json::object& changes) {
  MigrationParameters next = params;  // all or nothing
  for (const auto& [key, value] : changes) {
    if (key == "downtime_limit_ms") next.downtime_limit_ms = get_uint(value, "downtime_limit_ms", 1, 3'600'000);
    else if (key == "max_bandwidth") next.max_bandwidth = get_uint(value, "max_bandwidth", 0, ~0ull);
    else if (key == "channels") next.channels = static_cast<unsigned>(get_uint(value, "channels", 1, kMaxChannels));
    else if (key == "max_iterations") next.max_iterations = static_cast<unsigned>(get_uint(value, "max_iterations", 0, 100000));
    else if (key == "connect_timeout_ms")
      next.connect_timeout_ms = get_uint(value, "connect_timeout_ms", 1, 600'000);
    else
      throw sdk::Error(fmt::format(
          "unknown parameter '{}'; known: downtime_limit_ms, max_bandwidth, channels, max_iterations, "
          "connect_timeout_ms",
          std::string(key)));
  }
  params = next;
}

json::object to_json(const MigrationParameters& p) {
  return json::object{{"downtime_limit_ms", p.downtime_limit_ms},
                      {"max_bandwidth", p.max_bandwidth},
                      {"channels", p.channels},
                      {"max_iterations", p.max_iterations},
                      {"connect_timeout_ms", p.connect_timeout_ms}};
}

Migration::Migration(machine::Machine& machine, Publish publish)
    : machine_(machine), publish_(std::move(publish)), stats_(std::make_unique<Stats>()) {}

Migration::~Migration() {
  if (!finished(state())) {
    cancel_requested_ = true;
    std::lock_guard lock(mutex_);
    for (Channel* c : live_channels_) c->shutdown();
    if (listener_) listener_->shutdown();
  }
  join();
}

void Migration::join() {
  if (thread_.joinable()) thread_.join();
}

MigrationState Migration::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void Migration::set_state(MigrationState state, const std::string& error) {
  json::object event;
  {
    std::lock_guard lock(mutex_);
    state_ = state;
    stats_->mark(state);
    if (!error.empty()) stats_->error = error;
    event = json::object{{"role", role_}, {"state", to_string(state)}};
    if (!error.empty()) event["error"] = error;
    if (!stats_->differences.empty()) {
      json::array diffs;
      for (const std::string& d : stats_->differences) diffs.push_back(json::string(d));
      event["differences"] = diffs;
    }
  }
  log()->info("migration ({}) {}{}", role_, to_string(state), error.empty() ? "" : ": " + error);
  if (publish_) publish_(kEventMigrationState, std::move(event));
}

void Migration::set_parameters(const json::object& changes) {
  std::lock_guard lock(mutex_);
  apply_parameters(params_, changes);
  if (stats_->limiter) stats_->limiter->set_rate(params_.max_bandwidth);
}

MigrationParameters Migration::parameters() const {
  std::lock_guard lock(mutex_);
  return params_;
}

void Migration::force_switchover() {
  if (state() != MigrationState::Active)
    throw sdk::Error(fmt::format("no live migration is iterating (the migration is {})", to_string(state())));
  switchover_requested_ = true;
}

void Migration::cancel() {
  std::lock_guard lock(mutex_);
  if (finished(state_)) throw sdk::Error(fmt::format("there is no migration to cancel (it is {})", to_string(state_)));
  if (committed_) throw sdk::Error("too late to cancel: the destination already runs the guest");
  cancel_requested_ = true;
  for (Channel* c : live_channels_) c->shutdown();
  if (listener_) listener_->shutdown();
}

std::vector<std::string> Migration::cpr_blockers(const StartRequest& request) const {
  std::vector<std::string> out;
  const ChannelUri main = ChannelUri::parse(request.uri);
  if (!main.two_way())
    out.push_back(fmt::format("main channel {}: cpr-transfer needs a two-way channel the new molt answers on; "
                              "use unix:PATH or tcp:HOST:PORT",
                              request.uri));
  if (main.transport == Transport::Tcp && main.port == 0)
    out.push_back(fmt::format("main channel {}: port 0 names no listener; give the port the new molt listens on",
                              request.uri));
  if (request.cpr_uri.empty()) {
    out.push_back("no cpr channel: give cpr_uri, the unix:PATH the new molt was started with (--cpr-channel)");
  } else if (ChannelUri::parse(request.cpr_uri).transport != Transport::Unix) {
    out.push_back(fmt::format("cpr channel {}: file descriptors only travel over UNIX sockets; use unix:PATH",
                              request.cpr_uri));
  }
  std::size_t device_fds = 0;
  for (const auto& host : machine_.devices()) {
    std::lock_guard lock(host->lock());
    const sdk::FdHandover offer = host->device().handover_fds();  // the fds stay the device's
    if (!offer.blocker.empty())
      out.push_back(fmt::format("device {}: {}", host->id(), offer.blocker));
    else if (const std::string problem = invalid_handover(offer); !problem.empty())
      out.push_back(fmt::format("device {}: {}", host->id(), problem));
    device_fds += offer.fds.size();
  }
  if (device_fds > kMaxHandedDeviceFds)
    out.push_back(
        fmt::format("the devices offer {} backend fds to hand over; cpr-transfer carries at most {}",
                    device_fds, kMaxHandedDeviceFds));
  for (const auto& block : machine_.ram().blocks()) {
    if (block->fd() < 0)
      out.push_back(fmt::format("RAM block {} is anonymous private memory, which no other process can map; set "
                                "\"memory\": {{\"backend\": \"memfd\"}} in the machine file",
                                block->name()));
  }
  return out;
}

std::vector<std::string> Migration::in_place_blockers(const StartRequest& request) const {
  std::vector<std::string> out;
  if (!request.ram_in_place) return out;
  if (request.mode != "precopy" || ChannelUri::parse(request.uri).transport != Transport::File)
    out.push_back(
        fmt::format("ram in-place is for a snapshot to a file (vm.snapshot, or migrate.start to "
                    "file:PATH), not {} to {}",
                    request.mode, request.uri));
  try {
    in_place_layout(machine_.ram());
  } catch (const sdk::Error& e) {
    out.push_back(e.what());
  }
  if (request.resume_after)
    out.push_back(
        "the guest would go on changing the RAM the snapshot leaves in place; snapshot with resume false "
        "(the guest stays stopped), or with ram \"file\" to let it run on");
  return out;
}

void Migration::start(const StartRequest& request) {
  const ChannelUri parsed = ChannelUri::parse(request.uri);
  if (request.mode != "precopy" && request.mode != "cpr-transfer")
    throw sdk::Error(fmt::format("mode '{}': expected precopy or cpr-transfer", request.mode));
  {
    std::lock_guard lock(mutex_);
    if (!finished(state_))
      throw sdk::Error(fmt::format("a migration is already {} ({})", to_string(state_), role_));
    if (request.mode == "precopy" && parsed.transport != Transport::Tcp && parsed.transport != Transport::Unix &&
        params_.channels > 1)
      throw sdk::Error(fmt::format("{}: only tcp and unix URIs carry {} channels; set channels to 1", request.uri,
                                   params_.channels));
  }
  const machine::RunState run_state = machine_.state();
  if (run_state != machine::RunState::Running && run_state != machine::RunState::Paused)
    throw sdk::Error(fmt::format("the VM is {}; only a running or paused guest can migrate",
                                 machine::to_string(run_state)));
  std::vector<std::string> blockers = migration_blockers(machine_);
  if (request.mode == "cpr-transfer") {
    for (std::string& b : cpr_blockers(request)) blockers.push_back(std::move(b));
  }
  if (!blockers.empty())
    throw sdk::Error(fmt::format("{} blocked: {}", request.mode == "precopy" ? "migration" : "cpr-transfer",
                                 fmt::join(blockers, "; ")));
  if (const std::vector<std::string> in_place = in_place_blockers(request); !in_place.empty())
    throw sdk::Error(fmt::format("{}", fmt::join(in_place, "; ")));
  join();
  {
    std::lock_guard lock(mutex_);
    role_ = "source";
    stats_ = std::make_unique<Stats>();
    stats_->uri = request.uri;
    stats_->mode = request.mode;
    handed_over_.clear();
    cancel_requested_ = false;
    switchover_requested_ = false;
    committed_ = false;
  }
  set_state(MigrationState::Setup);
  thread_ = std::thread([this, request] { run_source(request); });
}

void Migration::listen(const std::string& uri) {
  const ChannelUri parsed = ChannelUri::parse(uri);
  if (machine_.state() != machine::RunState::Incoming && machine_.state() != machine::RunState::Starting)
    throw sdk::Error("this molt was not started with --incoming: its guest already runs");
  {
    std::lock_guard lock(mutex_);
    if (!finished(state_)) throw sdk::Error(fmt::format("already {} ({})", to_string(state_), role_));
    listener_ = std::make_unique<Listener>(parsed);
    role_ = "destination";
    stats_ = std::make_unique<Stats>();
    stats_->uri = listener_->address();
  }
  set_state(MigrationState::Listening);
  join();
  thread_ = std::thread([this] { run_destination(); });
}

std::string Migration::listen_address() const {
  std::lock_guard lock(mutex_);
  return listener_ ? listener_->address() : std::string();
}

json::object Migration::status() const {
  std::lock_guard lock(mutex_);
  json::object out = stats_->to_json();
  out["state"] = to_string(state_);
  out["role"] = role_;
  out["mode"] = stats_->mode;
  out["parameters"] = to_json(params_);
  if (stats_->mode == "cpr-transfer")
    out["handed_over"] = role_ == "destination" ? taken_over(machine_) : handed_over_;
  return out;
}

}  // namespace molt::core::migration
