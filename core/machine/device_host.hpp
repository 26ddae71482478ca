// The core's side of one device instance: its DeviceContext. Every callback
// the device registers (port/MMIO handlers, timers, fd watches) is wrapped to
// run under the device's own lock, so a device sees one callback at a time.
// While the guest does not run here (an incoming machine before it starts, a
// source from the migration's pause on) the machine holds the device's timers
// and fd watches, so device state stays as saved or loaded.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/plugin.hpp>

#include "core/io/event_loop.hpp"
#include "core/io/io_bus.hpp"
#include "core/io/irq_router.hpp"
#include "core/kvm/kvm.hpp"
#include "core/pci/pci_host.hpp"

namespace molt::core::machine {

struct Buses {
  kvm::Vm& vm;
  const sdk::MachineInfo& info;
  io::IoBus& ports;
  io::IoBus& mmio;
  io::IrqRouter& irqs;
  sdk::GuestMemory& memory;
  io::EventLoop& loop;
  const sdk::Clock& clock;
  sdk::MachineControl& control;
  pci::PciHost* pci = nullptr;  // nullptr: the machine has no PCI bus
};

class DeviceHost final : public sdk::DeviceContext {
 public:
  DeviceHost(std::string id, const sdk::DeviceType& type, std::string plugin, std::string plugin_version,
             sdk::Properties properties, Buses buses);
  ~DeviceHost() override;

  // Creates the device through its factory and realizes it. Errors carry the id.
  void create_and_realize();
  sdk::Device& device() { return *device_; }
  const sdk::DeviceType& type() const { return type_; }
  const std::string& plugin() const { return plugin_; }
  const std::string& plugin_version() const { return plugin_version_; }
  std::mutex& lock() { return mutex_; }

  const std::string& id() const override { return id_; }
  const sdk::Properties& properties() const override { return properties_; }
  spdlog::logger& log() override { return *logger_; }
  void claim_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) override;
  void claim_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) override;
  sdk::IrqLine& claim_irq(unsigned gsi) override;
  std::unique_ptr<sdk::IoRegion> map_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) override;
  std::unique_ptr<sdk::IoRegion> map_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) override;
  void signal_msi(std::uint64_t address, std::uint32_t data) override;
  const sdk::MachineInfo& machine_info() const override { return buses_.info; }
  sdk::GuestMemory& memory() override { return buses_.memory; }
  const sdk::Clock& clock() const override { return buses_.clock; }
  std::unique_ptr<sdk::Timer> create_timer(std::function<void()> on_expiry) override;
  std::unique_ptr<sdk::FdWatch> watch_fd(int fd, std::uint32_t events,
                                         std::function<void(std::uint32_t)> on_ready) override;
  sdk::MachineControl& machine() override { return buses_.control; }
  sdk::PciBus& pci_bus() override;
  void emit_event(const std::string& name, const std::map<std::string, sdk::PropertyValue>& data) override;

  // Where emitted events go (the monitor); set before the vCPUs start.
  using EventSink = std::function<void(const std::string& device, const std::string& event,
                                       const std::map<std::string, sdk::PropertyValue>& data)>;
  void set_event_sink(EventSink sink);
  // The latest data of each event name this device emitted.
  std::map<std::string, std::map<std::string, sdk::PropertyValue>> last_events() const;
  // The resolved properties, read under the device's lock.
  sdk::Properties properties_snapshot();
  // Asks the device to take a run-time property (under its lock); on success
  // the new value is what properties() reports. Throws sdk::Error if refused.
  void set_runtime_property(const std::string& name, const sdk::PropertyValue& value);

  // Holds the device's timers and fd watches (takes the device's lock). While
  // held, an expiry is not delivered but the timer stays armed, and fd
  // watches wait for writability only (EPOLLOUT, so output the guest wrote
  // before the pause can still drain) or are out of the event loop's
  // interest, so level-triggered readiness, a hang-up included, can't spin;
  // the device's set_events calls are remembered. Port and MMIO handlers are
  // not affected. Idempotent.
  void hold_callbacks();
  // Ends a hold: fd watches go back into the loop with the events last asked
  // for, input that became ready meanwhile is delivered at once (before the
  // caller starts the vCPUs), and timers whose deadline passed fire.
  // Idempotent.
  void release_callbacks();

  // cpr-transfer, before create_and_realize(): the fds the source's device of
  // this id handed over, by name; realize() takes them with take_handed_over_fd.
  void give_handed_over_fds(std::map<std::string, kvm::Fd> fds);
  int take_handed_over_fd(const std::string& name) override;
  // After realize(): closes the handed-over fds the device did not take and
  // returns their names.
  std::vector<std::string> close_untaken_handed_over_fds();
  // The names of the handed-over fds the device took, in the order it took them.
  const std::vector<std::string>& taken_handed_over_fds() const { return taken_fds_; }

 private:
  class PciPort;
  class DeviceTimer;
  class DeviceFdWatch;
  struct TimerGate;
  struct WatchGate;
  void apply_watch(const std::shared_ptr<WatchGate>& gate);
  sdk::IoOps serialised(sdk::IoOps ops);
  std::unique_ptr<sdk::IoRegion> map_on(io::IoBus& bus, std::uint64_t base, std::uint64_t length, sdk::IoOps ops);

  std::string id_;
  const sdk::DeviceType& type_;
  std::string plugin_;
  std::string plugin_version_;
  sdk::Properties properties_;
  Buses buses_;
  std::shared_ptr<spdlog::logger> logger_;
  std::mutex mutex_;
  std::unique_ptr<sdk::PciBus> pci_port_;
  std::unique_ptr<sdk::Device> device_;
  mutable std::mutex events_mutex_;  // not the device lock: emit_event runs under it
  EventSink event_sink_;
  std::map<std::string, std::map<std::string, sdk::PropertyValue>> last_events_;
  // The device's timers and watches, for hold and release; touched under
  // mutex_ (or in realize, before anything else can run).
  bool held_ = false;
  std::vector<std::weak_ptr<TimerGate>> timers_;
  std::vector<std::weak_ptr<WatchGate>> watches_;
  std::map<std::string, kvm::Fd> handed_fds_;
  std::vector<std::string> taken_fds_;
};

}  // namespace molt::core::machine
