#include "core/machine/description_json.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>
#include <set>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "core/machine/description.hpp"

namespace molt::core::machine::json_read {
namespace {

namespace json = boost::json;
using boost::system::error_code;

constexpr std::size_t kMaxDescribedLength = 60;
constexpr std::uint64_t kNoMax = std::numeric_limits<std::uint64_t>::max();

bool is_plain_key(std::string_view key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '$';
  });
}

// Walks the text once without building values, to find the first key that
// appears twice in one object (Boost.JSON would silently keep the last) and
// where it is. Tracks the JSON path of the value being read.
class DuplicateKeyFinder {
 public:
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();

  std::string duplicate_path;  // set when the walk stopped at a duplicate

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return begin_container(true); }
  bool on_object_end(std::size_t, error_code&) { return end_container(); }
  bool on_array_begin(error_code&) { return begin_container(false); }
  bool on_array_end(std::size_t, error_code&) { return end_container(); }
  bool on_key_part(json::string_view part, std::size_t, error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, error_code& ec) {
    key_.append(part.data(), part.size());
    Frame& frame = frames_.back();
    if (!frame.keys.insert(key_).second) {
      duplicate_path = path_of_current();
      duplicate_path = Location{{}, duplicate_path}.member(key_).path;
      ec = json::error::syntax;
      return false;
    }
    frame.key = std::move(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, error_code&) { return scalar(); }
  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, error_code&) { return scalar(); }
  bool on_uint64(std::uint64_t, json::string_view, error_code&) { return scalar(); }
  bool on_double(double, json::string_view, error_code&) { return scalar(); }
  bool on_bool(bool, error_code&) { return scalar(); }
  bool on_null(error_code&) { return scalar(); }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }

 private:
  struct Frame {
    bool is_object = false;
    std::size_t elements = 0;  // arrays: elements begun so far
    std::string key;           // objects: the current member
    std::set<std::string> keys;
  };

  bool scalar() {
    if (!frames_.empty() && !frames_.back().is_object) ++frames_.back().elements;
    return true;
  }
  bool begin_container(bool is_object) {
    scalar();
    frames_.push_back(Frame{is_object, 0, {}, {}});
    return true;
  }
  bool end_container() {
    frames_.pop_back();
    return true;
  }
  // The path of the innermost open container.
  std::string path_of_current() const {
    Location where;
    for (std::size_t i = 0; i + 1 < frames_.size(); ++i) {
      where = frames_[i].is_object ? where.member(frames_[i].key) : where.element(frames_[i].elements - 1);
    }
    return where.path;
  }

  std::vector<Frame> frames_;
  std::string key_;
};

std::string line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t line_start = before.rfind('\n');
  const std::size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// The walker stops on a repeated key's closing quote; messages point at its opening one.
std::size_t start_of_key(std::string_view text, std::size_t closing_quote) {
  for (std::size_t i = std::min(closing_quote, text.size()); i-- > 0;) {
    if (text[i] != '"') continue;
    std::size_t backslashes = 0;
    while (backslashes < i && text[i - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return i;
  }
  return closing_quote;
}

std::string describe_double(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  std::string text = buffer;
  // A bare "2" would read as an integer the message then rejects.
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

[[noreturn]] void fail_expected(const Location& where, const std::string& expected,
                                const json::value& value) {
  where.fail("expected " + expected + ", got " + describe(value));
}

std::optional<std::uint64_t> json_uint(const json::value& value) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() >= 0) return static_cast<std::uint64_t>(value.get_int64());
  return std::nullopt;
}

// Text that has the shape of a size ("123", "0x1f", "64K") but may overflow.
bool has_size_shape(std::string_view text) {
  std::size_t i = 0;
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  if (hex) i = 2;
  const std::size_t digits_start = i;
  while (i < text.size() && (hex ? std::isxdigit(static_cast<unsigned char>(text[i]))
                                 : std::isdigit(static_cast<unsigned char>(text[i])))) {
    ++i;
  }
  if (i == digits_start) return false;
  if (i == text.size()) return true;
  return !hex && i + 1 == text.size() && std::string_view("KMGTkmgt").find(text[i]) != std::string_view::npos;
}

}  // namespace

Location Location::member(std::string_view key) const {
  if (is_plain_key(key)) return {origin, path + "." + std::string(key)};
  return {origin, path + "[" + json::serialize(json::string(key)) + "]"};
}

Location Location::element(std::size_t index) const {
  return {origin, path + "[" + std::to_string(index) + "]"};
}

void Location::fail(const std::string& message) const {
  throw ConfigError(origin, path, message);
}

json::value parse_strict(std::string_view text, const std::filesystem::path& origin) {
  if (std::all_of(text.begin(), text.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)); })) {
    throw ConfigError(origin, "", "the text is empty; a machine description is a JSON object");
  }
  json::basic_parser<DuplicateKeyFinder> walker{json::parse_options{}};
  error_code ec;
  const std::size_t consumed = walker.write_some(false, text.data(), text.size(), ec);
  if (!walker.handler().duplicate_path.empty()) {
    throw ConfigError(origin, walker.handler().duplicate_path,
                      "this key appears more than once in its object (again at " +
                          line_and_column(text, start_of_key(text, consumed)) + "); keep one");
  }
  const std::string where = line_and_column(text, consumed);
  if (ec == json::error::incomplete) {
    throw ConfigError(origin, "",
                      "invalid JSON: the text ends at " + where + " before the value is complete");
  }
  if (ec) throw ConfigError(origin, "", "invalid JSON at " + where + ": " + ec.message());
  if (consumed != text.size()) {
    throw ConfigError(origin, "",
                      "invalid JSON at " + where + ": unexpected text after the end of the value");
  }
  return json::parse(json::string_view(text.data(), text.size()));
}

