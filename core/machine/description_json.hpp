// Reading JSON with a path in hand: every accessor knows where in the document
// it is, so each problem becomes a ConfigError that names the place and what
// belongs there. Internal to the machine description loader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

namespace molt::core::machine::json_read {

// A place in a document: the file and the JSON path ("$.devices[1].id").
struct Location {
  std::filesystem::path origin;
  std::string path = "$";

  Location member(std::string_view key) const;
  Location element(std::size_t index) const;
  [[noreturn]] void fail(const std::string& message) const;
};

// Parses strict JSON (no comments, no trailing commas, one value). Syntax
// errors and keys that appear twice in one object are ConfigErrors that give
// the line and column.
boost::json::value parse_strict(std::string_view text, const std::filesystem::path& origin);

// How a value reads in "got ..." parts of messages: JSON text, shortened.
std::string describe(const boost::json::value& value);

// Quotes a name for messages: "com1".
std::string quote_json(std::string_view text);

// Joins names: "a, b, c".
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

// The accepted forms of a size, for messages.
inline constexpr std::string_view kSizeForms =
    "an integer number of bytes or a string like \"512M\" or \"2G\" (suffixes K, M, G, T are powers of 1024)";

// A JSON object read field by field. Construction checks it is an object and
// has no keys besides `known`, so a misspelt key is reported as such rather
// than as a missing one.
class ObjectReader {
 public:
  ObjectReader(const boost::json::value& value, Location where, std::string_view what,
               std::initializer_list<std::string_view> known);

  // Null if absent (a JSON null counts as absent only where `null_is_absent`).
  const boost::json::value* optional(std::string_view key, bool null_is_absent = true) const;
  // Throws "missing required field ..." naming what was expected.
  const boost::json::value& required(std::string_view key, std::string_view expected) const;
  Location at(std::string_view key) const { return where_.member(key); }
  const Location& where() const { return where_; }
  const boost::json::object& object() const { return *object_; }

 private:
  const boost::json::object* object_;
  Location where_;
};

std::string read_string(const boost::json::value& value, const Location& where);
// A non-empty string without NUL bytes, resolved against `base_dir`.
std::filesystem::path read_path(const boost::json::value& value, const Location& where,
                                const std::filesystem::path& base_dir);
// A non-negative JSON integer in [min, max].
std::uint64_t read_uint(const boost::json::value& value, const Location& where, std::uint64_t min,
                        std::uint64_t max);
// An integer, or a "0x..." string, in [min, max].
std::uint64_t read_uint_or_hex(const boost::json::value& value, const Location& where, std::uint64_t min,
                               std::uint64_t max);
// A size: integer bytes or molt::sdk::parse_size text, in [min, max].
std::uint64_t read_size(const boost::json::value& value, const Location& where, std::uint64_t min,
                        std::uint64_t max);
bool read_bool(const boost::json::value& value, const Location& where);
// One of `choices`; the message lists them.
std::string read_choice(const boost::json::value& value, const Location& where,
                        const std::vector<std::string>& choices);

// "unsigned integer from 0 to 23", "unsigned integer", "unsigned integer of at least 1".
std::string describe_uint_range(std::uint64_t min, std::uint64_t max);
// "size from 4K to 1M", "size", "size of at most 1G".
std::string describe_size_range(std::uint64_t min, std::uint64_t max);

}  // namespace molt::core::machine::json_read
