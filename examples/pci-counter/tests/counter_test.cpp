// pci-counter through the SDK's fakes: config space and BAR placement as a
// guest does them, the registers, INTA# on the routed GSI, and the state
// round trip. No KVM and no molt process.
#include <gtest/gtest.h>

#include <molt/sdk/state.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

#include "counter_device.hpp"

namespace pci_counter {
namespace {

namespace sdk = molt::sdk;
using sdk::testing::FakeMachine;

constexpr unsigned kSlot = 3;
constexpr unsigned kGsi = 16 + ((kSlot + 1 - 1) & 3);  // INTA# of slot 3: PIRQ D
constexpr std::uint64_t kBar = 0xc0000000;

sdk::Properties properties(std::uint64_t threshold = 0) {
  return sdk::Properties({{"threshold", threshold}, {"slot", std::uint64_t{kSlot}}});
}

class CounterTest : public ::testing::Test {
 protected:
  explicit CounterTest(std::uint64_t threshold = 0) { start(m_, device_, threshold); }

  static void start(FakeMachine& m, std::unique_ptr<sdk::Device>& device, std::uint64_t threshold = 0) {
    device = counter_device_type().create(m.add_context("counter0", properties(threshold)));
    device->realize();
    device->reset();
  }
  // What a driver does first: place BAR0 and turn memory decoding on.
  static void enable(FakeMachine& m) {
    m.pci().config_write(kSlot, 0, sdk::pci_reg::kBar0, 4, kBar);
    m.pci().config_write(kSlot, 0, sdk::pci_reg::kCommand, 2, sdk::pci_reg::kCommandMemory);
  }
  std::uint32_t rd(std::uint64_t offset) {
    return static_cast<std::uint32_t>(m_.bus().mmio_read(kBar + offset, 4));
  }
  void wr(std::uint64_t offset, std::uint32_t value) { m_.bus().mmio_write(kBar + offset, 4, value); }
  bool intx() { return m_.irq(kGsi).level(); }