std::string describe(const json::value& value) {
  std::string text = value.is_double() ? describe_double(value.get_double()) : json::serialize(value);
  if (text.size() > kMaxDescribedLength) text = text.substr(0, kMaxDescribedLength) + "...";
  return text;
}

std::string quote_json(std::string_view text) {
  return json::serialize(json::string(text));
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

ObjectReader::ObjectReader(const json::value& value, Location where, std::string_view what,
                           std::initializer_list<std::string_view> known)
    : object_(value.if_object()), where_(std::move(where)) {
  if (!object_) fail_expected(where_, "an object (" + std::string(what) + ")", value);
  for (const auto& member : *object_) {
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::vector<std::string> names(known.begin(), known.end());
    where_.member(key).fail("unknown field " + quote_json(key) + "; the fields of " + std::string(what) +
                            " are: " + join(names));
  }
}

const json::value* ObjectReader::optional(std::string_view key, bool null_is_absent) const {
  const json::value* value = object_->if_contains(json::string_view(key.data(), key.size()));
  if (value && value->is_null() && null_is_absent) return nullptr;
  return value;
}

const json::value& ObjectReader::required(std::string_view key, std::string_view expected) const {
  const json::value* value = optional(key);
  if (!value) where_.fail("missing required field " + quote_json(key) + " (" + std::string(expected) + ")");
  return *value;
}

std::string read_string(const json::value& value, const Location& where) {
  if (!value.is_string()) fail_expected(where, "a string", value);
  return std::string(value.get_string());
}

std::filesystem::path read_path(const json::value& value, const Location& where,
                                const std::filesystem::path& base_dir) {
  if (!value.is_string() || value.get_string().empty())
    fail_expected(where, "a non-empty path string", value);
  const std::string text(value.get_string());
  if (text.find('\0') != std::string::npos) where.fail("a path cannot contain a NUL character");
  const std::filesystem::path path(text);
  return (path.is_absolute() ? path : base_dir / path).lexically_normal();
}

std::string describe_uint_range(std::uint64_t min, std::uint64_t max) {
  if (min == 0 && max == kNoMax) return "unsigned integer";
  if (max == kNoMax) return "unsigned integer of at least " + std::to_string(min);
  return "unsigned integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string describe_size_range(std::uint64_t min, std::uint64_t max) {
  if (min == 0 && max == kNoMax) return "size";
  if (max == kNoMax) return "size of at least " + format_size(min);
  if (min == 0) return "size of at most " + format_size(max);
  return "size from " + format_size(min) + " to " + format_size(max);
}

std::uint64_t read_uint(const json::value& value, const Location& where, std::uint64_t min,
                        std::uint64_t max) {
  const auto number = json_uint(value);
  if (!number || *number < min || *number > max) {
    fail_expected(where, "an " + describe_uint_range(min, max), value);
  }
  return *number;
}

std::uint64_t read_uint_or_hex(const json::value& value, const Location& where, std::uint64_t min,
                               std::uint64_t max) {
  if (!value.is_string()) return read_uint(value, where, min, max);
  const std::string text(value.get_string());
  const bool hex =
      text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') && has_size_shape(text);
  const std::string expected = "an " + describe_uint_range(min, max);
  if (!hex) fail_expected(where, expected + " (a number, or a string \"0x...\" in hex)", value);
  const auto number = molt::sdk::parse_size(text);
  if (!number) where.fail(quote_json(text) + " is too large: an unsigned integer must fit in 64 bits");
  if (*number < min || *number > max) {
    where.fail("expected " + expected + ", got " + quote_json(text) + " (" + std::to_string(*number) + ")");
  }
  return *number;
}

std::uint64_t read_size(const json::value& value, const Location& where, std::uint64_t min,
                        std::uint64_t max) {
  std::optional<std::uint64_t> bytes = json_uint(value);
  if (!bytes && value.is_string()) {
    const std::string text(value.get_string());
    bytes = molt::sdk::parse_size(text);
    if (!bytes && has_size_shape(text)) {
      where.fail(quote_json(text) + " is too large: a size must be less than 16E (2^64 bytes)");
    }
  }
  if (!bytes) fail_expected(where, "a size (" + std::string(kSizeForms) + ")", value);
  if (*bytes < min || *bytes > max) {
    std::string got = describe(value);
    if (value.is_string()) got += " (" + std::to_string(*bytes) + " bytes)";
    where.fail("expected a " + describe_size_range(min, max) + ", got " + got);
  }
  return *bytes;
}

bool read_bool(const json::value& value, const Location& where) {
  if (!value.is_bool()) fail_expected(where, "true or false", value);
  return value.get_bool();
}

std::string read_choice(const json::value& value, const Location& where,
                        const std::vector<std::string>& choices) {
  std::vector<std::string> listed;
  for (const auto& choice : choices) listed.push_back(quote_json(choice));
  if (value.is_string()) {
    const std::string text(value.get_string());
    if (std::find(choices.begin(), choices.end(), text) != choices.end()) return text;
  }
  fail_expected(where, "one of " + join(listed), value);
}

}  // namespace molt::core::machine::json_read
