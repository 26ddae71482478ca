#include "core/pci/pci_host.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

namespace molt::core::pci {

namespace {

constexpr std::uint32_t kEnableBit = 0x80000000u;
// Bits 30:24 are reserved and bits 1:0 select type 0/1 cycles on real
// chipsets; molt keeps the enable bit, bus, device, function and register.
constexpr std::uint32_t kAddressMask = 0x80fffffcu;
constexpr unsigned kResetControlOffset = 1;  // port 0xCF9 inside the 0xCF8 dword

std::uint64_t all_ones(unsigned size) {
  return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

}  // namespace

unsigned intx_gsi(unsigned slot, unsigned pin) {
  return kFirstPirqGsi + ((slot + pin - 1) & 3);
}

// A function's INTx pin: its level joins the others on the same PIRQ.
class PciHost::IntxLine final : public sdk::IrqLine {
 public:
  IntxLine(PciHost& host, unsigned pirq) : host_(host), pirq_(pirq) {}
  void set_level(bool asserted) override {
    if (asserted == level_) return;
    level_ = asserted;
    host_.change_pirq(pirq_, asserted ? 1 : -1);
  }
  // PCI interrupts are level-triggered; a pulse is a brief assertion.
  void pulse() override {
    if (level_) return;
    set_level(true);
    set_level(false);
  }
  unsigned gsi() const override { return kFirstPirqGsi + pirq_; }
  bool level() const { return level_; }

