// Pieces the engine's source and destination halves share; not for use
// outside core/migration.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <molt/sdk/migration.hpp>

#include "core/migration/channel.hpp"
#include "core/migration/engine.hpp"
#include "core/migration/ram.hpp"
#include "core/migration/stream.hpp"

namespace molt::core::machine {
class DeviceHost;
}

namespace molt::core::migration {

inline constexpr unsigned kMaxChannels = 16;
inline constexpr const char* kEventMigrationState = "migrate.state-changed";
inline constexpr std::string_view kKindCommit = "commit";  // source -> destination after the main stream's end
inline constexpr std::string_view kRamSection = "ram";
inline constexpr std::string_view kDevicePrefix = "device/";

std::shared_ptr<spdlog::logger> log();

using Clock = std::chrono::steady_clock;
inline std::uint64_t us_since(Clock::time_point t) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

// Every device that declared itself unmigratable, as "device <id> (<type>): <reason>".
std::vector<std::string> migration_blockers(machine::Machine& machine);

// A device's iterative state, its hooks run under the device's lock.
class DeviceSection final : public sdk::IterativeState {
 public:
  DeviceSection(machine::DeviceHost& host, sdk::IterativeState& hooks);
  const std::string& name() const { return name_; }
  bool early() const override;
  int priority() const override;
  void setup() override;
  std::uint64_t pending() override;
  bool iterate(sdk::ChunkWriter& out, std::uint64_t budget) override;
  void complete(sdk::ChunkWriter& out) override;
  void load(std::span<const std::uint8_t> chunk) override;
  void cleanup() override;

 private:
  machine::DeviceHost& host_;
  sdk::IterativeState& hooks_;
  std::string name_;
};

// Chunks of one section as Chunk records on a stream.
class RecordChunkWriter final : public sdk::ChunkWriter {
 public:
  RecordChunkWriter(StreamWriter& stream, std::string section) : stream_(stream), section_(std::move(section)) {}
  void write(std::span<const std::uint8_t> chunk) override { stream_.record(Tag::Chunk, section_, chunk); }

 private:
  StreamWriter& stream_;
  std::string section_;
};

// What migrate.status reports. Guarded by Migration::mutex_.
struct Migration::Stats {
  std::string uri;
  std::string mode = "precopy";
  std::string error;
  std::vector<std::string> differences;
  Clock::time_point started = Clock::now();
  std::optional<Clock::time_point> ended;  // total_ms stops here
  std::vector<std::pair<std::string, std::uint64_t>> phase_us;  // time spent in each state, in order
  Clock::time_point phase_started = Clock::now();
  std::string phase;
  std::vector<std::shared_ptr<Channel>> channels;
  std::shared_ptr<RateLimiter> limiter;
  std::shared_ptr<RamSection> ram;
  json::array ram_in_place;  // in-place snapshots: {"block", "path", "size"} of each RAM file
  std::uint64_t iterations = 0;
  std::uint64_t bandwidth = 0;        // bytes/s in the last pass
  std::uint64_t dirty_rate = 0;       // pages/s dirtied during the last pass
  std::uint64_t expected_downtime_us = 0;
  std::optional<std::uint64_t> downtime_us;
  std::vector<std::pair<std::string, std::uint64_t>> downtime_breakdown_us;
  json::object destination;  // what the destination reported with "loaded"

  void mark(MigrationState state);
  json::object to_json() const;
};

}  // namespace molt::core::migration
