// What a device sees of the machine. The core implements DeviceContext; the
// testing fakes (molt/sdk/testing/fake_bus.hpp) implement it without KVM.
//
// Lifecycle, on every path:
//   create (factory) -> realize() -> reset() -> run
//   restore: create -> realize() -> state loaded -> post_load() -> run
//
// Every callback a device registers through its context (port and MMIO
// handlers, timers, fd watches) is serialised per device by the core: a device
// never sees two of its callbacks at once, so device code needs no locks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/error.hpp>
#include <molt/sdk/migration.hpp>
#include <molt/sdk/properties.hpp>

namespace spdlog {
class logger;
}

namespace molt::sdk {

class StateDescriptor;
class PciBus;  // molt/sdk/pci.hpp

// Port or MMIO access handlers. `offset` is relative to the claimed base;
// `size` is 1, 2, 4 or 8 bytes. Reads of bytes a device does not decode
// return all ones, as an ISA bus floats high.
struct IoOps {
  std::function<std::uint64_t(std::uint64_t offset, unsigned size)> read;
  std::function<void(std::uint64_t offset, unsigned size, std::uint64_t value)> write;
};

// An interrupt line into the in-kernel IOAPIC/PIC. Lines claimed by several
// devices are wire-ORed by the core.
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set_level(bool asserted) = 0;
  // An edge: raise then lower.
  virtual void pulse() = 0;
  virtual unsigned gsi() const = 0;
};

// Guest-physical memory, bounds checked. Writes made through here are marked
// dirty for migration; a device that writes through map() must call
// mark_dirty() itself.
class GuestMemory {
 public:
  virtual ~GuestMemory() = default;
  // False (and nothing copied) if any byte of the range is not guest RAM.
  virtual bool read(std::uint64_t gpa, std::span<std::uint8_t> out) = 0;
  virtual bool write(std::uint64_t gpa, std::span<const std::uint8_t> in) = 0;
  // Direct access to a range inside one RAM block; empty span otherwise.
  virtual std::span<std::uint8_t> map(std::uint64_t gpa, std::uint64_t len) = 0;
  virtual void mark_dirty(std::uint64_t gpa, std::uint64_t len) = 0;
};

// Monotonic and wall-clock time. The fake clock moves only when a test steps it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::uint64_t monotonic_ns() const = 0;
  virtual std::int64_t realtime_ns() const = 0;
};

// A one-shot timer on the event loop. Re-arming replaces the deadline.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void arm_at(std::uint64_t deadline_monotonic_ns) = 0;
  virtual void arm_after(std::uint64_t delay_ns) = 0;
  virtual void cancel() = 0;
  virtual bool armed() const = 0;
};

// An fd registered with the event loop; unregistered when destroyed.
class FdWatch {
 public:
  virtual ~FdWatch() = default;
  // Change the epoll event mask (EPOLLIN, EPOLLOUT, ...).
  virtual void set_events(std::uint32_t events) = 0;
};

// A movable port or MMIO mapping (a PCI BAR); unmapped when destroyed.
class IoRegion {
 public:
  virtual ~IoRegion() = default;
};

// Facts about the machine that firmware-facing devices (CMOS, fw_cfg) report.
struct MemoryRange {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
  std::uint32_t e820_type = 1;  // 1 RAM, 2 reserved
};
struct MachineInfo {
  std::string machine_type;            // "molt-pc-1.0"
  unsigned vcpus = 1;
  std::uint64_t ram_size = 0;          // all guest RAM, bytes
  std::vector<MemoryRange> ram;        // guest-physical RAM regions
  std::vector<MemoryRange> e820;       // the memory map the guest is given
  std::string kernel_path;             // empty when booting firmware only
  std::string initrd_path;
  std::string cmdline;
  std::string firmware_path;           // empty for direct kernel boot
  std::vector<std::string> boot_order; // device ids, first choice first
};

enum class ExitReason { Poweroff, Reset, DebugExit, Error };

// cpr-transfer hands a running guest to a new molt on the same host. A device
// whose backend is an open fd (a disk image, a socket, an output file, a tap)
// can pass that fd along, so the new molt goes on with the same open file,
// listening socket or connection instead of opening the path again (which
// would truncate an output file, re-bind a socket path, drop a connected
// client, or find a file that was since renamed).
struct HandedFd {
  std::string name;  // unique within the device: "image", "listener", "client"
  int fd = -1;       // stays the device's: the core passes a duplicate
};
struct FdHandover {
  std::vector<HandedFd> fds;
  // Non-empty: this device's backend cannot move to a new molt, as a sentence
  // that says what to change. cpr-transfer is then blocked, naming the device.
  std::string blocker;
};
enum class HandoverSide {
  Source,       // the old molt: the new one owns the fds and what they stand for
  Destination,  // the new molt: the fds taken with take_handed_over_fd are this device's for good
};

// Whole-machine requests a device may make (power off, reset, debug exit).
class MachineControl {
 public:
  virtual ~MachineControl() = default;
  virtual void request_exit(ExitReason reason, int status) = 0;
};

class DeviceContext {
 public:
  virtual ~DeviceContext() = default;

  // The instance id from the machine description ("com1", "disk0").
  virtual const std::string& id() const = 0;
  virtual const Properties& properties() const = 0;
  // Logger named "dev.<id>".
  virtual spdlog::logger& log() = 0;

