// A running VM: KVM, RAM, devices, boot, vCPU threads, and the event loop.
// Built from a MachineConfig (already validated: device types resolved,
// properties checked) so that nothing here parses JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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
  std::string plugin_version;  // the loaded plugin's, compared by a migration handshake
};

struct MachineConfig {
  std::string machine_type = "molt-pc";
  unsigned vcpus = 1;
  std::uint64_t memory_size = 256ull << 20;
  memory::RamBacking memory_backing = memory::RamBacking::Memfd;
  // RamBacking::File: the RAM file, and whether its pages are kept (an
  // in-place snapshot's restore) or emptied (everything else).
  std::optional<memory::RamFile> memory_file;
  std::filesystem::path kernel;
  std::optional<std::filesystem::path> initrd;
  std::string cmdline;
  // A BIOS image (docs/firmware.md). With firmware the boot vCPU starts at the
  // reset vector; a kernel, if also given, is left for the firmware to load.
  std::optional<std::filesystem::path> firmware;
  std::vector<DeviceSpec> devices;
  // Built to receive a migration: the guest image is not loaded (RAM is left
  // zero for the stream to fill) and run() waits in RunState::Incoming until
  // start_incoming() or fail_incoming().
  bool incoming = false;
  // cpr-transfer: guest RAM is this memfd (handed over by the source, which
  // keeps its own descriptor), mapped anew; -1: a fresh RAM block. Machine
  // duplicates it.
  int adopted_ram_fd = -1;
  // cpr-transfer: the backend fds the source's devices handed over, by device
  // id, then by the name the device gave each. Shared so a config stays
  // copyable: the Machine hands each fd to its device once (take_handed_over_fd)
  // and closes, with a warning, those no device took.
  using HandedOverFds = std::map<std::string, std::map<std::string, kvm::Fd>>;
  std::shared_ptr<HandedOverFds> handed_over_fds;
};

// How a run ended, and the exit status molt reports (docs/conventions.md).
struct ExitResult {
  sdk::ExitReason reason = sdk::ExitReason::Poweroff;
  int guest_value = 0;
  std::string detail;
  int status() const;
};

