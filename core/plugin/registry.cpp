#include "core/plugin/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <boost/dll/shared_library_load_mode.hpp>

namespace molt::core::plugin {

namespace fs = std::filesystem;

Registry::~Registry() {
  // Device types (and the std::function factories in them) live in the
  // libraries: forget them before unloading.
  types_.clear();
  plugins_.clear();
  while (!libraries_.empty()) libraries_.pop_back();
}

void Registry::load(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw PluginError(PluginError::Kind::Unreadable, "plugin " + path.string() + ": no such file");
  }
  boost::dll::shared_library lib;
  boost::dll::fs::error_code load_error;
  lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, load_error);
  if (load_error) {
    throw PluginError(PluginError::Kind::NotAPlugin, "plugin " + path.string() +
                                                         ": not a molt plugin (the dynamic loader refused it: " +
                                                         load_error.message() + ")");
  }
  if (!lib.has("molt_plugin_entry")) {
    throw PluginError(PluginError::Kind::NotAPlugin,
                      "plugin " + path.string() + ": not a molt plugin (it exports no molt_plugin_entry)");
  }
  const auto& entry = lib.get_alias<const sdk::PluginEntry>("molt_plugin_entry");
  if (entry.magic != sdk::kPluginMagic) {
    throw PluginError(PluginError::Kind::NotAPlugin,
                      "plugin " + path.string() + ": not a molt plugin (its entry has the wrong magic)");
  }
  if (entry.sdk_abi != sdk::kSdkAbiVersion) {
    throw PluginError(PluginError::Kind::AbiMismatch,
                      "plugin " + path.string() + " (" + entry.name + " " + entry.version + ") was built for SDK ABI " +
                          std::to_string(entry.sdk_abi) + ", this molt speaks SDK ABI " +
                          std::to_string(sdk::kSdkAbiVersion) + "; rebuild the plugin against this SDK");
  }
  const sdk::PluginInfo* info = entry.describe();
  LoadedPlugin loaded{fs::absolute(path), entry.name, entry.version, entry.sdk_abi, {}};
  for (const sdk::DeviceType& type : info->device_types) {
    if (auto it = types_.find(type.name); it != types_.end()) {
      const LoadedPlugin& owner = plugins_[it->second.plugin];
      throw PluginError(PluginError::Kind::DuplicateType,
                        "plugin " + path.string() + " (" + entry.name + "): device type '" + type.name +
                            "' is already registered by plugin " + owner.name + " (" + owner.path.string() + ")");
    }
    loaded.device_types.push_back(type.name);
  }
  // Only a plugin that loaded whole registers anything.
  for (const sdk::DeviceType& type : info->device_types) types_[type.name] = TypeEntry{&type, plugins_.size()};
  plugins_.push_back(std::move(loaded));
  libraries_.push_back(std::move(lib));
}

void Registry::load_directory(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".so") files.push_back(e.path());
  }
  if (ec) throw PluginError(PluginError::Kind::Unreadable, "plugin directory " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load(f);
}

const sdk::DeviceType* Registry::find(const std::string& type) const {
  auto it = types_.find(type);
  return it == types_.end() ? nullptr : it->second.type;
}

const LoadedPlugin* Registry::plugin_of(const std::string& type) const {
  auto it = types_.find(type);
  return it == types_.end() ? nullptr : &plugins_[it->second.plugin];
}

std::map<std::string, const sdk::DeviceType*> Registry::types() const {
  std::map<std::string, const sdk::DeviceType*> out;
  for (const auto& [name, entry] : types_) out[name] = entry.type;
  return out;
}

std::vector<fs::path> default_plugin_dirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& candidate : {exe.parent_path() / "plugins", exe.parent_path() / "../lib/molt/plugins"}) {
      if (fs::is_directory(candidate, ec)) {
        dirs.push_back(fs::weakly_canonical(candidate, ec));
        break;  // a build tree's plugins, or an installation's: never both
      }
    }
  }
  if (const char* env = std::getenv("MOLT_PLUGIN_PATH")) {
    std::string list = env;
    for (std::size_t start = 0; start <= list.size();) {
      const std::size_t end = std::min(list.find(':', start), list.size());
      if (end > start) dirs.emplace_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  return dirs;
}

}  // namespace molt::core::plugin
