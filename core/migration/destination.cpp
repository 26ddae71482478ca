// The destination half of a migration: answer the handshake, take RAM as it
// comes, hold everything else in validated scratch state, apply it only once
// the stream checked out, run the guest only on the source's commit.
#include <algorithm>
#include <map>

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

std::string text_of(const Record& r) { return std::string(r.payload.begin(), r.payload.end()); }

// Everything but RAM, as it arrives: checked, not yet applied.
struct PendingState {
  std::map<std::string, std::vector<std::uint8_t>> devices;  // id -> SDK record
  std::map<std::size_t, DecodedVcpu> vcpus;
  std::optional<DecodedVm> vm;
  std::optional<std::uint32_t> pci_address;
};

std::size_t vcpu_index(const std::string& name, std::size_t count) {
  std::size_t index = 0;
  if (name.size() < 4 || name.compare(0, 3, "cpu") != 0 ||
      name.find_first_not_of("0123456789", 3) != std::string::npos || name.size() > 6)
    throw sdk::Error(fmt::format("a vCPU state named '{}'; expected cpu0 to cpu{}", name, count - 1));
  index = std::stoul(name.substr(3));
  if (index >= count)
    throw sdk::Error(fmt::format("state for {} but this machine has {} vCPU(s)", name, count));
  return index;
}

// A device's state decoded into a scratch copy: all of them are decoded (and
// their descriptors' checks run) before any live device changes.
struct ScratchDevice {
  machine::DeviceHost* host;
  sdk::StateBinding binding;
  std::shared_ptr<void> scratch;
};

std::vector<ScratchDevice> decode_devices(machine::Machine& m, const PendingState& pending) {
  std::vector<ScratchDevice> out;
  for (const auto& [id, record] : pending.devices) {
    const bool known = std::any_of(m.devices().begin(), m.devices().end(), [&](const auto& h) { return h->id() == id; });
    if (!known) throw sdk::Error(fmt::format("the stream holds state for device {}, which this machine lacks", id));
  }
  for (const auto& host : m.devices()) {
    std::lock_guard lock(host->lock());
    sdk::StateBinding binding = host->device().state();
    if (!binding.descriptor) continue;
    const auto found = pending.devices.find(host->id());
    if (found == pending.devices.end())
      throw sdk::Error(fmt::format("device {}: the stream holds no state for it", host->id()));
    std::shared_ptr<void> scratch = binding.descriptor->clone(binding.state);
    try {
      sdk::load_state(*binding.descriptor, scratch.get(), found->second);
    } catch (const sdk::Error& e) {
      throw sdk::Error(fmt::format("device {}: {}", host->id(), e.what()));
    }
    out.push_back(ScratchDevice{host.get(), std::move(binding), std::move(scratch)});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ScratchDevice& a, const ScratchDevice& b) { return a.binding.priority > b.binding.priority; });
  return out;
}

// A snapshot's ram-layout record: every block it left in place must be the
// very RAM file this machine mapped with its pages kept (molt run --restore
// checked it before building the VM). Returns whether any block is in place.
bool check_ram_layout(machine::Machine& m, const Record& r) {
  const std::vector<RamLayoutBlock> layout = parse_ram_layout(text_of(r));
  for (const RamLayoutBlock& b : layout) {
    if (!b.in_place()) continue;
    const memory::RamBlock* mine = nullptr;
    for (const auto& block : m.ram().blocks())
      if (block->name() == b.name) mine = block.get();
    if (!mine || mine->path() != b.path || mine->size() != b.size)
      throw sdk::Error(fmt::format("the snapshot left RAM block {} in place in {}; this machine's RAM is not "
                                   "that file",
                                   b.name, b.path.string()));
    if (!mine->contents_kept())
      throw sdk::Error(fmt::format("the snapshot left RAM in place in {}, but this molt emptied that file "
                                   "when it started; restore it with molt run MACHINE --restore FILE, which "
                                   "keeps the pages",
                                   b.path.string()));
  }
  return any_in_place(layout);
}

}  // namespace

