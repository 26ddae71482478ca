#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "core/machine/description.hpp"

namespace molt::core::machine {
namespace {

namespace json = boost::json;
using molt::sdk::PropertySpec;
using molt::sdk::PropertyType;
using molt::sdk::PropertyValue;

// A device type with a property of every kind, optional and required.
molt::sdk::DeviceType test_type() {
  molt::sdk::DeviceType type;
  type.name = "test-dev";
  type.description = "a device for tests";
  type.properties = {
      PropertySpec{.name = "enabled", .type = PropertyType::Bool, .default_value = true, .doc = "on or off"},
      PropertySpec{.name = "irq",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{4},
                   .doc = "IOAPIC input",
                   .max = 23},
      PropertySpec{.name = "count", .type = PropertyType::UInt, .default_value = std::uint64_t{0}},
      PropertySpec{.name = "buffer",
                   .type = PropertyType::Size,
                   .default_value = std::uint64_t{4096},
                   .min = 4096,
                   .max = 1u << 20},
      PropertySpec{.name = "backend",
                   .type = PropertyType::Enum,
                   .default_value = std::string("stdio"),
                   .choices = {"stdio", "null", "file"}},
      PropertySpec{.name = "path", .type = PropertyType::String, .doc = "where the bytes go"},
  };
  return type;
}

DeviceConfig device_with(std::string_view properties_json) {
  DeviceConfig device;
  device.id = "dev0";
  device.type = "test-dev";
  device.properties = json::parse(properties_json).as_object();
  device.json_path = "$.devices[1]";
  device.source = "machines/x.json";
  return device;
}

std::string error_of(std::string_view properties_json, const DefaultOverrides& overrides = {}) {
  try {
    resolve_properties(test_type(), device_with(properties_json), overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

constexpr const char* kPrefix = "machines/x.json: $.devices[1].properties";

TEST(ResolveProperties, FillsDefaults) {
  const auto properties = resolve_properties(test_type(), device_with(R"({"path": "/tmp/out"})"));
  EXPECT_EQ(properties.values().size(), 6u);
  EXPECT_TRUE(properties.get_bool("enabled"));
  EXPECT_EQ(properties.get_uint("irq"), 4u);
  EXPECT_EQ(properties.get_uint("count"), 0u);
  EXPECT_EQ(properties.get_uint("buffer"), 4096u);
  EXPECT_EQ(properties.get_string("backend"), "stdio");
  EXPECT_EQ(properties.get_string("path"), "/tmp/out");
}

TEST(ResolveProperties, TakesGivenValues) {
  const auto properties = resolve_properties(
      test_type(),
      device_with(R"({"enabled": false, "irq": "0x17", "count": 18446744073709551615, "buffer": "64K",
                      "backend": "file", "path": "p"})"));
  EXPECT_FALSE(properties.get_bool("enabled"));
  EXPECT_EQ(properties.get_uint("irq"), 23u);
  EXPECT_EQ(properties.get_uint("count"), UINT64_MAX);
  EXPECT_EQ(properties.get_uint("buffer"), 64u << 10);
  EXPECT_EQ(properties.get_string("backend"), "file");
}

TEST(ResolveProperties, SizesGoThroughParseSize) {
  for (const std::string text : {"4K", "4k", "0x1000", "1M", "8192"}) {
    const auto properties =
        resolve_properties(test_type(), device_with(R"({"path": "p", "buffer": ")" + text + "\"}"));
    EXPECT_EQ(properties.get_uint("buffer"), molt::sdk::parse_size(text).value()) << text;
  }
  const auto integer = resolve_properties(test_type(), device_with(R"({"path": "p", "buffer": 8192})"));
  EXPECT_EQ(integer.get_uint("buffer"), 8192u);
}

TEST(ResolveProperties, CompatOverridesReplaceDefaultsButNotGivenValues) {
  const DefaultOverrides overrides{{"irq", std::uint64_t{3}}, {"backend", std::string("null")}};
  const auto defaults = resolve_properties(test_type(), device_with(R"({"path": "p"})"), overrides);
  EXPECT_EQ(defaults.get_uint("irq"), 3u);
  EXPECT_EQ(defaults.get_string("backend"), "null");
  const auto given = resolve_properties(test_type(), device_with(R"({"path": "p", "irq": 7})"), overrides);
  EXPECT_EQ(given.get_uint("irq"), 7u);
  EXPECT_THROW(resolve_properties(test_type(), device_with(R"({"path": "p"})"), {{"irq", std::string("x")}}),
               molt::sdk::Error);
  EXPECT_THROW(resolve_properties(test_type(), device_with(R"({"path": "p"})"), {{"nope", true}}),
               molt::sdk::Error);
}

TEST(ResolvePropertiesErrors, UnknownPropertyListsTheDevicesProperties) {
  EXPECT_EQ(
      error_of(R"({"path": "p", "baud": 9600})"),
      std::string(kPrefix) +
          ".baud: unknown property \"baud\" of device type \"test-dev\"; its properties are: enabled (bool, "
          "default true); irq (unsigned integer from 0 to 23, default 4); count (unsigned integer, default "
          "0); "
          "buffer (size from 4K to 1M, default \"4K\"); backend (one of \"stdio\"|\"null\"|\"file\", default "
          "\"stdio\"); path (string, required)");
  molt::sdk::DeviceType bare{.name = "bare"};
  try {
    resolve_properties(bare, device_with(R"({"x": 1})"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "machines/x.json: $.devices[1].properties.x: unknown property \"x\" of device type "
                 "\"bare\"; it has no properties");
  }
}

TEST(ResolvePropertiesErrors, MissingRequired) {
  EXPECT_EQ(error_of("{}"),
            std::string(kPrefix) +
                ": missing required property \"path\" (string) of device type \"test-dev\": where the "
                "bytes go");
}

TEST(ResolvePropertiesErrors, WrongTypes) {
  EXPECT_EQ(error_of(R"({"path": "p", "enabled": "yes"})"),
            std::string(kPrefix) + ".enabled: expected true or false, got \"yes\"");
  EXPECT_EQ(error_of(R"({"path": "p", "enabled": 1})"),
            std::string(kPrefix) + ".enabled: expected true or false, got 1");
  EXPECT_EQ(error_of(R"({"path": 5})"), std::string(kPrefix) + ".path: expected a string, got 5");
  EXPECT_EQ(error_of(R"({"path": "p", "irq": "four"})"),
            std::string(kPrefix) +
                ".irq: expected an unsigned integer from 0 to 23 (a number, or a string \"0x...\" in hex), "
                "got \"four\"");
  EXPECT_EQ(error_of(R"({"path": "p", "irq": "12"})"),
            std::string(kPrefix) +
                ".irq: expected an unsigned integer from 0 to 23 (a number, or a string \"0x...\" in hex), "
                "got \"12\"");
  EXPECT_EQ(error_of(R"({"path": "p", "irq": null})"),
            std::string(kPrefix) + ".irq: expected an unsigned integer from 0 to 23, got null");
  EXPECT_EQ(error_of(R"({"path": "p", "backend": 1})"),
            std::string(kPrefix) + ".backend: expected one of \"stdio\", \"null\", \"file\", got 1");
}

TEST(ResolvePropertiesErrors, OutOfRangeAndNotAChoice) {
  EXPECT_EQ(error_of(R"({"path": "p", "irq": 99})"),
            std::string(kPrefix) + ".irq: expected an unsigned integer from 0 to 23, got 99");
  EXPECT_EQ(error_of(R"({"path": "p", "irq": -1})"),
            std::string(kPrefix) + ".irq: expected an unsigned integer from 0 to 23, got -1");
  EXPECT_EQ(error_of(R"({"path": "p", "irq": "0x18"})"),
            std::string(kPrefix) + ".irq: expected an unsigned integer from 0 to 23, got \"0x18\" (24)");
  EXPECT_EQ(error_of(R"({"path": "p", "count": "0x10000000000000000"})"),
            std::string(kPrefix) +
                ".count: \"0x10000000000000000\" is too large: an unsigned integer must fit in 64 bits");
  EXPECT_EQ(error_of(R"({"path": "p", "count": 1e3})"),
            std::string(kPrefix) + ".count: expected an unsigned integer, got 1000.0");
  EXPECT_EQ(error_of(R"({"path": "p", "buffer": "2M"})"),
            std::string(kPrefix) + ".buffer: expected a size from 4K to 1M, got \"2M\" (2097152 bytes)");
  EXPECT_EQ(error_of(R"({"path": "p", "buffer": 100})"),
            std::string(kPrefix) + ".buffer: expected a size from 4K to 1M, got 100");
  EXPECT_EQ(error_of(R"({"path": "p", "buffer": "12Q"})"),
            std::string(kPrefix) +
                ".buffer: expected a size (an integer number of bytes or a string like \"512M\" or \"2G\" "
                "(suffixes K, "
                "M, G, T are powers of 1024)), got \"12Q\"");
  EXPECT_EQ(error_of(R"({"path": "p", "backend": "tty"})"),
            std::string(kPrefix) + ".backend: expected one of \"stdio\", \"null\", \"file\", got \"tty\"");
}

TEST(FindDeviceType, FindsOrListsTheKnownTypes) {
  const auto type = test_type();
  molt::sdk::DeviceType other{.name = "debug-exit"};
  const std::map<std::string, const molt::sdk::DeviceType*> known{{type.name, &type}, {other.name, &other}};
  DeviceConfig device = device_with("{}");
  EXPECT_EQ(&find_device_type(known, device), &type);
  device.type = "serial";
  try {
    find_device_type(known, device);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "machines/x.json: $.devices[1].type: unknown device type \"serial\"; the loaded plugins "
                 "provide: debug-exit, test-dev");
    EXPECT_EQ(e.json_path(), "$.devices[1].type");
  }
  try {
    find_device_type({}, device);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "machines/x.json: $.devices[1].type: unknown device type \"serial\"; no plugin with device "
                 "types is loaded (check plugin_dirs and the plugin directory next to molt)");
  }
}

TEST(ResolveDevices, ResolvesEveryDeviceInOrder) {
  const auto type = test_type();
  molt::sdk::DeviceType exit_type{.name = "debug-exit"};
  const std::map<std::string, const molt::sdk::DeviceType*> known{{type.name, &type},
                                                                  {exit_type.name, &exit_type}};
  const auto desc = parse_machine(R"({"memory": {"size": "1M"}, "kernel": {"path": "k"}, "devices": [
      {"id": "a", "type": "test-dev", "properties": {"path": "x"}},
      {"id": "exit", "type": "debug-exit"},
      {"id": "b", "type": "test-dev", "properties": {"path": "y", "irq": 5}}]})",
                                  "/m/x.json");
  const auto devices = resolve_devices(desc, known, {{"test-dev", {{"irq", std::uint64_t{9}}}}});
  ASSERT_EQ(devices.size(), 3u);
  EXPECT_EQ(devices[0].config, &desc.devices[0]);
  EXPECT_EQ(devices[0].type, &type);
  EXPECT_EQ(devices[0].properties.get_uint("irq"), 9u);
  EXPECT_EQ(devices[1].type, &exit_type);
  EXPECT_TRUE(devices[1].properties.values().empty());
  EXPECT_EQ(devices[2].properties.get_uint("irq"), 5u);
  EXPECT_EQ(devices[2].properties.get_string("path"), "y");
}

TEST(ResolveDevices, StopsAtTheFirstBadDevice) {
  const auto type = test_type();
  const std::map<std::string, const molt::sdk::DeviceType*> known{{type.name, &type}};
  const auto desc = parse_machine(R"({"memory": {"size": "1M"}, "kernel": {"path": "k"}, "devices": [
      {"id": "a", "type": "test-dev", "properties": {"path": "x"}},
      {"id": "b", "type": "test-dev", "properties": {"path": "y", "irq": 24}}]})",
                                  "m.json");
  try {
    resolve_devices(desc, known);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "m.json: $.devices[1].properties.irq: expected an unsigned integer from 0 to 23, got 24");
  }
}

}  // namespace
}  // namespace molt::core::machine
