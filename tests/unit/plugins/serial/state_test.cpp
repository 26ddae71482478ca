// Save and load through the state descriptor: round trips into a fresh
// device, and loads that must be refused with the field named.
#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "serial_fixture.hpp"

namespace molt::serial::test {
namespace {

class SerialStateTest : public SerialTest {
 protected:
  // A second machine with a fresh port to load into.
  void make_destination() {
    auto& ctx =
        destination_machine_.add_context("com1", serial_properties({{"backend", std::string("none")}}));
    destination_ = std::make_unique<SerialDevice>(ctx);
    destination_->realize();
  }
  std::vector<std::uint8_t> save() {
    const sdk::StateBinding binding = device_->state();
    return sdk::save_state(*binding.descriptor, binding.state);
  }
  void load(const std::vector<std::uint8_t>& record) {
    const sdk::StateBinding binding = destination_->state();
    sdk::load_state(*binding.descriptor, binding.state, record);
    destination_->post_load();
  }

  FakeMachine destination_machine_;
  std::unique_ptr<SerialDevice> destination_;
};

TEST_F(SerialStateTest, DescriptorIsNamedAndVersioned) {
  make_piped();
  const sdk::StateBinding binding = device_->state();
  ASSERT_NE(binding.descriptor, nullptr);
  EXPECT_TRUE(binding.migratable());
  EXPECT_EQ(binding.descriptor->name(), "serial-16550a");
  EXPECT_EQ(binding.descriptor->version(), 1u);
  EXPECT_EQ(binding.state, &device_->uart().state());
}

TEST_F(SerialStateTest, BusyPortRoundTripsWithItsIrqLevel) {
  make_piped();
  out(kRegLcr, kLcrDlab | 0x1b);
  out(kRegData, 0x30);
  out(kRegIer, 0x01);
  out(kRegLcr, 0x1b);
  out(kRegScr, 0x5a);
  enable_fifo(0x80);
  out(kRegIer, 0x0f);
  out(kRegMcr, kMcrOut2 | kMcrLoop | kMcrDtr);
  for (int i = 0; i < 18; ++i) out(kRegData, static_cast<std::uint8_t>('A' + i));  // wraps and overruns
  in(kRegData);
  in(kRegData);
  machine_.clock().advance(device_->uart().character_timeout_ns());
  ASSERT_TRUE(state().timeout_interrupt);
  ASSERT_TRUE(irq().level());
  ASSERT_NE(state().rx_head, 0);
  make_destination();
  load(save());
  EXPECT_EQ(destination_->uart().state(), state());
  EXPECT_TRUE(destination_machine_.irq(4).level());
  // And the two behave alike from here on.
  for (unsigned reg : {kRegIirFcr, kRegLsr, kRegMsr, kRegData, kRegData, kRegIirFcr}) {
    EXPECT_EQ(destination_machine_.bus().io_read(kBase + reg, 1), in(reg)) << "register " << reg;
  }
}

TEST_F(SerialStateTest, QuietPortRoundTripsWithIrqLow) {
  make_piped();
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData);
  feed("ab");
  make_destination();
  load(save());
  EXPECT_EQ(destination_->uart().state(), state());
  EXPECT_FALSE(destination_machine_.irq(4).level());
  // The loaded FIFO still times out on the destination.
  destination_machine_.bus().io_write(kBase + kRegMcr, 1, kMcrOut2);
  destination_machine_.clock().advance(destination_->uart().character_timeout_ns());
  EXPECT_EQ(destination_machine_.bus().io_read(kBase + kRegIirFcr, 1), kIirFifoEnabled | kIirCharTimeout);
}

class SerialBadStateTest : public SerialStateTest {
 protected:
  void expect_refused(const std::function<void(UartState&)>& corrupt, const std::string& field) {
    make_piped();
    make_destination();
    const UartState before = destination_->uart().state();
    corrupt(const_cast<UartState&>(state()));
    const std::vector<std::uint8_t> record = save();
    try {
      load(record);
      FAIL() << "a state with a bad " << field << " was loaded";
    } catch (const sdk::StateError& e) {
      EXPECT_TRUE(e.field() == field || e.field().ends_with("." + field)) << e.what();
    }
    EXPECT_EQ(destination_->uart().state(), before);
  }
};

TEST_F(SerialBadStateTest, FifoCountBeyondSixteen) {
  expect_refused(
      [](UartState& s) {
        s.fcr = kFcrEnable;
        s.rx_count = 17;
      },
      "rx_count");
}
TEST_F(SerialBadStateTest, SeveralCharactersWithFifosOff) {
  expect_refused(
      [](UartState& s) {
        s.fcr = 0;
        s.rx_count = 2;
      },
      "rx_count");
}
TEST_F(SerialBadStateTest, HeadOutsideTheFifo) {
  expect_refused([](UartState& s) { s.rx_head = 16; }, "rx_head");
}
TEST_F(SerialBadStateTest, TimeoutWithAnEmptyFifo) {
  expect_refused(
      [](UartState& s) {
        s.fcr = kFcrEnable;
        s.timeout_interrupt = true;
      },
      "timeout_interrupt");
}
TEST_F(SerialBadStateTest, ReservedIerBits) {
  expect_refused([](UartState& s) { s.ier = 0x40; }, "ier");
}
TEST_F(SerialBadStateTest, ReservedMcrBits) {
  expect_refused([](UartState& s) { s.mcr = 0x20; }, "mcr");
}
TEST_F(SerialBadStateTest, ErrorFlagsOutsidePeFeBi) {
  expect_refused([](UartState& s) { s.rx_flags[3] = kLsrDataReady; }, "rx_flags");
}

}  // namespace
}  // namespace molt::serial::test
