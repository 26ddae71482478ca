// Periodic, alarm and update-ended interrupts; register C's flags and the
// IRQ line; timers only while an enabled interrupt can become due.
#include "rtc_fixture.hpp"

namespace molt::rtc::test {
namespace {

class RtcInterruptTest : public RtcTest {
 protected:
  void SetUp() override { make_at("2006-06-17T16:01:21"); }

  // Steps the clock for `duration` in `granularity` steps; after each step a
  // raised line is serviced like a driver's handler does (read C). Returns
  // the interrupts seen; every one must carry `flag`.
  unsigned count_interrupts(std::uint64_t duration, std::uint64_t granularity, std::uint8_t flag) {
    unsigned seen = 0;
    for (std::uint64_t t = 0; t < duration; t += granularity) {
      step(granularity);
      if (!irq().level()) continue;
      const std::uint8_t c = in(kRegC);
      EXPECT_EQ(c & (kCIrqFlag | flag), kCIrqFlag | flag) << "register C " << int{c};
      EXPECT_FALSE(irq().level());
      ++seen;
    }
    return seen;
  }
};

class RtcPeriodicRateTest : public RtcInterruptTest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(RtcPeriodicRateTest, InterruptsExactlyAtTheSelectedRate) {
  const unsigned rate = GetParam();
  const unsigned hz = rate <= 2 ? 256u >> (rate - 1) : 32768u >> (rate - 1);
  out(kRegA, static_cast<std::uint8_t>(kADivider32kHz | rate));
  out(kRegB, kB24Hour | kBPeriodicEnable);
  EXPECT_EQ(device_->chip().periodic_hz(), hz);
  // 10 us steps resolve even 8192 Hz (122 us); two seconds, every period seen once.
  EXPECT_EQ(count_interrupts(2 * kSecond, 10'000, kCPeriodic), 2 * hz);
}

INSTANTIATE_TEST_SUITE_P(EveryRate, RtcPeriodicRateTest, ::testing::Range(1u, 16u),
                         [](const ::testing::TestParamInfo<unsigned>& p) {
                           return "rs" + std::to_string(p.param);
                         });

TEST_F(RtcInterruptTest, PeriodicDeadlinesDoNotDriftOverAMinute) {
  out(kRegA, kADivider32kHz | 0x03);  // 8192 Hz: 122070.3125 ns, not a whole number of ns
  out(kRegB, kB24Hour | kBPeriodicEnable);
  // Serviced late (every 1 ms), each interrupt still lands on the divider's tick:
  // 60 s hold exactly 60 * 8192 ticks, and servicing every ms sees one per ms.
  unsigned seen = count_interrupts(60 * kSecond, kMs, kCPeriodic);
  EXPECT_EQ(seen, 60'000u);
  // The next tick is due exactly 8192 * 60 + 1 ticks after the start.
  out(kRegB, kB24Hour);
  in(kRegC);
  out(kRegB, kB24Hour | kBPeriodicEnable);
  const std::uint64_t next_tick_ns = 122'071;  // ceil(1e9 / 8192): first instant the tick has passed
  step(next_tick_ns - 1);
  EXPECT_FALSE(irq().level());
  step(1);
  EXPECT_TRUE(irq().level());
}

TEST_F(RtcInterruptTest, RateZeroAndDisabledPeriodicArmNoTimer) {
  out(kRegA, kADivider32kHz);  // rate 0
  out(kRegB, kB24Hour | kBPeriodicEnable);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  step(kSecond);
  EXPECT_EQ(in(kRegC)&kCPeriodic, 0);
  out(kRegA, kADivider32kHz | 0x06);
  out(kRegB, kB24Hour);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  step(kSecond);
  // PF still latches (the guest may poll it), but no interrupt came.
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(irq().edges(), 0u);
  EXPECT_EQ(in(kRegC), kCPeriodic | kCUpdate);
}

TEST_F(RtcInterruptTest, EnablingAnAlreadySetFlagRaisesTheLineAtOnce) {
  step(kSecond);  // UF latched, UIE off
  EXPECT_FALSE(irq().level());
  out(kRegB, kB24Hour | kBUpdateEnable);
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(in(kRegC), kCIrqFlag | kCUpdate | kCPeriodic);
  EXPECT_FALSE(irq().level());
}

TEST_F(RtcInterruptTest, UpdateEndedInterruptEverySecondWithTheNewTime) {
  out(kRegB, kB24Hour | kBUpdateEnable);
  for (std::uint8_t second : {0x22, 0x23, 0x24}) {
    step(kSecond - 1);
    EXPECT_FALSE(irq().level());
    step(1);
    ASSERT_TRUE(irq().level());
    EXPECT_EQ(in(kSeconds), second);
    EXPECT_EQ(in(kRegC) & (kCIrqFlag | kCUpdate), kCIrqFlag | kCUpdate);
  }
}

TEST_F(RtcInterruptTest, SettingSetClearsUpdateEnable) {
  out(kRegB, kB24Hour | kBUpdateEnable);
  out(kRegB, kB24Hour | kBUpdateEnable | kBSet);
  EXPECT_EQ(in(kRegB), kB24Hour | kBSet);
  step(3 * kSecond);
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(in(kRegC), kCPeriodic);  // the divider runs on (PF), but no updates, so no UF
}

TEST_F(RtcInterruptTest, AlarmFiresAtItsSecond) {
  out(kHoursAlarm, 0x16);
  out(kMinutesAlarm, 0x01);
  out(kSecondsAlarm, 0x24);
  out(kRegB, kB24Hour | kBAlarmEnable);
  step(3 * kSecond - 1);
  EXPECT_FALSE(irq().level());
  step(1);
  ASSERT_TRUE(irq().level());
  EXPECT_EQ(in(kSeconds), 0x24);
  EXPECT_EQ(in(kRegC) & (kCIrqFlag | kCAlarm), kCIrqFlag | kCAlarm);
  // Once a day only.
  EXPECT_EQ(count_interrupts(600 * kSecond, 100 * kMs, kCAlarm), 0u);
}

TEST_F(RtcInterruptTest, AlarmInTwelveHourBinaryMode) {
  out(kRegB, kBSet | kBBinary);
  out(kHours, 0x80 | 11);
  out(kMinutes, 59);
  out(kSeconds, 58);
  out(kHoursAlarm, 12);  // 12 AM: midnight
  out(kMinutesAlarm, 0);
  out(kSecondsAlarm, 0);
  out(kRegB, kBBinary | kBAlarmEnable);
  EXPECT_EQ(count_interrupts(3 * kSecond, 100 * kMs, kCAlarm), 1u);
  EXPECT_EQ(in(kHours), 12);
}

TEST_F(RtcInterruptTest, DontCareAlarmBytesMatchEveryValue) {
  out(kHoursAlarm, 0xc0);
  out(kMinutesAlarm, 0xff);
  out(kSecondsAlarm, 0x30);
  out(kRegB, kB24Hour | kBAlarmEnable);
  // From 16:01:21: at 16:01:30, 16:02:30, 16:03:30.
  EXPECT_EQ(count_interrupts(3 * 60 * kSecond, 100 * kMs, kCAlarm), 3u);
  out(kSecondsAlarm, 0xc0);
  in(kRegC);
  EXPECT_EQ(count_interrupts(10 * kSecond, 100 * kMs, kCAlarm), 10u);
}

TEST_F(RtcInterruptTest, AlarmThatCannotMatchArmsNoTimer) {
  out(kSecondsAlarm, 0x60);  // no second is 60
  out(kRegB, kB24Hour | kBAlarmEnable);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  step(2 * 86400 * kSecond);
  EXPECT_EQ(in(kRegC)&kCAlarm, 0);
}

TEST_F(RtcInterruptTest, AlarmFlagLatchesWithoutTheInterrupt) {
  out(kHoursAlarm, 0x17);
  out(kMinutesAlarm, 0x00);
  out(kSecondsAlarm, 0x00);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  step(3600 * kSecond);  // past 17:00:00, nobody listening
  EXPECT_EQ(irq().edges(), 0u);
  EXPECT_EQ(in(kRegC), kCAlarm | kCUpdate | kCPeriodic);
  EXPECT_EQ(read_bcd_time(), "2006-06-17T17:01:21");
  step(10 * kSecond);
  EXPECT_EQ(in(kRegC)&kCAlarm, 0);
}

TEST_F(RtcInterruptTest, LineStaysUpUntilRegisterCIsRead) {
  out(kRegA, kADivider32kHz | 0x0f);  // 2 Hz
  out(kRegB, kB24Hour | kBPeriodicEnable | kBUpdateEnable);
  step(5 * kSecond);
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(irq().edges(), 1u);
  // Nothing new can reach the guest until it reads C: no timer runs.
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  EXPECT_EQ(in(kRegC), kCIrqFlag | kCPeriodic | kCUpdate);
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(in(kRegC), 0);
  step(500 * kMs);
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(irq().edges(), 2u);
}

TEST_F(RtcInterruptTest, ResetClearsEnablesAndFlagsButKeepsTheTime) {
  out(kRegA, kADivider32kHz | 0x0f);
  out(kRegB, kBBinary | kB24Hour | kBPeriodicEnable | kBAlarmEnable | kBUpdateEnable | kBSquareWave);
  step(kSecond);
  ASSERT_TRUE(irq().level());
  device_->reset();
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(in(kRegB), kBBinary | kB24Hour);
  EXPECT_EQ(in(kRegC), 0);
  EXPECT_EQ(in(kRegA), kADivider32kHz | 0x0f);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  EXPECT_EQ(in(kSeconds), 0x22);  // the bytes kept counting (0x21 read as binary 33, then 34)
}

TEST_F(RtcInterruptTest, DividerResetStopsPeriodicInterrupts) {
  out(kRegA, kADivider32kHz | 0x06);
  out(kRegB, kB24Hour | kBPeriodicEnable);
  out(kRegA, 0x70 | 0x06);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  step(kSecond);
  EXPECT_EQ(in(kRegC), 0);
}

}  // namespace
}  // namespace molt::rtc::test
