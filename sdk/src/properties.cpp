#include <molt/sdk/properties.hpp>

#include <cctype>
#include <limits>

#include <molt/sdk/error.hpp>

namespace molt::sdk {

const char* to_string(PropertyType type) {
  switch (type) {
    case PropertyType::Bool: return "bool";
    case PropertyType::UInt: return "unsigned integer";
    case PropertyType::Size: return "size";
    case PropertyType::String: return "string";
    case PropertyType::Path: return "path";
    case PropertyType::Enum: return "enum";
  }
  return "?";
}

const PropertyValue& Properties::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("property '" + name + "' is not set; declare it in the device type");
  return it->second;
}

bool Properties::get_bool(const std::string& name) const {
  const auto* v = std::get_if<bool>(&at(name));
  if (!v) throw Error("property '" + name + "' is not a bool");
  return *v;
}

std::uint64_t Properties::get_uint(const std::string& name) const {
  const auto* v = std::get_if<std::uint64_t>(&at(name));
  if (!v) throw Error("property '" + name + "' is not an unsigned integer");
  return *v;
}

const std::string& Properties::get_string(const std::string& name) const {
  const auto* v = std::get_if<std::string>(&at(name));
  if (!v) throw Error("property '" + name + "' is not a string");
  return *v;
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  std::size_t i = 0;
  unsigned base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    i = 2;
  }
  const std::size_t digits_start = i;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    unsigned digit;
    if (std::isdigit(static_cast<unsigned char>(c))) digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c))) digit = static_cast<unsigned>(std::tolower(c) - 'a' + 10);
    else break;
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / base) return std::nullopt;
    value = value * base + digit;
  }
  if (i == digits_start) return std::nullopt;
  if (i == text.size()) return value;
  if (base == 16 || i + 1 != text.size()) return std::nullopt;
  unsigned shift;
  switch (std::toupper(static_cast<unsigned char>(text[i]))) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return std::nullopt;
  }
  if (value > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

std::string to_string(const PropertyValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const auto* u = std::get_if<std::uint64_t>(&value)) return std::to_string(*u);
  return "\"" + std::get<std::string>(value) + "\"";
}

}  // namespace molt::sdk
