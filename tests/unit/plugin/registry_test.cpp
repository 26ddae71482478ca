// The plugin loader: loads a plugin and its device types, and refuses, each
// with its own message, a file that is not a molt plugin, a plugin built for
// another SDK ABI, and a device type another plugin registered first.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/plugin/registry.hpp"

namespace molt::core::plugin {
namespace {

namespace fs = std::filesystem;

fs::path test_plugin(const char* name) { return fs::path(TEST_PLUGIN_DIR) / name; }

PluginError::Kind refusal(Registry& r, const fs::path& p, std::string* message) {
  try {
    r.load(p);
  } catch (const PluginError& e) {
    *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << p << " loaded but should have been refused";
  return PluginError::Kind::Unreadable;
}

TEST(PluginRegistry, LoadsAPluginAndItsDeviceTypes) {
  Registry r;
  r.load(test_plugin("molt-test-good.so"));
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.plugins()[0].name, "test-good");
  EXPECT_EQ(r.plugins()[0].version, "0.0.1");
  EXPECT_EQ(r.plugins()[0].sdk_abi, sdk::kSdkAbiVersion);
  const sdk::DeviceType* type = r.find("null-device");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->name, "null-device");
  EXPECT_EQ(r.plugin_of("null-device")->name, "test-good");
  EXPECT_EQ(r.find("no-such-device"), nullptr);
}

TEST(PluginRegistry, RefusesASharedObjectThatIsNotAMoltPlugin) {
  Registry r;
  std::string message;
  EXPECT_EQ(refusal(r, test_plugin("molt-test-not-a-plugin.so"), &message), PluginError::Kind::NotAPlugin);
  EXPECT_NE(message.find("not a molt plugin"), std::string::npos) << message;
  EXPECT_NE(message.find("molt_plugin_entry"), std::string::npos) << message;
  EXPECT_TRUE(r.plugins().empty());
}

TEST(PluginRegistry, RefusesAFileThatIsNotASharedObject) {
  const fs::path junk = fs::temp_directory_path() / "molt-registry-test-junk.so";
  std::ofstream(junk) << "#!/bin/sh\necho hello\n";
  Registry r;
  std::string message;
  EXPECT_EQ(refusal(r, junk, &message), PluginError::Kind::NotAPlugin);
  EXPECT_NE(message.find("not a molt plugin"), std::string::npos) << message;
  EXPECT_NE(message.find(junk.string()), std::string::npos) << message;
  fs::remove(junk);
}

TEST(PluginRegistry, RefusesAPluginBuiltForAnotherSdkAbi) {
  Registry r;
  std::string message;
  EXPECT_EQ(refusal(r, test_plugin("molt-test-other-abi.so"), &message), PluginError::Kind::AbiMismatch);
  EXPECT_NE(message.find("built for SDK ABI " + std::to_string(sdk::kSdkAbiVersion + 41)), std::string::npos)
      << message;
  EXPECT_NE(message.find("this molt speaks SDK ABI " + std::to_string(sdk::kSdkAbiVersion)), std::string::npos)
      << message;
  EXPECT_TRUE(r.plugins().empty());
}

TEST(PluginRegistry, RefusesADeviceTypeAlreadyRegisteredByAnotherPlugin) {
  Registry r;
  r.load(test_plugin("molt-test-good.so"));
  std::string message;
  EXPECT_EQ(refusal(r, test_plugin("molt-test-duplicate.so"), &message), PluginError::Kind::DuplicateType);
  EXPECT_NE(message.find("device type 'null-device' is already registered by plugin test-good"), std::string::npos)
      << message;
  // The refused plugin registered nothing; the first one is untouched.
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.plugin_of("null-device")->name, "test-good");
}

TEST(PluginRegistry, MissingFileIsUnreadable) {
  Registry r;
  std::string message;
  EXPECT_EQ(refusal(r, "/nonexistent/plugin.so", &message), PluginError::Kind::Unreadable);
  EXPECT_NE(message.find("/nonexistent/plugin.so"), std::string::npos);
}

TEST(PluginRegistry, LoadsTheRealPluginsOfThisBuild) {
  Registry r;
  r.load_directory(MOLT_PLUGIN_DIR);
  EXPECT_NE(r.find("serial-16550a"), nullptr);
  EXPECT_NE(r.find("debug-exit"), nullptr);
}

}  // namespace
}  // namespace molt::core::plugin