void Migration::run_destination() {
  std::vector<std::shared_ptr<Channel>> channels;
  std::optional<StreamWriter> back;
  std::vector<std::thread> lanes;
  std::mutex lane_mutex;
  std::string lane_error;
  auto register_channel = [&](std::shared_ptr<Channel> c) {
    std::lock_guard lock(mutex_);
    stats_->channels.push_back(c);
    live_channels_.push_back(c.get());
    channels.push_back(c);
  };
  auto stop_lanes = [&] {
    {
      std::lock_guard lock(mutex_);
      if (listener_) listener_->shutdown();
      for (Channel* c : live_channels_) c->shutdown();
    }
    for (std::thread& t : lanes)
      if (t.joinable()) t.join();
  };
  try {
    std::shared_ptr<Channel> main = listener_->accept();
    register_channel(main);
    set_state(MigrationState::Receiving);
    const Clock::time_point received_at = Clock::now();
    StreamReader in(*main, kKindMigration);
    Record r;
    if (!in.next(r) || r.tag != Tag::Fingerprint)
      throw sdk::Error("the stream does not begin with the source's machine fingerprint");
    const MachineFingerprint source = fingerprint_from_json(json::parse(text_of(r)));
    if (!in.next(r) || r.tag != Tag::Phase || r.name != "setup")
      throw sdk::Error("the stream lacks its setup record after the fingerprint");
    const json::value setup = json::parse(text_of(r));
    const json::value* count = setup.is_object() ? setup.as_object().if_contains("channels") : nullptr;
    const std::uint64_t lane_count = count && count->is_number() ? count->to_number<std::uint64_t>() : 0;
    if (lane_count < 1 || lane_count > kMaxChannels)
      throw sdk::Error(fmt::format("the source asks for {} channels; 1 to {} are possible", lane_count, kMaxChannels));
    const json::value* mode = setup.as_object().if_contains("mode");
    const bool cpr = mode && mode->is_string() && mode->as_string() == "cpr-transfer";
    {
      std::lock_guard lock(mutex_);
      stats_->mode = cpr ? "cpr-transfer" : "precopy";
    }

    std::vector<std::string> differences = compare(source, fingerprint_of(machine_));
    if (cpr != machine_.ram_adopted())
      differences.push_back(cpr ? "mode: cpr-transfer at source, but this molt did not take the RAM: start it with "
                                  "--cpr-channel unix:PATH and give the source that channel"
                                : "mode: precopy at source, but this molt took RAM over a cpr channel");
    const bool two_way = ChannelUri::parse(stats_->uri).two_way();
    if (two_way) {
      json::array list;
      for (const std::string& d : differences) list.push_back(json::string(d));
      back.emplace(*main, kKindReturnPath);
      back->record(Tag::Handshake, differences.empty() ? "accept" : "refuse",
                   json::serialize(json::object{{"differences", list}}));
      main->flush();
    }
    if (!differences.empty()) {
      {
        std::lock_guard lock(mutex_);
        stats_->differences = differences;
      }
      throw sdk::Error(fmt::format("the source's machine differs from this one: {}", fmt::join(differences, "; ")));
    }
    auto ram = std::make_shared<RamSection>(machine_.ram(), nullptr);
    {
      std::lock_guard lock(mutex_);
      stats_->ram = ram;
    }
    for (std::uint64_t i = 1; i < lane_count; ++i) {
      lanes.emplace_back([&, ram] {
        try {
          std::shared_ptr<Channel> c = listener_->accept();
          register_channel(c);
          StreamReader lane(*c, kKindRamChannel);
          Record chunk;
          while (lane.next(chunk)) {
            if (chunk.tag != Tag::Chunk || chunk.name != kRamSection)
              throw sdk::Error(fmt::format("a RAM channel carries a {} record '{}'", to_string(chunk.tag), chunk.name));
            ram->load(chunk.payload);
          }
        } catch (const std::exception& e) {
          std::lock_guard lock(lane_mutex);
          if (lane_error.empty()) lane_error = e.what();
          std::lock_guard machine_lock(mutex_);
          for (Channel* c : live_channels_) c->shutdown();  // the main reader stops too
        }
      });
    }

    std::map<std::string, std::unique_ptr<DeviceSection>> sections;
    for (const auto& host : machine_.devices()) {
      std::lock_guard lock(host->lock());
      if (sdk::IterativeState* hooks = host->device().state().iterative) {
        auto section = std::make_unique<DeviceSection>(*host, *hooks);
        sections.emplace(section->name(), std::move(section));
      }
    }
    PendingState pending;
    bool ram_in_place = false, ram_chunks = false;
    try {
      while (in.next(r)) {
        switch (r.tag) {
          case Tag::Chunk:
            if (r.name == kRamSection) {
              if (cpr) throw sdk::Error("a RAM chunk in a cpr-transfer stream: the RAM is shared, none may be sent");
              if (ram_in_place) throw sdk::Error("a RAM chunk in a snapshot that left the RAM in place");
              ram_chunks = true;
              ram->load(r.payload);
            } else if (auto s = sections.find(r.name); s != sections.end()) {
              s->second->load(r.payload);
            } else {
              throw sdk::Error(fmt::format("a chunk for section '{}', which nothing here migrates", r.name));
            }
            break;
          case Tag::Phase: break;
          case Tag::RamLayout:
            if (ram_chunks)
              throw sdk::Error("the ram-layout record comes after RAM chunks; it belongs before them");
            ram_in_place = check_ram_layout(machine_, r);
            break;
          case Tag::DeviceState:
            if (!pending.devices.emplace(r.name, r.payload).second)
              throw sdk::Error(fmt::format("device {}: its state appears twice in the stream", r.name));
            break;
          case Tag::CpuState: {
            const std::size_t index = vcpu_index(r.name, machine_.vcpu_count());
            if (!pending.vcpus.emplace(index, DecodedVcpu(r.payload)).second)
              throw sdk::Error(fmt::format("{}: its state appears twice in the stream", r.name));
            break;
          }
          case Tag::MachineState:
            if (r.name == "kvm") pending.vm.emplace(r.payload);
            else if (r.name == "pci-host") pending.pci_address = decode_pci_host(r.payload);
            else throw sdk::Error(fmt::format("machine state '{}' is unknown to this molt", r.name));
            break;
          default:
            throw sdk::Error(fmt::format("a {} record '{}' has no place in a migration stream", to_string(r.tag), r.name));
        }
      }
    } catch (const sdk::Error& e) {
      std::lock_guard lock(lane_mutex);
      if (!lane_error.empty()) throw sdk::Error(lane_error);
      throw;
    }
    for (std::thread& t : lanes) t.join();
    lanes.clear();
    if (!lane_error.empty()) throw sdk::Error(lane_error);
    const std::uint64_t receive_us = us_since(received_at);

    // Everything arrived and the checksums held: check completeness, decode, apply.
    const Clock::time_point load_start = Clock::now();
    if (pending.vcpus.size() != machine_.vcpu_count())
      throw sdk::Error(fmt::format("the stream holds state for {} vCPU(s); this machine has {}", pending.vcpus.size(),
                                   machine_.vcpu_count()));
    if (!pending.vm) throw sdk::Error("the stream holds no irqchip, PIT and clock state");
    std::vector<ScratchDevice> scratch = decode_devices(machine_, pending);
    if (pending.pci_address) machine_.pci().set_config_address(*pending.pci_address);
    json::object device_us;
    for (ScratchDevice& d : scratch) {
      const Clock::time_point t = Clock::now();
      std::lock_guard lock(d.host->lock());
      d.binding.descriptor->assign(d.binding.state, d.scratch.get());
      d.host->device().post_load();
      device_us[d.host->id()] = us_since(t);
    }
    for (auto& [index, vcpu] : pending.vcpus) vcpu.apply(machine_.vcpu(index));
    // Last: the irqchip and PIT as the source had them, over whatever the
    // devices' post_load and the vCPUs' LAPICs did to them; then the clock.
    pending.vm->apply(machine_.vm());
    const std::uint64_t load_us = us_since(load_start);

    if (back) {
      back->record(Tag::Status, "loaded",
                   json::serialize(json::object{{"receive_us", receive_us}, {"load_us", load_us}, {"devices_us", device_us}}));
      main->flush();
      StreamReader commit(*main, kKindCommit);
      Record go;
      if (!commit.next(go) || go.tag != Tag::Phase || go.name != "go")
        throw sdk::Error("the source did not commit the migration");
      while (commit.next(go)) {
      }
    }
    const Clock::time_point go_at = Clock::now();
    {
      std::lock_guard lock(mutex_);
      committed_ = true;
      live_channels_.clear();
    }
    if (!machine_.start_incoming()) throw sdk::Error("the machine stopped waiting for the migration");
    const std::uint64_t start_us = us_since(go_at);
    // The handed-over backends are this molt's now (the source was told at its commit).
    if (cpr) complete_handover(machine_, sdk::HandoverSide::Destination);
    if (back) {
      try {
        back->record(Tag::Status, "resumed", json::serialize(json::object{{"start_us", start_us}}));
        back->finish();
      } catch (const std::exception& e) {
        log()->warn("the guest runs; the source did not hear so: {}", e.what());
      }
    }
    for (const auto& c : channels) c->shutdown();
    set_state(MigrationState::Completed);
  } catch (const std::exception& e) {
    const std::string why = cancel_requested_ ? std::string("cancelled") : std::string(e.what());
    if (back) {
      try {
        back->record(Tag::Status, "failed", json::serialize(json::object{{"error", why}}));
        back->finish();
      } catch (const std::exception&) {
        // The source is gone; it resumes its guest on its own.
      }
    }
    stop_lanes();
    set_state(cancel_requested_ ? MigrationState::Cancelled : MigrationState::Failed, why);
    machine_.fail_incoming(why);
  }
}

}  // namespace molt::core::migration
