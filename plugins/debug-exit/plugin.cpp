#include <molt/sdk/plugin.hpp>

#include "debug_exit.hpp"

MOLT_PLUGIN("debug-exit", "1.0.0", molt::debug_exit::describe_debug_exit_plugin)
