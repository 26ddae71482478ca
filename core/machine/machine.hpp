// A running VM: KVM, RAM, devices, boot, vCPU threads, and the event loop.
// Built from a MachineConfig (already validated: device types resolved,
// properties checked) so that nothing here parses JSON.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/plugin.hpp>

#include "core/boot/firmware.hpp"
#include "core/io/event_loop.hpp"
#include "core/io/io_bus.hpp"
#include "core/io/irq_router.hpp"
#include "core/kvm/kvm.hpp"
#include "core/machine/device_host.hpp"
#include "core/memory/guest_ram.hpp"
#include "core/pci/pci_host.hpp"

namespace molt::core::machine {

struct DeviceSpec {
  std::string id;
  const sdk::DeviceType* type = nullptr;
  std::string plugin;
  sdk::Properties properties;
};

struct MachineConfig {
  std::string machine_type = "molt-pc";
  unsigned vcpus = 1;
  std::uint64_t memory_size = 256ull << 20;
  memory::RamBacking memory_backing = memory::RamBacking::Memfd;
  std::filesystem::path kernel;
  std::optional<std::filesystem::path> initrd;
  std::string cmdline;
  // A BIOS image (docs/firmware.md). With firmware the boot vCPU starts at the
  // reset vector; a kernel, if also given, is left for the firmware to load.
  std::optional<std::filesystem::path> firmware;
  std::vector<DeviceSpec> devices;
};

// How a run ended, and the exit status molt reports (docs/conventions.md).
struct ExitResult {
  sdk::ExitReason reason = sdk::ExitReason::Poweroff;
  int guest_value = 0;
  std::string detail;
  int status() const;
};

class Machine final : public sdk::MachineControl {
 public:
  // Builds the whole VM, loads the kernel and prepares vCPUs; throws sdk::Error
  // before any guest code runs.
  explicit Machine(const MachineConfig& config);
  ~Machine() override;

  // Runs the guest until it exits or stop() is called; returns how it ended.
  ExitResult run();
  // Thread-safe. Used by signal handling and the monitor.
  void stop(const std::string& why);
  void request_exit(sdk::ExitReason reason, int status) override;

  io::EventLoop& loop() { return loop_; }
  memory::GuestRam& ram() { return *ram_; }
  const std::vector<std::unique_ptr<DeviceHost>>& devices() const { return devices_; }
  const sdk::MachineInfo& info() const { return info_; }
  pci::PciHost& pci() { return *pci_; }

 private:
  class VcpuRunner;
  void describe(const MachineConfig& config);
  void create_devices(const MachineConfig& config);
  void load_guest(const MachineConfig& config);
  boot::CpuEntryState load_kernel(const MachineConfig& config);
  void map_firmware(const MachineConfig& config);
  boot::CpuEntryState start_firmware();
  void finish(ExitResult result);
  void kick_all_vcpus();

  std::shared_ptr<spdlog::logger> log_;
  kvm::System system_;
  kvm::Vm vm_;
  std::unique_ptr<memory::GuestRam> ram_;
  std::optional<boot::FirmwareRom> firmware_;
  sdk::MachineInfo info_;
  io::EventLoop loop_;
  io::HostClock clock_;
  io::IoBus ports_{"port"};
  io::IoBus mmio_{"MMIO"};
  io::IrqRouter irqs_;
  std::unique_ptr<pci::PciHost> pci_;  // PCI bus 0 and its config mechanism
  std::vector<std::unique_ptr<DeviceHost>> devices_;
  std::vector<std::unique_ptr<VcpuRunner>> vcpus_;

  std::mutex exit_mutex_;
  std::optional<ExitResult> exit_;
  std::atomic<bool> stopping_{false};
};

}  // namespace molt::core::machine
