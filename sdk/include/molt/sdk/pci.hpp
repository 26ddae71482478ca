// PCI functions for device authors, and the bus interface the core implements.
//
// A device author fills in the function's identity, its BARs and the registers
// of its own; PciFunction does the rest of the type-0 header: read-only fields
// and write masks, BAR sizing and placement by the guest (a BAR is mapped only
// while its decode bit is set and its address is valid, and remapped when
// either changes), the command and status registers, the capability list, the
// expansion ROM, the interrupt line/pin registers and INTx.
//
//   PciFunction pci(ctx, {.vendor_id = 0x8086, .device_id = 0x7010, .class_code = 0x010180,
//                         .interrupt_pin = 0},
//                   &state_.pci);
//   pci.add_bar(4, {.kind = PciBarKind::Io, .size = 16, .ops = bus_master_ops()});
//   pci.define_register(0x40, 2, 0x8000, 0xb3ff);   // IDETIM, writable bits
//   pci.on_write([this](std::uint16_t offset, unsigned size) { ... });
//   pci.attach({.slot = 1, .function = 1});          // in realize()
//   ...
//   pci.reset();                                     // in reset()
//   pci.set_intx(true);                              // the device raises INTx
//   if (pci.bus_master_enabled()) { ... DMA ... }
//   pci.post_load();                                 // in post_load(): rebuilds mappings and INTx
//
// State: PciFunctionState (the 256 config bytes and the device's INTx level)
// lives in the device's own State struct, declared with
// `.subsection(sdk::pci_function_descriptor(), &State::pci, [](const State&) { return true; })`,
// or, for a device with nothing else to migrate, bound alone with
// StateBinding::of(sdk::pci_function_descriptor(), pci.state()).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/state.hpp>

