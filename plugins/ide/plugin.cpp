#include <molt/sdk/plugin.hpp>

#include "piix_ide.hpp"

MOLT_PLUGIN("ide", "1.0.0", molt::ide::describe_ide_plugin)
