#include <gtest/gtest.h>

#include <molt/sdk/testing/fake_bus.hpp>

#include "host_bridge.hpp"
#include "piix3.hpp"

namespace molt::i440fx {
namespace {

using sdk::testing::FakeMachine;

class ChipsetTest : public ::testing::Test {
 protected:
  ChipsetTest() {
    host_ = host_bridge_type().create(m_.add_context("host"));
    isa_ = piix3_type().create(m_.add_context("isa"));
    for (auto* d : {host_.get(), isa_.get()}) {
      d->realize();
      d->reset();
    }
  }
  std::uint32_t rd(unsigned slot, std::uint16_t off, unsigned size = 4) {
    return m_.pci().config_read(slot, 0, off, size);
  }
  void wr(unsigned slot, std::uint16_t off, unsigned size, std::uint32_t v) {
    m_.pci().config_write(slot, 0, off, size, v);
  }

  FakeMachine m_;
  std::unique_ptr<sdk::Device> host_, isa_;
};

TEST_F(ChipsetTest, HostBridgeIdentityAndPlainPamSmramBytes) {
  EXPECT_EQ(rd(0, 0x00), 0x12378086u);
  EXPECT_EQ(rd(0, 0x08), 0x06000002u) << "class 06 00 00, revision 2";
  EXPECT_EQ(rd(0, 0x0e, 1), 0x00u);
  for (std::uint16_t pam = kPamFirst; pam < kPamFirst + kPamCount; ++pam) {
    EXPECT_EQ(rd(0, pam, 1), 0u);
    wr(0, pam, 1, 0x33);
    EXPECT_EQ(rd(0, pam, 1), 0x33u);
  }
  EXPECT_EQ(rd(0, kSmram, 1), 0x02u);
  wr(0, kSmram, 1, 0xff);
  EXPECT_EQ(rd(0, kSmram, 1), 0x7au) << "C_BASE_SEG stays 010b, bit 7 reserved";
  host_->reset();
  EXPECT_EQ(rd(0, kPamFirst, 1), 0u);
}

TEST_F(ChipsetTest, IsaBridgeIsMultiFunctionAtSlotOne) {
  EXPECT_EQ(rd(1, 0x00), 0x70008086u);
  EXPECT_EQ(rd(1, 0x08) >> 8, 0x060100u);
  EXPECT_EQ(rd(1, 0x0e, 1), 0x80u) << "multi-function: the IDE controller is 01.1";
  EXPECT_EQ(rd(1, 0x3d, 1), 0u) << "no interrupt pin of its own";
  EXPECT_EQ(rd(1, 0x60), 0x80808080u) << "every PIRQ route disabled at power-on";
  EXPECT_EQ(rd(1, 0x4c, 1), 0x4du);
  EXPECT_EQ(rd(1, 0x69, 1), 0x02u);
}

TEST_F(ChipsetTest, PirqRouteControlReachesTheBus) {
  wr(1, 0x60, 4, 0x0b0a8b05);  // A->5, B disabled, C->10, D->11
  EXPECT_EQ(m_.pci().pirq_route(0), 5u);
  EXPECT_EQ(m_.pci().pirq_route(1), std::nullopt);
  EXPECT_EQ(m_.pci().pirq_route(2), 10u);
  EXPECT_EQ(m_.pci().pirq_route(3), 11u);
  wr(1, 0x61, 1, 0x7f);
  EXPECT_EQ(rd(1, 0x61, 1), 0x0fu) << "reserved bits 6:4 read zero";
  EXPECT_EQ(m_.pci().pirq_route(1), 15u);
  isa_->reset();
  EXPECT_EQ(m_.pci().pirq_route(2), std::nullopt);
}

TEST_F(ChipsetTest, ResetControlRegisterResetsTheMachine) {
  m_.pci().reset_control_write(0x02);  // SRST alone: no reset yet
  EXPECT_FALSE(m_.exit_request().has_value());
  EXPECT_EQ(m_.pci().reset_control_read(), 0x02);
  m_.pci().reset_control_write(0x06);  // hard reset
  ASSERT_TRUE(m_.exit_request().has_value());
  EXPECT_EQ(m_.exit_request()->first, sdk::ExitReason::Reset);
  EXPECT_EQ(m_.pci().reset_control_read(), 0x02) << "RCPU does not stick";
}

TEST_F(ChipsetTest, SoftResetAlsoResets) {
  m_.pci().reset_control_write(0x04);
  ASSERT_TRUE(m_.exit_request().has_value());
  EXPECT_EQ(m_.exit_request()->first, sdk::ExitReason::Reset);
}

TEST_F(ChipsetTest, IsaBridgeStateRoundTripsAndReappliesRoutes) {
  wr(1, 0x60, 4, 0x0b0a0905);
  wr(1, 0x04, 2, 0x0007);
  m_.pci().reset_control_write(0x02);
  Piix3State saved = *static_cast<Piix3State*>(isa_->state().state);
  const auto stream = sdk::save_state(piix3_descriptor(), &saved);

  FakeMachine m2;
  auto isa2 = piix3_type().create(m2.add_context("isa"));
  isa2->realize();
  isa2->reset();
  sdk::load_state(piix3_descriptor(), isa2->state().state, stream);
  isa2->post_load();
  EXPECT_EQ(*static_cast<Piix3State*>(isa2->state().state), saved);
  EXPECT_EQ(m2.pci().pirq_route(0), 5u);
  EXPECT_EQ(m2.pci().pirq_route(3), 11u);
  EXPECT_EQ(m2.pci().config_read(1, 0, 0x04, 2), 0x0007u);
  EXPECT_EQ(m2.pci().reset_control_read(), 0x02);

  Piix3State bad = saved;
  bad.reset_control = 0x04;
  EXPECT_THROW(
      sdk::load_state(piix3_descriptor(), isa2->state().state, sdk::save_state(piix3_descriptor(), &bad)),
      sdk::StateError);
}

TEST_F(ChipsetTest, HostBridgeStateIsItsConfigSpace) {
  wr(0, kPamFirst + 1, 1, 0x11);
  const sdk::StateBinding binding = host_->state();
  ASSERT_NE(binding.descriptor, nullptr);
  EXPECT_EQ(binding.descriptor->name(), "pci-function");
  auto stream = sdk::save_state(*binding.descriptor, binding.state);
  host_->reset();
  sdk::load_state(*binding.descriptor, binding.state, stream);
  host_->post_load();
  EXPECT_EQ(rd(0, kPamFirst + 1, 1), 0x11u);
}

// piix3-isa version 1, frozen: PIRQ routes 05 09 0a 0b, SRST written.
constexpr const char* kPiix3V1 =
    "4d535452010970696978332d697361010000005f010000020d72657365745f636f6e74726f6c01000000020c0c706369"
    "2d66756e6374696f6e380100004d535452010c7063692d66756e6374696f6e010000001e0100000706636f6e66696700"
    "010000868000700000000000000106000080000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000004d00030000000000000000000000000000"
    "00000005090a0b0000000000020000000000008080000000000c0c020000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000008000000000000000f0000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000010a696e74785f6c6576656c01000000000000";

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

TEST_F(ChipsetTest, GoldenIsaBridgeStreamOfVersionOneStillLoads) {
  const auto stream = from_hex(kPiix3V1);
  sdk::load_state(piix3_descriptor(), isa_->state().state, stream);
  isa_->post_load();
  EXPECT_EQ(rd(1, 0x00), 0x70008086u);
  EXPECT_EQ(rd(1, 0x60), 0x0b0a0905u);
  EXPECT_EQ(m_.pci().pirq_route(1), 9u);
  EXPECT_EQ(m_.pci().reset_control_read(), 0x02);
  EXPECT_EQ(sdk::save_state(piix3_descriptor(), isa_->state().state), stream);
}

}  // namespace
}  // namespace molt::i440fx
