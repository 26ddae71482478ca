// An i440FX-compatible PCI host bridge (PMC, 8086:1237) at 00.0: what firmware
// expecting a PC looks for first. Its PAM and SMRAM registers are present as
// plain read/write bytes; molt's BIOS area is RAM already, so they map nothing.
#pragma once

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>
#include <molt/sdk/plugin.hpp>

namespace molt::i440fx {

inline constexpr std::uint16_t kPamFirst = 0x59;  // PAM0-PAM6
inline constexpr unsigned kPamCount = 7;
inline constexpr std::uint16_t kSmram = 0x72;

class HostBridge final : public sdk::Device {
 public:
  explicit HostBridge(sdk::DeviceContext& ctx);
  void realize() override;
  void reset() override { pci_.reset(); }
  sdk::StateBinding state() override;
  void post_load() override { pci_.post_load(); }

 private:
  sdk::PciFunction pci_;
};

sdk::DeviceType host_bridge_type();

}  // namespace molt::i440fx
