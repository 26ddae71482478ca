#pragma once

#include <molt/sdk/plugin.hpp>

namespace molt::fw_cfg {
// The plugin's device types: "fw-cfg" and "debugcon".
const sdk::PluginInfo* describe_fw_cfg_plugin();
}  // namespace molt::fw_cfg
