#include "core/machine/device_host.hpp"

#include <poll.h>
#include <sys/epoll.h>

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

// A device's timer. Its expiry is checked under the device's lock: one that a
// re-arm or cancel overtook while it waited for the lock, or one whose timer
// the device already destroyed, is dropped instead of reaching the device; one
// that comes while the device is held stays armed until release. The fields
// are only touched under that lock.
struct DeviceHost::TimerGate {
  bool alive = true;
  bool armed = false;
  std::uint64_t deadline = 0;
  sdk::Timer* loop_timer = nullptr;  // the DeviceTimer's; null once it is destroyed
};

// A device's fd watch. `events` is what the device last asked for; the
// loop's watch carries all of it, or while the device is held only EPOLLOUT
// (and none at all while there is nothing to wait for).
struct DeviceHost::WatchGate {
  bool alive = true;
  int fd = -1;
  std::uint32_t events = 0;
  std::function<void(std::uint32_t)> on_ready;
  std::unique_ptr<sdk::FdWatch> loop_watch;
  std::uint32_t loop_events = 0;  // the loop watch's mask, when there is one
};

namespace {

template <class Gate>
void prune(std::vector<std::weak_ptr<Gate>>& gates) {
  std::erase_if(gates, [](const std::weak_ptr<Gate>& g) { return g.expired(); });
}

}  // namespace

class DeviceHost::DeviceTimer final : public sdk::Timer {
 public:
  DeviceTimer(std::shared_ptr<TimerGate> gate, std::unique_ptr<sdk::Timer> loop_timer,
              const sdk::Clock& clock)
      : gate_(std::move(gate)), loop_timer_(std::move(loop_timer)), clock_(clock) {
    gate_->loop_timer = loop_timer_.get();
  }
  ~DeviceTimer() override {
    gate_->alive = gate_->armed = false;
    gate_->loop_timer = nullptr;
  }
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
class DeviceHost::DeviceFdWatch final : public sdk::FdWatch {
 public:
  DeviceFdWatch(DeviceHost& host, std::shared_ptr<WatchGate> gate) : host_(host), gate_(std::move(gate)) {}
  ~DeviceFdWatch() override {
    gate_->alive = false;
    gate_->loop_watch.reset();
  }
  void set_events(std::uint32_t events) override {
    gate_->events = events;
    host_.apply_watch(gate_);
  }

 private:
  DeviceHost& host_;
  std::shared_ptr<WatchGate> gate_;
};

std::unique_ptr<sdk::Timer> DeviceHost::create_timer(std::function<void()> on_expiry) {
  auto gate = std::make_shared<TimerGate>();
  auto loop_timer = buses_.loop.create_timer([this, gate, cb = std::move(on_expiry)] {
    std::lock_guard lock(mutex_);
    if (!gate->alive || !gate->armed || buses_.clock.monotonic_ns() < gate->deadline) return;
    if (held_) return;  // still armed: release_callbacks() fires it
    gate->armed = false;
    cb();
  });
  prune(timers_);
  timers_.push_back(gate);
  return std::make_unique<DeviceTimer>(std::move(gate), std::move(loop_timer), buses_.clock);
}

// Held, a watch keeps only EPOLLOUT: a device may still drain output the
// guest wrote before the pause to a reader, but reads no input, accepts no
// connection and sees no hang-up until release. Out of the loop entirely when
// that leaves nothing: epoll reports a hang-up or an error whatever the mask
// says, which would wake the loop again and again.
void DeviceHost::apply_watch(const std::shared_ptr<WatchGate>& gate) {
  const std::uint32_t events = held_ ? gate->events & EPOLLOUT : gate->events;
  if (held_ && events == 0) {
    gate->loop_watch.reset();
  } else if (!gate->loop_watch) {
    gate->loop_events = events;
    gate->loop_watch =
        buses_.loop.watch_fd(gate->fd, events, [this, weak = std::weak_ptr(gate)](std::uint32_t revents) {
          std::lock_guard lock(mutex_);
          const std::shared_ptr<WatchGate> g = weak.lock();
          if (!g || !g->alive) return;
          if (!held_) return g->on_ready(revents);
          // A hang-up or error with nothing to write: park until release.
          if (!(revents & EPOLLOUT)) return g->loop_watch.reset();
          g->on_ready(EPOLLOUT);
        });
  } else if (events != gate->loop_events) {
    gate->loop_events = events;
    gate->loop_watch->set_events(events);
  }
}

std::unique_ptr<sdk::FdWatch> DeviceHost::watch_fd(int fd, std::uint32_t events,
                                                   std::function<void(std::uint32_t)> on_ready) {
  auto gate = std::make_shared<WatchGate>();
  gate->fd = fd;
  gate->events = events;
  gate->on_ready = std::move(on_ready);
  apply_watch(gate);
  prune(watches_);
  watches_.push_back(gate);
  return std::make_unique<DeviceFdWatch>(*this, std::move(gate));
}

void DeviceHost::hold_callbacks() {
  std::lock_guard lock(mutex_);
  if (held_) return;
  held_ = true;
  for (const auto& weak : watches_)
    if (const auto gate = weak.lock(); gate && gate->alive) apply_watch(gate);
}

void DeviceHost::release_callbacks() {
  std::lock_guard lock(mutex_);
  if (!held_) return;
  held_ = false;
  std::vector<std::shared_ptr<WatchGate>> watches;
  for (const auto& weak : watches_)
    if (auto gate = weak.lock(); gate && gate->alive) watches.push_back(std::move(gate));
  for (const auto& gate : watches) apply_watch(gate);
  // What became ready while held reaches the device now, before the caller
  // lets the guest run: a console client that connected to a held listener
  // is accepted before the guest's first output, not some time after it.
  for (const auto& gate : watches) {
    pollfd p{gate->fd, static_cast<short>(gate->events & (POLLIN | POLLPRI)), 0};
    if (gate->alive && p.events != 0 && ::poll(&p, 1, 0) > 0 && p.revents != 0)
      gate->on_ready(static_cast<std::uint32_t>(p.revents));
  }
  // An expiry that came while held was not delivered and its one-shot loop
  // timer is spent: arming it again at the passed deadline fires it at once.
  const std::uint64_t now = buses_.clock.monotonic_ns();
  for (const auto& weak : timers_) {
    const auto gate = weak.lock();
    if (gate && gate->alive && gate->armed && gate->deadline <= now && gate->loop_timer)
      gate->loop_timer->arm_at(gate->deadline);
  }
}

void DeviceHost::give_handed_over_fds(std::map<std::string, kvm::Fd> fds) {
  handed_fds_ = std::move(fds);
}

int DeviceHost::take_handed_over_fd(const std::string& name) {
  const auto it = handed_fds_.find(name);
  if (it == handed_fds_.end()) return -1;
  const int fd = it->second.release();
  handed_fds_.erase(it);
  taken_fds_.push_back(name);
  logger_->info("took the backend fd '{}' the old molt handed over", name);
  return fd;
}

std::vector<std::string> DeviceHost::close_untaken_handed_over_fds() {
  std::vector<std::string> names;
  for (const auto& [name, fd] : handed_fds_) names.push_back(name);
  handed_fds_.clear();
  return names;
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
