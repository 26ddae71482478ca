// The plugin entry point. A plugin .so exports one symbol, `molt_plugin_entry`
// (a Boost.DLL alias), pointing at a PluginEntry whose first fields have a
// fixed C layout: the loader checks the magic and the SDK ABI version before
// it touches any C++ type, so a plugin built for another ABI is refused
// cleanly instead of crashing.
//
//   MOLT_PLUGIN("serial", "1.0.0", describe_serial_plugin)
//
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/dll/alias.hpp>

#include <molt/sdk/abi.hpp>
#include <molt/sdk/device.hpp>
#include <molt/sdk/properties.hpp>

namespace molt::sdk {

using DeviceFactory = std::function<std::unique_ptr<Device>(DeviceContext& ctx)>;

struct DeviceType {
  std::string name;  // kebab-case, as written in machine JSON: "serial-16550a"
  std::string description;
  std::vector<PropertySpec> properties;
  DeviceFactory create;
};

struct PluginInfo {
  std::vector<DeviceType> device_types;
};

inline constexpr std::uint32_t kPluginMagic = 0x544c4f4d;  // "MOLT"

extern "C" {
struct PluginEntry {
  std::uint32_t magic;
  std::uint32_t sdk_abi;
  const char* name;
  const char* version;
  // Only called once magic and sdk_abi matched.
  const PluginInfo* (*describe)();
};
}

}  // namespace molt::sdk

#define MOLT_PLUGIN(plugin_name, plugin_version, describe_fn)                             \
  namespace {                                                                             \
  const ::molt::sdk::PluginEntry molt_plugin_entry_object{                                \
      ::molt::sdk::kPluginMagic, ::molt::sdk::kSdkAbiVersion, plugin_name, plugin_version, \
      describe_fn};                                                                       \
  }                                                                                       \
  BOOST_DLL_ALIAS(molt_plugin_entry_object, molt_plugin_entry)
