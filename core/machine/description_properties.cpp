// Device types and properties: the second step of reading a machine
// description, once the plugins it names are loaded.
#include <algorithm>
#include <variant>

#include "core/machine/description.hpp"
#include "core/machine/description_json.hpp"

namespace molt::core::machine {
namespace {

namespace json = boost::json;
using json_read::Location;
using json_read::quote_json;
using molt::sdk::PropertySpec;
using molt::sdk::PropertyType;
using molt::sdk::PropertyValue;

std::string describe_default(const PropertySpec& spec, const PropertyValue& value) {
  if (spec.type == PropertyType::Size) {
    if (const auto* bytes = std::get_if<std::uint64_t>(&value)) return quote_json(format_size(*bytes));
  }
  return molt::sdk::to_string(value);
}

// "unsigned integer from 0 to 23", "size from 4K to 1M", "one of "a"|"b"".
std::string describe_kind(const PropertySpec& spec) {
  std::string kind;
  switch (spec.type) {
    case PropertyType::UInt:
      kind = json_read::describe_uint_range(spec.min, spec.max);
      break;
    case PropertyType::Size:
      kind = json_read::describe_size_range(spec.min, spec.max);
      break;
    case PropertyType::Enum: {
      std::vector<std::string> listed;
      for (const auto& choice : spec.choices) listed.push_back(quote_json(choice));
      kind = "one of " + json_read::join(listed, "|");
      break;
    }
    default:
      kind = molt::sdk::to_string(spec.type);
  }
  return kind;
}

// "irq (unsigned integer from 0 to 23, default 4)", "path (string, required)".
std::string describe_spec(const PropertySpec& spec) {
  const std::string kind = describe_kind(spec);
  const std::string tail =
      spec.default_value ? "default " + describe_default(spec, *spec.default_value) : "required";
  return spec.name + " (" + kind + ", " + tail + ")";
}

std::string describe_properties(const molt::sdk::DeviceType& type) {
  std::vector<std::string> listed;
  for (const auto& spec : type.properties) listed.push_back(describe_spec(spec));
  return json_read::join(listed, "; ");
}

PropertyValue read_property(const PropertySpec& spec, const json::value& value, const Location& where) {
  switch (spec.type) {
    case PropertyType::Bool:
      return json_read::read_bool(value, where);
    case PropertyType::UInt:
      return json_read::read_uint_or_hex(value, where, spec.min, spec.max);
    case PropertyType::Size:
      return json_read::read_size(value, where, spec.min, spec.max);
    case PropertyType::String:
    case PropertyType::Path:
      return json_read::read_string(value, where);
    case PropertyType::Enum:
      return json_read::read_choice(value, where, spec.choices);
  }
  throw molt::sdk::Error("property " + quote_json(spec.name) + " has an unknown property type");
}

bool value_fits_type(const PropertyValue& value, PropertyType type) {
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

// Paths in device properties mean the same as the file's own paths: relative
// to the machine file's directory (the current directory for text).
std::string resolve_path_property(const std::string& value, const std::filesystem::path& source) {
  if (value.empty()) return value;
  const std::filesystem::path p(value);
  if (p.is_absolute()) return p.lexically_normal().string();
  const std::filesystem::path base =
      source.empty() ? std::filesystem::current_path() : std::filesystem::absolute(source).parent_path();
  return (base / p).lexically_normal().string();
}

// A compat table is core code, not user input: a mismatch is a bug to report loudly.
void check_overrides(const molt::sdk::DeviceType& type, const DefaultOverrides& overrides) {
  for (const auto& entry : overrides) {
    // Not a structured binding: clang before 16 can't capture one in a lambda.
    const std::string& name = entry.first;
    const molt::sdk::PropertyValue& value = entry.second;
    const auto spec = std::find_if(type.properties.begin(), type.properties.end(),
                                   [&](const PropertySpec& s) { return s.name == name; });
    if (spec == type.properties.end() || !value_fits_type(value, spec->type)) {
      throw molt::sdk::Error("the machine type's default for property " + quote_json(name) +
                             " of device type " + quote_json(type.name) +
                             " does not match a declared property of that type");
    }
  }
}

}  // namespace

const molt::sdk::DeviceType& find_device_type(
    const std::map<std::string, const molt::sdk::DeviceType*>& known, const DeviceConfig& device) {
  const auto found = known.find(device.type);
  if (found != known.end() && found->second) return *found->second;
  const Location where = Location{device.source, device.json_path}.member("type");
  if (known.empty()) {
    where.fail(
        "unknown device type " + quote_json(device.type) +
        "; no plugin with device types is loaded (check plugin_dirs and the plugin directory next to molt)");
  }
  std::vector<std::string> names;
  for (const auto& entry : known) names.push_back(entry.first);
  where.fail("unknown device type " + quote_json(device.type) +
             "; the loaded plugins provide: " + json_read::join(names));
}

molt::sdk::Properties resolve_properties(const molt::sdk::DeviceType& type, const DeviceConfig& device,
                                         const DefaultOverrides& overrides) {
  check_overrides(type, overrides);
  const Location where = Location{device.source, device.json_path}.member("properties");
  molt::sdk::Properties resolved;
  for (const auto& member : device.properties) {
    const std::string name(member.key());
    const auto spec = std::find_if(type.properties.begin(), type.properties.end(),
                                   [&](const PropertySpec& s) { return s.name == name; });
    if (spec == type.properties.end()) {
      const std::string known = type.properties.empty() ? "it has no properties"
                                                        : "its properties are: " + describe_properties(type);
      where.member(name).fail("unknown property " + quote_json(name) + " of device type " +
                              quote_json(type.name) + "; " + known);
    }
    PropertyValue value = read_property(*spec, member.value(), where.member(name));
    if (spec->type == PropertyType::Path) value = resolve_path_property(std::get<std::string>(value), device.source);
    resolved.set(name, std::move(value));
  }
  for (const auto& spec : type.properties) {
    if (resolved.has(spec.name)) continue;
    if (const auto override = overrides.find(spec.name); override != overrides.end()) {
      resolved.set(spec.name, override->second);
    } else if (spec.default_value) {
      resolved.set(spec.name, *spec.default_value);
    } else {
      where.fail("missing required property " + quote_json(spec.name) + " (" + describe_kind(spec) +
                 ") of device type " + quote_json(type.name) + (spec.doc.empty() ? "" : ": " + spec.doc));
    }
  }
  return resolved;
}

std::vector<ResolvedDevice> resolve_devices(
    const MachineDescription& description, const std::map<std::string, const molt::sdk::DeviceType*>& known,
    const std::map<std::string, DefaultOverrides>& overrides_by_type) {
  static const DefaultOverrides kNoOverrides;
  std::vector<ResolvedDevice> resolved;
  resolved.reserve(description.devices.size());
  for (const auto& device : description.devices) {
    const auto& type = find_device_type(known, device);
    const auto overrides = overrides_by_type.find(type.name);
    resolved.push_back(ResolvedDevice{
        &device, &type,
        resolve_properties(type, device,
                           overrides == overrides_by_type.end() ? kNoOverrides : overrides->second)});
  }
  return resolved;
}

}  // namespace molt::core::machine
