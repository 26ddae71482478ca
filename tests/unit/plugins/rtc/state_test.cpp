// Save and load through the "mc146818" descriptor: round trips into a fresh
// device that then behaves alike, time that passed while away, a frozen
// version 1 record, and loads that must be refused with the field named.
#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "rtc_fixture.hpp"

namespace molt::rtc::test {
namespace {

class RtcStateTest : public RtcTest {
 protected:
  void make_destination(std::int64_t realtime_base_ns = 1'700'000'000'000'000'000) {
    destination_machine_.clock().set_realtime_base(realtime_base_ns);
    auto& ctx = destination_machine_.add_context(
        "rtc", rtc_properties({{"start-time", std::string("2030-01-01T00:00:00")}}));
    destination_ = std::make_unique<RtcDevice>(ctx);
    destination_->realize();
    destination_->reset();
  }
  std::vector<std::uint8_t> save() {
    device_->pre_save();
    const sdk::StateBinding binding = device_->state();
    return sdk::save_state(*binding.descriptor, binding.state);
  }
  void load(const std::vector<std::uint8_t>& record) {
    const sdk::StateBinding binding = destination_->state();
    sdk::load_state(*binding.descriptor, binding.state, record);
    destination_->post_load();
  }
  std::uint8_t in_destination(std::uint8_t index) {
    destination_machine_.bus().io_write(kIndexPort, 1, index);
    return static_cast<std::uint8_t>(destination_machine_.bus().io_read(kDataPort, 1));
  }

