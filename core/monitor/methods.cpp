#include "core/monitor/methods.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <molt/sdk/error.hpp>

#include "core/monitor/trace.hpp"

namespace molt::core::monitor {

namespace {

using sdk::PropertySpec;
using sdk::PropertyType;
using sdk::PropertyValue;

std::string text(const json::object& params, const char* name) {
  const json::value* v = params.if_contains(name);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

json::object status_json(const VmStatus& s) {
  json::object out{{"state", s.state},
                   {"vcpus", s.vcpus},
                   {"memory_bytes", s.memory_bytes},
                   {"machine_type", s.machine_type},
                   {"uptime_ms", s.uptime_ms}};
  if (s.exit) out["exit"] = to_json(*s.exit);
  return out;
}

void require_state(const VmControl& vm, const std::string& wanted, const char* method, const char* hint) {
  const std::string state = vm.status().state;
  if (state != wanted)
    throw RpcError(kNotInThisState,
                   fmt::format("{} needs a {} VM, and it is {}{}", method, wanted, state, hint));
}

json::value vm_simple(const Call& c, const char* method) {
  VmControl& vm = c.services.vm;
  const std::string m = method;
  if (m == "vm.pause") {
    require_state(vm, "running", method, "");
    vm.pause();
  } else if (m == "vm.resume") {
    require_state(vm, "paused", method, "");
    vm.resume();
  } else if (m == "vm.reset") {
    vm.reset();
  } else {
    if (vm.status().state == "shutting-down")
      throw RpcError(kNotInThisState, "vm.quit: the VM is already shutting down");
    vm.quit();
  }
  return status_json(vm.status());
}

json::array ranges_json(const std::vector<AddressRange>& ranges) {
  json::array out;
  for (const AddressRange& r : ranges) out.push_back(json::object{{"base", r.base}, {"length", r.length}});
  return out;
}

json::object device_json(const DeviceInfo& d) {
  json::object props;
  for (const auto& [name, value] : d.properties) props[name] = to_json(value);
  json::array settable;
  for (const PropertySpec& s : d.specs)
    if (s.settable_at_runtime) settable.push_back(json::string(s.name));
  json::object events;
  for (const auto& [name, data] : d.events) events[name] = to_json(data);
  json::array pci;
  for (const std::string& a : d.pci) pci.push_back(json::string(a));
  return json::object{{"id", d.id},
                      {"type", d.type},
                      {"plugin", d.plugin},
                      {"pci", pci},
                      {"ports", ranges_json(d.ports)},
                      {"mmio", ranges_json(d.mmio)},
                      {"properties", props},
                      {"settable", settable},
                      {"events", events}};
}

DeviceInfo find_device(const VmControl& vm, const std::string& id) {
  std::vector<DeviceInfo> all = vm.devices();
  std::string known;
  for (DeviceInfo& d : all) {
    if (d.id == id) return std::move(d);
    known += (known.empty() ? "" : ", ") + d.id;
  }
  throw RpcError(kInvalidParams,
                 fmt::format("param \"device\": no device \"{}\"; the devices are: {}", id, known));
}

const PropertySpec& find_spec(const DeviceInfo& d, const std::string& name) {
  for (const PropertySpec& s : d.specs)
    if (s.name == name) return s;
  std::string known;
  for (const PropertySpec& s : d.specs) known += (known.empty() ? "" : ", ") + s.name;
  throw RpcError(kInvalidParams,
                 fmt::format("param \"property\": device {} ({}) has no property \"{}\"; it has: {}", d.id,
                             d.type, name, known.empty() ? "none" : known));
}

// The JSON value given to device.set, as a value of the property's type.
PropertyValue typed_value(const PropertySpec& spec, const json::value& v) {
  const auto bad = [&](const std::string& expected) {
    return RpcError(kInvalidParams,
                    fmt::format("param \"value\": property {} takes {}", spec.name, expected));
  };
  switch (spec.type) {
    case PropertyType::Bool:
      if (!v.is_bool()) throw bad("true or false");
      return v.as_bool();
    case PropertyType::UInt:
    case PropertyType::Size: {
      std::optional<std::uint64_t> n;
      if (v.is_uint64()) n = v.as_uint64();
      if (v.is_int64() && v.as_int64() >= 0) n = static_cast<std::uint64_t>(v.as_int64());
      if (v.is_string()) n = sdk::parse_size(std::string(v.as_string()));
      const std::string range = fmt::format("an integer from {} to {}", spec.min, spec.max);
      if (!n || *n < spec.min || *n > spec.max) throw bad(range);
      return *n;
    }
    case PropertyType::Enum: {
      if (!v.is_string() || std::find(spec.choices.begin(), spec.choices.end(), std::string(v.as_string())) ==
                                spec.choices.end())
        throw bad(fmt::format("one of: {}", fmt::join(spec.choices, ", ")));
      return std::string(v.as_string());
    }
    case PropertyType::String:
    case PropertyType::Path:
      if (!v.is_string()) throw bad("a string");
      return std::string(v.as_string());
  }
  throw bad("a value");
}

json::value device_get(const Call& c) {
  const DeviceInfo d = find_device(c.services.vm, text(c.params, "device"));
  const PropertySpec& spec = find_spec(d, text(c.params, "property"));
  const auto value = d.properties.find(spec.name);
  return json::object{{"device", d.id},
                      {"property", spec.name},
                      {"value", value == d.properties.end() ? json::value(nullptr) : to_json(value->second)},
                      {"type", sdk::to_string(spec.type)},
                      {"settable", spec.settable_at_runtime}};
}

json::value device_set(const Call& c) {
  const DeviceInfo d = find_device(c.services.vm, text(c.params, "device"));
  const PropertySpec& spec = find_spec(d, text(c.params, "property"));
  if (!spec.settable_at_runtime) {
    throw RpcError(kDeviceError,
                   fmt::format("device {}: property {} is fixed while the guest runs; set it in the "
                               "machine file instead",
                               d.id, spec.name));
  }
  const PropertyValue value = typed_value(spec, c.params.at("value"));
  try {
    c.services.vm.set_property(d.id, spec.name, value);
  } catch (const sdk::Error& e) {
    throw RpcError(kDeviceError, fmt::format("device {} refused {} = {}: {}", d.id, spec.name,
                                             sdk::to_string(value), e.what()));
  }
  return json::object{{"device", d.id}, {"property", spec.name}, {"value", to_json(value)}};
}

json::value plugin_list(const Call& c) {
  json::array out;
  for (const PluginDescription& p : c.services.vm.plugins()) {
    json::array types;
    for (const std::string& t : p.device_types) types.push_back(json::string(t));
    out.push_back(json::object{{"path", p.path.string()},
                               {"name", p.name},
                               {"version", p.version},
                               {"sdk_abi", p.sdk_abi},
                               {"device_types", types}});
  }
  return out;
}

json::value trace_set(const Call& c) {
  const std::string pattern = text(c.params, "pattern");
  const std::string level = text(c.params, "level");
  if (!valid_trace_pattern(pattern)) {
    throw RpcError(kInvalidParams,
                   fmt::format("param \"pattern\": \"{}\" is not a logger name or pattern; use "
                               "letters, digits, '.', '-', '_' and '*', e.g. dev.* or core.machine",
                               pattern));
  }
  const auto parsed = parse_trace_level(level);
  if (!parsed) {
    throw RpcError(kInvalidParams,
                   fmt::format("param \"level\": \"{}\" is not a level; use off, critical, error, "
                               "warn, info, debug or trace",
                               level));
  }
  json::array changed;
  for (const std::string& name : set_trace_level(pattern, *parsed)) changed.push_back(json::string(name));
  return json::object{{"pattern", pattern}, {"level", level}, {"loggers", changed}};
}

json::value trace_list(const Call&) {
  json::array loggers, rules;
  for (const LoggerLevel& l : list_loggers())
    loggers.push_back(json::object{{"name", l.name}, {"level", l.level}});
  for (const TraceRule& r : trace_rules())
    rules.push_back(json::object{{"pattern", r.pattern}, {"level", r.level}});
  return json::object{{"loggers", loggers}, {"rules", rules}};
}

std::vector<std::string> requested_events(const Call& c) {
  std::vector<std::string> names;
  const json::value* list = c.params.if_contains("events");
  if (!list) {
    for (const EventSpec& e : event_specs()) names.push_back(e.name);
    return names;
  }
  for (const json::value& v : list->as_array()) {
    const std::string name(v.as_string());
    const auto& specs = event_specs();
    if (std::none_of(specs.begin(), specs.end(), [&](const EventSpec& e) { return e.name == name; })) {
      std::vector<std::string> known;
      for (const EventSpec& e : specs) known.push_back(e.name);
      throw RpcError(kInvalidParams, fmt::format("param \"events\": no event \"{}\"; the events are: {}",
                                                 name, fmt::join(known, ", ")));
    }
    names.push_back(name);
  }
  return names;
}

json::value subscriptions_json(const Session& s) {
  json::array out;
  for (const std::string& e : s.subscriptions) out.push_back(json::string(e));
  return json::object{{"subscribed", out}};
}

json::value monitor_methods(const Call&);

void add_vm_methods(MethodTable& t) {
  t.add({"vm.status",
         "The VM's run state, size and uptime; `exit` is present once it is shutting down.",
         {},
         "{state, vcpus, memory_bytes, machine_type, uptime_ms, exit?: {reason, guest_value, exit_status, "
         "detail}}",
         [](const Call& c) -> json::value { return status_json(c.services.vm.status()); }});
  t.add({"vm.pause",
         "Stops every vCPU (parked outside KVM_RUN); devices' timers keep running. -32000 unless running.",
         {},
         "vm.status's object",
         [](const Call& c) { return vm_simple(c, "vm.pause"); }});
  t.add({"vm.resume",
         "Lets the paused vCPUs run again. -32000 unless paused.",
         {},
         "vm.status's object",
         [](const Call& c) { return vm_simple(c, "vm.resume"); }});
  t.add({"vm.reset",
         "Resets the machine as a reset button does: irqchip, PIT, vCPUs and devices back to power-on, the "
         "kernel or firmware shadow loaded again, guest RAM otherwise kept; a running VM runs on, a paused one "
         "stays paused. -32000 while shutting down.",
         {},
         "vm.status's object",
         [](const Call& c) { return vm_simple(c, "vm.reset"); }});
  t.add({"vm.quit",
         "Stops the VM cleanly; molt exits with status 0 once the reply is sent.",
         {},
         "vm.status's object (state shutting-down)",
         [](const Call& c) { return vm_simple(c, "vm.quit"); }});
}

void add_device_methods(MethodTable& t) {
  t.add(
      {"device.list",
       "Every device: type, plugin, PCI address, claimed ports and MMIO, resolved properties.",
       {},
       "[{id, type, plugin, pci: [\"00:03.0\"], ports: [{base, length}], mmio: [{base, length}], properties: "
       "{name: value}, settable: [names], events: {name: data}}]",
       [](const Call& c) {
         json::array out;
         for (const DeviceInfo& d : c.services.vm.devices()) out.push_back(device_json(d));
         return json::value(std::move(out));
       }});
  t.add({"device.get",
         "One property's current value.",
         {{"device", ParamType::String, true, "the device id, e.g. com1"},
          {"property", ParamType::String, true, "the property name"}},
         "{device, property, value, type, settable}",
         device_get});
  t.add({"device.set",
         "Changes a property declared settable at run time; -32001 when the device refuses (the old value "
         "stays).",
         {{"device", ParamType::String, true, "the device id"},
          {"property", ParamType::String, true, "the property name"},
          {"value", ParamType::Scalar, true, "the new value, of the property's type"}},
         "{device, property, value}",
         device_set});
}

void add_other_methods(MethodTable& t) {
  t.add({"plugin.list",
         "Every loaded plugin.",
         {},
         "[{path, name, version, sdk_abi, device_types}]",
         plugin_list});
  t.add({"trace.set",
         "Sets the level of the loggers a pattern matches, now and for loggers created later.",
         {{"pattern", ParamType::String, true, "a logger name or glob: core.machine, dev.*, *"},
          {"level", ParamType::String, true, "off, critical, error, warn, info, debug or trace"}},
         "{pattern, level, loggers: [names changed]}",
         trace_set});
  t.add({"trace.list",
         "Every logger and its level, and the rules trace.set made.",
         {},
         "{loggers: [{name, level}], rules: [{pattern, level}]}",
         trace_list});
  t.add({"events.subscribe",
         "Sends this connection the named events (all of them without `events`).",
         {{"events", ParamType::StringList, false, "event names, e.g. [\"vm.state-changed\"]"}},
         "{subscribed: [names]}",
         [](const Call& c) {
           for (const std::string& e : requested_events(c)) c.session.subscriptions.insert(e);
           return subscriptions_json(c.session);
         }});
  t.add({"events.unsubscribe",
         "Stops the named events (all of them without `events`).",
         {{"events", ParamType::StringList, false, "event names"}},
         "{subscribed: [names]}",
         [](const Call& c) {
           for (const std::string& e : requested_events(c)) c.session.subscriptions.erase(e);
           return subscriptions_json(c.session);
         }});
  t.add({"monitor.methods",
         "The methods and events this monitor serves.",
         {},
         "{methods: [{name, summary, params: [{name, type, required, doc}], result}], events: [{name, "
         "summary, params, "
         "query}]}",
         monitor_methods});
}

json::value monitor_methods(const Call&) {
  json::array methods, events;
  for (const MethodSpec& m : method_table().methods()) {
    json::array params;
    for (const ParamSpec& p : m.params)
      params.push_back(json::object{
          {"name", p.name}, {"type", to_string(p.type)}, {"required", p.required}, {"doc", p.doc}});
    methods.push_back(
        json::object{{"name", m.name}, {"summary", m.summary}, {"params", params}, {"result", m.result}});
  }
  for (const EventSpec& e : event_specs())
    events.push_back(
        json::object{{"name", e.name}, {"summary", e.summary}, {"params", e.params}, {"query", e.query}});
  return json::object{{"methods", methods}, {"events", events}};
}

}  // namespace

json::object to_json(const ExitInfo& exit) {
  return json::object{{"reason", exit.reason},
                      {"guest_value", exit.guest_value},
                      {"exit_status", exit.exit_status},
                      {"detail", exit.detail}};
}

json::value to_json(const PropertyValue& value) {
  return std::visit([](const auto& v) { return json::value(v); }, value);
}

json::object to_json(const EventData& data) {
  json::object out;
  for (const auto& [name, value] : data) out[name] = to_json(value);
  return out;
}

const MethodTable& method_table() {
  static const MethodTable table = [] {
    MethodTable t;
    add_vm_methods(t);
    add_device_methods(t);
    add_migrate_methods(t);
    add_other_methods(t);
    return t;
  }();
  return table;
}

const std::vector<EventSpec>& event_specs() {
  static const std::vector<EventSpec> events = {
      {kEventStateChanged,
       "The VM's run state changed: running, paused, incoming, postmigrate or shutting-down.", "{state, reason}",
       "vm.status (state)"},
      {kEventExit,
       "The run is ending: the guest powered off, reset, wrote to debug-exit, or molt was asked to stop.",
       "{reason, guest_value, exit_status, detail}", "vm.status (exit)"},
      {kEventDevice, "A device reported something (DeviceContext::emit_event).", "{device, event, data}",
       "device.list (events of that device: the latest data of each event name)"},
      {kEventMigration,
       "A migration changed state (setup, active, device, completed, failed, cancelled, listening, receiving); a "
       "failure carries the error, a refused handshake every difference.",
       "{role, state, error?, differences?}", "migrate.status"},
  };
  return events;
}

std::string render_reference_markdown() {
  std::string out;
  std::string group;
  for (const MethodSpec& m : method_table().methods()) {
    const std::string g = m.name.substr(0, m.name.find('.'));
    if (g != group) {
      out += fmt::format("\n### {}.*\n", g);
      group = g;
    }
    out += fmt::format("\n#### `{}`\n\n{}\n\n", m.name, m.summary);
    if (m.params.empty()) {
      out += "Params: none.\n";
    } else {
      out += "| param | type | required | meaning |\n| --- | --- | --- | --- |\n";
      for (const ParamSpec& p : m.params)
        out += fmt::format("| `{}` | {} | {} | {} |\n", p.name, to_string(p.type), p.required ? "yes" : "no",
                           p.doc);
    }
    out += fmt::format("\nResult: `{}`\n", m.result);
  }
  out +=
      "\n### Events\n\n| event | when | params | query returning the same state |\n| --- | --- | --- | --- "
      "|\n";
  for (const EventSpec& e : event_specs())
    out += fmt::format("| `{}` | {} | `{}` | {} |\n", e.name, e.summary, e.params, e.query);
  return out;
}

}  // namespace molt::core::monitor
