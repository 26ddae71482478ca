#include "host_bridge.hpp"

namespace molt::i440fx {

namespace {
const sdk::PciIdentity kIdentity{
    .vendor_id = 0x8086,
    .device_id = 0x1237,
    .revision = 0x02,
    .class_code = 0x060000,  // bridge, host
};
constexpr std::uint8_t kSmramDefault = 0x02;  // C_BASE_SEG: SMRAM at 0xA0000
}  // namespace

HostBridge::HostBridge(sdk::DeviceContext& ctx) : pci_(ctx, kIdentity) {
  for (unsigned i = 0; i < kPamCount; ++i)
    pci_.define_register(static_cast<std::uint16_t>(kPamFirst + i), 1, 0, 0xff);
  // D_OPEN, D_CLS, D_LCK, G_SMRAME are writable; C_BASE_SEG reads 010b.
  pci_.define_register(kSmram, 1, kSmramDefault, 0x78);
}

void HostBridge::realize() {
  pci_.attach({.slot = 0, .function = 0});
}

sdk::StateBinding HostBridge::state() {
  return sdk::StateBinding::of(sdk::pci_function_descriptor(), pci_.state());
}

sdk::DeviceType host_bridge_type() {
  return sdk::DeviceType{
      .name = "i440fx-host",
      .description = "i440FX-compatible PCI host bridge (8086:1237) at 00.0",
      .properties = {},
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<HostBridge>(ctx);
      },
  };
}

}  // namespace molt::i440fx
