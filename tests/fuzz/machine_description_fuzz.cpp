// libFuzzer entry for the machine description loader: any byte string is
// parsed as a machine file (with two sets of host limits) and, when it parses,
// its devices are resolved against a small registry whose types declare
// properties of every PropertyType. The loader may refuse the input only with
// ConfigError or another molt::sdk::Error; anything else (another exception, a
// crash, a sanitizer report) is a bug. A description that is accepted must
// also keep the promises description.hpp makes about it, checked here.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "core/machine/description.hpp"

namespace {

namespace machine = molt::core::machine;
using molt::sdk::DeviceType;
using molt::sdk::PropertySpec;
using molt::sdk::PropertyType;
using molt::sdk::PropertyValue;

[[noreturn]] void bug(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "machine description fuzz: %s%s%.*s\n", what, detail.empty() ? "" : ": ",
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// The device types the entry resolves against: the docs' "uart" and
// "debug-exit", the real serial port's shape, and one type with a property of
// every kind, required and defaulted, ranged and open.
struct Registry {
  DeviceType uart{
      .name = "uart",
      .properties = {
          {.name = "irq", .type = PropertyType::UInt, .default_value = std::uint64_t{4}, .max = 23},
          {.name = "backend",
           .type = PropertyType::Enum,
           .default_value = std::string("stdio"),
           .choices = {"stdio", "null"}},
          {.name = "path", .type = PropertyType::String, .doc = "where the bytes go"},
      }};
  DeviceType debug_exit{.name = "debug-exit"};
  DeviceType serial{
      .name = "serial-16550a",
      .properties = {
          {.name = "base",
           .type = PropertyType::UInt,
           .default_value = std::uint64_t{0x3f8},
           .min = 0x100,
           .max = 0xfff8},
          {.name = "irq", .type = PropertyType::UInt, .default_value = std::uint64_t{4}, .max = 23},
          {.name = "backend",
           .type = PropertyType::Enum,
           .default_value = std::string("stdio"),
           .choices = {"stdio", "null", "file"}},
          {.name = "path", .type = PropertyType::String, .default_value = std::string()},
      }};
  DeviceType all_kinds{
      .name = "all-kinds",
      .properties = {
          {.name = "flag", .type = PropertyType::Bool, .default_value = false},
          {.name = "enabled", .type = PropertyType::Bool},
          {.name = "count", .type = PropertyType::UInt, .default_value = std::uint64_t{1}, .min = 1},
          {.name = "any-number", .type = PropertyType::UInt, .default_value = std::uint64_t{0}},
          {.name = "buffer",
           .type = PropertyType::Size,
           .default_value = std::uint64_t{4096},
           .min = 512,
           .max = std::uint64_t{1} << 30},
          {.name = "capacity", .type = PropertyType::Size},
          {.name = "label", .type = PropertyType::String, .default_value = std::string("none")},
          {.name = "mode", .type = PropertyType::Enum, .choices = {"fast", "slow", ""}},
      }};
  std::map<std::string, const DeviceType*> by_name{{uart.name, &uart},
                                                   {debug_exit.name, &debug_exit},
                                                   {serial.name, &serial},
                                                   {all_kinds.name, &all_kinds}};
  // A compat table as a machine type would give, replacing two defaults.
  std::map<std::string, machine::DefaultOverrides> overrides{
      {"uart", {{"irq", std::uint64_t{3}}}},
      {"all-kinds", {{"label", std::string("compat")}, {"flag", true}}}};
};

bool is_simple_identifier(const std::string& id) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (id.empty() || id.size() > 64 || !letter(id[0])) return false;
  for (char c : id) {
    if (!letter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_') return false;
  }
  return true;
}

// What parse_machine promises about a description it accepted.
void check_description(const machine::MachineDescription& desc, const machine::HostLimits& limits) {
  if (desc.machine_type.empty()) bug("accepted an empty machine type");
  if (desc.vcpus < 1 || desc.vcpus > limits.max_vcpus) bug("accepted a vCPU count out of range");
  if (desc.memory_size == 0 || desc.memory_size % 4096 != 0) bug("accepted a memory size that is not pages");
  if (limits.host_memory_bytes && desc.memory_size > *limits.host_memory_bytes)
    bug("accepted more memory than the host has");
  if (desc.kernel.path.empty() ? !desc.firmware : !desc.kernel.path.is_absolute())
    bug("kernel path is neither absolute nor left out for firmware", desc.kernel.path.native());
  if (desc.firmware && !desc.firmware->path.is_absolute()) bug("firmware path is not absolute");
  if (desc.kernel.initrd && !desc.kernel.initrd->is_absolute()) bug("initrd path is not absolute");
  if (desc.kernel.cmdline.find('\0') != std::string::npos) bug("accepted a command line with a NUL");
  for (const auto& dir : desc.plugin_dirs) {
    if (!dir.is_absolute()) bug("plugin directory is not absolute", dir.native());
  }
  if (desc.api_socket && (!desc.api_socket->is_absolute() || desc.api_socket->native().size() > 107))
    bug("accepted an API socket path that cannot be bound", desc.api_socket->native());
  std::set<std::string> ids;
  for (const auto& device : desc.devices) {
    if (!is_simple_identifier(device.id)) bug("accepted a device id that is not simple", device.id);
    if (!ids.insert(device.id).second) bug("accepted a repeated device id", device.id);
    if (device.type.empty()) bug("accepted an empty device type");
  }
}

bool holds_kind(const PropertyValue& value, PropertyType type) {
  switch (type) {
    case PropertyType::Bool:
      return std::holds_alternative<bool>(value);
    case PropertyType::UInt:
    case PropertyType::Size:
      return std::holds_alternative<std::uint64_t>(value);
    case PropertyType::String:
    case PropertyType::Path:
    case PropertyType::Enum:
      return std::holds_alternative<std::string>(value);
  }
  return false;
}

// A resolved value is of its spec's kind, inside its range, among its choices.
void check_value(const PropertySpec& spec, const PropertyValue& value) {
  if (!holds_kind(value, spec.type)) bug("resolved a value of the wrong kind", spec.name);
  if (spec.type == PropertyType::UInt || spec.type == PropertyType::Size) {
    const std::uint64_t number = std::get<std::uint64_t>(value);
    if (number < spec.min || number > spec.max) bug("resolved a value out of range", spec.name);
  }
  if (spec.type == PropertyType::Enum) {
    const std::string& text = std::get<std::string>(value);
    bool listed = false;
    for (const auto& choice : spec.choices) listed = listed || choice == text;
    if (!listed) bug("resolved an enum value that is not a choice", text);
  }
}

// What resolve_devices promises: one entry per device in file order, every
// declared property present and valid, nothing undeclared, and a property the
// file leaves out taking the compat default or else the type's own.
void check_resolved(const machine::MachineDescription& desc, const std::vector<machine::ResolvedDevice>& all,
                    const Registry& registry) {
  if (all.size() != desc.devices.size()) bug("resolved a different number of devices");
  for (std::size_t i = 0; i < all.size(); ++i) {
    const machine::ResolvedDevice& device = all[i];
    if (device.config != &desc.devices[i]) bug("resolved devices out of file order");
    if (!device.type || device.type->name != device.config->type) bug("resolved the wrong device type");
    const auto overrides = registry.overrides.find(device.type->name);
    if (device.properties.values().size() != device.type->properties.size())
      bug("resolved properties that the type does not declare", device.type->name);
    for (const PropertySpec& spec : device.type->properties) {
      if (!device.properties.has(spec.name)) bug("a declared property is missing", spec.name);
      const PropertyValue& value = device.properties.values().at(spec.name);
      check_value(spec, value);
      if (device.config->properties.contains(spec.name)) continue;
      const bool overridden = overrides != registry.overrides.end() && overrides->second.count(spec.name);
      if (!overridden && !spec.default_value) bug("a required property was left out", spec.name);
      const PropertyValue& expected = overridden ? overrides->second.at(spec.name) : *spec.default_value;
      if (!(value == expected)) bug("an omitted property did not take its default", spec.name);
    }
  }
}

void load(std::string_view text, const std::filesystem::path& origin, const machine::HostLimits& limits,
          const Registry& registry) {
  try {
    const machine::MachineDescription desc = machine::parse_machine(text, origin, limits);
    check_description(desc, limits);
    check_resolved(desc, machine::resolve_devices(desc, registry.by_name, registry.overrides), registry);
  } catch (const molt::sdk::Error&) {
    // ConfigError, or sdk::Error: a refusal with a message, as documented.
  } catch (const std::exception& e) {
    bug("an exception other than molt::sdk::Error escaped", e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Registry registry;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // As molt run reads a file, and as text with no origin on a smaller host.
  load(text, "machines/fuzz.json", machine::HostLimits{}, registry);
  load(text, {}, machine::HostLimits{.max_vcpus = 4, .host_memory_bytes = std::uint64_t{1} << 30}, registry);
  return 0;
}
