// The "debug-exit" device: a write of V to its port ends the VM with
// ExitReason::DebugExit and status V & 0x7f, which molt reports as exit
// status 2V+1 (docs/conventions.md), the encoding of QEMU's isa-debug-exit.
#pragma once

#include <cstdint>

#include <molt/sdk/device.hpp>
#include <molt/sdk/plugin.hpp>

namespace molt::debug_exit {

class DebugExitDevice final : public sdk::Device {
 public:
  explicit DebugExitDevice(sdk::DeviceContext& ctx) : ctx_(ctx) {}

  void realize() override;
  sdk::StateBinding state() override;

 private:
  sdk::DeviceContext& ctx_;
};

const sdk::PluginInfo* describe_debug_exit_plugin();

}  // namespace molt::debug_exit
