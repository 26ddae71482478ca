// `molt run`: from a machine file and command-line overrides to a running VM.
#pragma once

#include <signal.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace molt::core::app {

struct RunOptions {
  std::string machine_file;
  std::optional<std::string> kernel;
  std::optional<std::string> firmware;
  std::optional<std::string> initrd;
  std::optional<std::string> cmdline;
  std::optional<std::string> memory;
  std::optional<unsigned> vcpus;
  std::vector<std::string> plugin_dirs;
  // The JSON-RPC monitor's UNIX socket (docs/monitor.md), instead of the file's api_socket.
  std::optional<std::string> api_socket;
  // Receive a migration instead of booting (a channel URI, or "defer").
  std::optional<std::string> incoming;
  // cpr-transfer: take the source's RAM memfds on this unix:PATH first.
  std::optional<std::string> cpr_channel;
  // Restore a snapshot file (same as --incoming file:PATH).
  std::optional<std::string> restore;
};

void add_run_options(CLI::App& cmd, RunOptions& options);

// Loads, validates and runs; returns molt's exit status (docs/conventions.md).
// Throws std::exception with one sentence when the machine can't start.
int run_machine(const RunOptions& options, const sigset_t& stop_signals);

}  // namespace molt::core::app
