// Intel MultiProcessor Specification 1.4 tables: how the guest learns its CPUs,
// the IOAPIC and the routing of ISA interrupts without ACPI.
#include <numeric>

#include <molt/sdk/device.hpp>

#include "core/boot/detail.hpp"

namespace molt::core::boot {

using detail::Blob;
using detail::hex;

namespace {

constexpr std::uint64_t kEbdaTableAddr = detail::kReservedStart;  // "last KiB of base memory"
constexpr std::uint64_t kEbdaTableSpace = 0x400;
constexpr std::uint64_t kBiosTableAddr = 0xf0000;  // the BIOS ROM area Linux also scans
constexpr std::uint64_t kBiosTableSpace = 0x10000;
constexpr std::uint32_t kLocalApicAddr = 0xfee00000;
constexpr std::uint32_t kIoApicAddr = 0xfec00000;
constexpr unsigned kMaxVcpus = 254;  // APIC ids are 8 bits; 0xff is broadcast and the IOAPIC takes id n

constexpr std::size_t kFloatingSize = 16;
constexpr std::size_t kHeaderSize = 44;
constexpr std::size_t kProcessorSize = 20;
constexpr std::size_t kSmallEntrySize = 8;    // bus, IOAPIC, I/O and local interrupt entries
constexpr unsigned kIoInterruptEntries = 16;  // ExtINT on pin 0, ISA IRQs 0-15 except the cascade IRQ 2
constexpr unsigned kLocalInterruptEntries = 2;

enum EntryType : std::uint8_t {
  kProcessor = 0,
  kBus = 1,
  kIoApic = 2,
  kIoInterrupt = 3,
  kLocalInterrupt = 4
};
enum InterruptType : std::uint8_t { kInt = 0, kNmi = 1, kExtInt = 3 };

constexpr unsigned kMaxPciSlots = 32;
constexpr unsigned kFirstPciGsi = 16;
constexpr unsigned kIoApicPins = 24;
// I/O interrupt flags: polarity active low (bits 1:0 = 3), level-triggered (bits 3:2 = 3).
constexpr unsigned kLevelActiveLow = 0xf;

std::size_t config_table_size(unsigned vcpus, const std::optional<PciBusInfo>& pci) {
  const std::size_t pci_entries = pci ? 1 + pci->interrupts.size() : 0;  // the bus and its interrupts
  return kHeaderSize + vcpus * kProcessorSize + 2 * kSmallEntrySize +
         (kIoInterruptEntries + kLocalInterruptEntries + pci_entries) * kSmallEntrySize;
}

std::uint8_t checksum_byte(std::span<const std::uint8_t> bytes) {
  const unsigned sum = std::accumulate(bytes.begin(), bytes.end(), 0u);
  return static_cast<std::uint8_t>(0x100 - (sum & 0xff));
}

class TableWriter {
 public:
  explicit TableWriter(Blob& table) : table_(table) {}
  std::size_t offset() const { return offset_; }
  unsigned entries() const { return entries_; }

  void processor(unsigned apic_id, bool bootstrap) {
    table_.set(offset_, kProcessor, 1);
    table_.set(offset_ + 1, apic_id, 1);
    table_.set(offset_ + 2, 0x14, 1);                   // local APIC version: integrated APIC
    table_.set(offset_ + 3, bootstrap ? 0x3 : 0x1, 1);  // EN, BP
    table_.set(offset_ + 4, 0x600, 4);                  // signature: family 6
    table_.set(offset_ + 8, (1u << 0) | (1u << 9), 4);  // features: FPU, APIC
    advance(kProcessorSize);
  }
  void bus(unsigned bus_id, const std::uint8_t (&type)[6]) {
    table_.set(offset_, kBus, 1);
    table_.set(offset_ + 1, bus_id, 1);
    table_.set_bytes(offset_ + 2, type);
    advance(kSmallEntrySize);
  }
  void io_apic(unsigned id) {
    table_.set(offset_, kIoApic, 1);
    table_.set(offset_ + 1, id, 1);
    table_.set(offset_ + 2, 0x11, 1);  // IOAPIC version
    table_.set(offset_ + 3, 1, 1);     // EN
    table_.set(offset_ + 4, kIoApicAddr, 4);
    advance(kSmallEntrySize);
  }
  // I/O (type 3) or local (type 4) interrupt assignment; flags 0 conform to the bus.
  void interrupt(EntryType kind, InterruptType type, unsigned source_bus, unsigned source_irq, unsigned dest_id,
                 unsigned dest_pin, unsigned flags = 0) {
    table_.set(offset_, kind, 1);
    table_.set(offset_ + 1, type, 1);
    table_.set(offset_ + 2, flags, 2);
    table_.set(offset_ + 4, source_bus, 1);
    table_.set(offset_ + 5, source_irq, 1);
    table_.set(offset_ + 6, dest_id, 1);
    table_.set(offset_ + 7, dest_pin, 1);
    advance(kSmallEntrySize);
  }

