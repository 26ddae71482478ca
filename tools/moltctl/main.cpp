// moltctl: drives a running molt through its JSON-RPC monitor.
//   moltctl --socket PATH vm status
//   moltctl --socket PATH device set DEV PROP VALUE
//   moltctl --socket PATH events watch
//   moltctl --socket PATH migrate start unix:/tmp/dest.sock
// Human-readable output by default, --json for the raw result. Exit status:
// 0 done, 1 the monitor answered with an error (printed) or a migration
// failed or was cancelled, 2 usage or connection trouble.
#include <signal.h>

#include <cstdio>
#include <functional>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include "format.hpp"
#include "migrate.hpp"
#include "rpc_client.hpp"

namespace {

using moltctl::json::object;
using moltctl::json::value;

using moltctl::Formatter;
using moltctl::kExitErrorReply;
using moltctl::kExitTrouble;
using moltctl::Options;
using moltctl::Runner;

// A device.set value as typed on the command line: true/false and integers
// become JSON booleans and numbers, anything else is a string.
value parse_cli_value(const std::string& text) {
  if (text == "true") return true;
  if (text == "false") return false;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() < 20)
    return std::stoull(text);
  return moltctl::json::string(text);
}

std::string state_word(const value& status) {
  return moltctl::scalar_text(status.at("state")) + "\n";
}

void add_simple(CLI::App& parent, Runner& r, const std::string& name, const std::string& help,
                const std::string& method, Formatter human) {
  parent.add_subcommand(name, help)->callback([&r, method, human] {
    r.action = [&r, method, human] { r.call(method, {}, human); };
  });
}

void add_vm(CLI::App& app, Runner& r) {
  CLI::App* vm =
      app.add_subcommand("vm", "The VM: status, pause, resume, reset, quit")->require_subcommand(1);
  add_simple(*vm, r, "status", "State, vCPUs, memory, machine type and uptime (vm.status)", "vm.status",
             moltctl::format_status);
  add_simple(*vm, r, "pause", "Stop every vCPU (vm.pause)", "vm.pause", state_word);
  add_simple(*vm, r, "resume", "Let the vCPUs run again (vm.resume)", "vm.resume", state_word);
  add_simple(*vm, r, "reset", "Reset the machine (vm.reset)", "vm.reset", state_word);
  add_simple(*vm, r, "quit", "Stop the VM cleanly; molt exits 0 (vm.quit)", "vm.quit", state_word);
}

void add_device(CLI::App& app, Runner& r) {
  CLI::App* device = app.add_subcommand("device", "Devices and their properties")->require_subcommand(1);
  add_simple(*device, r, "list", "Every device, its bus addresses and properties (device.list)",
             "device.list", moltctl::format_devices);
  static std::string dev, prop, val;
  CLI::App* get = device->add_subcommand("get", "One property's value (device.get)");
  get->add_option("device", dev, "Device id, e.g. com1")->required();
  get->add_option("property", prop, "Property name")->required();
  get->callback([&r] {
    r.action = [&r] {
      r.call("device.get", object{{"device", dev}, {"property", prop}}, moltctl::format_property);
    };
  });
  CLI::App* set = device->add_subcommand("set", "Change a run-time property (device.set)");
  set->add_option("device", dev, "Device id")->required();
  set->add_option("property", prop, "Property name")->required();
  set->add_option("value", val, "New value: true, false, an integer or a string")->required();
  set->callback([&r] {
    r.action = [&r] {
      r.call("device.set", object{{"device", dev}, {"property", prop}, {"value", parse_cli_value(val)}},
             moltctl::format_property);
    };
  });
}

