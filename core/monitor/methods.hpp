// The monitor's methods and events, grouped by area (vm.*, device.*,
// plugin.*, trace.*, events.*, monitor.*). The table is plain data plus
// handlers that act on the Services passed with each call, so the same table
// serves a running VM, the unit tests' fake, and the generated reference in
// docs/monitor.md (render_reference_markdown).
#pragma once

#include <string>
#include <vector>

#include "core/monitor/rpc.hpp"
#include "core/monitor/migration_control.hpp"
#include "core/monitor/vm_control.hpp"

namespace molt::core::monitor {

struct EventSpec {
  std::string name;
  std::string summary;
  std::string params;  // what the params hold
  std::string query;   // the method that returns the same state
};

struct Services {
  VmControl& vm;
  MigrationControl* migration = nullptr;  // nullptr: migrate.* answer "not supported"
};

// Every method the monitor serves.
const MethodTable& method_table();
// migrate.* (migration_methods.cpp).
void add_migrate_methods(MethodTable& table);
// Every event the monitor sends.
const std::vector<EventSpec>& event_specs();

// The method and event reference as markdown: the generated part of
// docs/monitor.md (a unit test keeps the two equal).
std::string render_reference_markdown();

// Event names and their params, as the VM adapter publishes them.
inline constexpr const char* kEventStateChanged = "vm.state-changed";
inline constexpr const char* kEventExit = "vm.exit";
inline constexpr const char* kEventDevice = "device.event";
inline constexpr const char* kEventMigration = "migrate.state-changed";

// JSON forms shared by methods and events, so an event and its query agree.
json::object to_json(const ExitInfo& exit);
json::value to_json(const sdk::PropertyValue& value);
json::object to_json(const EventData& data);

}  // namespace molt::core::monitor