  FakeMachine m_;
  std::unique_ptr<sdk::Device> device_;
};

TEST_F(CounterTest, ConfigSpaceShowsItsIdentityPinAndA4KiBMemoryBar) {
  EXPECT_EQ(m_.pci().config_read(kSlot, 0, 0x00, 4), 0x4d431234u);
  EXPECT_EQ(m_.pci().config_read(kSlot, 0, 0x08, 4), 0xff000001u) << "class ff0000, revision 1";
  EXPECT_EQ(m_.pci().config_read(kSlot, 0, sdk::pci_reg::kInterruptPin, 1), 1u) << "INTA#";
  m_.pci().config_write(kSlot, 0, sdk::pci_reg::kBar0, 4, 0xffffffff);
  EXPECT_EQ(m_.pci().config_read(kSlot, 0, sdk::pci_reg::kBar0, 4), 0xfffff000u) << "32-bit memory, 4 KiB";
  EXPECT_EQ(m_.pci().config_read(kSlot, 0, sdk::pci_reg::kBar0 + 4, 4), 0u) << "only BAR0 exists";
}

TEST_F(CounterTest, BarIsMappedOnlyWhileMemoryDecodingIsOn) {
  m_.pci().config_write(kSlot, 0, sdk::pci_reg::kBar0, 4, kBar);
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
  EXPECT_EQ(rd(reg::kId), 0xffffffffu) << "nothing decodes the address yet";
  enable(m_);
  ASSERT_EQ(m_.bus().mmio_ranges().size(), 1u);
  EXPECT_EQ(m_.bus().mmio_ranges()[0], std::make_pair(kBar, kBarSize));
  EXPECT_EQ(rd(reg::kId), kIdValue);
}

TEST_F(CounterTest, WritesAddResetClearsAndTheCountSaturates) {
  enable(m_);
  wr(reg::kCount, 5);
  wr(reg::kCount, 37);
  EXPECT_EQ(rd(reg::kCount), 42u);
  wr(reg::kReset, 0x1234);
  EXPECT_EQ(rd(reg::kCount), 0u) << "any value written to RESET clears the count";
  wr(reg::kCount, 0xffffff00);
  wr(reg::kCount, 0x1000);
  EXPECT_EQ(rd(reg::kCount), 0xffffffffu);
  EXPECT_EQ(rd(reg::kReset), 0u);
  EXPECT_EQ(rd(reg::kDoorbell), 0u);
}

TEST_F(CounterTest, ReachingTheThresholdRaisesIntaOnlyWhenEnabled) {
  enable(m_);
  wr(reg::kThreshold, 100);
  wr(reg::kInterruptEnable, kCauseThreshold);
  for (int i = 0; i < 9; ++i) wr(reg::kCount, 10);
  EXPECT_EQ(rd(reg::kStatus), 0u);
  EXPECT_FALSE(intx());
  wr(reg::kCount, 10);  // 100: reached
  EXPECT_EQ(rd(reg::kStatus), kCauseThreshold);
  EXPECT_TRUE(intx()) << "INTA# of slot 3 drives GSI " << kGsi;
  EXPECT_EQ(m_.irq(kGsi).edges(), 1u);
  wr(reg::kCount, 10);  // already above: no new crossing, still raised
  wr(reg::kStatus, kCauseThreshold);
  EXPECT_EQ(rd(reg::kStatus), 0u);
  EXPECT_FALSE(intx()) << "writing one to STATUS lowers the line";
  wr(reg::kCount, 1);
  EXPECT_FALSE(intx()) << "only a crossing from below raises the cause";

  wr(reg::kReset, 0);
  wr(reg::kInterruptEnable, 0);
  wr(reg::kCount, 200);
  EXPECT_EQ(rd(reg::kStatus), kCauseThreshold) << "the cause is raised whether enabled or not";
  EXPECT_FALSE(intx());
  wr(reg::kInterruptEnable, kCauseThreshold | 0xfffffff0u);
  EXPECT_EQ(rd(reg::kInterruptEnable), kCauseThreshold) << "bits without a cause read zero";
  EXPECT_TRUE(intx()) << "enabling a raised cause asserts at once";
}

TEST_F(CounterTest, ZeroThresholdNeverInterruptsAndWritingTheThresholdDoesNotEither) {
  enable(m_);
  wr(reg::kInterruptEnable, kCauseMask);
  wr(reg::kCount, 1000);
  EXPECT_EQ(rd(reg::kStatus), 0u);
  wr(reg::kThreshold, 10);  // below the count already
  EXPECT_EQ(rd(reg::kStatus), 0u);
  EXPECT_FALSE(intx());
}

TEST_F(CounterTest, DoorbellRaisesItsOwnCause) {
  enable(m_);
  wr(reg::kInterruptEnable, kCauseDoorbell);
  wr(reg::kDoorbell, 0);
  EXPECT_EQ(rd(reg::kStatus), kCauseDoorbell);
  EXPECT_TRUE(intx());
  wr(reg::kStatus, kCauseThreshold);
  EXPECT_TRUE(intx()) << "clearing another cause leaves the doorbell raised";
  wr(reg::kStatus, kCauseDoorbell);
  EXPECT_FALSE(intx());
}

TEST_F(CounterTest, CommandInterruptDisableMasksTheLineButNotTheStatusBit) {
  enable(m_);
  wr(reg::kInterruptEnable, kCauseDoorbell);
  wr(reg::kDoorbell, 1);
  ASSERT_TRUE(intx());
  m_.pci().config_write(kSlot, 0, sdk::pci_reg::kCommand, 2,
                        sdk::pci_reg::kCommandMemory | sdk::pci_reg::kCommandInterruptDisable);
  EXPECT_FALSE(intx());
  EXPECT_TRUE(m_.pci().config_read(kSlot, 0, sdk::pci_reg::kStatus, 2) & sdk::pci_reg::kStatusInterrupt);
}

TEST_F(CounterTest, NarrowOrMisalignedAccessesReadOnesAndChangeNothing) {
  enable(m_);
  wr(reg::kCount, 7);
  EXPECT_EQ(m_.bus().mmio_read(kBar + reg::kCount, 2), 0xffffu);
  EXPECT_EQ(m_.bus().mmio_read(kBar + reg::kCount + 1, 1), 0xffu);
  m_.bus().mmio_write(kBar + reg::kCount, 1, 1);
  m_.bus().mmio_write(kBar + reg::kCount + 2, 2, 1);
  EXPECT_EQ(rd(reg::kCount), 7u);
  wr(0x800, 0xdead);  // reserved
  EXPECT_EQ(rd(0x800), 0u);
}

TEST_F(CounterTest, ResetRestoresPowerOnValuesAndUnmapsTheBar) {
  enable(m_);
  wr(reg::kThreshold, 9);
  wr(reg::kInterruptEnable, kCauseDoorbell);
  wr(reg::kDoorbell, 1);
  wr(reg::kCount, 3);
  device_->reset();
  EXPECT_FALSE(intx());
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
  enable(m_);
  EXPECT_EQ(rd(reg::kCount), 0u);
  EXPECT_EQ(rd(reg::kThreshold), 0u);
  EXPECT_EQ(rd(reg::kStatus), 0u);
  EXPECT_EQ(rd(reg::kInterruptEnable), 0u);
}

class CounterWithThresholdProperty : public CounterTest {
 protected:
  CounterWithThresholdProperty() : CounterTest(50) {}
};

TEST_F(CounterWithThresholdProperty, ThresholdPropertyIsThePowerOnThreshold) {
  enable(m_);
  EXPECT_EQ(rd(reg::kThreshold), 50u);
  wr(reg::kCount, 50);
  EXPECT_EQ(rd(reg::kStatus), kCauseThreshold);
}

TEST(CounterPlacement, ATakenSlotIsAnErrorAtRealize) {
  FakeMachine m;
  auto first = counter_device_type().create(m.add_context("a", properties()));
  first->realize();
  auto second = counter_device_type().create(m.add_context("b", properties()));
  EXPECT_THROW(second->realize(), sdk::Error);
}

TEST_F(CounterTest, StateRoundTripsIntoANewMachineWithBarAndLineRestored) {
  enable(m_);
  wr(reg::kThreshold, 30);
  wr(reg::kInterruptEnable, kCauseMask);
  wr(reg::kCount, 31);
  ASSERT_TRUE(intx());
  const sdk::StateBinding saved = device_->state();
  ASSERT_EQ(saved.descriptor, &counter_descriptor());
  const std::vector<std::uint8_t> record = sdk::save_state(*saved.descriptor, saved.state);

  FakeMachine target;
  std::unique_ptr<sdk::Device> restored;
  start(target, restored);
  const sdk::StateBinding binding = restored->state();
  sdk::load_state(*binding.descriptor, binding.state, record);
  restored->post_load();

  EXPECT_EQ(*static_cast<const CounterState*>(binding.state), *static_cast<const CounterState*>(saved.state));
  EXPECT_TRUE(target.irq(kGsi).level()) << "INTx recomputed from STATUS and INTERRUPT_ENABLE";
  EXPECT_EQ(target.bus().mmio_read(kBar + reg::kCount, 4), 31u) << "BAR mapped again from config space";
  target.bus().mmio_write(kBar + reg::kStatus, 4, kCauseThreshold);
  EXPECT_FALSE(target.irq(kGsi).level());
}

TEST_F(CounterTest, LoadRefusesUnknownCauseBitsAndKeepsTheLiveState) {
  enable(m_);
  wr(reg::kCount, 12);
  CounterState bad;
  bad.status = 0x4;
  const std::vector<std::uint8_t> record = sdk::save_state(counter_descriptor(), &bad);
  const sdk::StateBinding binding = device_->state();
  try {
    sdk::load_state(*binding.descriptor, binding.state, record);
    FAIL() << "a status with bit 2 loaded";
  } catch (const sdk::StateError& e) {
    EXPECT_EQ(e.field(), "pci-counter.status") << "the codec names the record and the field";
    EXPECT_NE(std::string(e.what()).find("outside the device's interrupt causes"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(rd(reg::kCount), 12u);
}

TEST(CounterDescriptor, NamesVersionAndFieldsAreTheReleasedVersionOne) {
  const sdk::StateDescriptor& d = counter_descriptor();
  EXPECT_EQ(d.name(), "pci-counter");
  EXPECT_EQ(d.version(), 1u);
  EXPECT_EQ(d.minimum_version(), 1u);
  std::vector<std::string> names;
  for (const sdk::FieldSpec& f : d.fields()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"count", "threshold", "status", "interrupt_enable"}));
  ASSERT_EQ(d.subsections().size(), 1u);
  EXPECT_EQ(d.subsections()[0].descriptor->name(), "pci-function");
}

}  // namespace
}  // namespace pci_counter
