#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include <molt/sdk/testing/fake_bus.hpp>

#include "core/boot/boot.hpp"
#include "tests/unit/boot/test_images.hpp"

namespace molt::core::boot {
namespace {

using sdk::testing::FakeGuestMemory;
using test::Bytes;
using test::peek;
using test::peek_bytes;

unsigned byte_sum(const Bytes& bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), 0u) & 0xff;
}

struct ParsedTable {
  std::uint64_t floating = 0, config = 0;
  std::vector<Bytes> entries;
  unsigned count(std::uint8_t type) const {
    return static_cast<unsigned>(
        std::count_if(entries.begin(), entries.end(), [&](const Bytes& e) { return e[0] == type; }));
  }
};

// Reads the table back the way a guest does: floating pointer, header, entries.
ParsedTable parse(FakeGuestMemory& memory, std::uint64_t floating) {
  ParsedTable t;
  t.floating = floating;
  const Bytes fp = peek_bytes(memory, floating, 16);
  EXPECT_EQ(std::string(fp.begin(), fp.begin() + 4), "_MP_");
  EXPECT_EQ(fp[8], 1);   // length: one paragraph
  EXPECT_EQ(fp[9], 4);   // spec 1.4
  EXPECT_EQ(fp[11], 0);  // feature byte 1: a configuration table follows
  EXPECT_EQ(byte_sum(fp), 0u);
  t.config = test::get_le(fp, 4, 4);
  const auto length = peek(memory, t.config + 4, 2);
  const Bytes table = peek_bytes(memory, t.config, length);
  EXPECT_EQ(std::string(table.begin(), table.begin() + 4), "PCMP");
  EXPECT_EQ(table[6], 4);
  EXPECT_EQ(byte_sum(table), 0u);
  EXPECT_EQ(test::get_le(table, 36, 4), 0xfee00000u);
  const auto entry_count = test::get_le(table, 34, 2);
  std::size_t at = 44;
  for (unsigned i = 0; i < entry_count && at < table.size(); ++i) {
    const std::size_t size = table[at] == 0 ? 20 : 8;
    t.entries.emplace_back(table.begin() + static_cast<std::ptrdiff_t>(at),
                           table.begin() + static_cast<std::ptrdiff_t>(at + size));
    at += size;
  }
  EXPECT_EQ(at, table.size());
  EXPECT_EQ(t.entries.size(), entry_count);
  return t;
}

class MpTable : public ::testing::TestWithParam<unsigned> {};

TEST_P(MpTable, DescribesProcessorsBusIoApicAndInterrupts) {
  const unsigned vcpus = GetParam();
  FakeGuestMemory memory(1 << 20);
  const auto floating = write_mp_table(memory, vcpus);
  EXPECT_EQ(floating, 0x9fc00u);
  const ParsedTable t = parse(memory, floating);
  EXPECT_EQ(t.config, 0x9fc10u);
  EXPECT_EQ(t.entries.size(), vcpus + 2 + 16 + 2);
  ASSERT_EQ(t.count(0), vcpus);
  for (unsigned i = 0; i < vcpus; ++i) {
    const Bytes& cpu = t.entries[i];
    EXPECT_EQ(cpu[1], i) << "APIC id";
    EXPECT_EQ(cpu[3], i == 0 ? 3 : 1) << "enabled, and bootstrap only for APIC 0";
  }
  EXPECT_EQ(t.count(1), 1u);
  const Bytes& bus = t.entries[vcpus];
  EXPECT_EQ(std::string(bus.begin() + 2, bus.end()), "ISA   ");
  const Bytes& ioapic = t.entries[vcpus + 1];
  EXPECT_EQ(ioapic[0], 2);
  EXPECT_EQ(ioapic[1], vcpus);
  EXPECT_EQ(ioapic[3], 1);
  EXPECT_EQ(test::get_le(ioapic, 4, 4), 0xfec00000u);

  ASSERT_EQ(t.count(3), 16u);
  std::map<unsigned, std::pair<unsigned, unsigned>> pin_of;  // pin -> (type, ISA IRQ)
  for (const Bytes& e : t.entries) {
    if (e[0] != 3) continue;
    EXPECT_EQ(e[6], vcpus) << "destination is the IOAPIC";
    EXPECT_TRUE(pin_of.emplace(e[7], std::make_pair(e[1], e[5])).second)
        << "pin " << unsigned{e[7]} << " used twice";
  }
  EXPECT_EQ(pin_of.at(0), std::make_pair(3u, 0u)) << "ExtINT from the 8259 on pin 0";
  EXPECT_EQ(pin_of.at(2), std::make_pair(0u, 0u)) << "the PIT's IRQ 0 on pin 2";
  for (unsigned irq = 1; irq < 16; ++irq) {
    if (irq == 2) continue;
    EXPECT_EQ(pin_of.at(irq), std::make_pair(0u, irq));
  }
  ASSERT_EQ(t.count(4), 2u);
  const Bytes& lint0 = t.entries[t.entries.size() - 2];
  const Bytes& lint1 = t.entries[t.entries.size() - 1];
  EXPECT_EQ(lint0[1], 3);  // ExtINT
  EXPECT_EQ(lint0[6], 0xff);
  EXPECT_EQ(lint0[7], 0);
  EXPECT_EQ(lint1[1], 1);  // NMI
  EXPECT_EQ(lint1[7], 1);
}