namespace molt::sdk {

class RateLimitedLog;

inline constexpr unsigned kPciSlots = 32;
inline constexpr unsigned kPciFunctions = 8;
inline constexpr unsigned kPciConfigSize = 256;
inline constexpr unsigned kPciBarCount = 6;

// Standard type-0 header offsets and bits (PCI Local Bus Specification 3.0).
namespace pci_reg {
inline constexpr std::uint16_t kVendorId = 0x00;
inline constexpr std::uint16_t kDeviceId = 0x02;
inline constexpr std::uint16_t kCommand = 0x04;
inline constexpr std::uint16_t kStatus = 0x06;
inline constexpr std::uint16_t kRevision = 0x08;
inline constexpr std::uint16_t kClassCode = 0x09;  // 3 bytes: prog-if, subclass, base class
inline constexpr std::uint16_t kCacheLineSize = 0x0c;
inline constexpr std::uint16_t kLatencyTimer = 0x0d;
inline constexpr std::uint16_t kHeaderType = 0x0e;
inline constexpr std::uint16_t kBar0 = 0x10;
inline constexpr std::uint16_t kSubsystemVendorId = 0x2c;
inline constexpr std::uint16_t kSubsystemId = 0x2e;
inline constexpr std::uint16_t kRomAddress = 0x30;
inline constexpr std::uint16_t kCapabilitiesPointer = 0x34;
inline constexpr std::uint16_t kInterruptLine = 0x3c;
inline constexpr std::uint16_t kInterruptPin = 0x3d;
inline constexpr std::uint16_t kDeviceSpecific = 0x40;  // first byte after the header

inline constexpr std::uint16_t kCommandIo = 1u << 0;
inline constexpr std::uint16_t kCommandMemory = 1u << 1;
inline constexpr std::uint16_t kCommandBusMaster = 1u << 2;
inline constexpr std::uint16_t kCommandSerr = 1u << 8;
inline constexpr std::uint16_t kCommandParity = 1u << 6;
inline constexpr std::uint16_t kCommandInterruptDisable = 1u << 10;

inline constexpr std::uint16_t kStatusInterrupt = 1u << 3;
inline constexpr std::uint16_t kStatusCapabilities = 1u << 4;
// Error bits the device sets and the guest clears by writing ones.
inline constexpr std::uint16_t kStatusErrorBits = 0xf900;

inline constexpr std::uint8_t kHeaderMultiFunction = 0x80;
inline constexpr std::uint32_t kRomEnable = 1u << 0;

inline constexpr std::uint8_t kCapabilityMsi = 0x05;
inline constexpr std::uint8_t kCapabilityVendor = 0x09;
inline constexpr std::uint8_t kCapabilityMsix = 0x11;
}  // namespace pci_reg

// A function's place on bus 0. `slot` empty: function 0 of the lowest free slot.
struct PciPlacement {
  std::optional<unsigned> slot;
  unsigned function = 0;
};

struct PciAddress {
  unsigned slot = 0;
  unsigned function = 0;
  std::uint8_t devfn() const { return static_cast<std::uint8_t>((slot << 3) | function); }
  bool operator==(const PciAddress&) const = default;
};

// What the bus gives a function it plugged in.
struct PciAttachment {
  PciAddress address;
  // The function's INTx pin, routed by the core (docs/pci.md); nullptr when
  // the function has no interrupt pin.
  IrqLine* intx = nullptr;
};

// The machine's PCI bus 0, as the core (or the testing fakes) provides it
// through DeviceContext::pci_bus(). Device authors use PciFunction instead.
class PciBus {
 public:
  virtual ~PciBus() = default;
  // Plugs in a function whose config space the bus reads and writes through
  // `config` (offset 0-255, size 1, 2 or 4, naturally aligned; the handlers
  // run serialised with the device's other callbacks). `interrupt_pin` is 0
  // (none) or 1-4 (INTA#-INTD#). Throws sdk::Error when the place is taken or
  // does not exist, or no slot is free.
  virtual PciAttachment attach(const PciPlacement& where, std::uint8_t interrupt_pin, IoOps config) = 0;
  // Unplugs the function at `address` (its INTx is deasserted).
  virtual void detach(PciAddress address) = 0;
  // PIC-mode routing of PIRQ A-D (pirq 0-3) to an ISA IRQ (3-15), as a
  // PIIX's PIRQ route control registers set it; empty disables the route.
  // The IOAPIC route (GSI 16 + pirq) is unaffected (docs/pci.md).
  virtual void route_pirq(unsigned pirq, std::optional<unsigned> isa_irq) = 0;
  // Byte accesses to port 0xCF9, which shares the dword of the configuration
  // address register 0xCF8, go to `ops` (offset 0, size 1): the chipset's
  // reset control register.
  virtual void claim_reset_control(IoOps ops) = 0;
};

// ---- A function's identity and BARs ---------------------------------------------------

struct PciIdentity {
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::uint8_t revision = 0;
  std::uint32_t class_code = 0;  // base class << 16 | subclass << 8 | programming interface
  std::uint16_t subsystem_vendor_id = 0;
  std::uint16_t subsystem_id = 0;
  std::uint8_t interrupt_pin = 0;  // 0 none, 1-4 INTA#-INTD#
  bool multi_function = false;     // header type bit 7; set on function 0 of a multi-function device
};

enum class PciBarKind { Io, Memory32, Memory64 };

struct PciBar {
  PciBarKind kind = PciBarKind::Memory32;
  // A power of two: at least 4 for I/O (at most 256), at least 16 for memory.
  std::uint64_t size = 0;
  bool prefetchable = false;  // memory BARs only
  // Called with the offset inside the BAR while it is mapped.
  IoOps ops;
};

// The migrating part of a function: its config space as the guest sees it and
// the level the device drives on INTx (before the command register's
// interrupt-disable bit applies). BAR mappings are rebuilt from `config`.
struct PciFunctionState {
  std::array<std::uint8_t, kPciConfigSize> config{};
  bool intx_level = false;
  bool operator==(const PciFunctionState&) const = default;
};

// "pci-function" version 1.
const StateDescriptor& pci_function_descriptor();

class PciFunction {
 public:
  // `state` may point into the device's own State struct (so it migrates with
  // it); nullptr keeps the state inside the function.
  PciFunction(DeviceContext& ctx, const PciIdentity& identity, PciFunctionState* state = nullptr);
  ~PciFunction();
  PciFunction(const PciFunction&) = delete;
  PciFunction& operator=(const PciFunction&) = delete;

