#include <molt/sdk/testing/fake_bus.hpp>

#include <algorithm>
#include <cstring>

#include <unistd.h>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <molt/sdk/error.hpp>

namespace molt::sdk::testing {

void FakeIrqLine::set_level(bool asserted) {
  if (asserted && !level_) ++rising_;
  level_ = asserted;
}

bool FakeGuestMemory::contains(std::uint64_t gpa, std::uint64_t len) const {
  return gpa >= base_ && len <= bytes_.size() && gpa - base_ <= bytes_.size() - len;
}

bool FakeGuestMemory::read(std::uint64_t gpa, std::span<std::uint8_t> out) {
  if (!contains(gpa, out.size())) return false;
  std::memcpy(out.data(), bytes_.data() + (gpa - base_), out.size());
  return true;
}

bool FakeGuestMemory::write(std::uint64_t gpa, std::span<const std::uint8_t> in) {
  if (!contains(gpa, in.size())) return false;
  std::memcpy(bytes_.data() + (gpa - base_), in.data(), in.size());
  mark_dirty(gpa, in.size());
  return true;
}

std::span<std::uint8_t> FakeGuestMemory::map(std::uint64_t gpa, std::uint64_t len) {
  if (!contains(gpa, len)) return {};
  return {bytes_.data() + (gpa - base_), static_cast<std::size_t>(len)};
}

void FakeGuestMemory::mark_dirty(std::uint64_t gpa, std::uint64_t len) { dirty_.emplace_back(gpa, len); }

class FakeTimer final : public Timer {
 public:
  FakeTimer(FakeClock& clock, std::uint64_t id) : clock_(clock), id_(id) {}
  ~FakeTimer() override { clock_.timers_.erase(id_); }
  void arm_at(std::uint64_t deadline) override { clock_.timers_[id_].deadline = deadline; }
  void arm_after(std::uint64_t delay) override { arm_at(clock_.now_ + delay); }
  void cancel() override { clock_.timers_[id_].deadline.reset(); }
  bool armed() const override { return clock_.timers_.at(id_).deadline.has_value(); }

 private:
  FakeClock& clock_;
  std::uint64_t id_;
};

std::unique_ptr<Timer> FakeClock::create_timer(std::function<void()> on_expiry) {
  const std::uint64_t id = next_id_++;
  timers_[id] = Entry{std::nullopt, std::move(on_expiry)};
  return std::make_unique<FakeTimer>(*this, id);
}

std::size_t FakeClock::armed_timers() const {
  return static_cast<std::size_t>(
      std::count_if(timers_.begin(), timers_.end(), [](const auto& e) { return e.second.deadline.has_value(); }));
}

void FakeClock::advance(std::uint64_t ns) {
  const std::uint64_t target = now_ + ns;
  for (;;) {
    // The earliest due timer; ties go to the one created first.
    auto due = timers_.end();
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (!it->second.deadline || *it->second.deadline > target) continue;
      if (due == timers_.end() || *it->second.deadline < *due->second.deadline) due = it;
    }
    if (due == timers_.end()) break;
    now_ = std::max(now_, *due->second.deadline);
    due->second.deadline.reset();
    auto callback = due->second.callback;  // the callback may destroy its timer
    callback();
  }
  now_ = target;
}

std::uint64_t FakeBus::add(std::vector<Range>& ranges, std::uint64_t base, std::uint64_t length, IoOps ops,
                           const char* kind) {
  if (length == 0) throw Error(std::string("an empty ") + kind + " range cannot be claimed");
  for (const Range& r : ranges) {
    if (base < r.base + r.length && r.base < base + length)
      throw Error(std::string(kind) + " range overlaps one already claimed");
  }
  ranges.push_back(Range{base, length, std::move(ops), next_handle_});
  return next_handle_++;
}

void FakeBus::remove(std::uint64_t handle) {
  for (auto* ranges : {&ports_, &mmio_}) {
    std::erase_if(*ranges, [handle](const Range& r) { return r.handle == handle; });
  }
}