  // Claims throw sdk::Error when the range or line is taken or invalid.
  virtual void claim_ports(std::uint16_t base, std::uint16_t count, IoOps ops) = 0;
  virtual void claim_mmio(std::uint64_t base, std::uint64_t length, IoOps ops) = 0;
  virtual IrqLine& claim_irq(unsigned gsi) = 0;

  // Movable mappings, for ranges the guest places (PCI BARs). A range that
  // overlaps another mapping is guest misbehaviour, not an error: the core
  // logs it and returns nullptr, and the device carries on unmapped.
  virtual std::unique_ptr<IoRegion> map_ports(std::uint16_t base, std::uint16_t count, IoOps ops) = 0;
  virtual std::unique_ptr<IoRegion> map_mmio(std::uint64_t base, std::uint64_t length, IoOps ops) = 0;
  // Delivers a message-signalled interrupt (MSI/MSI-X) to the guest.
  virtual void signal_msi(std::uint64_t address, std::uint32_t data) = 0;
  virtual const MachineInfo& machine_info() const = 0;

  virtual GuestMemory& memory() = 0;
  virtual const Clock& clock() const = 0;
  virtual std::unique_ptr<Timer> create_timer(std::function<void()> on_expiry) = 0;
  virtual std::unique_ptr<FdWatch> watch_fd(int fd, std::uint32_t events,
                                            std::function<void(std::uint32_t revents)> on_ready) = 0;
  virtual MachineControl& machine() = 0;
  // The machine's PCI bus 0, where a PciFunction (molt/sdk/pci.hpp) plugs in.
  // Throws sdk::Error on a machine without one.
  virtual PciBus& pci_bus();

  // Tells the monitor's subscribers that something happened to this device
  // ("link-up", "media-changed"), with a few values. The core also remembers
  // the latest data of each event name, so device.list reports the same state
  // to a client that connects later. Callable from any device callback.
  virtual void emit_event(const std::string& name, const std::map<std::string, PropertyValue>& data) {
    (void)name;
    (void)data;
  }

  // cpr-transfer, in the new molt, during realize(): the fd the old molt's
  // device of the same id handed over under `name` (Device::handover_fds), now
  // owned by the caller; -1 when there is none (a fresh start, a precopy
  // migration, a restore, or the old device passed none): open the backend
  // from its properties as usual. Each fd is handed out once. The device's
  // timers and the input side of its fd watches (readable, accept, hang-up)
  // hold until the guest runs here, so a device may watch a taken socket at
  // once: the old molt serves it until the pause. Writability still fires.
  virtual int take_handed_over_fd(const std::string& name) {
    (void)name;
    return -1;
  }
};

// What a device migrates: a descriptor bound to its plain State struct; or, for
// a device that holds no state, the reason that is so (shown when migration
// lists what moves); or the reason it cannot migrate at all, which becomes a
// named migration blocker.
struct StateBinding {
  const StateDescriptor* descriptor = nullptr;
  void* state = nullptr;
  std::string stateless_reason;
  std::string unmigratable_reason;
  // Load order on the destination: higher first (molt/sdk/migration.hpp).
  int priority = kPriorityDefault;
  // Iterative state the device also migrates (molt/sdk/migration.hpp), or nullptr.
  IterativeState* iterative = nullptr;

  StateBinding with_priority(int p) && {
    priority = p;
    return std::move(*this);
  }
  StateBinding with_iterative(IterativeState& hooks) && {
    iterative = &hooks;
    return std::move(*this);
  }

  template <class S>
  static StateBinding of(const StateDescriptor& d, S& s) {
    return {&d, &s, {}, {}};
  }
  static StateBinding stateless(std::string why) { return {nullptr, nullptr, std::move(why), {}}; }
  static StateBinding unmigratable(std::string why) { return {nullptr, nullptr, {}, std::move(why)}; }
  bool migratable() const { return unmigratable_reason.empty(); }
};

class Device {
 public:
  virtual ~Device() = default;
  // Claim resources and open backends. Throws sdk::Error with a sentence.
  virtual void realize() = 0;
  // Power-on state of the hardware.
  virtual void reset() {}
  virtual StateBinding state() = 0;
  // Called after state() was saved / loaded and validated by its descriptor:
  // recompute what is derived (IRQ levels, timers) from the loaded State.
  virtual void pre_save() {}
  virtual void post_load() {}
  // A property declared settable_at_runtime, changed through the monitor
  // while the guest runs; `value` already has the declared type and range.
  // Called under the device's lock. Throws sdk::Error with a sentence to
  // refuse; the core then keeps the old value. By default devices refuse.
  virtual void set_property(const std::string& name, const PropertyValue& value) {
    (void)value;
    throw Error("this device does not change property '" + name + "' while the guest runs");
  }

  // cpr-transfer, in the old molt while the guest still runs (under the
  // device's lock): the backend fds to hand to the new molt, or why they
  // cannot go. Asked twice: when migrate.start checks for blockers, and when
  // the fds are sent. By default a device hands over nothing, and the new molt
  // opens its backends from their properties.
  virtual FdHandover handover_fds() { return {}; }
  // cpr-transfer completed: the guest runs in the new molt (under the device's
  // lock). Source: leave what the fds stand for alone from now on (do not
  // remove a socket path or release a lock when destroyed). Destination: the
  // fds taken at realize are this device's as if it had opened them itself.
  virtual void handover_completed(HandoverSide side) { (void)side; }
};

}  // namespace molt::sdk
