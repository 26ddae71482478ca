// Versioned machine types: the alias, unknown names, and a property whose
// default differs between two versions with the real device type.
#include <gtest/gtest.h>

#include "core/machine/machine_types.hpp"
#include "plugin_types.hpp"

namespace molt::core::machine {
namespace {

const sdk::DeviceType& fw_cfg_type() {
  for (const auto& t : fw_cfg::describe_fw_cfg_plugin()->device_types) {
    if (t.name == "fw-cfg") return t;
  }
  throw std::logic_error("the fw-cfg plugin lost its fw-cfg type");
}

bool fw_cfg_dma_under(const std::string& machine_type) {
  const MachineDescription d = parse_machine(R"({"machine": ")" + machine_type + R"(",
      "memory": {"size": "64M"}, "kernel": {"path": "/k"}, "devices": [{"id": "fwcfg", "type": "fw-cfg"}]})",
                                             "");
  const MachineType& type = resolve_machine_type(d.machine_type);
  const auto devices = resolve_devices(d, {{"fw-cfg", &fw_cfg_type()}}, type.compat);
  return devices.at(0).properties.get_bool("dma");
}

TEST(MachineTypes, TheUnversionedNameIsTheNewestVersion) {
  EXPECT_EQ(resolve_machine_type("molt-pc").name, machine_types().back().name);
  EXPECT_EQ(resolve_machine_type("molt-pc-1.0").name, "molt-pc-1.0");
  EXPECT_EQ(resolve_machine_type("molt-pc-1.1").name, "molt-pc-1.1");
}

TEST(MachineTypes, UnknownTypeListsTheKnownOnes) {
  try {
    resolve_machine_type("molt-pc-7.3", "machines/x.json");
    FAIL() << "molt-pc-7.3 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.json_path(), "$.machine");
    EXPECT_NE(e.message().find("\"molt-pc-1.0\""), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("\"molt-pc-1.1\""), std::string::npos) << e.what();
  }
}

TEST(MachineTypes, OlderVersionKeepsItsDefaultWhenANewerOneChangesIt) {
  EXPECT_FALSE(fw_cfg_dma_under("molt-pc-1.0")) << "1.0 machines keep the port-only fw_cfg";
  EXPECT_TRUE(fw_cfg_dma_under("molt-pc-1.1"));
  EXPECT_TRUE(fw_cfg_dma_under("molt-pc"));
}

TEST(MachineTypes, AValueWrittenInTheFileBeatsTheCompatDefault) {
  const MachineDescription d = parse_machine(R"({"machine": "molt-pc-1.0", "memory": {"size": "64M"},
      "kernel": {"path": "/k"}, "devices": [{"id": "f", "type": "fw-cfg", "properties": {"dma": true}}]})",
                                             "");
  const auto devices = resolve_devices(d, {{"fw-cfg", &fw_cfg_type()}}, resolve_machine_type(d.machine_type).compat);
  EXPECT_TRUE(devices.at(0).properties.get_bool("dma"));
}

TEST(MachineTypes, EveryCompatEntryNamesARealPropertyOfItsDevice) {
  for (const MachineType& t : machine_types()) {
    for (const auto& [device, overrides] : t.compat) {
      ASSERT_EQ(device, "fw-cfg") << t.name << ": add the plugin of " << device << " to this test";
      for (const auto& [property, value] : overrides) {
        const auto& props = fw_cfg_type().properties;
        EXPECT_TRUE(std::any_of(props.begin(), props.end(), [&](const auto& p) { return p.name == property; }))
            << t.name << ": fw-cfg has no property " << property;
      }
    }
  }
}

}  // namespace
}  // namespace molt::core::machine
