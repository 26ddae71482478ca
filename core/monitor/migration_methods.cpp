// migrate.*: start, receive, tune, watch and cancel a migration.
#include "core/monitor/methods.hpp"

namespace molt::core::monitor {

namespace {

MigrationControl& migration(const Call& c) {
  if (!c.services.migration) throw RpcError(kNotSupported, "this monitor serves no migration");
  return *c.services.migration;
}

std::string text(const json::object& params, const char* name) {
  const json::value* v = params.if_contains(name);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// "ram": "file" (the default: pages in the snapshot) or "in-place" (pages
// left in the guest's RAM files).
bool ram_in_place(const Call& c, const char* method) {
  const std::string ram = text(c.params, "ram");
  if (ram.empty() || ram == "file") return false;
  if (ram == "in-place") return true;
  throw RpcError(kInvalidParams,
                 std::string(method) + ": ram: expected \"file\" or \"in-place\", got \"" + ram + "\"");
}

constexpr const char* kRamParamDoc =
    "file (default): the RAM's pages go into the snapshot; in-place: they stay in the guest's RAM file "
    "(memory.backend \"file\"), which the snapshot names and `--restore` maps again (docs/cpr.md)";

}  // namespace

void add_migrate_methods(MethodTable& t) {
  t.add({"migrate.start",
         "Starts moving the guest to `uri`: tcp:HOST:PORT, unix:PATH, file:PATH (a snapshot) or fd:N. Returns at "
         "once; migrate.status and migrate.state-changed follow it. Refused, changing nothing, while another "
         "migration runs, for a guest that is neither running nor paused, or when a device cannot migrate (the "
         "message names each one and its reason).",
         {{"uri", ParamType::String, true, "the main channel: where the destination listens"},
          {"mode", ParamType::String, false,
           "precopy (default), or cpr-transfer: hand RAM to a new molt on this host as memfds (docs/cpr.md)"},
          {"cpr_uri", ParamType::String, false,
           "cpr-transfer: the unix:PATH the new molt was started with (--cpr-channel)"},
          {"ram", ParamType::String, false, std::string("a file: URI only: ") + kRamParamDoc}},
         "migrate.status's object",
         [](const Call& c) {
           migration(c).start(text(c.params, "uri"), text(c.params, "mode"), text(c.params, "cpr_uri"),
                              ram_in_place(c, "migrate.start"));
           return json::value(migration(c).status());
         }});
  t.add({"vm.snapshot",
         "Saves the guest's whole state (RAM, vCPUs, devices) into a file while it runs, as a migration to "
         "file:PATH; `molt run --restore PATH` brings it back, also after a host reboot. With resume the guest "
         "runs on here afterwards; without, it stays stopped (postmigrate) so the file is its only copy. "
         "With ram in-place the RAM stays in the guest's RAM file and only the rest is written (the guest "
         "stops; refused with resume, or for RAM in no named file). Follow it with migrate.status.",
         {{"path", ParamType::String, true, "the file to write (created, or truncated)"},
          {"resume", ParamType::Bool, false, "let the guest run on here after saving (default false)"},
          {"ram", ParamType::String, false, kRamParamDoc}},
         "migrate.status's object",
         [](const Call& c) {
           const json::value* resume = c.params.if_contains("resume");
           migration(c).snapshot(text(c.params, "path"), resume && resume->as_bool(),
                                 ram_in_place(c, "vm.snapshot"));
           return json::value(migration(c).status());
         }});
  t.add({"migrate.incoming",
         "On a molt started with --incoming defer: listens on `uri` for the source. Refused unless the guest "
         "has not run yet.",
         {{"uri", ParamType::String, true, "tcp:HOST:PORT (port 0: any free port), unix:PATH, file:PATH or fd:N"}},
         "{uri: the address it listens on, with the real port}",
         [](const Call& c) {
           return json::value(json::object{{"uri", migration(c).incoming(text(c.params, "uri"))}});
         }});
  t.add({"migrate.set_parameters",
         "Changes the parameters of the next migration, or of the running one (the bandwidth cap and downtime "
         "limit take effect at once). All or nothing.",
         {{"downtime_limit_ms", ParamType::UInt, false, "the pause the switchover may cause (default 300)"},
          {"max_bandwidth", ParamType::UInt, false, "bytes per second over all channels; 0 means no cap"},
          {"channels", ParamType::UInt, false, "connections carrying RAM, 1 to 16 (tcp and unix only)"},
          {"max_iterations", ParamType::UInt, false, "switch over after this many passes; 0: no cap"},
          {"connect_timeout_ms", ParamType::UInt, false, "how long to wait for the destination to answer"}},
         "migrate.get_parameters's object",
         [](const Call& c) {
           migration(c).set_parameters(c.params);
           return json::value(migration(c).parameters());
         }});
  t.add({"migrate.get_parameters",
         "The migration parameters.",
         {},
         "{downtime_limit_ms, max_bandwidth, channels, max_iterations, connect_timeout_ms}",
         [](const Call& c) { return json::value(migration(c).parameters()); }});
  t.add({"migrate.status",
         "Where the migration is: state (none, setup, active, device, completed, failed, cancelled, listening, "
         "receiving), role, time per phase, bytes in total and per channel, RAM figures (remaining, zero and "
         "data pages, dirty rate, iterations, bandwidth), expected and actual downtime with its breakdown (RAM, "
         "each device, vCPUs, irqchip, destination load), the error or the handshake's differences, and in "
         "cpr-transfer the backend fds handed over with the RAM, by device (on the source those sent, on "
         "the new molt those its devices took).",
         {},
         "{state, role, mode, uri, total_ms, phases_us, bytes_sent, bytes_received, channels: [{name, "
         "bytes_sent, bytes_received}], ram?: {total_bytes, remaining_bytes, transferred_bytes, data_pages, "
         "zero_pages, dirtied_pages, dirty_pages_per_s, iterations, bandwidth_bytes_per_s}, ram_in_place?: "
         "[{block, path, size}] (a snapshot that left RAM in place), downtime: {expected_us, actual_us?, "
         "breakdown_us}, destination?, error?, differences?, handed_over?: [{device, fds: [name]}], "
         "parameters}",
         [](const Call& c) { return json::value(migration(c).status()); }});
  t.add({"migrate.cancel",
         "Stops the migration in any state before the destination commits; the source guest runs on as it was "
         "(resumed if the migration paused it). On a destination, ends the wait (molt then exits).",
         {},
         "migrate.status's object",
         [](const Call& c) {
           migration(c).cancel();
           return json::value(migration(c).status());
         }});
  t.add({"migrate.switchover",
         "Stops iterating and switches over at the end of the current pass, whatever the expected downtime.",
         {},
         "migrate.status's object",
         [](const Call& c) {
           migration(c).switchover();
           return json::value(migration(c).status());
         }});
}

}  // namespace molt::core::monitor
