// What the monitor's methods act on: the running VM, seen through an
// interface so the JSON-RPC layer is tested with a fake (tests/unit/monitor).
// The real one is MachineControl (machine_control.hpp). Every call is made on
// the event-loop thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/properties.hpp>

namespace molt::core::monitor {

// How the run ended, once it is ending: the same facts as the exit status.
struct ExitInfo {
  std::string reason;   // "poweroff", "reset", "debug-exit", "error"
  int guest_value = 0;  // the value written to the debug-exit port
  int exit_status = 0;  // what molt will exit with (docs/conventions.md)
  std::string detail;
};

struct VmStatus {
  std::string state;  // "starting", "running", "paused", "shutting-down"
  unsigned vcpus = 0;
  std::uint64_t memory_bytes = 0;
  std::string machine_type;
  std::uint64_t uptime_ms = 0;
  std::optional<ExitInfo> exit;
};

struct AddressRange {
  std::uint64_t base = 0;
  std::uint64_t length = 0;
};

using EventData = std::map<std::string, sdk::PropertyValue>;

struct DeviceInfo {
  std::string id;
  std::string type;
  std::string plugin;
  std::vector<std::string> pci;  // "00:03.0" for each PCI function it attached
  std::vector<AddressRange> ports;
  std::vector<AddressRange> mmio;
  std::map<std::string, sdk::PropertyValue> properties;  // resolved values
  std::vector<sdk::PropertySpec> specs;                  // the type's declarations
  std::map<std::string, EventData> events;               // latest data of each event name
};

struct PluginDescription {
  std::filesystem::path path;
  std::string name;
  std::string version;
  std::uint32_t sdk_abi = 0;
  std::vector<std::string> device_types;
};

class VmControl {
 public:
  virtual ~VmControl() = default;
  virtual VmStatus status() const = 0;
  // Each throws RpcError when it cannot be done (not in this state, not
  // supported); the VM is then as it was.
  virtual void pause() = 0;
  virtual void resume() = 0;
  virtual void reset() = 0;
  virtual void quit() = 0;
  virtual std::vector<DeviceInfo> devices() const = 0;
  // `value` is already checked against the property's spec; throws
  // sdk::Error when the device refuses it (the old value then stays).
  virtual void set_property(const std::string& device, const std::string& name,
                            const sdk::PropertyValue& value) = 0;
  virtual std::vector<PluginDescription> plugins() const = 0;
};

}  // namespace molt::core::monitor
