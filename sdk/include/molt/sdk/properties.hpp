// Declared, typed, documented device properties. The core validates a
// machine description's JSON against these before a device is created and
// fills in defaults, so a device reads only well-formed values.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace molt::sdk {

enum class PropertyType {
  Bool,    // JSON true/false
  UInt,    // JSON non-negative integer (or "0x.." string), within [min, max]
  Size,    // JSON integer bytes or a string with a K/M/G/T suffix ("512M")
  String,  // JSON string
  Path,    // JSON string naming a file; the core makes a relative path absolute
           // against the machine file's directory (empty stays empty)
  Enum,    // JSON string, one of `choices`
};

const char* to_string(PropertyType type);

using PropertyValue = std::variant<bool, std::uint64_t, std::string>;

struct PropertySpec {
  std::string name;
  PropertyType type = PropertyType::String;
  // No default means the property is required.
  std::optional<PropertyValue> default_value;
  std::string doc;
  std::vector<std::string> choices;  // Enum only
  std::uint64_t min = 0;             // UInt/Size only
  std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  // Compared between source and destination before a migration.
  bool migration_relevant = true;
  // The monitor's device.set may change it while the guest runs; the device
  // then gets Device::set_property() and may still refuse the value.
  bool settable_at_runtime = false;
};

// Validated property values of one device instance, defaults filled in.
class Properties {
 public:
  Properties() = default;
  explicit Properties(std::map<std::string, PropertyValue> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool get_bool(const std::string& name) const;
  std::uint64_t get_uint(const std::string& name) const;
  // String and Enum properties.
  const std::string& get_string(const std::string& name) const;

  const std::map<std::string, PropertyValue>& values() const { return values_; }
  void set(const std::string& name, PropertyValue value) { values_[name] = std::move(value); }

 private:
  const PropertyValue& at(const std::string& name) const;
  std::map<std::string, PropertyValue> values_;
};

// Parses "512", "0x200", "4K", "512M", "2G", "1T" (binary units). Returns
// nullopt for anything else, including overflow.
std::optional<std::uint64_t> parse_size(const std::string& text);

// Renders a value for messages and listings ("true", "4096", "\"stdio\"").
std::string to_string(const PropertyValue& value);

}  // namespace molt::sdk