static std::vector<std::pair<std::uint64_t, std::uint64_t>> spans_of(const auto& ranges) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (const auto& r : ranges) out.emplace_back(r.base, r.length);
  return out;
}
std::vector<std::pair<std::uint64_t, std::uint64_t>> FakeBus::port_ranges() const { return spans_of(ports_); }
std::vector<std::pair<std::uint64_t, std::uint64_t>> FakeBus::mmio_ranges() const { return spans_of(mmio_); }

FakeBus::Range* FakeBus::find(std::vector<Range>& ranges, std::uint64_t addr, unsigned size) {
  for (Range& r : ranges) {
    if (addr >= r.base && addr + size <= r.base + r.length) return &r;
  }
  return nullptr;
}

std::uint64_t FakeBus::add_ports(std::uint16_t base, std::uint16_t count, IoOps ops) {
  return add(ports_, base, count, std::move(ops), "port");
}
std::uint64_t FakeBus::add_mmio(std::uint64_t base, std::uint64_t length, IoOps ops) {
  return add(mmio_, base, length, std::move(ops), "MMIO");
}

namespace {
class FakeIoRegion final : public IoRegion {
 public:
  FakeIoRegion(FakeBus& bus, std::uint64_t handle) : bus_(bus), handle_(handle) {}
  ~FakeIoRegion() override { bus_.remove(handle_); }

 private:
  FakeBus& bus_;
  std::uint64_t handle_;
};
}  // namespace

static std::uint64_t all_ones(unsigned size) { return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1; }

std::uint64_t FakeBus::io_read(std::uint16_t port, unsigned size) {
  Range* r = find(ports_, port, size);
  return r && r->ops.read ? r->ops.read(port - r->base, size) & all_ones(size) : all_ones(size);
}
void FakeBus::io_write(std::uint16_t port, unsigned size, std::uint64_t value) {
  if (Range* r = find(ports_, port, size); r && r->ops.write) r->ops.write(port - r->base, size, value & all_ones(size));
}
std::uint64_t FakeBus::mmio_read(std::uint64_t addr, unsigned size) {
  Range* r = find(mmio_, addr, size);
  return r && r->ops.read ? r->ops.read(addr - r->base, size) & all_ones(size) : all_ones(size);
}
void FakeBus::mmio_write(std::uint64_t addr, unsigned size, std::uint64_t value) {
  if (Range* r = find(mmio_, addr, size); r && r->ops.write) r->ops.write(addr - r->base, size, value & all_ones(size));
}

class FakeFdWatch final : public FdWatch {
 public:
  FakeFdWatch(FakeMachine& m, int fd, std::uint32_t events, std::function<void(std::uint32_t)> cb)
      : machine_(m), fd_(fd), events_(events), callback_(std::move(cb)) {
    machine_.watches_[fd_] = this;
  }
  ~FakeFdWatch() override { machine_.watches_.erase(fd_); }
  void set_events(std::uint32_t events) override { events_ = events; }
  std::uint32_t events() const { return events_; }
  void fire(std::uint32_t revents) { callback_(revents); }

 private:
  FakeMachine& machine_;
  int fd_;
  std::uint32_t events_;
  std::function<void(std::uint32_t)> callback_;
};

class FakeContext final : public DeviceContext {
 public:
  FakeContext(FakeMachine& m, std::string id, Properties props)
      : machine_(m), id_(std::move(id)), props_(std::move(props)),
        logger_(std::make_shared<spdlog::logger>("dev." + id_, std::make_shared<spdlog::sinks::null_sink_mt>())) {}

