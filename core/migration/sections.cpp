// The engine's shared pieces: blockers, device sections, and the figures
// migrate.status reports.
#include <fmt/format.h>

#include "core/log.hpp"
#include "core/machine/machine.hpp"
#include "core/migration/engine_detail.hpp"

namespace molt::core::migration {

std::shared_ptr<spdlog::logger> log() {
  static const std::shared_ptr<spdlog::logger> logger = core::logger("core.migration");
  return logger;
}

std::vector<std::string> migration_blockers(machine::Machine& machine) {
  std::vector<std::string> out;
  for (const auto& host : machine.devices()) {
    std::lock_guard lock(host->lock());
    const sdk::StateBinding binding = host->device().state();
    if (!binding.migratable())
      out.push_back(fmt::format("device {} ({}) cannot migrate: {}", host->id(), host->type().name,
                                binding.unmigratable_reason));
  }
  return out;
}

DeviceSection::DeviceSection(machine::DeviceHost& host, sdk::IterativeState& hooks)
    : host_(host), hooks_(hooks), name_(std::string(kDevicePrefix) + host.id()) {}

bool DeviceSection::early() const { return hooks_.early(); }
int DeviceSection::priority() const { return hooks_.priority(); }

void DeviceSection::setup() {
  std::lock_guard lock(host_.lock());
  hooks_.setup();
}

std::uint64_t DeviceSection::pending() {
  std::lock_guard lock(host_.lock());
  return hooks_.pending();
}

bool DeviceSection::iterate(sdk::ChunkWriter& out, std::uint64_t budget) {
  std::lock_guard lock(host_.lock());
  return hooks_.iterate(out, budget);
}

void DeviceSection::complete(sdk::ChunkWriter& out) {
  std::lock_guard lock(host_.lock());
  hooks_.complete(out);
}

void DeviceSection::load(std::span<const std::uint8_t> chunk) {
  std::lock_guard lock(host_.lock());
  hooks_.load(chunk);
}

void DeviceSection::cleanup() {
  std::lock_guard lock(host_.lock());
  hooks_.cleanup();
}

void Migration::Stats::mark(MigrationState state) {
  const std::string next = to_string(state);
  if (!phase.empty()) phase_us.emplace_back(phase, us_since(phase_started));
  phase = next;
  phase_started = Clock::now();
  if (state == MigrationState::Completed || state == MigrationState::Failed || state == MigrationState::Cancelled)
    ended = phase_started;
}

json::object Migration::Stats::to_json() const {
  json::object phases;
  for (const auto& [name, us] : phase_us) {
    const std::uint64_t before = phases.contains(name) ? phases[name].as_uint64() : 0;
    phases[name] = before + us;
  }
  json::array channel_list;
  std::uint64_t sent = 0, received = 0;
  for (const auto& c : channels) {
    const std::uint64_t s = c->stats().bytes_sent, r = c->stats().bytes_received;
    sent += s;
    received += r;
    channel_list.push_back(json::object{{"name", c->name()}, {"bytes_sent", s}, {"bytes_received", r}});
  }
  json::object out{{"uri", uri},
                   {"total_ms", std::chrono::duration_cast<std::chrono::milliseconds>(ended.value_or(Clock::now()) -
                                                                                     started)
                                    .count()},
                   {"phases_us", phases},
                   {"bytes_sent", sent},
                   {"bytes_received", received},
                   {"channels", channel_list}};
  if (ram) {
    const RamCounters& c = ram->counters();
    out["ram"] = json::object{{"total_bytes", ram->total_pages() * kPageSize},
                              {"remaining_bytes", ram->remaining_pages() * kPageSize},
                              {"transferred_bytes", c.bytes.load()},
                              {"data_pages", c.data_pages.load()},
                              {"zero_pages", c.zero_pages.load()},
                              {"dirtied_pages", c.dirtied_pages.load()},
                              {"dirty_pages_per_s", dirty_rate},
                              {"iterations", iterations},
                              {"bandwidth_bytes_per_s", bandwidth}};
  }
  if (!ram_in_place.empty()) out["ram_in_place"] = ram_in_place;
  json::object downtime{{"expected_us", expected_downtime_us}};
  if (downtime_us) downtime["actual_us"] = *downtime_us;
  json::object breakdown;
  for (const auto& [name, us] : downtime_breakdown_us) breakdown[name] = us;
  downtime["breakdown_us"] = breakdown;
  out["downtime"] = downtime;
  if (!destination.empty()) out["destination"] = destination;
  if (!error.empty()) out["error"] = error;
  if (!differences.empty()) {
    json::array diffs;
    for (const std::string& d : differences) diffs.push_back(json::string(d));
    out["differences"] = diffs;
  }
  return out;
}

}  // namespace molt::core::migration
