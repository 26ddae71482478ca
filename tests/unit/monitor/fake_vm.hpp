// A VmControl without KVM: a state machine and two devices, one with a
// property settable at run time that refuses the value "rejected".
#pragma once

#include <string>

#include "core/monitor/methods.hpp"
#include "core/monitor/rpc.hpp"
#include "core/monitor/vm_control.hpp"

namespace molt::core::monitor::testing {

class FakeVm final : public VmControl {
 public:
  FakeVm();
  VmStatus status() const override;
  void pause() override {
    state = "paused";
    ++pauses;
  }
  void resume() override { state = "running"; }
  void reset() override {
    if (state == "shutting-down") throw RpcError(kNotInThisState, "vm.reset: the VM is shutting-down");
    ++resets;
  }
  void quit() override { state = "shutting-down"; }
  std::vector<DeviceInfo> devices() const override { return devices_; }
  void set_property(const std::string& device, const std::string& name,
                    const sdk::PropertyValue& value) override;
  std::vector<PluginDescription> plugins() const override;

  std::string state = "running";
  int resets = 0;
  int pauses = 0;
  std::vector<DeviceInfo> devices_;
};

// Runs one line through the method table with a fresh or given session.
json::value call_line(FakeVm& vm, const std::string& line, Session* session = nullptr);
// The same for {"jsonrpc":"2.0","id":1,"method":method,"params":params}.
json::value call(FakeVm& vm, const std::string& method, const json::object& params = {},
                 Session* session = nullptr);
// The error code of a reply (0 when it is a result).
int error_code(const json::value& reply);
std::string error_message(const json::value& reply);

}  // namespace molt::core::monitor::testing
