// The plugin's entry: molt reads MOLT_PLUGIN's fixed-layout record (magic,
// SDK ABI) first, and only then calls describe() for the device types.
#include <molt/sdk/plugin.hpp>

#include "counter_device.hpp"

namespace {
const molt::sdk::PluginInfo* describe() {
  static const molt::sdk::PluginInfo info{{pci_counter::counter_device_type()}};
  return &info;
}
}  // namespace

MOLT_PLUGIN("pci-counter", "1.0.0", describe)