INSTANTIATE_TEST_SUITE_P(Vcpus, MpTable, ::testing::Values(1u, 2u, 8u));

TEST(MpTableLarge, MovesToTheBiosAreaWhenTheEbdaKilobyteIsTooSmall) {
  FakeGuestMemory memory(1 << 20);
  const auto floating = write_mp_table(memory, 64);
  EXPECT_EQ(floating, 0xf0000u);
  const ParsedTable t = parse(memory, floating);
  EXPECT_EQ(t.count(0), 64u);
  EXPECT_EQ(t.entries[64 + 1][1], 64) << "IOAPIC id follows the last APIC id";
  EXPECT_EQ(peek(memory, 0x9fc00, 4), 0u) << "nothing written at the EBDA";
}

TEST(MpTableLarge, RefusesZeroAndTooManyVcpus) {
  FakeGuestMemory memory(1 << 20);
  EXPECT_THROW(write_mp_table(memory, 0), BootError);
  EXPECT_THROW(write_mp_table(memory, 255), BootError);
  EXPECT_NO_THROW(write_mp_table(memory, 254));
}

TEST(MpTableLarge, RefusesRamThatDoesNotReachTheTable) {
  FakeGuestMemory memory(0x80000);
  EXPECT_THROW(write_mp_table(memory, 1), BootError);
}

TEST(MpTablePci, PciIsBusZeroAndEachInterruptIsLevelActiveLow) {
  FakeGuestMemory memory(1 << 20);
  const PciBusInfo pci{{{1, 1, 16}, {3, 1, 18}, {3, 2, 19}, {5, 4, 16}}};
  const auto floating = write_mp_table(memory, 2, pci);
  const ParsedTable t = parse(memory, floating);
  ASSERT_EQ(t.count(1), 2u);
  const Bytes& pci_bus = t.entries[2];
  const Bytes& isa_bus = t.entries[3];
  EXPECT_EQ(pci_bus[1], 0) << "Linux matches MP bus ids with PCI bus numbers";
  EXPECT_EQ(std::string(pci_bus.begin() + 2, pci_bus.end()), "PCI   ");
  EXPECT_EQ(isa_bus[1], 1);
  EXPECT_EQ(std::string(isa_bus.begin() + 2, isa_bus.end()), "ISA   ");
  ASSERT_EQ(t.count(3), 16u + 4u);
  std::vector<Bytes> pci_entries;
  for (const Bytes& e : t.entries) {
    if (e[0] != 3) continue;
    if (e[4] == 0) pci_entries.push_back(e);
    else EXPECT_EQ(e[4], 1) << "ISA interrupts name the ISA bus";
  }
  ASSERT_EQ(pci_entries.size(), 4u);
  const unsigned expected[4][2] = {{(1 << 2) | 0, 16}, {(3 << 2) | 0, 18}, {(3 << 2) | 1, 19}, {(5 << 2) | 3, 16}};
  for (unsigned i = 0; i < 4; ++i) {
    const Bytes& e = pci_entries[i];
    EXPECT_EQ(e[1], 0) << "INT";
    EXPECT_EQ(test::get_le(e, 2, 2), 0xfu) << "level-triggered, active low";
    EXPECT_EQ(e[5], expected[i][0]) << "slot << 2 | (pin - 1)";
    EXPECT_EQ(e[6], 2) << "the IOAPIC's id";
    EXPECT_EQ(e[7], expected[i][1]);
  }
}

TEST(MpTablePci, AnEmptyPciBusStillHasItsBusEntry) {
  FakeGuestMemory memory(1 << 20);
  const ParsedTable t = parse(memory, write_mp_table(memory, 1, PciBusInfo{}));
  EXPECT_EQ(t.count(1), 2u);
  EXPECT_EQ(t.count(3), 16u);
}

TEST(MpTablePci, RefusesInterruptsItCannotDescribe) {
  FakeGuestMemory memory(1 << 20);
  EXPECT_THROW(write_mp_table(memory, 1, PciBusInfo{{{32, 1, 16}}}), BootError);
  EXPECT_THROW(write_mp_table(memory, 1, PciBusInfo{{{1, 0, 16}}}), BootError);
  EXPECT_THROW(write_mp_table(memory, 1, PciBusInfo{{{1, 5, 16}}}), BootError);
  EXPECT_THROW(write_mp_table(memory, 1, PciBusInfo{{{1, 1, 24}}}), BootError);
}

TEST(MpTablePci, AFullBusMovesTheTableToTheBiosArea) {
  FakeGuestMemory memory(1 << 20);
  PciBusInfo pci;
  for (unsigned slot = 0; slot < 32; ++slot)
    for (unsigned pin = 1; pin <= 4; ++pin) pci.interrupts.push_back({slot, pin, 16 + ((slot + pin - 1) & 3)});
  const auto floating = write_mp_table(memory, 1, pci);
  EXPECT_EQ(floating, 0xf0000u);
  EXPECT_EQ(parse(memory, floating).count(3), 16u + 128u);
}

}  // namespace
}  // namespace molt::core::boot
