#include <gtest/gtest.h>

#include <deque>

#include <molt/sdk/error.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

#include "core/pci/pci_host.hpp"

namespace molt::core::pci {
namespace {

using sdk::testing::FakeIrqLine;

// Config space of one fake function: 64 dwords, records accesses.
struct FakeFunction {
  std::array<std::uint8_t, 256> bytes{};
  std::vector<std::pair<std::uint16_t, unsigned>> accesses;
  sdk::IoOps ops() {
    return {[this](std::uint64_t off, unsigned size) -> std::uint64_t {
              accesses.emplace_back(static_cast<std::uint16_t>(off), size);
              std::uint64_t v = 0;
              for (unsigned i = 0; i < size; ++i) v |= std::uint64_t{bytes[off + i]} << (8 * i);
              return v;
            },
            [this](std::uint64_t off, unsigned size, std::uint64_t v) {
              accesses.emplace_back(static_cast<std::uint16_t>(off), size);
              for (unsigned i = 0; i < size; ++i) bytes[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
            }};
  }
};

class PciHostTest : public ::testing::Test {
 protected:
  PciHostTest() : host_(ports_, [this](unsigned gsi) -> sdk::IrqLine& { return lines_.emplace_back(gsi); }) {}
  // The wired-OR of every line claimed for `gsi`, as the core's IrqRouter computes it.
  bool level(unsigned gsi) const {
    for (const FakeIrqLine& l : lines_) {
      if (l.gsi() == gsi && l.level()) return true;
    }
    return false;
  }
  std::uint64_t in(std::uint16_t port, unsigned size) {
    std::uint64_t v = 0;
    return ports_.read(port, size, v) ? v : ~0ull;
  }
  void out(std::uint16_t port, unsigned size, std::uint64_t v) { ports_.write(port, size, v); }
  std::uint32_t config_read(unsigned devfn, unsigned reg) {
    out(0xcf8, 4, 0x80000000u | (devfn << 8) | reg);
    return static_cast<std::uint32_t>(in(0xcfc, 4));
  }

