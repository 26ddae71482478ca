// A fw-cfg device on the fake bus, with a small machine described to it.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <molt/sdk/testing/fake_bus.hpp>

#include "fw_cfg_device.hpp"
#include "plugin_types.hpp"

namespace molt::fw_cfg::test {

using sdk::testing::FakeMachine;

inline constexpr std::uint16_t kSelector = 0x510;
inline constexpr std::uint16_t kData = 0x511;
inline constexpr std::uint16_t kDmaHigh = 0x514;
inline constexpr std::uint16_t kDmaLow = 0x518;

inline sdk::Properties default_properties(const std::string& type_name = "fw-cfg") {
  for (const sdk::DeviceType& type : describe_fw_cfg_plugin()->device_types) {
    if (type.name != type_name) continue;
    sdk::Properties props;
    for (const sdk::PropertySpec& spec : type.properties) props.set(spec.name, *spec.default_value);
    return props;
  }
  throw std::runtime_error("no device type " + type_name);
}

// 2 vCPUs, 16 MiB of RAM as the core would describe it.
inline void describe_small_machine(FakeMachine& m) {
  sdk::MachineInfo& info = m.info();
  info.machine_type = "molt-pc-1.0";
  info.vcpus = 2;
  info.ram_size = 16 << 20;
  info.ram = {{0, 16 << 20, 1}};
  info.e820 = {{0, 0x9fc00, 1}, {0x9fc00, 0x60400, 2}, {0x100000, (16 << 20) - 0x100000, 1}};
}

inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

class FwCfgTest : public ::testing::Test {
 protected:
  FwCfgTest() { describe_small_machine(machine_); }

  FwCfgDevice& make(sdk::Properties props = default_properties()) {
    auto& ctx = machine_.add_context("fwcfg", std::move(props));
    const sdk::DeviceType& type = describe_fw_cfg_plugin()->device_types.at(0);
    owned_ = type.create(ctx);
    device_ = static_cast<FwCfgDevice*>(owned_.get());
    device_->realize();
    device_->reset();
    return *device_;
  }

  void select(std::uint16_t key) { machine_.bus().io_write(kSelector, 2, key); }
  std::vector<std::uint8_t> read_data(std::size_t n) {
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < n; ++i)
      out.push_back(static_cast<std::uint8_t>(machine_.bus().io_read(kData, 1)));
    return out;
  }
  std::vector<std::uint8_t> read_item(std::uint16_t key, std::size_t n) {
    select(key);
    return read_data(n);
  }
  // The file's (size, select) from the directory read through the ports.
  struct DirEntry {
    std::string name;
    std::uint32_t size;
    std::uint16_t select;
  };
  std::vector<DirEntry> directory() {
    select(kFileDir);
    const std::vector<std::uint8_t> count = read_data(4);
    std::vector<DirEntry> entries;
    for (std::uint32_t i = 0; i < be32(count.data()) && i < 64; ++i) {
      const std::vector<std::uint8_t> e = read_data(64);
      entries.push_back({std::string(reinterpret_cast<const char*>(e.data() + 8)), be32(e.data()),
                         static_cast<std::uint16_t>((e[4] << 8) | e[5])});
    }
    return entries;
  }
  std::vector<std::uint8_t> read_file(const std::string& name) {
    for (const DirEntry& e : directory())
      if (e.name == name) return read_item(e.select, e.size);
    ADD_FAILURE() << "no file " << name;
    return {};
  }

  FakeMachine machine_;
  std::unique_ptr<sdk::Device> owned_;
  FwCfgDevice* device_ = nullptr;
};

}  // namespace molt::fw_cfg::test
