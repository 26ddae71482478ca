#include <molt/sdk/plugin.hpp>

#include "iterative_probe.hpp"

MOLT_PLUGIN("iterative-probe", "1.0.0", molt::iterative_probe::describe_iterative_probe_plugin)
