// `moltctl migrate ...`: start, receive, tune, follow and cancel a live
// migration through the monitor's migrate.* methods (docs/moltctl-migrate.md).
#pragma once

#include <CLI/CLI.hpp>

#include "cli.hpp"

namespace moltctl {

// Adds the `migrate` subcommand and its own subcommands to `app`.
void add_migrate(CLI::App& app, Runner& runner);

}  // namespace moltctl