  FakeMachine destination_machine_;
  std::unique_ptr<RtcDevice> destination_;
};

TEST_F(RtcStateTest, DescriptorIsNamedAndVersioned) {
  make();
  const sdk::StateBinding binding = device_->state();
  ASSERT_NE(binding.descriptor, nullptr);
  EXPECT_TRUE(binding.migratable());
  EXPECT_EQ(binding.descriptor->name(), "mc146818");
  EXPECT_EQ(binding.descriptor->version(), 1u);
  EXPECT_EQ(binding.state, &device_->chip().state());
}

TEST_F(RtcStateTest, BusyClockRoundTripsAndKeepsItsPhase) {
  make_at("2006-06-17T16:01:21");
  out(0x50, 0x77);
  out(kRegA, kADivider32kHz | 0x0e);  // 4 Hz
  out(kSecondsAlarm, 0x25);
  out(kMinutesAlarm, 0xc0);
  out(kHoursAlarm, 0xc0);
  out(kRegB, kB24Hour | kBPeriodicEnable | kBAlarmEnable);
  step(2 * kSecond + 300 * kMs);  // periodic raised the line at 2.25 s; unserviced
  ASSERT_TRUE(irq().level());
  machine_.bus().io_write(kIndexPort, 1, kMinutes);
  make_destination();
  load(save());
  EXPECT_EQ(destination_->chip().state(), state());
  EXPECT_EQ(state().divider_phase_ns, 300 * kMs);
  EXPECT_TRUE(destination_machine_.irq(8).level());
  // Both read and interrupt alike from here: service, then run 3 s in 10 ms steps.
  EXPECT_EQ(in_destination(kRegC), in(kRegC));
  for (int i = 0; i < 300; ++i) {
    step(10 * kMs);
    destination_machine_.clock().advance(10 * kMs);
    ASSERT_EQ(destination_machine_.irq(8).level(), irq().level()) << "after " << (i + 1) * 10 << " ms";
    if (irq().level()) {
      ASSERT_EQ(in_destination(kRegC), in(kRegC));
    }
    ASSERT_EQ(in_destination(kSeconds), in(kSeconds));
  }
  EXPECT_EQ(in_destination(0x50), 0x77);
}

TEST_F(RtcStateTest, TimeAwayOnTheWallClockMovesTheGuestClockOn) {
  make_at("2006-06-17T16:01:21");
  step(400 * kMs);
  const std::vector<std::uint8_t> record = save();
  // The destination's wall clock is 90.7 s past the save.
  make_destination(1'700'000'000'000'000'000 + 400'000'000 + 90'700'000'000);
  load(record);
  // 0.4 + 90.7 = 91.1 s after 16:01:21: 16:02:52, and the next update 0.9 s on.
  EXPECT_EQ(in_destination(kMinutes), 0x02);
  EXPECT_EQ(in_destination(kSeconds), 0x52);
  destination_machine_.clock().advance(900 * kMs - 1);
  EXPECT_EQ(in_destination(kSeconds), 0x52);
  destination_machine_.clock().advance(1);
  EXPECT_EQ(in_destination(kSeconds), 0x53);
}

TEST_F(RtcStateTest, DestinationBehindTheSourceAddsNothing) {
  make_at("2006-06-17T16:01:21");
  step(5 * kSecond);
  const std::vector<std::uint8_t> record = save();
  make_destination(1'000'000'000'000'000'000);  // a wall clock far behind
  load(record);
  EXPECT_EQ(in_destination(kSeconds), 0x26);
}

// Version 1 as released: a clock in binary 24-hour mode at 2006-06-17 16:01:21
// with the firmware bytes of a 256 MiB, 1-vCPU machine, divider at 0.25 s.
RtcState golden_state() {
  RtcState s;
  s.nvram[kSeconds] = 21;
  s.nvram[kSecondsAlarm] = 0xc0;
  s.nvram[kMinutes] = 1;
  s.nvram[kHours] = 16;
  s.nvram[kDayOfWeek] = 7;
  s.nvram[kDayOfMonth] = 17;
  s.nvram[kMonth] = 6;
  s.nvram[kYear] = 6;
  s.nvram[kCentury] = 20;
  s.nvram[0x14] = 0x02;
  s.nvram[0x15] = 0x80;
  s.nvram[0x16] = 0x02;
  s.index = 0x0c;
  s.reg_a = 0x2f;
  s.reg_b = kBPeriodicEnable | kBBinary | kB24Hour;
  s.reg_c = kCIrqFlag | kCPeriodic;
  s.reg_d = kDValidRamAndTime;
  s.divider_phase_ns = 250'000'000;
  s.saved_realtime_ns = 0x1122334455667788;
  return s;
}

const std::vector<std::uint8_t>& golden_v1() {
  static const std::vector<std::uint8_t> bytes = {
#include "golden_v1.inc"
  };
  return bytes;
}

TEST(RtcGolden, VersionOneSaverStillWritesTheFrozenBytes) {
  RtcState s = golden_state();
  EXPECT_EQ(sdk::save_state(rtc_state_descriptor(), &s), golden_v1());
}

TEST(RtcGolden, FrozenRecordLoadsAndValidates) {
  RtcState s;
  sdk::load_state(rtc_state_descriptor(), &s, golden_v1());
  EXPECT_EQ(s, golden_state());
}

TEST_F(RtcStateTest, FrozenRecordRunsOnADevice) {
  make_destination(0x1122334455667788);
  load(golden_v1());
  EXPECT_TRUE(destination_machine_.irq(8).level());
  EXPECT_EQ(in_destination(kRegC), kCIrqFlag | kCPeriodic);
  destination_machine_.clock().advance(750 * kMs);
  EXPECT_EQ(in_destination(kSeconds), 22);
  EXPECT_TRUE(destination_machine_.irq(8).level());  // 2 Hz periodic ran on
}

class RtcBadStateTest : public RtcStateTest {
 protected:
  void expect_refused(const std::function<void(RtcState&)>& corrupt, const std::string& field) {
    make_at("2006-06-17T16:01:21");
    make_destination();
    const RtcState before = destination_->chip().state();
    RtcState bad = state();
    corrupt(bad);
    const std::vector<std::uint8_t> record = sdk::save_state(rtc_state_descriptor(), &bad);
    try {
      load(record);
      FAIL() << "a state with a bad " << field << " was loaded";
    } catch (const sdk::StateError& e) {
      EXPECT_TRUE(e.field() == field || e.field().ends_with("." + field)) << e.what();
    }
    EXPECT_EQ(destination_->chip().state(), before);
  }
};

TEST_F(RtcBadStateTest, IndexBeyondTheNvram) {
  expect_refused([](RtcState& s) { s.index = 128; }, "index");
}
TEST_F(RtcBadStateTest, StoredUip) {
  expect_refused([](RtcState& s) { s.reg_a |= kAUpdateInProgress; }, "reg_a");
}
TEST_F(RtcBadStateTest, SetWithUpdateEnable) {
  expect_refused([](RtcState& s) { s.reg_b = kBSet | kBUpdateEnable; }, "reg_b");
}
TEST_F(RtcBadStateTest, LowBitsOfRegisterC) {
  expect_refused([](RtcState& s) { s.reg_c = 0x01; }, "reg_c");
}
TEST_F(RtcBadStateTest, IrqFlagWithoutAnEnabledSource) {
  expect_refused(
      [](RtcState& s) {
        s.reg_b = kB24Hour;
        s.reg_c = kCIrqFlag | kCPeriodic;
      },
      "reg_c");
}
TEST_F(RtcBadStateTest, EnabledFlagWithoutIrqFlag) {
  expect_refused(
      [](RtcState& s) {
        s.reg_b = kB24Hour | kBUpdateEnable;
        s.reg_c = kCUpdate;
      },
      "reg_c");
}
TEST_F(RtcBadStateTest, RegisterDWithoutVrt) {
  expect_refused([](RtcState& s) { s.reg_d = 0; }, "reg_d");
}
TEST_F(RtcBadStateTest, PhaseOfASecondOrMore) {
  expect_refused([](RtcState& s) { s.divider_phase_ns = 1'000'000'000; }, "divider_phase_ns");
}
TEST_F(RtcBadStateTest, RegisterSlotInTheNvram) {
  expect_refused([](RtcState& s) { s.nvram[kRegC] = 0x80; }, "nvram");
}

}  // namespace
}  // namespace molt::rtc::test
