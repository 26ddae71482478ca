// The serial plugin's description: its one device type, "serial-16550a".
// plugin.cpp exports it; unit tests call it to create devices.
#pragma once

#include <molt/sdk/plugin.hpp>

namespace molt::serial {

const sdk::PluginInfo* describe_serial_plugin();

}  // namespace molt::serial