  // ---- Definition: call before attach() ----
  // BAR `index` 0-5; a 64-bit memory BAR also takes index + 1. Throws
  // sdk::Error for a bad index, size or kind.
  void add_bar(unsigned index, PciBar bar);
  // An expansion ROM of these bytes, sized up to a power of two (>= 2 KiB),
  // served read-only while the ROM BAR and memory space are enabled.
  void set_rom(std::vector<std::uint8_t> contents);
  // A device-specific register of `size` bytes (1-4) at `offset`: its reset
  // value, the bits the guest may write, and the bits a guest write of one
  // clears. Throws sdk::Error when it overlaps the standard header.
  void define_register(std::uint16_t offset, unsigned size, std::uint32_t reset_value,
                       std::uint32_t write_mask, std::uint32_t write_one_to_clear = 0);
  // Appends a capability with `length` bytes (including the 2-byte header) at
  // `at` (dword-aligned, >= 0x40) or after the previous one, links it into the
  // list and sets the status register's capabilities bit. Returns its offset.
  // Its registers after the header are defined with define_register().
  std::uint16_t add_capability(std::uint8_t id, unsigned length, std::optional<std::uint16_t> at = {});
  // Observers of guest config writes, called after the write was applied
  // (masks honoured) and BARs were remapped.
  void on_write(std::function<void(std::uint16_t offset, unsigned size)> hook);
  // Called before a guest config read, so the device can refresh bytes it
  // computes (set_config()).
  void on_read(std::function<void(std::uint16_t offset, unsigned size)> hook);

  // Plugs the function into the machine's PCI bus (in realize()).
  void attach(const PciPlacement& where = {});
  bool attached() const { return attached_; }
  PciAddress address() const { return address_; }

  // ---- Run time ----
  // Power-on values of the whole config space; unmaps every BAR and the ROM
  // and deasserts INTx.
  void reset();
  // The device drives its INTx pin. The line follows unless the command
  // register's interrupt-disable bit is set; the status register's interrupt
  // bit always shows the level.
  void set_intx(bool asserted);
  bool intx_level() const { return state_->intx_level; }

  std::uint16_t command() const;
  bool io_enabled() const { return command() & pci_reg::kCommandIo; }
  bool memory_enabled() const { return command() & pci_reg::kCommandMemory; }
  bool bus_master_enabled() const { return command() & pci_reg::kCommandBusMaster; }
  // The guest-assigned base of BAR `index` (0 when unassigned or unknown).
  std::uint64_t bar_address(unsigned index) const;
  // True while BAR `index` is mapped into the port or MMIO space.
  bool bar_mapped(unsigned index) const;

  // Raw config bytes for the device's own registers (no masks applied).
  std::uint32_t config(std::uint16_t offset, unsigned size) const;
  void set_config(std::uint16_t offset, unsigned size, std::uint32_t value);

  // The guest's config accesses, as the bus performs them. Out-of-range or
  // misaligned accesses read all ones / are dropped.
  std::uint32_t config_read(std::uint16_t offset, unsigned size);
  void config_write(std::uint16_t offset, unsigned size, std::uint32_t value);

  // ---- State ----
  PciFunctionState& state() { return *state_; }
  // After a load: re-imposes read-only bits from the definition (identity,
  // BAR types and sizes), then rebuilds BAR mappings and the INTx line.
  void post_load();

  DeviceContext& context() { return ctx_; }

 private:
  struct BarSlot;
  void check_not_attached(const char* what) const;
  void set_bytes(std::uint16_t offset, unsigned size, std::uint32_t value, std::uint32_t wmask,
                 std::uint32_t w1c);
  void write_masked(std::uint16_t offset, unsigned size, std::uint32_t value);
  void update_mappings();
  void update_bar_mapping(unsigned index);
  void update_rom_mapping();
  void update_intx_line();
  void impose_read_only_bits();
  std::uint64_t decode_bar_address(unsigned index) const;

