#include <molt/sdk/plugin.hpp>

#include "plugin_types.hpp"

MOLT_PLUGIN("fw-cfg", "1.0.0", molt::fw_cfg::describe_fw_cfg_plugin)
