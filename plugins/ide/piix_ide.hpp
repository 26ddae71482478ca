// The "piix3-ide" device: a PIIX3 IDE controller (PCI 8086:7010, class
// 01.01.80, function 01.1 by default) in compatibility mode. Primary channel
// at ports 0x1f0-0x1f7 + 0x3f6 with IRQ 14, secondary at 0x170-0x177 + 0x376
// with IRQ 15, bus-master registers in I/O BAR4. Up to four ATA disks, each a
// raw image named by a property of the controller (docs/devices/ide.md).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>
#include <molt/sdk/plugin.hpp>
#include <molt/sdk/rate_limited_log.hpp>

#include "bus_master.hpp"
#include "disk_image.hpp"
#include "ide_channel.hpp"
#include "ide_state.hpp"

namespace molt::ide {

// Names of the four positions, as the property prefixes spell them.
inline constexpr std::array<const char*, 4> kPositionNames = {"primary-master", "primary-slave",
                                                              "secondary-master", "secondary-slave"};

class PiixIdeDevice final : public sdk::Device {
 public:
  explicit PiixIdeDevice(sdk::DeviceContext& ctx);
  ~PiixIdeDevice() override;

  void realize() override;
  void reset() override;
  sdk::StateBinding state() override;
  void pre_save() override;
  void post_load() override;
  // cpr-transfer: each drive's open image, as "image-<position>"
  // ("image-primary-master"); realize() takes them instead of opening paths.
  sdk::FdHandover handover_fds() override;
  static std::string handover_name(unsigned position);

  const IdeState& ide_state() const { return state_; }
  sdk::PciFunction& pci() { return *pci_; }
  // The disk at position 0-3 (channel * 2 + drive), or null.
  const DiskImage* disk(unsigned position) const { return images_[position].get(); }

 private:
  void open_disks();
  void claim_channel(unsigned index);
  sdk::IoOps bus_master_ops();

  sdk::DeviceContext& ctx_;
  IdeState state_;
  sdk::RateLimitedLog log_;
  std::array<std::unique_ptr<DiskImage>, 4> images_;
  std::array<std::unique_ptr<IdeChannel>, 2> channels_;
  std::array<std::unique_ptr<BusMaster>, 2> bus_masters_;
  std::array<sdk::IrqLine*, 2> irqs_{};
  std::unique_ptr<sdk::PciFunction> pci_;
  std::unique_ptr<sdk::StateDescriptor> descriptor_;
};

const sdk::PluginInfo* describe_ide_plugin();

}  // namespace molt::ide