  io::IoBus ports_{"port"};
  std::deque<FakeIrqLine> lines_;
  PciHost host_;
};

TEST_F(PciHostTest, AddressRegisterIsDwordOnly) {
  out(0xcf8, 4, 0xffffffff);
  EXPECT_EQ(in(0xcf8, 4), 0x80fffffcu) << "reserved and type bits read zero";
  out(0xcf8, 1, 0);
  out(0xcf8, 2, 0);
  EXPECT_EQ(in(0xcf8, 4), 0x80fffffcu) << "byte and word writes do not touch it";
  EXPECT_EQ(in(0xcf8, 1), 0xffu);
  EXPECT_EQ(host_.config_address(), 0x80fffffcu);
}

TEST_F(PciHostTest, DataWindowReachesTheSelectedFunction) {
  FakeFunction f;
  f.bytes[0x10] = 0x11;
  f.bytes[0x11] = 0x22;
  f.bytes[0x12] = 0x33;
  f.bytes[0x13] = 0x44;
  const auto a = host_.attach({.slot = 5, .function = 2}, 0, f.ops(), "f");
  EXPECT_EQ(a.address, (sdk::PciAddress{5, 2}));
  EXPECT_EQ(a.intx, nullptr);
  const unsigned devfn = (5 << 3) | 2;
  EXPECT_EQ(config_read(devfn, 0x10), 0x44332211u);
  EXPECT_EQ(in(0xcfd, 1), 0x22u);
  EXPECT_EQ(in(0xcfe, 2), 0x4433u);
  EXPECT_EQ(in(0xcfd, 2), 0xffffu) << "misaligned word: no access";
  out(0xcff, 1, 0x99);
  EXPECT_EQ(f.bytes[0x13], 0x99);
  EXPECT_EQ(f.accesses.back(), std::make_pair(std::uint16_t{0x13}, 1u));

  EXPECT_EQ(config_read(devfn + 1, 0), 0xffffffffu) << "absent function";
  out(0xcf8, 4, (devfn << 8) | 0x10);  // enable bit clear
  EXPECT_EQ(in(0xcfc, 4), 0xffffffffu);
  out(0xcf8, 4, 0x80010000u | (devfn << 8) | 0x10);  // bus 1
  EXPECT_EQ(in(0xcfc, 4), 0xffffffffu);
  const std::size_t seen = f.accesses.size();
  out(0xcfc, 4, 0);
  EXPECT_EQ(f.accesses.size(), seen) << "writes to nothing go nowhere";
}

TEST_F(PciHostTest, SlotsAreGivenAndRefused) {
  FakeFunction f;
  host_.attach({.slot = 0}, 0, f.ops(), "host");
  host_.attach({.slot = 1, .function = 1}, 0, f.ops(), "ide");
  EXPECT_EQ(host_.attach({}, 0, f.ops(), "nic").address, (sdk::PciAddress{2, 0})) << "slot 1 has a function";
  EXPECT_THROW(host_.attach({.slot = 1, .function = 1}, 0, f.ops(), "again"), sdk::Error);
  EXPECT_THROW(host_.attach({.slot = 32}, 0, f.ops(), "x"), sdk::Error);
  EXPECT_THROW(host_.attach({.slot = 3, .function = 8}, 0, f.ops(), "x"), sdk::Error);
  EXPECT_THROW(host_.attach({.slot = 3}, 5, f.ops(), "x"), sdk::Error);
  host_.detach({1, 1});
  EXPECT_NO_THROW(host_.attach({.slot = 1, .function = 1}, 0, f.ops(), "ide"));
  for (unsigned s = 3; s < 32; ++s) host_.attach({}, 0, f.ops(), "fill");
  EXPECT_THROW(host_.attach({}, 0, f.ops(), "full"), sdk::Error);
}

TEST_F(PciHostTest, IntxFollowsThePcConventionAndIsWiredOr) {
  FakeFunction f;
  auto a = host_.attach({.slot = 1, .function = 1}, 1, f.ops(), "ide");   // PIRQ (1+0)&3 = 1
  auto b = host_.attach({.slot = 4, .function = 0}, 2, f.ops(), "nic");   // PIRQ (4+1)&3 = 1
  auto c = host_.attach({.slot = 3, .function = 0}, 4, f.ops(), "disk");  // PIRQ (3+3)&3 = 2
  EXPECT_EQ(a.intx->gsi(), 17u);
  EXPECT_EQ(b.intx->gsi(), 17u);
  EXPECT_EQ(c.intx->gsi(), 18u);
  EXPECT_EQ(intx_gsi(0, 1), 16u);
  a.intx->set_level(true);
  b.intx->set_level(true);
  a.intx->set_level(false);
  EXPECT_TRUE(level(17)) << "b still holds the shared line";
  b.intx->set_level(false);
  EXPECT_FALSE(level(17));
  const auto sources = host_.interrupt_sources();
  ASSERT_EQ(sources.size(), 3u);
  EXPECT_EQ(sources[0].slot, 1u);
  EXPECT_EQ(sources[0].pin, 1u);
  EXPECT_EQ(sources[0].gsi, 17u);
  c.intx->set_level(true);
  host_.detach({3, 0});
  EXPECT_FALSE(level(18)) << "an unplugged function's INTx goes low";
}

TEST_F(PciHostTest, PirqRoutesAddAnIsaIrqBesideTheIoapicInput) {
  FakeFunction f;
  auto a = host_.attach({.slot = 1, .function = 1}, 1, f.ops(), "ide");  // PIRQB
  host_.route_pirq(1, 11);
  a.intx->set_level(true);
  EXPECT_TRUE(level(17));
  EXPECT_TRUE(level(11));
  host_.route_pirq(1, 10);
  EXPECT_FALSE(level(11)) << "the old ISA IRQ is released";
  EXPECT_TRUE(level(10));
  host_.route_pirq(1, std::nullopt);
  EXPECT_FALSE(level(10));
  EXPECT_TRUE(level(17));
  host_.route_pirq(1, 2);  // the cascade: not routable
  EXPECT_FALSE(level(2));
  host_.route_pirq(7, 5);  // no PIRQH on a PIIX3
  a.intx->set_level(false);
  EXPECT_FALSE(level(17));
}

TEST_F(PciHostTest, Port0xCf9GoesToTheResetControlOwner) {
  EXPECT_EQ(in(0xcf9, 1), 0xffu) << "unclaimed";
  std::vector<std::uint64_t> writes;
  host_.claim_reset_control({[](std::uint64_t, unsigned) -> std::uint64_t { return 0x02; },
                             [&](std::uint64_t, unsigned, std::uint64_t v) { writes.push_back(v); }},
                            "piix3");
  EXPECT_THROW(host_.claim_reset_control({}, "again"), sdk::Error);
  out(0xcf8, 4, 0x80000000);
  out(0xcf9, 1, 0x06);
  EXPECT_EQ(writes, (std::vector<std::uint64_t>{0x06}));
  EXPECT_EQ(in(0xcf9, 1), 0x02u);
  EXPECT_EQ(in(0xcf8, 4), 0x80000000u) << "the address register is untouched";
}

}  // namespace
}  // namespace molt::core::pci
