// Keeps docs/machine-format.md and machines/schema.json in step with the
// loader: every example in the doc is parsed, and the schema's fields are the
// ones the loader knows.
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "core/machine/description.hpp"

namespace molt::core::machine {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

const fs::path kSourceDir = MOLT_SOURCE_DIR;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

enum class ExampleKind { Machine, Error, DeviceError };

struct Example {
  std::size_t line = 0;  // of the marker, for failure messages
  ExampleKind kind = ExampleKind::Machine;
  std::string json;
  std::string expected_error;  // error examples: the text block after the JSON
};

// The fenced block starting at lines[i] (which must open with `fence`); moves i past it.
std::string read_block(const std::vector<std::string>& lines, std::size_t& i, const std::string& fence) {
  EXPECT_LT(i, lines.size());
  if (i >= lines.size() || lines[i] != fence) {
    ADD_FAILURE() << "docs/machine-format.md line " << i + 1 << ": expected " << fence;
    return {};
  }
  std::string block;
  for (++i; i < lines.size() && lines[i] != "```"; ++i) block += lines[i] + "\n";
  ++i;
  return block;
}

std::vector<Example> examples_in(const std::string& markdown) {
  std::vector<std::string> lines;
  std::istringstream in(markdown);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<Example> examples;
  for (std::size_t i = 0; i < lines.size();) {
    static const std::map<std::string, ExampleKind> kMarkers{
        {"<!-- example: machine -->", ExampleKind::Machine},
        {"<!-- example: error -->", ExampleKind::Error},
        {"<!-- example: device-error -->", ExampleKind::DeviceError}};
    const auto marker = kMarkers.find(lines[i]);
    if (marker == kMarkers.end()) {
      ++i;
      continue;
    }
    Example example{.line = i + 1, .kind = marker->second};
    ++i;
    example.json = read_block(lines, i, "```json");
    if (example.kind != ExampleKind::Machine) {
      example.expected_error = read_block(lines, i, "```text");
      if (!example.expected_error.empty()) example.expected_error.pop_back();  // the final newline
    }
    examples.push_back(std::move(example));
  }
  return examples;
}

// The device types the doc's second-step examples assume, declared as the doc shows them.
struct DocDeviceTypes {
  molt::sdk::DeviceType uart{
      .name = "uart",
      .properties = {
          {.name = "irq",
           .type = molt::sdk::PropertyType::UInt,
           .default_value = std::uint64_t{4},
           .doc = "interrupt line",
           .max = 23},
          {.name = "backend",
           .type = molt::sdk::PropertyType::Enum,
           .default_value = std::string("stdio"),
           .choices = {"stdio", "null"}},
          {.name = "path", .type = molt::sdk::PropertyType::String, .doc = "where the bytes go"},
      }};
  molt::sdk::DeviceType debug_exit{.name = "debug-exit"};
  std::map<std::string, const molt::sdk::DeviceType*> by_name{{"uart", &uart}, {"debug-exit", &debug_exit}};
};

// The what() of the first error reading the example gives, or "no error".
std::string error_of(const Example& example, const DocDeviceTypes& types) {
  try {
    const auto desc = parse_machine(example.json, "example.json");
    if (example.kind == ExampleKind::DeviceError) resolve_devices(desc, types.by_name);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(MachineFormatDoc, EveryExampleReadsAsDocumented) {
  const DocDeviceTypes types;
  const auto examples = examples_in(read_text(kSourceDir / "docs/machine-format.md"));
  std::map<ExampleKind, std::size_t> counts;
  for (const auto& example : examples) {
    SCOPED_TRACE("example at docs/machine-format.md line " + std::to_string(example.line));
    ++counts[example.kind];
    if (example.kind == ExampleKind::Machine) {
      EXPECT_NO_THROW(parse_machine(example.json, (kSourceDir / "machines/example.json").string()));
    } else {
      EXPECT_EQ(error_of(example, types), example.expected_error);
    }
  }
  // A complete file, a minimal one, and an example of each kind of mistake.
  EXPECT_GE(counts[ExampleKind::Machine], 2u);
  EXPECT_GE(counts[ExampleKind::Error], 8u);
  EXPECT_GE(counts[ExampleKind::DeviceError], 6u);
}

json::object schema() {
  return json::parse(read_text(kSourceDir / "machines/schema.json")).as_object();
}

std::set<std::string> keys_of(const json::value& properties) {
  std::set<std::string> keys;
  for (const auto& member : properties.as_object()) keys.insert(std::string(member.key()));
  return keys;
}

// The field list the loader gives when it meets an unknown key in `doc`.
std::set<std::string> fields_listed_for(const std::string& doc) {
  try {
    parse_machine(doc, "");
  } catch (const ConfigError& e) {
    const std::string marker = " are: ";
    const auto at = e.message().find(marker);
    EXPECT_NE(at, std::string::npos) << e.what();
    std::set<std::string> fields;
    std::istringstream list(e.message().substr(at + marker.size()));
    for (std::string field; std::getline(list >> std::ws, field, ',');) fields.insert(field);
    return fields;
  }
  ADD_FAILURE() << "no error for " << doc;
  return {};
}

TEST(MachineSchema, IsDraft202012Json) {
  const auto root = schema();
  EXPECT_EQ(root.at("$schema"), "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(root.at("type"), "object");
  EXPECT_EQ(root.at("additionalProperties"), false);
}

TEST(MachineSchema, FieldsMatchTheLoader) {
  const auto root = schema();
  const auto& defs = root.at("$defs");
  EXPECT_EQ(keys_of(root.at("properties")),
            fields_listed_for(R"({"memory": {"size": 4096}, "kernel": {"path": "k"}, "x": 1})"));
  EXPECT_EQ(keys_of(root.at("properties").at("memory").at("properties")),
            fields_listed_for(R"({"memory": {"size": 4096, "x": 1}, "kernel": {"path": "k"}})"));
  EXPECT_EQ(keys_of(root.at("properties").at("kernel").at("properties")),
            fields_listed_for(R"({"memory": {"size": 4096}, "kernel": {"path": "k", "x": 1}})"));
  EXPECT_EQ(keys_of(root.at("properties").at("firmware").at("properties")),
            fields_listed_for(R"({"memory": {"size": 4096}, "firmware": {"path": "b", "x": 1}})"));
  EXPECT_EQ(
      keys_of(defs.at("device").at("properties")),
      fields_listed_for(R"({"memory": {"size": 4096}, "kernel": {"path": "k"}, "devices": [{"x": 1}]})"));
}

TEST(MachineSchema, RequiredFieldsMatchTheLoader) {
  const auto root = schema();
  // kernel is required unless firmware is given: the schema says so with anyOf.
  EXPECT_EQ(json::serialize(root.at("required")), R"(["memory"])");
  EXPECT_EQ(
      json::serialize(root.at("anyOf")),
      R"([{"required":["kernel"]},{"required":["firmware"],"properties":{"firmware":{"type":"object"}}}])");
  EXPECT_EQ(json::serialize(root.at("properties").at("firmware").at("required")), R"(["path"])");
  EXPECT_NO_THROW(parse_machine(R"({"memory": {"size": 4096}, "firmware": {"path": "b"}})", ""));
  EXPECT_EQ(json::serialize(root.at("properties").at("memory").at("required")), R"(["size"])");
  EXPECT_EQ(json::serialize(root.at("properties").at("kernel").at("required")), R"(["path"])");
  EXPECT_EQ(json::serialize(root.at("$defs").at("device").at("required")), R"(["id","type"])");
  // And the loader indeed needs nothing else: the smallest document the schema allows parses.
  EXPECT_NO_THROW(parse_machine(R"({"memory": {"size": 4096}, "kernel": {"path": "k"},
                                    "devices": [{"id": "d", "type": "t"}]})",
                                ""));
}

TEST(MachineSchema, DefaultsMatchTheLoader) {
  const auto root = schema();
  const auto& properties = root.at("properties");
  const auto desc = parse_machine(R"({"memory": {"size": 4096}, "kernel": {"path": "k"}})", "");
  EXPECT_EQ(properties.at("machine").at("default"), json::value(desc.machine_type));
  EXPECT_EQ(properties.at("vcpus").at("default"), json::value(desc.vcpus));
  EXPECT_EQ(properties.at("memory").at("properties").at("backend").at("default"),
            json::value(to_string(desc.memory_backend)));
  EXPECT_EQ(properties.at("kernel").at("properties").at("cmdline").at("default"),
            json::value(desc.kernel.cmdline));
}

}  // namespace
}  // namespace molt::core::machine
