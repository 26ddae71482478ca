// Testing fakes: drive a device through the SDK without KVM.
//
//   molt::sdk::testing::FakeMachine m;
//   auto& ctx = m.add_context("com1", props);
//   auto dev = type.create(ctx);
//   dev->realize(); dev->reset();
//   m.bus().io_write(0x3f8, 1, 'A');
//   EXPECT_TRUE(m.irq(4).level());
//   m.clock().advance(1'000'000);   // fires due timers, in deadline order
#pragma once

#include <cstdint>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>

namespace molt::sdk::testing {

class FakeClock;

class FakeIrqLine final : public IrqLine {
 public:
  explicit FakeIrqLine(unsigned gsi) : gsi_(gsi) {}
  void set_level(bool asserted) override;
  void pulse() override { ++pulses_; }
  unsigned gsi() const override { return gsi_; }

  bool level() const { return level_; }
  // Rising edges seen (set_level false->true) plus pulse() calls.
  unsigned edges() const { return rising_ + pulses_; }
  unsigned pulses() const { return pulses_; }
  void clear_counts() { rising_ = pulses_ = 0; }

 private:
  unsigned gsi_;
  bool level_ = false;
  unsigned rising_ = 0;
  unsigned pulses_ = 0;
};

// Guest RAM as a byte vector starting at guest-physical address `base`.
class FakeGuestMemory final : public GuestMemory {
 public:
  explicit FakeGuestMemory(std::uint64_t size, std::uint64_t base = 0) : base_(base), bytes_(size) {}
  bool read(std::uint64_t gpa, std::span<std::uint8_t> out) override;
  bool write(std::uint64_t gpa, std::span<const std::uint8_t> in) override;
  std::span<std::uint8_t> map(std::uint64_t gpa, std::uint64_t len) override;
  void mark_dirty(std::uint64_t gpa, std::uint64_t len) override;

  std::vector<std::uint8_t>& bytes() { return bytes_; }
  // Ranges passed to mark_dirty or written through write(), in order.
  const std::vector<std::pair<std::uint64_t, std::uint64_t>>& dirty() const { return dirty_; }

 private:
  bool contains(std::uint64_t gpa, std::uint64_t len) const;
  std::uint64_t base_;
  std::vector<std::uint8_t> bytes_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dirty_;
};

// Time moves only when a test calls advance()/set(); due timers fire then.
class FakeClock final : public Clock {
 public:
  std::uint64_t monotonic_ns() const override { return now_; }
  std::int64_t realtime_ns() const override { return realtime_base_ + static_cast<std::int64_t>(now_); }
  void set_realtime_base(std::int64_t ns) { realtime_base_ = ns; }

  // Moves time forward by `ns`, firing every timer whose deadline is reached,
  // each at its own deadline (timers re-armed by a callback fire again if due).
  void advance(std::uint64_t ns);
  std::unique_ptr<Timer> create_timer(std::function<void()> on_expiry);
  std::size_t armed_timers() const;

 private:
  friend class FakeTimer;
  struct Entry {
    std::optional<std::uint64_t> deadline;
    std::function<void()> callback;
  };
  std::uint64_t now_ = 0;
  std::int64_t realtime_base_ = 1'700'000'000'000'000'000;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Entry> timers_;
};

// Port and MMIO dispatch as the core does it, over the claims devices made.
class FakeBus {
 public:
  // Throw sdk::Error on overlap, as the core does for fixed claims. Return a
  // handle for remove().
  std::uint64_t add_ports(std::uint16_t base, std::uint16_t count, IoOps ops);
  std::uint64_t add_mmio(std::uint64_t base, std::uint64_t length, IoOps ops);
  void remove(std::uint64_t handle);
  // What is mapped where, for tests of movable BARs: (base, length) pairs.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> port_ranges() const;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> mmio_ranges() const;

  // Unclaimed reads return all ones; unclaimed writes are dropped.
  std::uint64_t io_read(std::uint16_t port, unsigned size);
  void io_write(std::uint16_t port, unsigned size, std::uint64_t value);
  std::uint64_t mmio_read(std::uint64_t addr, unsigned size);
  void mmio_write(std::uint64_t addr, unsigned size, std::uint64_t value);

