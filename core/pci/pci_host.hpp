// PCI bus 0 of the pc machine: configuration mechanism #1 (address register
// at 0xCF8, data window 0xCFC-0xCFF), the functions plugins attach through
// the SDK, and INTx routing (docs/pci.md): slot/pin to PIRQ A-D by the PC
// convention PIRQ = (slot + pin - 1) & 3, each PIRQ to IOAPIC GSI 16 + PIRQ,
// and, where firmware programmed the PIIX route registers, to an ISA IRQ too.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>

#include "core/io/io_bus.hpp"

namespace molt::core::pci {

inline constexpr std::uint16_t kConfigAddressPort = 0xcf8;
inline constexpr std::uint16_t kConfigDataPort = 0xcfc;
inline constexpr unsigned kPirqCount = 4;
inline constexpr unsigned kFirstPirqGsi = 16;

// The IOAPIC input of INTx `pin` (1-4) of a function in `slot`.
unsigned intx_gsi(unsigned slot, unsigned pin);

class PciHost {
 public:
  // Returns an interrupt line for a GSI (the core's IrqRouter, or a fake).
  using ClaimIrq = std::function<sdk::IrqLine&(unsigned gsi)>;

  // Claims ports 0xCF8-0xCFF on `ports`; throws sdk::Error if they are taken.
  PciHost(io::IoBus& ports, ClaimIrq claim_irq);
  ~PciHost();

  // The SDK's PciBus operations; `config` runs under the owner's lock already.
  sdk::PciAttachment attach(const sdk::PciPlacement& where, std::uint8_t interrupt_pin, sdk::IoOps config,
                            const std::string& owner);
  void detach(sdk::PciAddress address);
  void route_pirq(unsigned pirq, std::optional<unsigned> isa_irq);
  void claim_reset_control(sdk::IoOps ops, const std::string& owner);

  // Every attached function with an interrupt pin, for the MP table.
  struct InterruptSource {
    unsigned slot = 0;
    unsigned pin = 0;  // 1-4
    unsigned gsi = 0;
  };
  std::vector<InterruptSource> interrupt_sources() const;
  // Attached functions, "slot.function owner", for logs and tests.
  std::vector<std::pair<sdk::PciAddress, std::string>> functions() const;

  // What the guest's config mechanism does (exposed for tests).
  std::uint32_t config_address() const { return address_.load(); }
  // The latch as a migration restores it (only its defined bits: enable,
  // bus, device, function, register).
  void set_config_address(std::uint32_t value);

 private:
  class IntxLine;
  struct Function {
    std::shared_ptr<const sdk::IoOps> config;
    std::string owner;
    std::uint8_t interrupt_pin = 0;
    std::unique_ptr<IntxLine> intx;
  };
  std::uint64_t address_port_read(std::uint64_t offset, unsigned size);
  void address_port_write(std::uint64_t offset, unsigned size, std::uint64_t value);
  std::uint64_t data_port_read(std::uint64_t offset, unsigned size);
  void data_port_write(std::uint64_t offset, unsigned size, std::uint64_t value);
  // The config handlers the address register selects, and the register offset.
  std::shared_ptr<const sdk::IoOps> selected(std::uint64_t data_offset, unsigned size,
                                             std::uint16_t& reg) const;
  void change_pirq(unsigned pirq, int delta);
  void drive_pirq(unsigned pirq);
  sdk::IrqLine& isa_line(unsigned pirq, unsigned irq);

  ClaimIrq claim_irq_;
  std::atomic<std::uint32_t> address_{0};
  mutable std::mutex mutex_;
  std::array<std::unique_ptr<Function>, sdk::kPciSlots * sdk::kPciFunctions> functions_;
  std::shared_ptr<const sdk::IoOps> reset_control_;
  std::array<int, kPirqCount> pirq_asserted_{};
  std::array<sdk::IrqLine*, kPirqCount> ioapic_lines_{};
  std::array<std::optional<unsigned>, kPirqCount> pirq_route_{};
  std::array<std::array<sdk::IrqLine*, 16>, kPirqCount> isa_lines_{};
  std::array<sdk::IrqLine*, kPirqCount> driven_isa_{};
};

}  // namespace molt::core::pci