  DeviceContext& ctx_;
  PciIdentity identity_;
  PciFunctionState own_state_;
  PciFunctionState* state_;
  // Power-on values and masks, from the definition.
  std::array<std::uint8_t, kPciConfigSize> reset_values_{};
  std::array<std::uint8_t, kPciConfigSize> write_mask_{};
  std::array<std::uint8_t, kPciConfigSize> write_one_to_clear_{};
  std::array<bool, kPciConfigSize> defined_{};
  std::vector<std::unique_ptr<BarSlot>> bars_;   // kPciBarCount entries, some empty
  std::array<bool, kPciBarCount> upper_half_{};  // the high dword of a 64-bit BAR
  std::vector<std::uint16_t> capability_headers_;
  std::vector<std::uint8_t> rom_;
  std::uint64_t rom_size_ = 0;
  std::unique_ptr<IoRegion> rom_region_;
  std::uint64_t rom_mapped_at_ = 0;
  std::uint16_t last_capability_ = 0;
  std::uint16_t next_capability_offset_ = pci_reg::kDeviceSpecific;
  std::vector<std::function<void(std::uint16_t, unsigned)>> write_hooks_;
  std::vector<std::function<void(std::uint16_t, unsigned)>> read_hooks_;
  bool attached_ = false;
  PciAddress address_;
  IrqLine* intx_ = nullptr;
  bool intx_line_level_ = false;
  std::unique_ptr<RateLimitedLog> log_;
};

// ---- MSI (capability 05h) ------------------------------------------------------------

struct PciMsiOptions {
  unsigned vectors = 1;  // 1, 2, 4, 8, 16 or 32 (Multiple Message Capable)
  bool address64 = true;
  bool per_vector_mask = false;
};

// An MSI capability on `function`. Its registers live in config space, so
// they migrate with PciFunctionState; nothing else to save.
class PciMsi {
 public:
  // Adds the capability (at `at` or the next free place). Before attach().
  PciMsi(PciFunction& function, const PciMsiOptions& options, std::optional<std::uint16_t> at = {});
  bool enabled() const;
  // Vectors the guest enabled (Multiple Message Enable), 1-32.
  unsigned enabled_vectors() const;
  // Signals `vector`: delivered when MSI is enabled and the vector unmasked;
  // with per-vector masking a masked vector's pending bit is set instead and
  // it is delivered when unmasked. Returns true if delivered now.
  bool notify(unsigned vector);
  std::uint64_t message_address() const;
  std::uint16_t message_data() const;
  std::uint16_t offset() const { return offset_; }

 private:
  std::uint16_t control() const;
  std::uint16_t mask_offset() const;
  void on_config_write(std::uint16_t offset, unsigned size);
  void deliver(unsigned vector);

  PciFunction& function_;
  PciMsiOptions options_;
  std::uint16_t offset_ = 0;
};

// ---- MSI-X (capability 11h) ----------------------------------------------------------

// The MSI-X table (4 dwords per vector: address low, high, data, vector
// control) and the pending bits. Lives in the device's State struct.
struct PciMsixState {
  std::vector<std::uint32_t> table;
  std::vector<std::uint64_t> pending;
  bool operator==(const PciMsixState&) const = default;
};

// "pci-msix" version 1; its post_load checks the table is whole dwords of
// vectors (at most 2048) and the pending bits cover it.
const StateDescriptor& pci_msix_descriptor();

struct PciMsixOptions {
  unsigned vectors = 1;  // 1-2048
  unsigned table_bar = 0;
  std::uint32_t table_offset = 0;  // 8-byte aligned, inside the BAR
  unsigned pba_bar = 0;
  std::uint32_t pba_offset = 0;  // 8-byte aligned, inside the BAR
};

class PciMsix {
 public:
  // Adds the capability; `state` is sized for `options.vectors` on reset().
  // The device maps the table and PBA through its BAR handlers: either the
  // BAR belongs to MSI-X alone (add_bar(index, {.., .ops = msix.bar_ops()}))
  // or the device's handlers ask mmio_read/mmio_write first.
  PciMsix(PciFunction& function, const PciMsixOptions& options, PciMsixState& state,
          std::optional<std::uint16_t> at = {});

  IoOps bar_ops();
  // True if [offset, offset+size) of BAR `bar` is table or PBA (and handled).
  bool mmio_read(unsigned bar, std::uint64_t offset, unsigned size, std::uint64_t& value);
  bool mmio_write(unsigned bar, std::uint64_t offset, unsigned size, std::uint64_t value);

  bool enabled() const;
  bool function_masked() const;
  bool vector_masked(unsigned vector) const;
  bool pending(unsigned vector) const;
  // Delivers `vector` through its table entry, or sets its pending bit while
  // it (or the function) is masked. Returns true if delivered now.
  bool notify(unsigned vector);
  unsigned vectors() const { return options_.vectors; }
  std::uint16_t offset() const { return offset_; }

  // Power-on: every vector masked, nothing pending.
  void reset();
  // After a load: checks the table and PBA sizes (throws StateError), then
  // delivers vectors that became unmasked with their pending bit set.
  void post_load();

 private:
  void on_config_write(std::uint16_t offset, unsigned size);
  void deliver_unmasked_pending();
  void set_pending(unsigned vector, bool on);

  PciFunction& function_;
  PciMsixOptions options_;
  PciMsixState& state_;
  std::uint16_t offset_ = 0;
};

}  // namespace molt::sdk
