// The clock: data modes, the update cycle, SET, the divider, rollovers, the
// start-time and base properties, and the CMOS bytes firmware reads.
#include <cstdlib>
#include <ctime>

#include <molt/sdk/error.hpp>

#include "calendar.hpp"
#include "cmos_layout.hpp"
#include "rtc_fixture.hpp"

namespace molt::rtc::test {
namespace {

TEST_F(RtcTest, FixedStartTimeReadsInBcdTwentyFourHour) {
  make_at("2006-06-17T16:01:21");
  EXPECT_EQ(read_bcd_time(), "2006-06-17T16:01:21");
  EXPECT_EQ(in(kDayOfWeek), 7);  // a Saturday; Sunday is 1
  EXPECT_EQ(in(kRegB), kB24Hour);
  EXPECT_EQ(in(kRegA), kADivider32kHz | 0x06);
  EXPECT_EQ(in(kRegD), kDValidRamAndTime);
}

TEST_F(RtcTest, DefaultStartIsTheHostUtcTime) {
  machine_.clock().set_realtime_base(std::int64_t{1'151'510'481} * 1'000'000'000 + 250 * 1'000'000);
  make();
  EXPECT_EQ(read_bcd_time(), "2006-06-28T16:01:21");
  // The guest's seconds tick with the host's: 750 ms to the next one.
  step(749 * kMs);
  EXPECT_EQ(in(kSeconds), 0x21);
  step(1 * kMs);
  EXPECT_EQ(in(kSeconds), 0x22);
}

TEST_F(RtcTest, LocaltimeBaseAddsTheHostZoneOffset) {
  const char* saved = std::getenv("TZ");
  const std::string previous = saved ? saved : "";
  ::setenv("TZ", "MOLT-03", 1);  // POSIX: three hours east of UTC
  ::tzset();
  machine_.clock().set_realtime_base(std::int64_t{1'151'510'481} * 1'000'000'000);
  make({{"base", std::string("localtime")}});
  EXPECT_EQ(read_bcd_time(), "2006-06-28T19:01:21");
  if (saved) {
    ::setenv("TZ", previous.c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
}

TEST_F(RtcTest, BadStartTimeIsRefusedWithASentence) {
  auto& ctx =
      machine_.add_context("rtc", rtc_properties({{"start-time", std::string("2006-13-01T00:00:00")}}));
  RtcDevice device(ctx);
  try {
    device.realize();
    FAIL() << "a month 13 was accepted";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("start-time"), std::string::npos) << e.what();
  }
}

TEST_F(RtcTest, BinaryAndTwelveHourModes) {
  make_at("2006-06-17T16:01:21");
  // Changing the data mode converts nothing: software rewrites every byte.
  out(kRegB, kBSet | kBBinary);  // binary, 12-hour
  out(kCentury, 20);
  out(kYear, 6);
  out(kMonth, 6);
  out(kDayOfMonth, 17);
  out(kHours, 0x80 | 4);  // 4 PM
  out(kMinutes, 59);
  out(kSeconds, 59);
  out(kRegB, kBBinary);
  step(kSecond);
  EXPECT_EQ(in(kSeconds), 0);
  EXPECT_EQ(in(kMinutes), 0);
  EXPECT_EQ(in(kHours), 0x80 | 5);
  EXPECT_EQ(in(kDayOfMonth), 17);
  EXPECT_EQ(in(kYear), 6);
  EXPECT_EQ(in(kCentury), 20);
  // 11:59:59 PM -> 12:00:00 AM of the next day.
  out(kRegB, kBSet | kBBinary);
  out(kHours, 0x80 | 11);
  out(kMinutes, 59);
  out(kSeconds, 59);
  out(kRegB, kBBinary);
  step(kSecond);
  EXPECT_EQ(in(kHours), 12);
  EXPECT_EQ(in(kDayOfMonth), 18);
  EXPECT_EQ(in(kDayOfWeek), 1);
  // 11:59:59 AM -> 12:00:00 PM (noon carries the PM flag).
  out(kRegB, kBSet | kBBinary);
  out(kHours, 11);
  out(kMinutes, 59);
  out(kSeconds, 59);
  out(kRegB, kBBinary);
  step(kSecond);
  EXPECT_EQ(in(kHours), 0x80 | 12);
}

TEST_F(RtcTest, BcdTwelveHourModeWritesThePmBit) {
  make_at("2006-06-17T00:00:00");
  out(kRegB, kBSet);  // BCD, 12-hour
  out(kHours, 0x12);  // 12 AM
  out(kMinutes, 0x59);
  out(kSeconds, 0x59);
  out(kRegB, 0);
  step(kSecond);
  EXPECT_EQ(in(kHours), 0x01);
  EXPECT_EQ(in(kMinutes), 0x00);
}

struct Rollover {
  const char* start;
  const char* after_one_second;
};

class RtcRolloverTest : public RtcTest, public ::testing::WithParamInterface<Rollover> {};

TEST_P(RtcRolloverTest, DateCarries) {
  make_at(GetParam().start);
  step(kSecond);
  EXPECT_EQ(read_bcd_time(), GetParam().after_one_second);
}

INSTANTIATE_TEST_SUITE_P(Calendar, RtcRolloverTest,
                         ::testing::Values(Rollover{"1999-12-31T23:59:59", "2000-01-01T00:00:00"},
                                           Rollover{"2000-02-28T23:59:59", "2000-02-29T00:00:00"},
                                           Rollover{"2000-02-29T23:59:59", "2000-03-01T00:00:00"},
                                           Rollover{"2023-02-28T23:59:59", "2023-03-01T00:00:00"},
                                           Rollover{"2024-02-28T23:59:59", "2024-02-29T00:00:00"},
                                           Rollover{"2100-02-28T23:59:59", "2100-03-01T00:00:00"},
                                           Rollover{"2099-12-31T23:59:59", "2100-01-01T00:00:00"},
                                           Rollover{"2006-04-30T23:59:59", "2006-05-01T00:00:00"},
                                           Rollover{"2006-06-17T16:59:59", "2006-06-17T17:00:00"}));

TEST_F(RtcTest, WeekdayCountsOnItsOwnAcrossMidnight) {
  make_at("2006-06-17T23:59:59");
  out(kDayOfWeek, 3);  // inconsistent with the date: the chip keeps counting from it
  step(kSecond);
  EXPECT_EQ(in(kDayOfWeek), 4);
  step(7 * 86400 * kSecond);
  EXPECT_EQ(in(kDayOfWeek), 4);
  EXPECT_EQ(read_bcd_time(), "2006-06-25T00:00:00");
}

TEST_F(RtcTest, UipRisesTwoHundredFortyFourMicrosecondsBeforeTheUpdate) {
  make_at("2006-06-17T16:01:21");
  step(kSecond - 245'000);
  EXPECT_EQ(in(kRegA)&kAUpdateInProgress, 0);
  step(2'000);
  EXPECT_EQ(in(kRegA)&kAUpdateInProgress, kAUpdateInProgress);
  EXPECT_EQ(in(kSeconds), 0x21);
  step(243'000);
  EXPECT_EQ(in(kRegA)&kAUpdateInProgress, 0);
  EXPECT_EQ(in(kSeconds), 0x22);
  // With SET held there are no updates, so no UIP either.
  step(kSecond - 100'000);
  out(kRegB, kBSet | kB24Hour);
  EXPECT_EQ(in(kRegA)&kAUpdateInProgress, 0);
}

TEST_F(RtcTest, SetFreezesTheTimeAndLetsSoftwareWriteIt) {
  make_at("2006-06-17T16:01:21");
  step(300 * kMs);
  set_time_bcd24(0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58);  // SET cleared at 0.3 s
  out(kRegB, kBSet | kB24Hour);
  step(5 * kSecond);
  EXPECT_EQ(read_bcd_time(), "1999-12-31T23:59:58");
  out(kRegB, kB24Hour);
  // The divider ran on under SET: the next update is at the next whole second.
  step(700 * kMs - 1);
  EXPECT_EQ(in(kSeconds), 0x58);
  step(1);
  EXPECT_EQ(in(kSeconds), 0x59);
  step(kSecond);
  EXPECT_EQ(read_bcd_time(), "2000-01-01T00:00:00");
}

TEST_F(RtcTest, DividerResetHoldsTheClockAndTheFirstUpdateComesHalfASecondAfter) {
  make_at("2006-06-17T16:01:21");
  step(100 * kMs);
  out(kRegA, 0x70 | 0x06);  // DV = 111: reset
  step(10 * kSecond);
  EXPECT_EQ(in(kSeconds), 0x21);
  EXPECT_EQ(in(kRegA)&kAUpdateInProgress, 0);
  out(kRegA, kADivider32kHz | 0x06);
  step(500 * kMs - 1);
  EXPECT_EQ(in(kSeconds), 0x21);
  step(1);
  EXPECT_EQ(in(kSeconds), 0x22);
  step(kSecond);
  EXPECT_EQ(in(kSeconds), 0x23);
}

TEST_F(RtcTest, OnlyTheThirtyTwoKilohertzTimeBaseRunsTheClock) {
  make_at("2006-06-17T16:01:21");
  for (std::uint8_t dv : {0x00, 0x10, 0x30}) {
    out(kRegA, static_cast<std::uint8_t>(dv | 0x06));
    step(3 * kSecond);
    EXPECT_EQ(in(kSeconds), 0x21) << "DV bits " << int{dv};
  }
}

TEST_F(RtcTest, WritingATimeByteWhileRunningCountsOnFromIt) {
  make_at("2006-06-17T16:01:21");
  out(kMinutes, 0x30);
  step(kSecond);
  EXPECT_EQ(read_bcd_time(), "2006-06-17T16:30:22");
}

TEST_F(RtcTest, IndexIsMaskedToTheNvramAndTheNmiBitIgnored) {
  make_at("2006-06-17T16:01:21");
  out(0x40, 0xa5);
  machine_.bus().io_write(kIndexPort, 1, 0x80 | 0x40);  // NMI mask bit set
  EXPECT_EQ(machine_.bus().io_read(kDataPort, 1), 0xa5u);
  machine_.bus().io_write(kIndexPort, 1, 0x80 | kSeconds);
  EXPECT_EQ(machine_.bus().io_read(kDataPort, 1), 0x21u);
  EXPECT_EQ(state().index, kSeconds);
  EXPECT_EQ(machine_.bus().io_read(kIndexPort, 1), 0xffu);  // write-only on PCs
  for (unsigned i = 0x0e; i < kNvramSize; ++i) {
    if (i == kCentury) continue;
    out(static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i ^ 0x5a));
  }
  for (unsigned i = 0x0e; i < kNvramSize; ++i) {
    if (i == kCentury) continue;
    EXPECT_EQ(in(static_cast<std::uint8_t>(i)), i ^ 0x5a) << "byte " << i;
  }
}

TEST_F(RtcTest, RegistersCAndDAreReadOnly) {
  make_at("2006-06-17T16:01:21");
  out(kRegD, 0x00);
  EXPECT_EQ(in(kRegD), kDValidRamAndTime);
  out(kRegC, 0xf0);
  EXPECT_EQ(in(kRegC), 0);
  out(kRegA, 0xa6);  // UIP is read-only
  EXPECT_EQ(state().reg_a, 0x26);
}

sdk::MachineInfo machine_with(std::uint64_t low, std::uint64_t high, unsigned vcpus) {
  sdk::MachineInfo info;
  info.vcpus = vcpus;
  info.ram_size = low + high;
  info.ram.push_back({0, low, 1});
  if (high != 0) info.ram.push_back({std::uint64_t{4} << 30, high, 1});
  return info;
}

TEST_F(RtcTest, CmosCarriesTheMachinesMemoryAndCpus) {
  machine_.info() = machine_with(std::uint64_t{256} << 20, 0, 2);
  make_at("2006-06-17T16:01:21");
  EXPECT_EQ(in(0x15) | in(0x16) << 8, 640);
  EXPECT_EQ(in(0x17) | in(0x18) << 8, 0xffff);  // 255 MiB above 1 MiB is more than 16 bits of KiB
  EXPECT_EQ(in(0x30) | in(0x31) << 8, 0xffff);
  EXPECT_EQ(in(0x34) | in(0x35) << 8, (256 - 16) * 16);
  EXPECT_EQ(in(0x5b) | in(0x5c) << 8 | in(0x5d) << 16, 0);
  EXPECT_EQ(in(0x5f), 1);
  EXPECT_EQ(in(0x14), kEquipmentFpu);
  EXPECT_EQ(in(0x3d), 0x32);  // hard disk, then CD-ROM
  EXPECT_EQ(in(0x38) & 0x01, 0x01);
  unsigned sum = 0;
  for (std::uint8_t i = 0x10; i < 0x2e; ++i) sum += in(i);
  EXPECT_EQ(in(0x2e) << 8 | in(0x2f), sum & 0xffff);
}

TEST(CmosLayout, SmallAndLargeMachines) {
  std::array<std::uint8_t, kNvramSize> nvram{};
  fill_firmware_bytes(nvram, machine_with(std::uint64_t{8} << 20, 0, 1));
  EXPECT_EQ(nvram[0x17] | nvram[0x18] << 8, 7 * 1024);
  EXPECT_EQ(nvram[0x34] | nvram[0x35] << 8, 0);
  EXPECT_EQ(nvram[0x5f], 0);
  nvram = {};
  fill_firmware_bytes(nvram, machine_with(std::uint64_t{3} << 30, std::uint64_t{5} << 30, 8));
  EXPECT_EQ(nvram[0x34] | nvram[0x35] << 8, (3072 - 16) * 16);
  EXPECT_EQ(nvram[0x5b] | nvram[0x5c] << 8 | nvram[0x5d] << 16, 5 * 16384);
  EXPECT_EQ(nvram[0x5f], 7);
  // Without a RAM list the size is split at 3 GiB as the pc machine does.
  sdk::MachineInfo bare;
  bare.ram_size = std::uint64_t{4} << 30;
  EXPECT_EQ(split_ram(bare).below_4g, std::uint64_t{3} << 30);
  EXPECT_EQ(split_ram(bare).above_4g, std::uint64_t{1} << 30);
}

TEST(Calendar, SecondsAndDatesAgreeOverFourCenturies) {
  std::int64_t day = days_from_date(1900, 1, 1);
  for (int year = 1900; year < 2300; ++year) {
    for (int month = 1; month <= 12; ++month) {
      for (int d = 1; d <= days_in_month(year, month); ++d, ++day) {
        ASSERT_EQ(days_from_date(year, month, d), day);
        const DateTime t = datetime_from_seconds(day * kSecondsPerDay + 3661);
        ASSERT_EQ(t.year, year);
        ASSERT_EQ(t.month, month);
        ASSERT_EQ(t.day, d);
        ASSERT_EQ(t.hour, 1);
      }
    }
  }
  EXPECT_EQ(days_from_date(1970, 1, 1), 0);
  EXPECT_EQ(datetime_from_seconds(0).weekday, 5);
  EXPECT_EQ(days_from_date(2006, 13, 1), days_from_date(2007, 1, 1));
  EXPECT_FALSE(parse_iso8601("2006-02-29T00:00:00"));
  EXPECT_FALSE(parse_iso8601("2006-06-17 16:01"));
  EXPECT_TRUE(parse_iso8601("2006-06-17 16:01:21Z"));
}

}  // namespace
}  // namespace molt::rtc::test