// Where a run is. Starting: built, vCPUs not yet started. Incoming: waiting
// for a migration's state before any vCPU runs. PostMigrate: the guest moved
// to another process; vCPUs stay parked until quit. ShuttingDown: an exit
// reason was recorded (exit_result() has it) and the loop is stopping.
enum class RunState { Starting, Incoming, Running, Paused, PostMigrate, ShuttingDown };
const char* to_string(RunState state);

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

  // Parks every vCPU outside KVM_RUN and waits (at most `timeout`) until all
  // are parked; devices' timers and the event loop keep running. Returns
  // false, with the vCPUs released again, if they did not all park in time or
  // the VM was not running. Call from the event loop (the monitor).
  bool pause(std::chrono::milliseconds timeout);
  // Releases parked vCPUs. False when the VM was not paused.
  bool resume();
  // Puts the machine back to power-on, as a reset button does: the in-kernel
  // PIC, IOAPIC and PIT and every vCPU as they were before the first
  // instruction, every device reset(), the kernel (or the firmware's shadow)
  // loaded again; guest RAM is otherwise kept. The vCPUs are parked meanwhile
  // and a running VM runs on. False when the VM is neither running nor paused
  // or its vCPUs did not park within `timeout`. Call from the event loop.
  bool reset(std::chrono::milliseconds timeout);
  RunState state() const { return state_.load(); }
  // Incoming -> Running: releases the devices' callbacks (held since the
  // machine was built) and starts the vCPUs on the state a migration loaded.
  // False when the machine is not waiting for a migration. Thread-safe.
  bool start_incoming();
  // Incoming: the migration failed; the run ends with an error naming it and
  // the guest never runs. Thread-safe.
  void fail_incoming(const std::string& why);
  // Paused -> PostMigrate, once the destination has taken the guest. The
  // devices' callbacks stay held for good.
  bool enter_post_migrate();
  // Turns KVM's dirty-page logging on or off for every RAM slot.
  void set_dirty_logging(bool on);
  // While a migration stops and copies the guest, the monitor's pause, resume
  // and reset are refused with `reason`; empty releases them. The migration
  // itself uses the *_for_migration calls, which ignore the hold.
  void hold_controls(std::string reason);
  std::string controls_held() const;
  // As pause and resume, and the devices' timers and fd watches are held from
  // the moment the vCPUs stopped until they run again (DeviceHost::hold_callbacks),
  // so the state saved is the state the devices keep.
  bool pause_for_migration(std::chrono::milliseconds timeout);
  bool resume_after_migration();
  // Holds or releases every device's timers and fd watches; for a migration
  // of a guest that was already paused. Thread-safe.
  void hold_devices();
  void release_devices();
  // Since run() started the vCPUs; 0 before.
  std::uint64_t uptime_ns() const;
  // How the run ends, once state() is ShuttingDown.
  std::optional<ExitResult> exit_result() const;
  // Called on every state change, from whichever thread made it (a vCPU
  // thread for a guest exit); set before run().
  using StateListener = std::function<void(RunState state, const std::string& reason)>;
  void set_state_listener(StateListener listener) { state_listener_ = std::move(listener); }
  const io::IoBus& port_bus() const { return ports_; }
  const io::IoBus& mmio_bus() const { return mmio_; }

  io::EventLoop& loop() { return loop_; }
  memory::GuestRam& ram() { return *ram_; }
  const std::vector<std::unique_ptr<DeviceHost>>& devices() const { return devices_; }
  const sdk::MachineInfo& info() const { return info_; }
  pci::PciHost& pci() { return *pci_; }
  kvm::System& system() { return system_; }
  kvm::Vm& vm() { return vm_; }
  std::size_t vcpu_count() const { return vcpus_.size(); }
  // vCPU `index`'s KVM handle; its registers may only be read or written
  // while the vCPUs are parked (paused) or not yet started.
  kvm::Vcpu& vcpu(std::size_t index);
  // The CPUID table every vCPU was given (vCPU 0's; the others differ only in APIC ids).
  const kvm::CpuidTable& guest_cpuid() const { return guest_cpuid_; }
  // MSRs KVM reports it can save and restore.
  const std::vector<std::uint32_t>& supported_msrs() const { return supported_msrs_; }
  // Those of them this KVM really reads back, probed before the first run:
  // what a migration saves of every vCPU.
  const std::vector<std::uint32_t>& migratable_msrs() const { return migratable_msrs_; }
  // Guest RAM was handed over by another molt (cpr-transfer).
  bool ram_adopted() const { return config_.adopted_ram_fd >= 0; }

 private:
  class VcpuRunner;
  void describe(const MachineConfig& config);
  void create_devices(const MachineConfig& config);
  void close_untaken_fds(const MachineConfig& config);
  void load_guest(const MachineConfig& config);
  boot::CpuEntryState load_kernel(const MachineConfig& config);
  boot::CpuEntryState load_image(const MachineConfig& config);
  void map_firmware(const MachineConfig& config);
  static void set_entry_state(kvm::Vcpu& vcpu, const boot::CpuEntryState& entry);
  boot::CpuEntryState start_firmware();
  void finish(ExitResult result);
  void kick_all_vcpus();
  void set_state(RunState state, const std::string& reason);
  bool transition(RunState from, RunState to, const std::string& reason);
  // A vCPU thread's stop at the top of its loop while a pause is requested.
  void park_if_pause_requested();
  bool pause_unchecked(std::chrono::milliseconds timeout);
  bool resume_unchecked();
  // machine_reset.cpp: KVM's state before the first instruction, put back by reset().
  struct VcpuPowerOn {
    kvm_regs regs;
    kvm_sregs sregs;
    kvm_lapic_state lapic;
    kvm_mp_state mp_state;
    kvm_vcpu_events events;
  };
  struct PowerOnState {
    std::vector<kvm_irqchip> irqchips;  // PIC master, PIC slave, IOAPIC
    kvm_pit_state2 pit;
    std::vector<VcpuPowerOn> vcpus;
  };
  void capture_power_on();
  void restore_power_on();

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
  MachineConfig config_;  // what a reset loads again
  std::unique_ptr<PowerOnState> power_on_;
  std::vector<std::uint32_t> supported_msrs_;
  kvm::CpuidTable guest_cpuid_;
  std::vector<std::uint32_t> migratable_msrs_;

  mutable std::mutex exit_mutex_;
  std::optional<ExitResult> exit_;
  std::atomic<bool> stopping_{false};

  // Pausing: vCPU threads park on park_cv_ while pause_requested_ is set.
  std::mutex park_mutex_;
  std::condition_variable park_cv_;
  std::atomic<bool> pause_requested_{false};
  unsigned parked_vcpus_ = 0;
  unsigned live_vcpu_threads_ = 0;  // started and not yet returned
  std::atomic<RunState> state_{RunState::Starting};
  std::atomic<std::uint64_t> started_ns_{0};
  // pause/resume/reset come from the monitor and the migration thread.
  std::recursive_mutex control_mutex_;
  mutable std::mutex hold_mutex_;
  std::string held_reason_;
  StateListener state_listener_;
};

}  // namespace molt::core::machine
