#include <molt/sdk/plugin.hpp>

#include "host_bridge.hpp"
#include "piix3.hpp"

namespace {
const molt::sdk::PluginInfo* describe_i440fx_plugin() {
  static const molt::sdk::PluginInfo info{{molt::i440fx::host_bridge_type(), molt::i440fx::piix3_type()}};
  return &info;
}
}  // namespace

MOLT_PLUGIN("i440fx", "1.0.0", describe_i440fx_plugin)