 private:
  void advance(std::size_t size) {
    offset_ += size;
    ++entries_;
  }
  Blob& table_;
  std::size_t offset_ = kHeaderSize;
  unsigned entries_ = 0;
};

void check_pci(const PciBusInfo& pci) {
  for (const PciInterrupt& i : pci.interrupts) {
    if (i.slot >= kMaxPciSlots || i.pin < 1 || i.pin > 4 || i.gsi < kFirstPciGsi || i.gsi >= kIoApicPins)
      throw BootError("PCI interrupt of slot " + std::to_string(i.slot) + " pin " + std::to_string(i.pin) +
                      " to GSI " + std::to_string(i.gsi) + " cannot be described in the MP table");
  }
}

Blob build_config_table(unsigned vcpus, const std::optional<PciBusInfo>& pci) {
  static constexpr std::uint8_t kIsa[6] = {'I', 'S', 'A', ' ', ' ', ' '};
  static constexpr std::uint8_t kPci[6] = {'P', 'C', 'I', ' ', ' ', ' '};
  Blob table(config_table_size(vcpus, pci));
  TableWriter w(table);
  for (unsigned id = 0; id < vcpus; ++id) w.processor(id, id == 0);
  // Linux looks PCI interrupts up by MP bus id = PCI bus number, so PCI bus 0 is MP bus 0.
  const unsigned isa_bus = pci ? 1 : 0;
  if (pci) w.bus(0, kPci);
  w.bus(isa_bus, kIsa);
  const unsigned ioapic_id = vcpus;
  w.io_apic(ioapic_id);
  w.interrupt(kIoInterrupt, kExtInt, isa_bus, 0, ioapic_id, 0);  // the 8259 behind IOAPIC pin 0
  for (unsigned irq = 0; irq < 16; ++irq) {
    if (irq == 2) continue;  // the slave PIC's cascade: no device, and pin 2 belongs to IRQ 0
    w.interrupt(kIoInterrupt, kInt, isa_bus, irq, ioapic_id, irq == 0 ? 2 : irq);
  }
  if (pci) {
    // Source bus IRQ of a PCI interrupt: slot in bits 6:2, INTA#-INTD# as 0-3 in bits 1:0.
    for (const PciInterrupt& i : pci->interrupts)
      w.interrupt(kIoInterrupt, kInt, 0, (i.slot << 2) | (i.pin - 1), ioapic_id, i.gsi, kLevelActiveLow);
  }
  w.interrupt(kLocalInterrupt, kExtInt, isa_bus, 0, 0xff, 0);  // LINT0 on every local APIC
  w.interrupt(kLocalInterrupt, kNmi, isa_bus, 0, 0xff, 1);     // LINT1
  static constexpr std::uint8_t kSignature[4] = {'P', 'C', 'M', 'P'};
  static constexpr std::uint8_t kOemId[8] = {'M', 'O', 'L', 'T', ' ', ' ', ' ', ' '};
  static constexpr std::uint8_t kProductId[12] = {'M', 'O', 'L', 'T', '-', 'P', 'C', ' ', ' ', ' ', ' ', ' '};
  table.set_bytes(0, kSignature);
  table.set(4, w.offset(), 2);  // base table length
  table.set(6, 4, 1);           // spec revision 1.4
  table.set_bytes(8, kOemId);
  table.set_bytes(16, kProductId);
  table.set(34, w.entries(), 2);
  table.set(36, kLocalApicAddr, 4);
  table.set(7, checksum_byte(table.bytes()), 1);
  return table;
}

}  // namespace

std::uint64_t write_mp_table(sdk::GuestMemory& memory, unsigned vcpus, const std::optional<PciBusInfo>& pci) {
  if (vcpus == 0 || vcpus > kMaxVcpus)
    throw BootError("the MP table can describe 1 to " + std::to_string(kMaxVcpus) + " vCPUs, not " +
                    std::to_string(vcpus));
  if (pci) check_pci(*pci);
  const std::size_t total = kFloatingSize + config_table_size(vcpus, pci);
  const std::uint64_t base = total <= kEbdaTableSpace ? kEbdaTableAddr : kBiosTableAddr;
  if (total > kBiosTableSpace)
    throw BootError("MP table for " + std::to_string(vcpus) + " vCPUs is too large");
  const std::uint64_t table_addr = base + kFloatingSize;

  Blob floating(kFloatingSize);
  static constexpr std::uint8_t kSignature[4] = {'_', 'M', 'P', '_'};
  floating.set_bytes(0, kSignature);
  floating.set(4, table_addr, 4);
  floating.set(8, 1, 1);  // length in 16-byte units
  floating.set(9, 4, 1);  // spec revision 1.4
  // Feature bytes all zero: a configuration table is present; virtual wire mode (no IMCR).
  floating.set(10, checksum_byte(floating.bytes()), 1);

  const Blob table = build_config_table(vcpus, pci);
  detail::put(memory, base, floating.bytes(), "MP floating pointer");
  detail::put(memory, table_addr, table.bytes(), "MP configuration table at " + hex(table_addr));
  return base;
}

}  // namespace molt::core::boot
