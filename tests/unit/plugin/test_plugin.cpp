// A minimal plugin for the loader tests. TEST_PLUGIN_NAME and TEST_DEVICE_TYPE
// are set by CMake, so the same source builds a good plugin and one whose
// device type collides with it.
#include <molt/sdk/plugin.hpp>

namespace {

class NullDevice final : public molt::sdk::Device {
 public:
  void realize() override {}
  molt::sdk::StateBinding state() override { return molt::sdk::StateBinding::stateless("it has no registers"); }
};

const molt::sdk::PluginInfo* describe() {
  static const molt::sdk::PluginInfo info{{molt::sdk::DeviceType{
      TEST_DEVICE_TYPE, "a device that does nothing, for loader tests", {},
      [](molt::sdk::DeviceContext&) { return std::make_unique<NullDevice>(); }}}};
  return &info;
}

}  // namespace

MOLT_PLUGIN(TEST_PLUGIN_NAME, "0.0.1", describe)