  const std::string& id() const override { return id_; }
  const Properties& properties() const override { return props_; }
  spdlog::logger& log() override { return *logger_; }
  void claim_ports(std::uint16_t base, std::uint16_t count, IoOps ops) override {
    machine_.bus_.add_ports(base, count, std::move(ops));
  }
  void claim_mmio(std::uint64_t base, std::uint64_t length, IoOps ops) override {
    machine_.bus_.add_mmio(base, length, std::move(ops));
  }
  IrqLine& claim_irq(unsigned gsi) override { return machine_.irq(gsi); }
  std::unique_ptr<IoRegion> map_ports(std::uint16_t base, std::uint16_t count, IoOps ops) override {
    try {
      return std::make_unique<FakeIoRegion>(machine_.bus_, machine_.bus_.add_ports(base, count, std::move(ops)));
    } catch (const Error&) {
      return nullptr;  // overlap: guest misbehaviour, as in the core
    }
  }
  std::unique_ptr<IoRegion> map_mmio(std::uint64_t base, std::uint64_t length, IoOps ops) override {
    try {
      return std::make_unique<FakeIoRegion>(machine_.bus_, machine_.bus_.add_mmio(base, length, std::move(ops)));
    } catch (const Error&) {
      return nullptr;
    }
  }
  void signal_msi(std::uint64_t address, std::uint32_t data) override { machine_.msis_.emplace_back(address, data); }
  const MachineInfo& machine_info() const override { return machine_.info_; }
  GuestMemory& memory() override { return machine_.memory_; }
  const Clock& clock() const override { return machine_.clock_; }
  std::unique_ptr<Timer> create_timer(std::function<void()> cb) override {
    return machine_.clock_.create_timer(std::move(cb));
  }
  std::unique_ptr<FdWatch> watch_fd(int fd, std::uint32_t events, std::function<void(std::uint32_t)> cb) override {
    return std::make_unique<FakeFdWatch>(machine_, fd, events, std::move(cb));
  }
  MachineControl& machine() override { return machine_; }
  PciBus& pci_bus() override { return machine_.pci_; }
  void emit_event(const std::string& name, const std::map<std::string, PropertyValue>& data) override {
    machine_.events_.push_back(FakeMachine::EmittedEvent{id_, name, data});
  }
  int take_handed_over_fd(const std::string& name) override {
    const auto it = machine_.handed_fds_.find({id_, name});
    if (it == machine_.handed_fds_.end()) return -1;
    const int fd = it->second;
    machine_.handed_fds_.erase(it);
    return fd;
  }

 private:
  FakeMachine& machine_;
  std::string id_;
  Properties props_;
  std::shared_ptr<spdlog::logger> logger_;
};

FakeMachine::FakeMachine(std::uint64_t ram_size) : memory_(ram_size) {}
FakeMachine::~FakeMachine() {
  for (const auto& [key, fd] : handed_fds_) ::close(fd);
}

void FakeMachine::hand_over_fd(const std::string& id, const std::string& name, int fd) {
  const auto [it, added] = handed_fds_.emplace(std::make_pair(id, name), fd);
  if (!added) {
    ::close(fd);
    throw Error("device " + id + ": an fd named '" + name + "' was already handed over");
  }
}

DeviceContext& FakeMachine::add_context(const std::string& id, Properties props) {
  contexts_.push_back(std::make_unique<FakeContext>(*this, id, std::move(props)));
  return *contexts_.back();
}

FakeIrqLine& FakeMachine::irq(unsigned gsi) {
  auto& line = irqs_[gsi];
  if (!line) line = std::make_unique<FakeIrqLine>(gsi);
  return *line;
}

bool FakeMachine::fire_fd(int fd, std::uint32_t revents) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return false;
  it->second->fire(revents);
  return true;
}

std::uint32_t FakeMachine::watched_events(int fd) const {
  auto it = watches_.find(fd);
  return it == watches_.end() ? 0 : it->second->events();
}

class FakePciBus::Intx final : public IrqLine {
 public:
  Intx(FakePciBus& bus, unsigned pirq) : bus_(bus), pirq_(pirq) {}
  void set_level(bool asserted) override {
    if (asserted == level_) return;
    level_ = asserted;
    bus_.change(pirq_, asserted ? 1 : -1);
  }
  void pulse() override {
    if (level_) return;
    set_level(true);
    set_level(false);
  }
  unsigned gsi() const override { return 16 + pirq_; }