void add_trace(CLI::App& app, Runner& r) {
  CLI::App* trace = app.add_subcommand("trace", "Log categories at run time")->require_subcommand(1);
  static std::string pattern, level;
  CLI::App* set = trace->add_subcommand("set", "Set the level of matching loggers (trace.set)");
  set->add_option("pattern", pattern, "Logger name or glob: core.machine, dev.*, *")->required();
  set->add_option("level", level, "off, critical, error, warn, info, debug or trace")->required();
  set->callback([&r] {
    r.action = [&r] {
      r.call("trace.set", object{{"pattern", pattern}, {"level", level}}, moltctl::format_trace_set);
    };
  });
  add_simple(*trace, r, "list", "Every logger and its level (trace.list)", "trace.list",
             moltctl::format_trace_list);
}

void add_events(CLI::App& app, Runner& r) {
  CLI::App* events = app.add_subcommand("events", "Event notifications")->require_subcommand(1);
  static std::vector<std::string> names;
  static long count = 0;
  CLI::App* watch =
      events->add_subcommand("watch", "Subscribe and print events as they come (until molt exits)");
  watch->add_option("--event", names, "Only this event (repeatable), e.g. vm.state-changed");
  watch->add_option("--count", count, "Exit after this many events (0: never)");
  watch->callback([&r] {
    r.action = [&r] {
      moltctl::RpcClient client = r.connect();
      object params;
      if (!names.empty()) params["events"] = moltctl::json::value_from(names);
      client.call("events.subscribe", params);
      for (long seen = 0; count == 0 || seen < count; ++seen) {
        std::optional<object> n;
        try {
          n = client.next_notification(std::nullopt);
        } catch (const moltctl::ClientError&) {
          return;  // molt exited: the watch is over
        }
        std::cout << (r.o.json ? moltctl::json::serialize(*n) + "\n" : moltctl::format_event(*n))
                  << std::flush;
      }
    };
  });
}

void add_other(CLI::App& app, Runner& r) {
  CLI::App* plugin = app.add_subcommand("plugin", "Loaded plugins")->require_subcommand(1);
  add_simple(*plugin, r, "list", "Every plugin: path, version, SDK ABI, device types (plugin.list)",
             "plugin.list", moltctl::format_plugins);
  CLI::App* monitor = app.add_subcommand("monitor", "The monitor itself")->require_subcommand(1);
  add_simple(*monitor, r, "methods", "The methods and events it serves (monitor.methods)", "monitor.methods",
             moltctl::format_methods);
  static std::string method, params_text;
  CLI::App* call = app.add_subcommand("call", "Call any method with JSON params; prints the raw result");
  call->add_option("method", method, "Method name, e.g. vm.status")->required();
  call->add_option("params", params_text, "Params as a JSON object, e.g. '{\"device\":\"com1\"}'");
  call->callback([&r] {
    r.action = [&r] {
      object params;
      if (!params_text.empty()) {
        moltctl::json::error_code ec;
        const value parsed = moltctl::json::parse(params_text, ec);
        if (ec || !parsed.is_object())
          throw moltctl::ClientError("params must be a JSON object: " + params_text);
        params = parsed.as_object();
      }
      r.call(method, params, [](const value& v) { return moltctl::json::serialize(v) + "\n"; });
    };
  });
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Options options;
  Runner runner{options, {}};
  CLI::App app{"moltctl: drive a running molt through its JSON-RPC monitor (docs/monitor.md)"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--socket,-s", options.socket, "The monitor's UNIX socket (molt run --api-socket)")
      ->envname("MOLT_API_SOCKET")
      ->required();
  app.add_flag("--json", options.json, "Print the raw JSON result instead of text");
  app.add_option("--timeout", options.timeout_s, "Seconds to wait for a reply")->capture_default_str();
  add_vm(app, runner);
  add_device(app, runner);
  add_trace(app, runner);
  add_events(app, runner);
  add_other(app, runner);
  moltctl::add_migrate(app, runner);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitTrouble;
  }
  try {
    if (runner.action) runner.action();
    return runner.exit_status;
  } catch (const moltctl::ReplyError& e) {
    std::fprintf(stderr, "moltctl: error %d: %s\n", e.code(), e.what());
    return kExitErrorReply;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moltctl: %s\n", e.what());
    return kExitTrouble;
  }
}