 private:
  struct Range {
    std::uint64_t base, length;
    IoOps ops;
    std::uint64_t handle;
  };
  static Range* find(std::vector<Range>& ranges, std::uint64_t addr, unsigned size);
  std::uint64_t add(std::vector<Range>& ranges, std::uint64_t base, std::uint64_t length, IoOps ops, const char* kind);
  std::uint64_t next_handle_ = 1;
  std::vector<Range> ports_;
  std::vector<Range> mmio_;
};

class FakeFdWatch;
class FakeMachine;

// PCI bus 0 as the core routes it: INTx of slot S pin P drives GSI
// 16 + ((S + P - 1) & 3), wire-ORed with the other functions on that PIRQ.
// Tests access config space directly (as configuration mechanism #1 would).
class FakePciBus final : public PciBus {
 public:
  explicit FakePciBus(FakeMachine& machine);
  ~FakePciBus() override;
  PciAttachment attach(const PciPlacement& where, std::uint8_t interrupt_pin, IoOps config) override;
  void detach(PciAddress address) override;
  void route_pirq(unsigned pirq, std::optional<unsigned> isa_irq) override;
  void claim_reset_control(IoOps ops) override;

  // All ones where no function is attached, as a master abort reads.
  std::uint32_t config_read(unsigned slot, unsigned function, std::uint16_t offset, unsigned size);
  void config_write(unsigned slot, unsigned function, std::uint16_t offset, unsigned size, std::uint32_t value);
  bool present(unsigned slot, unsigned function) const;
  // The last PIC-mode route set for PIRQ 0-3 (empty: disabled or never set).
  std::optional<unsigned> pirq_route(unsigned pirq) const { return pirq < 4 ? routes_[pirq] : std::nullopt; }
  // Port 0xCF9, as the core forwards it (all ones when unclaimed).
  std::uint8_t reset_control_read();
  void reset_control_write(std::uint8_t value);

 private:
  class Intx;
  void change(unsigned pirq, int delta);
  FakeMachine& machine_;
  std::map<unsigned, IoOps> functions_;  // by devfn
  std::map<unsigned, std::unique_ptr<Intx>> intx_;
  std::array<int, 4> asserted_{};
  std::array<std::optional<unsigned>, 4> routes_{};
  std::optional<IoOps> reset_control_;
};

class FakeMachine final : public MachineControl {
 public:
  explicit FakeMachine(std::uint64_t ram_size = 16 << 20);
  ~FakeMachine() override;

  // One context per device instance; lives as long as the FakeMachine.
  DeviceContext& add_context(const std::string& id, Properties props = {});

  FakeBus& bus() { return bus_; }
  FakeClock& clock() { return clock_; }
  FakeGuestMemory& memory() { return memory_; }
  FakeIrqLine& irq(unsigned gsi);
  FakePciBus& pci() { return pci_; }

  // Calls the watch callback of `fd` as the event loop would (revents given).
  // Returns false when nothing watches that fd.
  bool fire_fd(int fd, std::uint32_t revents);
  // The events a device currently asks for on `fd` (0 if not watched).
  std::uint32_t watched_events(int fd) const;

  // Facts devices read through machine_info(); tests set what they need.
  MachineInfo& info() { return info_; }
  // MSIs signalled by devices, in order: (address, data).
  const std::vector<std::pair<std::uint64_t, std::uint32_t>>& msis() const { return msis_; }

  void request_exit(ExitReason reason, int status) override {
    exit_ = std::make_pair(reason, status);
  }
  const std::optional<std::pair<ExitReason, int>>& exit_request() const { return exit_; }

  // Events devices emitted through DeviceContext::emit_event, in order.
  struct EmittedEvent {
    std::string device;
    std::string name;
    std::map<std::string, PropertyValue> data;
  };
  const std::vector<EmittedEvent>& events() const { return events_; }

  // cpr-transfer as a device's realize() meets it: `fd` (now owned by the
  // FakeMachine) is what take_handed_over_fd(name) hands the device `id`.
  void hand_over_fd(const std::string& id, const std::string& name, int fd);
  // The fds handed over this way that no device took yet.
  std::size_t untaken_fds() const { return handed_fds_.size(); }

 private:
  friend class FakeContext;
  friend class FakeFdWatch;
  FakeBus bus_;
  FakePciBus pci_{*this};
  FakeClock clock_;
  FakeGuestMemory memory_;
  std::map<unsigned, std::unique_ptr<FakeIrqLine>> irqs_;
  std::vector<std::unique_ptr<DeviceContext>> contexts_;
  std::map<int, FakeFdWatch*> watches_;
  std::optional<std::pair<ExitReason, int>> exit_;
  MachineInfo info_;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> msis_;
  std::vector<EmittedEvent> events_;
  std::map<std::pair<std::string, std::string>, int> handed_fds_;
};

}  // namespace molt::sdk::testing
