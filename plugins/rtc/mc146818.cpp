#include "mc146818.hpp"

#include <algorithm>

#include "calendar.hpp"

namespace molt::rtc {

namespace {

// Whole 32.768 kHz ticks in `ns`, and the first instant (ns) at which `ticks`
// ticks have passed; split by seconds so neither product overflows.
std::int64_t ticks_in(std::int64_t ns) {
  if (ns <= 0) return 0;
  return ns / kNsPerSecond * kTicksPerSecond + ns % kNsPerSecond * kTicksPerSecond / kNsPerSecond;
}
std::int64_t ns_for_ticks(std::int64_t ticks) {
  const std::int64_t rest = ticks % kTicksPerSecond * kNsPerSecond;
  return ticks / kTicksPerSecond * kNsPerSecond + (rest + kTicksPerSecond - 1) / kTicksPerSecond;
}

bool alarm_matches(std::uint8_t alarm, std::uint8_t value) {
  return (alarm & kAlarmDontCare) == kAlarmDontCare || alarm == value;
}

// IRQF = PF.PIE + AF.AIE + UF.UIE: each enable bit of B sits where its flag sits in C.
bool irq_flag_due(std::uint8_t reg_b, std::uint8_t reg_c) {
  return (reg_c & reg_b & kCFlags) != 0;
}

constexpr std::int64_t kMaxCatchUpNs = std::int64_t{10} * 366 * kSecondsPerDay * kNsPerSecond;

}  // namespace

Mc146818::Mc146818(Hooks hooks) : hooks_(std::move(hooks)) {}

// ---- data mode ----

std::uint8_t Mc146818::encode(int value) const {
  if ((s_.reg_b & kBBinary) != 0) return static_cast<std::uint8_t>(value);
  return static_cast<std::uint8_t>(((value / 10 % 10) << 4) | (value % 10));
}

int Mc146818::decode(std::uint8_t byte) const {
  if ((s_.reg_b & kBBinary) != 0) return byte;
  return (byte >> 4) * 10 + (byte & 0x0f);
}

std::uint8_t Mc146818::encode_hours(int hour) const {
  if ((s_.reg_b & kB24Hour) != 0) return encode(hour);
  const int twelve = hour % 12 == 0 ? 12 : hour % 12;
  return static_cast<std::uint8_t>(encode(twelve) | (hour >= 12 ? kHoursPm : 0));
}

int Mc146818::decode_hours(std::uint8_t byte) const {
  if ((s_.reg_b & kB24Hour) != 0) return decode(byte);
  return decode(byte & ~kHoursPm) % 12 + ((byte & kHoursPm) != 0 ? 12 : 0);
}

// Out-of-range register values carry into the next field (61 seconds is a
// minute and a second), as the chip's counters would roll them sooner or later.
std::int64_t Mc146818::register_seconds() const {
  const auto& n = s_.nvram;
  const int year = decode(n[kCentury]) * 100 + decode(n[kYear]);
  return days_from_date(year, decode(n[kMonth]), decode(n[kDayOfMonth])) * kSecondsPerDay +
         std::int64_t{decode_hours(n[kHours])} * 3600 + std::int64_t{decode(n[kMinutes])} * 60 +
         decode(n[kSeconds]);
}

void Mc146818::render(std::int64_t seconds, int weekday) {
  const DateTime t = datetime_from_seconds(seconds);
  auto& n = s_.nvram;
  n[kSeconds] = encode(t.second);
  n[kMinutes] = encode(t.minute);
  n[kHours] = encode_hours(t.hour);
  n[kDayOfWeek] = encode(weekday);
  n[kDayOfMonth] = encode(t.day);
  n[kMonth] = encode(t.month);
  n[kYear] = encode(t.year % 100);
  n[kCentury] = encode(t.year / 100 % 100);
}

// The weekday register counts on its own, 1-7, bumped at each midnight: a
// guest that set it inconsistent with the date keeps its own count.
void Mc146818::advance_seconds(std::int64_t count) {
  const std::int64_t before = register_seconds();
  const std::int64_t after = before + count;
  const std::int64_t days = floor_div(after, kSecondsPerDay) - floor_div(before, kSecondsPerDay);
  const int weekday = static_cast<int>(floor_mod(decode(s_.nvram[kDayOfWeek]) - 1 + days, 7)) + 1;
  render(after, weekday);
}

std::optional<std::int64_t> Mc146818::seconds_to_alarm(std::int64_t second_of_day) const {
  const std::uint8_t alarm_s = s_.nvram[kSecondsAlarm];
  const std::uint8_t alarm_m = s_.nvram[kMinutesAlarm];
  const std::uint8_t alarm_h = s_.nvram[kHoursAlarm];
  const std::int64_t minute_now = second_of_day / 60;
  const std::int64_t second_now = second_of_day % 60;
  // Walk the minutes of the next day (the current one twice: its remaining
  // seconds now, its earlier seconds tomorrow), then the seconds of a match.
  for (std::int64_t ahead = 0; ahead <= 24 * 60; ++ahead) {
    const std::int64_t minute = (minute_now + ahead) % (24 * 60);
    if (!alarm_matches(alarm_h, encode_hours(static_cast<int>(minute / 60))) ||
        !alarm_matches(alarm_m, encode(static_cast<int>(minute % 60)))) {
      continue;
    }
    const std::int64_t first = ahead == 0 ? second_now + 1 : 0;
    const std::int64_t last = ahead == 24 * 60 ? second_now : 59;
    for (std::int64_t second = first; second <= last; ++second) {
      if (alarm_matches(alarm_s, encode(static_cast<int>(second)))) return ahead * 60 + second - second_now;
    }
  }
  return std::nullopt;
}

std::int64_t Mc146818::periodic_ticks() const {
  const unsigned rate = s_.reg_a & kARateMask;
  if (rate == 0) return 0;
  // With the 32.768 kHz base, rates 1 and 2 repeat 8 and 9 (256 and 128 Hz).
  if (rate <= 2) return std::int64_t{1} << (rate + 6);
  return std::int64_t{1} << (rate - 1);
}

unsigned Mc146818::periodic_hz() const {
  const std::int64_t ticks = periodic_ticks();
  return ticks == 0 ? 0 : static_cast<unsigned>(kTicksPerSecond / ticks);
}

// ---- the time line ----

void Mc146818::sync(std::int64_t now) {
  if (!divider_running() || now <= last_sync_ns_) {
    last_sync_ns_ = std::max(last_sync_ns_, now);
    return;
  }
  const std::int64_t elapsed = now - anchor_ns_;
  const std::int64_t period = periodic_ticks();
  if (period != 0 && ticks_in(elapsed) / period > ticks_in(last_sync_ns_ - anchor_ns_) / period) {
    s_.reg_c |= kCPeriodic;
  }
  const std::int64_t updates = elapsed / kNsPerSecond;
  if (updates > 0) {
    if ((s_.reg_b & kBSet) == 0) {
      const std::int64_t before = register_seconds();
      const auto to_alarm = seconds_to_alarm(floor_mod(before, kSecondsPerDay));
      advance_seconds(updates);
      s_.reg_c |= kCUpdate;
      if (to_alarm && *to_alarm <= updates) s_.reg_c |= kCAlarm;
    }
    anchor_ns_ += updates * kNsPerSecond;
  }
  last_sync_ns_ = now;
  update_irq();
}

void Mc146818::update_irq() {
  const bool due = irq_flag_due(s_.reg_b, s_.reg_c);
  s_.reg_c = static_cast<std::uint8_t>((s_.reg_c & kCFlags) | (due ? kCIrqFlag : 0));
  if (due != irq_level_) {
    irq_level_ = due;
    if (hooks_.set_irq) hooks_.set_irq(due);
  }
}

// One deadline: the earliest enabled event. While IRQF is up nothing new can
// reach the guest until it reads register C, so no timer runs then.
void Mc146818::rearm(std::int64_t now) {
  std::optional<std::int64_t> deadline;
  auto consider = [&deadline](std::int64_t at) { deadline = deadline ? std::min(*deadline, at) : at; };
  if (divider_running() && (s_.reg_c & kCIrqFlag) == 0) {
    const std::int64_t period = periodic_ticks();
    if ((s_.reg_b & kBPeriodicEnable) != 0 && period != 0) {
      const std::int64_t next = ticks_in(now - anchor_ns_) / period + 1;
      consider(anchor_ns_ + ns_for_ticks(next * period));
    }
    if ((s_.reg_b & kBSet) == 0 && (s_.reg_b & kBUpdateEnable) != 0) consider(anchor_ns_ + kNsPerSecond);
    if ((s_.reg_b & kBSet) == 0 && (s_.reg_b & kBAlarmEnable) != 0) {
      const auto to_alarm = seconds_to_alarm(floor_mod(register_seconds(), kSecondsPerDay));
      if (to_alarm) consider(anchor_ns_ + *to_alarm * kNsPerSecond);
    }
  }
  if (deadline) {
    if (hooks_.arm_timer) hooks_.arm_timer(*deadline);
  } else if (hooks_.cancel_timer) {
    hooks_.cancel_timer();
  }
}

// ---- power-on, reset, guest access ----

void Mc146818::set_time(std::int64_t calendar_seconds, std::int64_t now, std::int64_t phase_ns) {
  render(calendar_seconds, datetime_from_seconds(calendar_seconds).weekday);
  anchor_ns_ = now - phase_ns;
  last_sync_ns_ = now;
  rearm(now);
}

void Mc146818::reset(std::int64_t now) {
  sync(now);
  s_.reg_b &= static_cast<std::uint8_t>(~(kBPeriodicEnable | kBAlarmEnable | kBUpdateEnable | kBSquareWave));
  s_.reg_c = 0;
  update_irq();
  rearm(now);
}

std::int64_t Mc146818::current_seconds(std::int64_t now) {
  sync(now);
  return register_seconds();
}

std::uint8_t Mc146818::read_data(std::int64_t now) {
  sync(now);
  switch (s_.index) {
    case kRegA: {
      const bool uip = updating() && now - anchor_ns_ >= kNsPerSecond - kUpdateWarningNs;
      return static_cast<std::uint8_t>(s_.reg_a | (uip ? kAUpdateInProgress : 0));
    }
    case kRegB:
      return s_.reg_b;
    case kRegC: {
      const std::uint8_t value = s_.reg_c;
      s_.reg_c = 0;
      update_irq();
      rearm(now);
      return value;
    }
    case kRegD:
      return s_.reg_d;
    default:
      return s_.nvram[s_.index];
  }
}

void Mc146818::write_data(std::uint8_t value, std::int64_t now) {
  sync(now);
  switch (s_.index) {
    case kRegA: {
      const bool was_running = divider_running();
      s_.reg_a = value & static_cast<std::uint8_t>(~kAUpdateInProgress);
      if (!was_running && divider_running()) {
        anchor_ns_ = now + kFirstUpdateAfterResetNs - kNsPerSecond;
        last_sync_ns_ = now;
      }
      break;
    }
    case kRegB:
      // Setting SET stops the updates and clears UIE.
      s_.reg_b = (value & kBSet) != 0 ? static_cast<std::uint8_t>(value & ~kBUpdateEnable) : value;
      break;
    case kRegC:
    case kRegD:
      break;  // read-only
    default:
      s_.nvram[s_.index] = value;
      break;
  }
  update_irq();
  rearm(now);
}

void Mc146818::timer_expired(std::int64_t now) {
  sync(now);
  rearm(now);
}

// ---- migration ----

void Mc146818::prepare_save(std::int64_t now, std::int64_t realtime_ns) {
  sync(now);
  s_.divider_phase_ns = divider_running() ? static_cast<std::uint64_t>(now - anchor_ns_) : 0;
  s_.saved_realtime_ns = realtime_ns;
}

// The time that passed between the save and now on the host's wall clock
// (downtime of a migration, or the age of a snapshot) moves the clock on, as
// the battery would have; a destination clock behind the source adds nothing.
void Mc146818::restore(std::int64_t now, std::int64_t realtime_ns) {
  std::int64_t away = 0;  // a host clock before the save (or an overflow) means no catch-up
  if (__builtin_sub_overflow(realtime_ns, s_.saved_realtime_ns, &away)) away = 0;
  away = std::clamp<std::int64_t>(away, 0, kMaxCatchUpNs);
  anchor_ns_ = now - static_cast<std::int64_t>(s_.divider_phase_ns) - away;
  last_sync_ns_ = anchor_ns_;
  irq_level_ = (s_.reg_c & kCIrqFlag) != 0;
  if (hooks_.set_irq) hooks_.set_irq(irq_level_);
  sync(now);
  rearm(now);
}

}  // namespace molt::rtc
