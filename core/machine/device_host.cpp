#include "core/machine/device_host.hpp"

#include <molt/sdk/error.hpp>

#include <spdlog/spdlog.h>

#include "core/log.hpp"

namespace molt::core::machine {

DeviceHost::DeviceHost(std::string id, const sdk::DeviceType& type, std::string plugin, std::string plugin_version,
                       sdk::Properties properties, Buses buses)
    : id_(std::move(id)),
      type_(type),
      plugin_(std::move(plugin)),
      plugin_version_(std::move(plugin_version)),
      properties_(std::move(properties)),
      buses_(buses),
      logger_(core::logger("dev." + id_)) {}

DeviceHost::~DeviceHost() {
  std::lock_guard lock(mutex_);
  device_.reset();
}

void DeviceHost::create_and_realize() {
  try {
    device_ = type_.create(*this);
    if (!device_) throw sdk::Error("the factory returned no device");
    device_->realize();
    const sdk::StateBinding binding = device_->state();
    if (!binding.descriptor && binding.stateless_reason.empty() && binding.unmigratable_reason.empty()) {
      throw sdk::Error(
          "it declares no state: its state() must bind a descriptor (StateBinding::of), say why it has none "
          "(StateBinding::stateless) or say why it cannot migrate (StateBinding::unmigratable)");
    }
  } catch (const sdk::Error& e) {
    throw sdk::Error("device " + id_ + " (" + type_.name + "): " + e.what());
  }
}

sdk::IoOps DeviceHost::serialised(sdk::IoOps ops) {
  sdk::IoOps wrapped;
  if (ops.read) {
    wrapped.read = [this, read = std::move(ops.read)](std::uint64_t offset, unsigned size) {
      std::lock_guard lock(mutex_);
      return read(offset, size);
    };
  }
  if (ops.write) {
    wrapped.write = [this, write = std::move(ops.write)](std::uint64_t offset, unsigned size, std::uint64_t value) {
      std::lock_guard lock(mutex_);
      write(offset, size, value);
    };
  }
  return wrapped;
}

void DeviceHost::claim_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) {
  if (std::uint32_t{base} + count > 0x10000) {
    throw sdk::Error("port range " + std::to_string(base) + "+" + std::to_string(count) + " runs past port 0xffff");
  }
  buses_.ports.add(base, count, serialised(std::move(ops)), id_);
}

void DeviceHost::claim_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) {
  buses_.mmio.add(base, length, serialised(std::move(ops)), id_);
}

sdk::IrqLine& DeviceHost::claim_irq(unsigned gsi) { return buses_.irqs.claim(gsi, id_); }

namespace {
class BusRegion final : public sdk::IoRegion {
 public:
  BusRegion(io::IoBus& bus, std::uint64_t handle) : bus_(bus), handle_(handle) {}
  ~BusRegion() override { bus_.remove(handle_); }

 private:
  io::IoBus& bus_;
  std::uint64_t handle_;
};
}  // namespace

std::unique_ptr<sdk::IoRegion> DeviceHost::map_on(io::IoBus& bus, std::uint64_t base, std::uint64_t length,
                                                  sdk::IoOps ops) {
  try {
    return std::make_unique<BusRegion>(bus, bus.add(base, length, serialised(std::move(ops)), id_));
  } catch (const sdk::Error& e) {
    // The guest placed a BAR over something else: real hardware would decode
    // one of them unpredictably; molt leaves this one unmapped and says so.
    // Reported (rate-limited) by the caller; a guest can repeat this at will.
    logger_->debug("not mapped: {}", e.what());
    return nullptr;
  }
}

std::unique_ptr<sdk::IoRegion> DeviceHost::map_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) {
  if (std::uint32_t{base} + count > 0x10000) {
    logger_->debug("not mapped: port range {:#x}+{:#x} runs past port 0xffff", base, count);
    return nullptr;
  }
  return map_on(buses_.ports, base, count, std::move(ops));
}

std::unique_ptr<sdk::IoRegion> DeviceHost::map_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) {
  return map_on(buses_.mmio, base, length, std::move(ops));
}

// The device's view of PCI bus 0: config handlers run under the device's lock.
class DeviceHost::PciPort final : public sdk::PciBus {
 public:
  PciPort(DeviceHost& host, pci::PciHost& bus) : host_(host), bus_(bus) {}
  sdk::PciAttachment attach(const sdk::PciPlacement& where, std::uint8_t pin, sdk::IoOps config) override {
    return bus_.attach(where, pin, host_.serialised(std::move(config)), host_.id_);
  }
  void detach(sdk::PciAddress address) override { bus_.detach(address); }
  void route_pirq(unsigned pirq, std::optional<unsigned> isa_irq) override { bus_.route_pirq(pirq, isa_irq); }
  void claim_reset_control(sdk::IoOps ops) override {
    bus_.claim_reset_control(host_.serialised(std::move(ops)), host_.id_);
  }