 private:
  FakePciBus& bus_;
  unsigned pirq_;
  bool level_ = false;
};

FakePciBus::FakePciBus(FakeMachine& machine) : machine_(machine) {}
FakePciBus::~FakePciBus() = default;

PciAttachment FakePciBus::attach(const PciPlacement& where, std::uint8_t interrupt_pin, IoOps config) {
  if (interrupt_pin > 4 || where.function >= kPciFunctions) throw Error("no such PCI pin or function");
  unsigned slot = 0;
  if (where.slot) {
    slot = *where.slot;
    if (slot >= kPciSlots) throw Error("no such PCI slot");
  } else {
    const auto used = [this](unsigned s) {
      for (unsigned f = 0; f < kPciFunctions; ++f) {
        if (functions_.count(s * 8 + f)) return true;
      }
      return false;
    };
    while (slot < kPciSlots && used(slot)) ++slot;
    if (slot == kPciSlots) throw Error("every PCI slot is taken");
  }
  const PciAddress address{slot, where.function};
  if (functions_.count(address.devfn())) throw Error("PCI slot.function taken");
  functions_[address.devfn()] = std::move(config);
  IrqLine* line = nullptr;
  if (interrupt_pin != 0) {
    auto& intx = intx_[address.devfn()];
    intx = std::make_unique<Intx>(*this, (slot + interrupt_pin - 1) & 3);
    line = intx.get();
  }
  return PciAttachment{address, line};
}

void FakePciBus::detach(PciAddress address) {
  functions_.erase(address.devfn());
  if (auto it = intx_.find(address.devfn()); it != intx_.end()) {
    it->second->set_level(false);
    intx_.erase(it);
  }
}

void FakePciBus::change(unsigned pirq, int delta) {
  asserted_[pirq] += delta;
  machine_.irq(16 + pirq).set_level(asserted_[pirq] != 0);
  if (routes_[pirq]) machine_.irq(*routes_[pirq]).set_level(asserted_[pirq] != 0);
}

void FakePciBus::route_pirq(unsigned pirq, std::optional<unsigned> isa_irq) {
  if (pirq >= 4) return;
  if (routes_[pirq]) machine_.irq(*routes_[pirq]).set_level(false);
  routes_[pirq] = isa_irq;
  if (isa_irq) machine_.irq(*isa_irq).set_level(asserted_[pirq] != 0);
}

void FakePciBus::claim_reset_control(IoOps ops) {
  if (reset_control_) throw Error("port 0xcf9 is claimed already");
  reset_control_ = std::move(ops);
}

bool FakePciBus::present(unsigned slot, unsigned function) const {
  return slot < kPciSlots && function < kPciFunctions && functions_.count(slot * 8 + function) != 0;
}

std::uint32_t FakePciBus::config_read(unsigned slot, unsigned function, std::uint16_t offset, unsigned size) {
  const std::uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  if (!present(slot, function)) return ones;
  const IoOps& ops = functions_.at(slot * 8 + function);
  return ops.read ? static_cast<std::uint32_t>(ops.read(offset, size)) & ones : ones;
}

void FakePciBus::config_write(unsigned slot, unsigned function, std::uint16_t offset, unsigned size,
                              std::uint32_t value) {
  if (!present(slot, function)) return;
  const IoOps& ops = functions_.at(slot * 8 + function);
  if (ops.write) ops.write(offset, size, value);
}

std::uint8_t FakePciBus::reset_control_read() {
  return reset_control_ && reset_control_->read ? static_cast<std::uint8_t>(reset_control_->read(0, 1)) : 0xff;
}

void FakePciBus::reset_control_write(std::uint8_t value) {
  if (reset_control_ && reset_control_->write) reset_control_->write(0, 1, value);
}

}  // namespace molt::sdk::testing
