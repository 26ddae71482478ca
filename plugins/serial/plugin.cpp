#include <molt/sdk/plugin.hpp>

#include "serial_plugin.hpp"

MOLT_PLUGIN("serial", "1.0.0", molt::serial::describe_serial_plugin)