 private:
  DeviceHost& host_;
  pci::PciHost& bus_;
};

sdk::PciBus& DeviceHost::pci_bus() {
  if (!buses_.pci) return sdk::DeviceContext::pci_bus();
  if (!pci_port_) pci_port_ = std::make_unique<PciPort>(*this, *buses_.pci);
  return *pci_port_;
}

void DeviceHost::signal_msi(std::uint64_t address, std::uint32_t data) {
  if (!buses_.vm.signal_msi(address, data)) logger_->debug("MSI to {:#x} data {:#x} was not delivered", address, data);
}

namespace {

// A device's timer. Its expiry is checked under the device's lock: one that a
// re-arm or cancel overtook while it waited for the lock, or one whose timer
// the device already destroyed, is dropped instead of reaching the device.
// The fields are only touched under that lock.
struct TimerGate {
  bool alive = true;
  bool armed = false;
  std::uint64_t deadline = 0;
};

class DeviceTimer final : public sdk::Timer {
 public:
  DeviceTimer(std::shared_ptr<TimerGate> gate, std::unique_ptr<sdk::Timer> loop_timer, const sdk::Clock& clock)
      : gate_(std::move(gate)), loop_timer_(std::move(loop_timer)), clock_(clock) {}
  ~DeviceTimer() override { gate_->alive = gate_->armed = false; }
  void arm_at(std::uint64_t deadline) override {
    gate_->armed = true;
    gate_->deadline = deadline;
    loop_timer_->arm_at(deadline);
  }
  void arm_after(std::uint64_t delay) override { arm_at(clock_.monotonic_ns() + delay); }
  void cancel() override {
    gate_->armed = false;
    loop_timer_->cancel();
  }
  bool armed() const override { return gate_->armed; }

 private:
  std::shared_ptr<TimerGate> gate_;
  std::unique_ptr<sdk::Timer> loop_timer_;
  const sdk::Clock& clock_;
};

// A device's fd watch: a readiness that waited for the device's lock while the
// device destroyed the watch (and maybe closed the fd) is dropped.
class DeviceFdWatch final : public sdk::FdWatch {
 public:
  DeviceFdWatch(std::shared_ptr<bool> alive, std::unique_ptr<sdk::FdWatch> loop_watch)
      : alive_(std::move(alive)), loop_watch_(std::move(loop_watch)) {}
  ~DeviceFdWatch() override { *alive_ = false; }
  void set_events(std::uint32_t events) override { loop_watch_->set_events(events); }

 private:
  std::shared_ptr<bool> alive_;
  std::unique_ptr<sdk::FdWatch> loop_watch_;
};

}  // namespace

std::unique_ptr<sdk::Timer> DeviceHost::create_timer(std::function<void()> on_expiry) {
  auto gate = std::make_shared<TimerGate>();
  auto loop_timer = buses_.loop.create_timer([this, gate, cb = std::move(on_expiry)] {
    std::lock_guard lock(mutex_);
    if (!gate->alive || !gate->armed || buses_.clock.monotonic_ns() < gate->deadline) return;
    gate->armed = false;
    cb();
  });
  return std::make_unique<DeviceTimer>(std::move(gate), std::move(loop_timer), buses_.clock);
}

std::unique_ptr<sdk::FdWatch> DeviceHost::watch_fd(int fd, std::uint32_t events,
                                                   std::function<void(std::uint32_t)> on_ready) {
  auto alive = std::make_shared<bool>(true);
  auto loop_watch = buses_.loop.watch_fd(fd, events, [this, alive, cb = std::move(on_ready)](std::uint32_t revents) {
    std::lock_guard lock(mutex_);
    if (*alive) cb(revents);
  });
  return std::make_unique<DeviceFdWatch>(std::move(alive), std::move(loop_watch));
}

void DeviceHost::emit_event(const std::string& name, const std::map<std::string, sdk::PropertyValue>& data) {
  EventSink sink;
  {
    std::lock_guard lock(events_mutex_);
    last_events_[name] = data;
    sink = event_sink_;
  }
  if (sink) sink(id_, name, data);
}

void DeviceHost::set_event_sink(EventSink sink) {
  std::lock_guard lock(events_mutex_);
  event_sink_ = std::move(sink);
}

std::map<std::string, std::map<std::string, sdk::PropertyValue>> DeviceHost::last_events() const {
  std::lock_guard lock(events_mutex_);
  return last_events_;
}

sdk::Properties DeviceHost::properties_snapshot() {
  std::lock_guard lock(mutex_);
  return properties_;
}

void DeviceHost::set_runtime_property(const std::string& name, const sdk::PropertyValue& value) {
  std::lock_guard lock(mutex_);
  device_->set_property(name, value);
  properties_.set(name, value);
}

}  // namespace molt::core::machine
