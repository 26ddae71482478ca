#include "core/monitor/machine_control.hpp"

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

#include "core/monitor/methods.hpp"
#include "core/monitor/rpc.hpp"

namespace molt::core::monitor {

namespace {

// Long enough for a vCPU busy in an emulated kernel-mode instruction stream
// (kvm_pvm) to reach its next exit.
constexpr std::chrono::milliseconds kPauseTimeout{2000};

const char* reason_name(sdk::ExitReason reason) {
  switch (reason) {
    case sdk::ExitReason::Poweroff:
      return "poweroff";
    case sdk::ExitReason::Reset:
      return "reset";
    case sdk::ExitReason::DebugExit:
      return "debug-exit";
    case sdk::ExitReason::Error:
      return "error";
  }
  return "error";
}

std::vector<AddressRange> claims_of(const io::IoBus& bus, const std::string& owner) {
  std::vector<AddressRange> out;
  for (const io::IoBus::Claim& c : bus.claims())
    if (c.owner == owner) out.push_back(AddressRange{c.base, c.length});
  return out;
}

}  // namespace

ExitInfo to_exit_info(const machine::ExitResult& result) {
  return ExitInfo{reason_name(result.reason), result.guest_value, result.status(), result.detail};
}

MachineVmControl::MachineVmControl(machine::Machine& machine, const plugin::Registry& plugins)
    : machine_(machine), plugins_(plugins) {}

VmStatus MachineVmControl::status() const {
  VmStatus s;
  s.state = machine::to_string(machine_.state());
  s.vcpus = machine_.info().vcpus;
  s.memory_bytes = machine_.info().ram_size;
  s.machine_type = machine_.info().machine_type;
  s.uptime_ms = machine_.uptime_ns() / 1'000'000;
  if (const auto exit = machine_.exit_result()) s.exit = to_exit_info(*exit);
  return s;
}

void MachineVmControl::refuse_if_held(const char* method) const {
  const std::string held = machine_.controls_held();
  if (!held.empty()) throw RpcError(kNotInThisState, fmt::format("{}: {}; nothing was changed", method, held));
}

void MachineVmControl::pause() {
  refuse_if_held("vm.pause");
  if (!machine_.pause(kPauseTimeout)) {
    throw RpcError(kNotInThisState,
                   fmt::format("vm.pause: the vCPUs did not stop within {} ms (the VM is {}); it "
                               "keeps running",
                               kPauseTimeout.count(), machine::to_string(machine_.state())));
  }
}

void MachineVmControl::resume() {
  refuse_if_held("vm.resume");
  if (!machine_.resume())
    throw RpcError(kNotInThisState,
                   fmt::format("vm.resume: the VM is {}", machine::to_string(machine_.state())));
}

void MachineVmControl::reset() {
  refuse_if_held("vm.reset");
  if (!machine_.reset(kPauseTimeout)) {
    throw RpcError(kNotInThisState,
                   fmt::format("vm.reset: the VM is {}, or its vCPUs did not stop within {} ms; nothing was reset",
                               machine::to_string(machine_.state()), kPauseTimeout.count()));
  }
}

void MachineVmControl::quit() {
  machine_.stop("stopped by vm.quit");
}

std::vector<DeviceInfo> MachineVmControl::devices() const {
  const std::vector<std::pair<sdk::PciAddress, std::string>> pci = machine_.pci().functions();
  std::vector<DeviceInfo> out;
  for (const auto& host : machine_.devices()) {
    DeviceInfo d;
    d.id = host->id();
    d.type = host->type().name;
    d.plugin = host->plugin();
    for (const auto& [address, owner] : pci)
      if (owner == d.id) d.pci.push_back(fmt::format("00:{:02x}.{}", address.slot, address.function));
    d.ports = claims_of(machine_.port_bus(), d.id);
    d.mmio = claims_of(machine_.mmio_bus(), d.id);
    d.properties = host->properties_snapshot().values();
    d.specs = host->type().properties;
    d.events = host->last_events();
    out.push_back(std::move(d));
  }
  return out;
}

void MachineVmControl::set_property(const std::string& device, const std::string& name,
                                    const sdk::PropertyValue& value) {
  for (const auto& host : machine_.devices()) {
    if (host->id() == device) return host->set_runtime_property(name, value);
  }
  throw sdk::Error("no device " + device);
}

std::vector<PluginDescription> MachineVmControl::plugins() const {
  std::vector<PluginDescription> out;
  for (const plugin::LoadedPlugin& p : plugins_.plugins())
    out.push_back(PluginDescription{p.path, p.name, p.version, p.sdk_abi, p.device_types});
  return out;
}

void MachineVmControl::connect_events(Publish publish) {
  machine_.set_state_listener([this, publish](machine::RunState state, const std::string& reason) {
    publish(kEventStateChanged, json::object{{"state", machine::to_string(state)}, {"reason", reason}});
    if (state != machine::RunState::ShuttingDown) return;
    if (const auto exit = machine_.exit_result()) publish(kEventExit, to_json(to_exit_info(*exit)));
  });
  for (const auto& host : machine_.devices()) {
    host->set_event_sink(
        [publish](const std::string& device, const std::string& event, const EventData& data) {
          publish(kEventDevice, json::object{{"device", device}, {"event", event}, {"data", to_json(data)}});
        });
  }
}

namespace {

template <class F>
auto refusing(const char* method, int code, F&& f) {
  try {
    return f();
  } catch (const sdk::Error& e) {
    throw RpcError(code, fmt::format("{}: {}", method, e.what()));
  }
}

}  // namespace

void MachineMigrationControl::start(const std::string& uri, const std::string& mode,
                                    const std::string& cpr_uri, bool ram_in_place) {
  refusing("migrate.start", kNotInThisState, [&] {
    migration_.start(
        migration::StartRequest{uri, mode.empty() ? "precopy" : mode, cpr_uri, false, ram_in_place});
  });
}

void MachineMigrationControl::snapshot(const std::string& path, bool resume, bool ram_in_place) {
  refusing("vm.snapshot", kNotInThisState, [&] {
    const std::string file = path.rfind("file:", 0) == 0 ? path.substr(5) : path;
    if (file.empty()) throw sdk::Error("path: expected a file path");
    migration_.start(migration::StartRequest{"file:" + file, "precopy", "", resume, ram_in_place});
  });
}

std::string MachineMigrationControl::incoming(const std::string& uri) {
  return refusing("migrate.incoming", kNotInThisState, [&] {
    migration_.listen(uri);
    return migration_.listen_address();
  });
}

void MachineMigrationControl::set_parameters(const json::object& changes) {
  refusing("migrate.set_parameters", kInvalidParams, [&] { migration_.set_parameters(changes); });
}

json::object MachineMigrationControl::parameters() const { return migration::to_json(migration_.parameters()); }

json::object MachineMigrationControl::status() const { return migration_.status(); }

void MachineMigrationControl::cancel() {
  refusing("migrate.cancel", kNotInThisState, [&] { migration_.cancel(); });
}

void MachineMigrationControl::switchover() {
  refusing("migrate.switchover", kNotInThisState, [&] { migration_.force_switchover(); });
}

}  // namespace molt::core::monitor