 private:
  PciHost& host_;
  unsigned pirq_;
  bool level_ = false;  // changed under the owning device's lock
};

PciHost::PciHost(io::IoBus& ports, ClaimIrq claim_irq) : claim_irq_(std::move(claim_irq)) {
  for (unsigned p = 0; p < kPirqCount; ++p) ioapic_lines_[p] = &claim_irq_(kFirstPirqGsi + p);
  sdk::IoOps address_ops;
  address_ops.read = [this](std::uint64_t offset, unsigned size) { return address_port_read(offset, size); };
  address_ops.write = [this](std::uint64_t offset, unsigned size, std::uint64_t v) {
    address_port_write(offset, size, v);
  };
  ports.add(kConfigAddressPort, 4, std::move(address_ops), "pci-host");
  sdk::IoOps data_ops;
  data_ops.read = [this](std::uint64_t offset, unsigned size) { return data_port_read(offset, size); };
  data_ops.write = [this](std::uint64_t offset, unsigned size, std::uint64_t v) {
    data_port_write(offset, size, v);
  };
  ports.add(kConfigDataPort, 4, std::move(data_ops), "pci-host");
}

PciHost::~PciHost() = default;

sdk::PciAttachment PciHost::attach(const sdk::PciPlacement& where, std::uint8_t interrupt_pin,
                                   sdk::IoOps config, const std::string& owner) {
  if (interrupt_pin > 4)
    throw sdk::Error(fmt::format("{}: PCI interrupt pin {} does not exist", owner, interrupt_pin));
  if (where.function >= sdk::kPciFunctions)
    throw sdk::Error(
        fmt::format("{}: PCI function {} does not exist; a slot has functions 0-7", owner, where.function));
  std::lock_guard lock(mutex_);
  unsigned slot = 0;
  if (where.slot) {
    slot = *where.slot;
    if (slot >= sdk::kPciSlots)
      throw sdk::Error(fmt::format("{}: PCI slot {} does not exist; bus 0 has slots 0-31", owner, slot));
  } else {
    const auto slot_free = [this](unsigned s) {
      for (unsigned f = 0; f < sdk::kPciFunctions; ++f) {
        if (functions_[s * sdk::kPciFunctions + f]) return false;
      }
      return true;
    };
    while (slot < sdk::kPciSlots && !slot_free(slot)) ++slot;
    if (slot == sdk::kPciSlots) throw sdk::Error(fmt::format("{}: every slot of PCI bus 0 is taken", owner));
  }
  const sdk::PciAddress address{slot, where.function};
  auto& entry = functions_[address.devfn()];
  if (entry) {
    throw sdk::Error(fmt::format("{}: PCI {:02x}.{} is taken by {}; give this device another slot", owner,
                                 slot, where.function, entry->owner));
  }
  entry = std::make_unique<Function>();
  entry->config = std::make_shared<const sdk::IoOps>(std::move(config));
  entry->owner = owner;
  entry->interrupt_pin = interrupt_pin;
  if (interrupt_pin != 0)
    entry->intx = std::make_unique<IntxLine>(*this, intx_gsi(slot, interrupt_pin) - kFirstPirqGsi);
  return sdk::PciAttachment{address, entry->intx.get()};
}

void PciHost::detach(sdk::PciAddress address) {
  std::unique_ptr<Function> gone;
  {
    std::lock_guard lock(mutex_);
    if (address.slot >= sdk::kPciSlots || address.function >= sdk::kPciFunctions) return;
    gone = std::move(functions_[address.devfn()]);
  }
  if (gone && gone->intx) gone->intx->set_level(false);
}

void PciHost::claim_reset_control(sdk::IoOps ops, const std::string& owner) {
  std::lock_guard lock(mutex_);
  if (reset_control_) throw sdk::Error(owner + ": port 0xcf9 (reset control) is claimed already");
  reset_control_ = std::make_shared<const sdk::IoOps>(std::move(ops));
}

std::uint64_t PciHost::address_port_read(std::uint64_t offset, unsigned size) {
  if (offset == 0 && size == 4) return address_.load();
  if (offset == kResetControlOffset && size == 1) {
    std::shared_ptr<const sdk::IoOps> ops;
    {
      std::lock_guard lock(mutex_);
      ops = reset_control_;
    }
    if (ops && ops->read) return ops->read(0, 1) & 0xff;
  }
  // Byte and word accesses to 0xCF8-0xCFB are not the address register.
  return all_ones(size);
}

void PciHost::set_config_address(std::uint32_t value) { address_.store(value & kAddressMask); }

void PciHost::address_port_write(std::uint64_t offset, unsigned size, std::uint64_t value) {
  if (offset == 0 && size == 4) {
    address_.store(static_cast<std::uint32_t>(value) & kAddressMask);
    return;
  }
  if (offset == kResetControlOffset && size == 1) {
    std::shared_ptr<const sdk::IoOps> ops;
    {
      std::lock_guard lock(mutex_);
      ops = reset_control_;
    }
    if (ops && ops->write) ops->write(0, 1, value & 0xff);
  }
}

std::shared_ptr<const sdk::IoOps> PciHost::selected(std::uint64_t data_offset, unsigned size,
                                                    std::uint16_t& reg) const {
  const std::uint32_t address = address_.load();
  if (!(address & kEnableBit)) return nullptr;
  if (((address >> 16) & 0xff) != 0) return nullptr;  // only bus 0 exists
  if (size != 1 && size != 2 && size != 4) return nullptr;
  if (data_offset % size != 0 || data_offset + size > 4) return nullptr;
  reg = static_cast<std::uint16_t>((address & 0xfc) + data_offset);
  std::lock_guard lock(mutex_);
  const auto& entry = functions_[(address >> 8) & 0xff];
  return entry ? entry->config : nullptr;
}

std::uint64_t PciHost::data_port_read(std::uint64_t offset, unsigned size) {
  std::uint16_t reg = 0;
  const auto ops = selected(offset, size, reg);
  // No function there: the host bridge ends the cycle with master abort, all ones.
  if (!ops || !ops->read) return all_ones(size);
  return ops->read(reg, size) & all_ones(size);
}

void PciHost::data_port_write(std::uint64_t offset, unsigned size, std::uint64_t value) {
  std::uint16_t reg = 0;
  const auto ops = selected(offset, size, reg);
  if (ops && ops->write) ops->write(reg, size, value & all_ones(size));
}

sdk::IrqLine& PciHost::isa_line(unsigned pirq, unsigned irq) {
  sdk::IrqLine*& line = isa_lines_[pirq][irq];
  if (!line) line = &claim_irq_(irq);
  return *line;
}

void PciHost::drive_pirq(unsigned pirq) {
  const bool level = pirq_asserted_[pirq] != 0;
  ioapic_lines_[pirq]->set_level(level);
  sdk::IrqLine* wanted = pirq_route_[pirq] ? &isa_line(pirq, *pirq_route_[pirq]) : nullptr;
  if (driven_isa_[pirq] && driven_isa_[pirq] != wanted) driven_isa_[pirq]->set_level(false);
  driven_isa_[pirq] = wanted;
  if (wanted) wanted->set_level(level);
}

void PciHost::change_pirq(unsigned pirq, int delta) {
  std::lock_guard lock(mutex_);
  pirq_asserted_[pirq] += delta;
  drive_pirq(pirq);
}

void PciHost::route_pirq(unsigned pirq, std::optional<unsigned> isa_irq) {
  if (pirq >= kPirqCount) return;
  // IRQs 0-2, 8 and 13 are not routable on a PIIX (timer, keyboard, cascade, RTC, FPU).
  if (isa_irq && (*isa_irq < 3 || *isa_irq > 15 || *isa_irq == 8 || *isa_irq == 13)) isa_irq.reset();
  std::lock_guard lock(mutex_);
  pirq_route_[pirq] = isa_irq;
  drive_pirq(pirq);
}

std::vector<PciHost::InterruptSource> PciHost::interrupt_sources() const {
  std::lock_guard lock(mutex_);
  std::vector<InterruptSource> out;
  for (unsigned devfn = 0; devfn < functions_.size(); ++devfn) {
    const auto& f = functions_[devfn];
    if (!f || f->interrupt_pin == 0) continue;
    const unsigned slot = devfn >> 3;
    const bool listed = std::any_of(out.begin(), out.end(), [&](const InterruptSource& s) {
      return s.slot == slot && s.pin == f->interrupt_pin;
    });
    if (!listed) out.push_back(InterruptSource{slot, f->interrupt_pin, intx_gsi(slot, f->interrupt_pin)});
  }
  return out;
}

std::vector<std::pair<sdk::PciAddress, std::string>> PciHost::functions() const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<sdk::PciAddress, std::string>> out;
  for (unsigned devfn = 0; devfn < functions_.size(); ++devfn) {
    if (functions_[devfn]) out.emplace_back(sdk::PciAddress{devfn >> 3, devfn & 7}, functions_[devfn]->owner);
  }
  return out;
}

}  // namespace molt::core::pci
