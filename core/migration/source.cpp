// The source half of a migration: handshake, live passes, switchover, commit.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "core/machine/machine.hpp"
#include "core/migration/cpr.hpp"
#include "core/migration/engine_detail.hpp"
#include "core/migration/fingerprint.hpp"
#include "core/migration/machine_state.hpp"
#include "core/migration/platform_state.hpp"
#include "core/migration/ram_layout.hpp"

namespace molt::core::migration {

namespace {

constexpr std::uint64_t kPassBudget = 64ull << 20;  // bytes between checks for cancel and switchover
constexpr auto kPauseTimeout = std::chrono::milliseconds(2000);
constexpr std::uint64_t kNegligibleDowntimeUs = 2000;  // not worth another pass
constexpr std::uint64_t kMaxUsefulPasses = 30;

// The destination's answer to the fingerprint: returns normally on accept.
void await_handshake(StreamReader& back, std::vector<std::string>& differences) {
  Record r;
  if (!back.next(r) || r.tag != Tag::Handshake)
    throw sdk::Error("the destination closed the connection without answering the handshake");
  if (r.name == "accept") return;
  if (r.name != "refuse") throw sdk::Error(fmt::format("the destination answered the handshake with '{}'", r.name));
  const json::value answer = json::parse(std::string(r.payload.begin(), r.payload.end()));
  if (const json::value* list = answer.is_object() ? answer.as_object().if_contains("differences") : nullptr;
      list && list->is_array()) {
    for (const json::value& d : list->as_array())
      if (d.is_string()) differences.emplace_back(d.as_string());
  }
  throw sdk::Error(fmt::format("the destination refused the migration: {}", fmt::join(differences, "; ")));
}

// Device hosts in load-priority order (higher first; ties keep machine order).
std::vector<machine::DeviceHost*> by_priority(machine::Machine& m) {
  std::vector<std::pair<int, machine::DeviceHost*>> order;
  for (const auto& host : m.devices()) {
    std::lock_guard lock(host->lock());
    order.emplace_back(host->device().state().priority, host.get());
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<machine::DeviceHost*> out;
  for (const auto& [priority, host] : order) out.push_back(host);
  return out;
}

// Duplicates of the backend fds every device offers, asked under its lock;
// the originals stay the devices'.
std::vector<HandedDeviceFd> collect_device_fds(machine::Machine& m) {
  std::vector<HandedDeviceFd> out;
  for (const auto& host : m.devices()) {
    std::lock_guard lock(host->lock());
    const sdk::FdHandover offer = host->device().handover_fds();
    if (!offer.blocker.empty()) throw sdk::Error(fmt::format("device {}: {}", host->id(), offer.blocker));
    if (const std::string problem = invalid_handover(offer); !problem.empty())
      throw sdk::Error(fmt::format("device {}: {}", host->id(), problem));
    for (const sdk::HandedFd& f : offer.fds) {
      kvm::Fd copy(::fcntl(f.fd, F_DUPFD_CLOEXEC, 0));
      if (!copy)
        throw sdk::Error(fmt::format("device {}: cannot duplicate its fd '{}' ({}): {}", host->id(), f.name,
                                     f.fd, std::strerror(errno)));
      out.push_back(HandedDeviceFd{host->id(), f.name, std::move(copy)});
    }
  }
  if (out.size() > kMaxHandedDeviceFds)
    throw sdk::Error(fmt::format("the devices offer {} fds to hand over; at most {} can go", out.size(),
                                 kMaxHandedDeviceFds));
  return out;
}

// For migrate.status: which device handed over which fds.
json::array describe_handed_over(const std::vector<HandedDeviceFd>& fds) {
  json::array out;
  for (const HandedDeviceFd& f : fds) {
    if (out.empty() || out.back().as_object().at("device").as_string() != f.device)
      out.push_back(json::object{{"device", f.device}, {"fds", json::array{}}});
    out.back().as_object()["fds"].as_array().push_back(json::string(f.name));
  }
  return out;
}

}  // namespace

void Migration::hand_over(const StartRequest& request, const json::value& fingerprint) {
  std::vector<HandedBlock> blocks;
  for (const auto& block : machine_.ram().blocks())
    blocks.push_back(HandedBlock{block->name(), block->size(), kvm::Fd(::dup(block->fd()))});
  const std::vector<HandedDeviceFd> device_fds = collect_device_fds(machine_);
  {
    std::lock_guard lock(mutex_);
    handed_over_ = describe_handed_over(device_fds);
  }
  const json::object reply =
      hand_over_ram(ChannelUri::parse(request.cpr_uri), blocks, device_fds, fingerprint,
                    std::chrono::milliseconds(parameters().connect_timeout_ms));
  if (const json::value* ok = reply.if_contains("accept"); ok && ok->is_bool() && ok->as_bool()) return;
  std::vector<std::string> differences;
  if (const json::value* list = reply.if_contains("differences"); list && list->is_array()) {
    for (const json::value& d : list->as_array())
      if (d.is_string()) differences.emplace_back(d.as_string());
  }
  const json::value* error = reply.if_contains("error");
  std::lock_guard lock(mutex_);
  stats_->differences = differences;
  if (error && error->is_string())
    throw sdk::Error(fmt::format("the new molt refused the RAM: {}", std::string(error->as_string())));
  throw sdk::Error(fmt::format("the new molt refused the migration: {}", fmt::join(differences, "; ")));
}

void Migration::record_in_place_layout(StreamWriter& out) {
  const std::vector<RamLayoutBlock> layout = in_place_layout(machine_.ram());
  out.record(Tag::RamLayout, kRamLayoutName, ram_layout_json(layout));
  std::lock_guard lock(mutex_);
  for (const RamLayoutBlock& b : layout)
    stats_->ram_in_place.push_back(
        json::object{{"block", b.name}, {"path", b.path.string()}, {"size", b.size}});
}

void Migration::sync_snapshot(Channel& snapshot, bool ram_files) {
  // A snapshot is only whole once it is on its storage (and, with RAM left in
  // place, its RAM files too): then it survives a host reboot.
  if (ram_files)
    for (const auto& block : machine_.ram().blocks()) block->sync();
  if (::fsync(snapshot.fd()) < 0)
    throw sdk::Error(fmt::format("cannot write the snapshot file to its storage: {}", std::strerror(errno)));
}

void Migration::run_source(StartRequest request) {
  const std::string& uri = request.uri;
  const bool cpr = request.mode == "cpr-transfer";
  const bool in_place = request.ram_in_place;  // a snapshot that leaves RAM in its files
  bool paused_by_us = false;
  bool held_by_us = false;  // a guest paused before the migration: its devices held for the switchover
  std::shared_ptr<RamSection> ram;
  std::vector<std::unique_ptr<DeviceSection>> devices;
  std::vector<std::shared_ptr<Channel>> channels;
  try {
    const MigrationParameters params = parameters();
    const ChannelUri target = ChannelUri::parse(uri);
    auto limiter = std::make_shared<RateLimiter>(params.max_bandwidth);
    auto open = [&](const std::string& name) {
      std::shared_ptr<Channel> c = cpr ? connect_when_listening(target, std::chrono::milliseconds(params.connect_timeout_ms))
                                       : connect_channel(target, std::chrono::milliseconds(params.connect_timeout_ms));
      c->set_rate_limit(limiter);
      std::lock_guard lock(mutex_);
      if (cancel_requested_) throw sdk::Error("cancelled");
      stats_->channels.push_back(c);
      stats_->limiter = limiter;
      live_channels_.push_back(c.get());
      channels.push_back(c);
      log()->debug("channel {} open to {}", name, uri);
      return c;
    };
    const json::value fingerprint = to_json(fingerprint_of(machine_));
    if (cpr) hand_over(request, fingerprint);
    std::shared_ptr<Channel> main = open("main");
    StreamWriter out(*main, kKindMigration);
    out.record(Tag::Fingerprint, "machine", json::serialize(fingerprint));
    out.record(Tag::Phase, "setup",
               json::serialize(json::object{{"channels", cpr ? 1u : params.channels}, {"mode", request.mode}}));
    if (in_place) record_in_place_layout(out);
    main->flush();
    std::optional<StreamReader> back;
    if (target.two_way()) {
      back.emplace(*main, kKindReturnPath);
      std::vector<std::string> differences;
      try {
        await_handshake(*back, differences);
      } catch (...) {
        std::lock_guard lock(mutex_);
        stats_->differences = differences;
        throw;
      }
    }

    std::vector<std::unique_ptr<StreamWriter>> lane_streams;
    std::vector<std::unique_ptr<RecordChunkWriter>> lane_writers;
    std::vector<sdk::ChunkWriter*> lanes;
    for (unsigned i = 1; !cpr && i < params.channels; ++i) {
      std::shared_ptr<Channel> c = open(fmt::format("ram{}", i));
      lane_streams.push_back(std::make_unique<StreamWriter>(*c, kKindRamChannel));
      lane_writers.push_back(std::make_unique<RecordChunkWriter>(*lane_streams.back(), std::string(kRamSection)));
      lanes.push_back(lane_writers.back().get());
    }
    if (!cpr && !in_place) {  // cpr-transfer and in-place snapshots: RAM stays where it is
      ram = std::make_shared<RamSection>(machine_.ram(), &machine_);
      ram->set_extra_lanes(lanes);
    }
    for (const auto& host : machine_.devices()) {
      std::lock_guard lock(host->lock());
      if (sdk::IterativeState* hooks = host->device().state().iterative)
        devices.push_back(std::make_unique<DeviceSection>(*host, *hooks));
    }
    // The destination loads chunks as they come: send (and complete) the
    // sections in their load order, higher priority first.
    std::stable_sort(devices.begin(), devices.end(),
                     [](const auto& a, const auto& b) { return a->priority() > b->priority(); });
    {
      std::lock_guard lock(mutex_);
      stats_->ram = ram;
    }
    set_state(MigrationState::Active);

    // Live: early device sections whole, then passes over RAM and the rest.
    if (ram) ram->setup();
    for (auto& d : devices) d->setup();
    for (auto& d : devices) {
      if (!d->early()) continue;
      RecordChunkWriter w(out, d->name());
      while (!d->iterate(w, kPassBudget))
        if (cancel_requested_) throw sdk::Error("cancelled");
    }
    out.record(Tag::Phase, "live", std::string_view{});
    if (!ram) {  // cpr-transfer: no RAM passes, but the live sections still send what they can before the pause
      for (auto& d : devices) {
        if (d->early()) continue;
        RecordChunkWriter w(out, d->name());
        while (!d->iterate(w, kPassBudget))
          if (cancel_requested_) throw sdk::Error("cancelled");
      }
    }
    RecordChunkWriter ram_out(out, std::string(kRamSection));
    auto bytes_now = [&] {
      std::uint64_t total = 0;
      for (const auto& c : channels) total += c->stats().bytes_sent;
      return total;
    };
    Clock::time_point pass_start = Clock::now();
    std::uint64_t pass_bytes = bytes_now(), pass_dirtied = ram ? ram->counters().dirtied_pages.load() : 0;
    std::uint64_t previous_pending = ~0ull;
    for (; ram;) {
      if (cancel_requested_) throw sdk::Error("cancelled");
      bool done = ram->iterate(ram_out, kPassBudget);
      for (auto& d : devices) {
        if (d->early()) continue;
        RecordChunkWriter w(out, d->name());
        done = d->iterate(w, kPassBudget) && done;
      }
      if (!done) continue;
      std::uint64_t pending = ram->pending();
      for (auto& d : devices) pending += d->pending();
      const double seconds = std::max(1e-6, std::chrono::duration<double>(Clock::now() - pass_start).count());
      const std::uint64_t sent = bytes_now() - pass_bytes;
      bool switch_over;
      {
        std::lock_guard lock(mutex_);
        ++stats_->iterations;
        if (sent > 0) stats_->bandwidth = static_cast<std::uint64_t>(static_cast<double>(sent) / seconds);
        stats_->dirty_rate =
            static_cast<std::uint64_t>(static_cast<double>(ram->counters().dirtied_pages - pass_dirtied) / seconds);
        const double rate = static_cast<double>(std::max<std::uint64_t>(stats_->bandwidth, 1));
        stats_->expected_downtime_us = static_cast<std::uint64_t>(static_cast<double>(pending) * 1e6 / rate);
        // Within the limit, another pass is still worth it while each pass
        // leaves markedly less behind: the pause then shrinks further.
        const bool fits = stats_->expected_downtime_us <= params_.downtime_limit_ms * 1000;
        const bool shrinking = pending < previous_pending - previous_pending / 4;
        const bool negligible = stats_->expected_downtime_us <= kNegligibleDowntimeUs;
        switch_over = (fits && (!shrinking || negligible || stats_->iterations >= kMaxUsefulPasses)) ||
                      switchover_requested_ ||
                      (params_.max_iterations != 0 && stats_->iterations >= params_.max_iterations);
      }
      previous_pending = pending;
      if (switch_over) break;
      pass_start = Clock::now();
      pass_bytes = bytes_now();
      pass_dirtied = ram->counters().dirtied_pages;
    }

    // Stop and copy.
    machine_.hold_controls("a migration is switching over");
    const Clock::time_point paused_at = Clock::now();
    if (machine_.state() == machine::RunState::Running) {
      if (!machine_.pause_for_migration(kPauseTimeout))
        throw sdk::Error("the vCPUs did not stop for the switchover");
      paused_by_us = true;
    } else if (machine_.state() == machine::RunState::Paused) {
      machine_.hold_devices();  // as pause_for_migration does: nothing changes what is saved
      held_by_us = true;
    } else {
      throw sdk::Error(fmt::format("the VM became {} during the migration", machine::to_string(machine_.state())));
    }
    std::vector<std::pair<std::string, std::uint64_t>> breakdown;
    breakdown.emplace_back("vcpu-stop", us_since(paused_at));
    set_state(MigrationState::Device);
    out.record(Tag::Phase, "stopped", std::string_view{});
    Clock::time_point t = Clock::now();
    if (ram) {
      ram->complete(ram_out);
      for (auto& s : lane_streams) s->finish();
      breakdown.emplace_back("ram", us_since(t));
    }
    for (auto& d : devices) {
      t = Clock::now();
      RecordChunkWriter w(out, d->name());
      d->complete(w);
      breakdown.emplace_back(d->name(), us_since(t));
    }
    for (machine::DeviceHost* host : by_priority(machine_)) {
      t = Clock::now();
      std::lock_guard lock(host->lock());
      const sdk::StateBinding binding = host->device().state();
      if (!binding.descriptor) continue;
      host->device().pre_save();
      out.record(Tag::DeviceState, host->id(), sdk::save_state(*binding.descriptor, binding.state));
      breakdown.emplace_back("device:" + host->id(), us_since(t));
    }
    t = Clock::now();
    for (std::size_t i = 0; i < machine_.vcpu_count(); ++i)
      out.record(Tag::CpuState, fmt::format("cpu{}", i), save_vcpu(machine_.vcpu(i), machine_.migratable_msrs()));
    breakdown.emplace_back("vcpus", us_since(t));
    t = Clock::now();
    out.record(Tag::MachineState, "kvm", save_vm(machine_.vm()));
    out.record(Tag::MachineState, "pci-host", save_pci_host(machine_.pci()));
    breakdown.emplace_back("irqchip-pit-clock", us_since(t));
    t = Clock::now();
    out.finish();
    breakdown.emplace_back("send", us_since(t));

    if (!back) {  // a file: nobody to confirm; the file is the guest now (or a copy of it)
      if (!request.resume_after) {  // a resumed guest's snapshot is synced once it runs again
        t = Clock::now();
        sync_snapshot(*main, in_place);
        breakdown.emplace_back("sync", us_since(t));
      }
      committed_ = !request.resume_after;
      if (request.resume_after) {
        if (paused_by_us) machine_.resume_after_migration();
        if (held_by_us) machine_.release_devices();
        paused_by_us = held_by_us = false;
      } else {
        machine_.enter_post_migrate();
      }
      {
        std::lock_guard lock(mutex_);
        stats_->downtime_us = us_since(paused_at);
        stats_->downtime_breakdown_us = breakdown;
      }
      if (request.resume_after) sync_snapshot(*main, false);
    } else {
      t = Clock::now();
      Record r;
      if (!back->next(r) || r.tag != Tag::Status)
        throw sdk::Error("the destination closed the connection while loading the state");
      const json::value report = json::parse(std::string(r.payload.begin(), r.payload.end()));
      if (r.name != "loaded") {
        const json::value* why = report.is_object() ? report.as_object().if_contains("error") : nullptr;
        throw sdk::Error(fmt::format("the destination could not load the state: {}",
                                     why && why->is_string() ? std::string(why->as_string()) : r.name));
      }
      breakdown.emplace_back("destination-load", us_since(t));
      {
        std::lock_guard lock(mutex_);
        if (cancel_requested_) throw sdk::Error("cancelled");
        committed_ = true;
        if (report.is_object()) stats_->destination = report.as_object();
      }
      t = Clock::now();
      try {
        StreamWriter commit(*main, kKindCommit);
        commit.record(Tag::Phase, "go", std::string_view{});
        commit.finish();
      } catch (...) {
        committed_ = false;
        throw;
      }
      const std::uint64_t until_commit_us = us_since(paused_at);
      breakdown.emplace_back("commit", us_since(t));
      machine_.enter_post_migrate();
      // The pause ends when the destination's vCPUs start: it reports how long
      // that took after the commit arrived (its "resumed" may then wait for a
      // CPU behind the guest it just started, which is no longer downtime).
      std::uint64_t start_us = 0;
      try {
        if (back->next(r) && r.tag == Tag::Status && r.name == "resumed") {
          const json::value resumed = json::parse(std::string(r.payload.begin(), r.payload.end()));
          const json::value* v = resumed.is_object() ? resumed.as_object().if_contains("start_us") : nullptr;
          if (v && v->is_number()) start_us = v->to_number<std::uint64_t>();
          breakdown.emplace_back("destination-start", start_us);
          // Read on to the return path's end record: closing before it came
          // would fail the destination's last write.
          while (back->next(r)) {
          }
        }
      } catch (const std::exception& e) {
        log()->warn("the destination did not confirm it resumed the guest: {}", e.what());
      }
      {
        std::lock_guard lock(mutex_);
        stats_->downtime_us = until_commit_us + start_us;
        stats_->downtime_breakdown_us = breakdown;
      }
      if (cpr) complete_handover(machine_, sdk::HandoverSide::Source);
    }
    if (ram) ram->cleanup();
    for (auto& d : devices) d->cleanup();
    {
      std::lock_guard lock(mutex_);
      live_channels_.clear();
    }
    for (const auto& c : channels) c->shutdown();
    machine_.hold_controls("");
    set_state(MigrationState::Completed);
  } catch (const std::exception& e) {
    if (ram) ram->cleanup();
    for (auto& d : devices) d->cleanup();
    {
      std::lock_guard lock(mutex_);
      live_channels_.clear();
    }
    for (const auto& c : channels) c->shutdown();
    if (paused_by_us) machine_.resume_after_migration();
    if (held_by_us) machine_.release_devices();
    machine_.hold_controls("");
    const bool cancelled = cancel_requested_;
    set_state(cancelled ? MigrationState::Cancelled : MigrationState::Failed,
              cancelled ? std::string("migrate.cancel was called; the guest runs on here") : std::string(e.what()));
  }
}

}  // namespace molt::core::migration
