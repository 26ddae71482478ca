// The plugin's device type: properties and factory of "piix3-ide".
#include <string>

#include "piix_ide.hpp"

namespace molt::ide {

namespace {

std::vector<sdk::PropertySpec> ide_properties() {
  using sdk::PropertyType;
  std::vector<sdk::PropertySpec> specs;
  for (const char* position : kPositionNames) {
    const std::string name = position;
    specs.push_back({.name = name,
                     .type = PropertyType::Path,
                     .default_value = std::string(),
                     .doc = "raw disk image of the " + name +
                            " drive (a whole number of 512-byte sectors); "
                            "empty: no drive there",
                     .migration_relevant = false});
    specs.push_back({.name = name + "-read-only",
                     .type = PropertyType::Bool,
                     .default_value = false,
                     .doc = "open the " + name + " image read-only; guest writes fail with ABRT"});
    specs.push_back({.name = name + "-serial",
                     .type = PropertyType::String,
                     .default_value = std::string(),
                     .doc = "serial number IDENTIFY reports (20 characters at most; default MOLT<id>-<n>)"});
  }
  specs.push_back({.name = "model",
                   .type = PropertyType::String,
                   .default_value = std::string("MOLT HARDDISK"),
                   .doc = "model string IDENTIFY reports for every drive (40 characters at most)"});
  specs.push_back({.name = "pci-slot",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{1},
                   .doc = "PCI slot of the controller function",
                   .max = 31});
  specs.push_back({.name = "pci-function",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{1},
                   .doc = "PCI function number (01.1 on a PIIX3)",
                   .max = 7});
  return specs;
}

}  // namespace

const sdk::PluginInfo* describe_ide_plugin() {
  static const sdk::PluginInfo info{{sdk::DeviceType{
      .name = "piix3-ide",
      .description = "PIIX3 IDE controller (PCI 8086:7010) in compatibility mode with bus-master DMA, "
                     "and up to four ATA disks backed by raw images",
      .properties = ide_properties(),
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<PiixIdeDevice>(ctx);
      },
  }}};
  return &info;
}

}  // namespace molt::ide
