// Loads plugin shared objects and keeps the device types they register.
// Refusals, each its own sentence: a file that is not a molt plugin, a plugin
// built for another SDK ABI, a device type some other plugin registered first.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include <molt/sdk/error.hpp>
#include <molt/sdk/plugin.hpp>

namespace molt::core::plugin {

class PluginError : public sdk::Error {
 public:
  enum class Kind { NotAPlugin, AbiMismatch, DuplicateType, Unreadable };
  PluginError(Kind kind, const std::string& message) : sdk::Error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct LoadedPlugin {
  std::filesystem::path path;
  std::string name;
  std::string version;
  std::uint32_t sdk_abi;
  std::vector<std::string> device_types;
};

class Registry {
 public:
  Registry() = default;
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads one plugin; throws PluginError.
  void load(const std::filesystem::path& path);
  // Loads every *.so in a directory (sorted, so errors are reproducible).
  void load_directory(const std::filesystem::path& dir);

  const sdk::DeviceType* find(const std::string& type) const;
  // The plugin that registered `type`, or nullptr.
  const LoadedPlugin* plugin_of(const std::string& type) const;
  std::map<std::string, const sdk::DeviceType*> types() const;
  const std::vector<LoadedPlugin>& plugins() const { return plugins_; }

 private:
  struct TypeEntry {
    const sdk::DeviceType* type;
    std::size_t plugin;
  };
  std::vector<boost::dll::shared_library> libraries_;
  std::vector<LoadedPlugin> plugins_;
  std::map<std::string, TypeEntry> types_;
};

// Directories searched by default: next to the executable (build tree) and
// ../lib/molt/plugins (installed), then $MOLT_PLUGIN_PATH (colon-separated).
std::vector<std::filesystem::path> default_plugin_dirs();

}  // namespace molt::core::plugin
