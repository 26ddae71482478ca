// molt: the command line. `molt run MACHINE.json` boots a machine description.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <molt/sdk/error.hpp>

#include "core/app/dump_command.hpp"
#include "core/app/run_command.hpp"
#include "core/log.hpp"
#include "core/monitor/methods.hpp"

namespace {

constexpr int kExitError = 2;

}  // namespace

int main(int argc, char** argv) {
  // Signals that stop the VM are taken by the event loop through a signalfd;
  // block them before any thread starts so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"molt: a KVM virtual machine monitor whose devices are plugins"};
  app.set_version_flag("--version", "molt 0.1.0");
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "off, error, warn, info, debug or trace")->capture_default_str();

  molt::core::app::RunOptions run;
  CLI::App* run_cmd = app.add_subcommand("run", "Boot a machine description (machines/*.json)");
  molt::core::app::add_run_options(*run_cmd, run);

  CLI::App* reference_cmd = app.add_subcommand(
      "monitor-reference", "Print the monitor's method and event reference (the generated part of docs/monitor.md)");

  molt::core::app::DumpOptions dump;
  CLI::App* migration_cmd = app.add_subcommand("migration", "Inspect migration streams and snapshot files");
  migration_cmd->require_subcommand(1);
  CLI::App* dump_cmd = migration_cmd->add_subcommand("dump", "Print a migration stream or snapshot file as JSON");
  molt::core::app::add_dump_options(*dump_cmd, dump);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitError;
  }

  try {
    molt::core::set_log_level(log_level);
    if (*run_cmd) return molt::core::app::run_machine(run, stop_signals);
    if (*dump_cmd) return molt::core::app::run_dump(dump);
    if (*reference_cmd) std::fputs(molt::core::monitor::render_reference_markdown().c_str(), stdout);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "molt: %s\n", e.what());
    return kExitError;
  }
  return 0;
}
