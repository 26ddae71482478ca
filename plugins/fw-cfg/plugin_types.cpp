#include <sstream>

#include <molt/sdk/plugin.hpp>

#include "debugcon.hpp"
#include "fw_cfg_device.hpp"
#include "plugin_types.hpp"

namespace molt::fw_cfg {

namespace {

std::vector<std::string> split_paths(const std::string& text) {
  std::vector<std::string> paths;
  std::stringstream in(text);
  std::string path;
  while (in >> path)
    if (!path.empty()) paths.push_back(path);
  return paths;
}

ContentOptions options_from(const sdk::Properties& p) {
  ContentOptions o;
  o.dma = p.get_bool("dma");
  o.sercon_port = static_cast<std::uint16_t>(p.get_uint("sercon-port"));
  o.boot_fail_wait_ms = static_cast<std::uint32_t>(p.get_uint("boot-fail-wait"));
  o.show_boot_menu = p.get_bool("show-boot-menu");
  o.boot_order = split_paths(p.get_string("bootorder"));
  return o;
}

sdk::DeviceType fw_cfg_type() {
  using sdk::PropertyType;
  return sdk::DeviceType{
      .name = "fw-cfg",
      .description =
          "QEMU's firmware configuration interface (ports 0x510/0x511, DMA at 0x514), as SeaBIOS reads it",
      .properties =
          {
              {.name = "iobase",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0x510},
               .doc = "selector port; data is iobase+1, DMA iobase+4..+11",
               .max = 0xfff0},
              {.name = "dma",
               .type = PropertyType::Bool,
               .default_value = true,
               .doc = "offer the DMA interface (feature bit 1)"},
              {.name = "sercon-port",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0x3f8},
               .doc = "\"etc/sercon-port\": SeaBIOS mirrors its screen to this UART; 0 leaves it out",
               .max = 0xffff},
              {.name = "boot-fail-wait",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0xffffffff},
               .doc = "\"etc/boot-fail-wait\" in ms before SeaBIOS retries a failed boot; 0xffffffff: never",
               .max = 0xffffffff},
              {.name = "show-boot-menu",
               .type = PropertyType::Bool,
               .default_value = false,
               .doc = "\"etc/show-boot-menu\""},
              {.name = "bootorder",
               .type = PropertyType::String,
               .default_value = std::string{},
               .doc = "firmware device paths separated by spaces, first choice first, e.g. "
                      "/pci@i0cf8/ide@1,1/drive@0/disk@0; empty: the machine's boot order"},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<FwCfgDevice>(ctx, options_from(ctx.properties()));
      },
  };
}

sdk::DeviceType debugcon_type() {
  using sdk::PropertyType;
  return sdk::DeviceType{
      .name = "debugcon",
      .description = "QEMU's ISA debug console (port 0x402): firmware debug output to the host",
      .properties =
          {
              {.name = "iobase",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0x402},
               .doc = "the port",
               .max = 0xffff},
              {.name = "readback",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0xe9},
               .doc = "what a read of the port returns (SeaBIOS checks for 0xe9)",
               .max = 0xff},
              {.name = "path",
               .type = PropertyType::Path,
               .default_value = std::string{},
               .doc = "file to write to; empty: molt's standard output",
               .migration_relevant = false},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<DebugconDevice>(ctx);
      },
  };
}

}  // namespace

const sdk::PluginInfo* describe_fw_cfg_plugin() {
  static const sdk::PluginInfo info{{fw_cfg_type(), debugcon_type()}};
  return &info;
}

}  // namespace molt::fw_cfg
