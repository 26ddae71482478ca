#include "debug_exit.hpp"

#include <string>

#include <molt/sdk/error.hpp>

namespace molt::debug_exit {

namespace {
constexpr std::uint64_t kStatusMask = 0x7f;
}

void DebugExitDevice::realize() {
  const sdk::Properties& props = ctx_.properties();
  const std::uint64_t iobase = props.get_uint("iobase");
  const std::uint64_t width = props.get_uint("width");
  if (width != 1 && width != 2 && width != 4) {
    throw sdk::Error(ctx_.id() + ": width " + std::to_string(width) + " is not a port size; use 1, 2 or 4");
  }
  if (iobase + width > 0x10000) {
    throw sdk::Error(ctx_.id() + ": iobase " + std::to_string(iobase) + " with width " +
                     std::to_string(width) + " reaches beyond port 0xffff; choose a lower iobase");
  }
  sdk::IoOps ops;
  ops.read = [](std::uint64_t, unsigned) -> std::uint64_t { return 0; };
  // Any write inside the port ends the VM, whatever its size or offset.
  ops.write = [this](std::uint64_t, unsigned, std::uint64_t value) {
    ctx_.machine().request_exit(sdk::ExitReason::DebugExit, static_cast<int>(value & kStatusMask));
  };
  ctx_.claim_ports(static_cast<std::uint16_t>(iobase), static_cast<std::uint16_t>(width), std::move(ops));
}

sdk::StateBinding DebugExitDevice::state() {
  return sdk::StateBinding::stateless(
      "it holds no value: reads return 0 and a write ends the VM at once, so nothing persists between accesses");
}

const sdk::PluginInfo* describe_debug_exit_plugin() {
  using sdk::PropertyType;
  static const sdk::PluginInfo info{{sdk::DeviceType{
      .name = "debug-exit",
      .description = "test port: writing V ends the VM with exit status 2V+1 (as QEMU's isa-debug-exit)",
      .properties =
          {
              {.name = "iobase",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0xf4},
               .doc = "the port",
               .max = 0xffff},
              {.name = "width",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{4},
               .doc = "port width in bytes: 1, 2 or 4",
               .min = 1,
               .max = 4},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<DebugExitDevice>(ctx);
      },
  }}};
  return &info;
}

}  // namespace molt::debug_exit
