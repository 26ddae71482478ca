// A plugin entry that claims an SDK ABI this core does not speak. Its describe
// function must never be called: the loader refuses on the version alone.
#include <cstdlib>

#include <molt/sdk/plugin.hpp>

namespace {
const molt::sdk::PluginInfo* describe() { std::abort(); }
const molt::sdk::PluginEntry entry{molt::sdk::kPluginMagic, molt::sdk::kSdkAbiVersion + 41, "future", "9.0.0",
                                   describe};
}  // namespace

BOOST_DLL_ALIAS(entry, molt_plugin_entry)
