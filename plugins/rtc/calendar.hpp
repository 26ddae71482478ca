// Civil calendar arithmetic for the RTC: proleptic Gregorian dates, seconds
// counted from 1970-01-01T00:00:00 of the guest's calendar (negative before).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace molt::rtc {

struct DateTime {
  int year = 1970;  // full year, e.g. 2006
  int month = 1;    // 1-12
  int day = 1;      // 1-31
  int hour = 0;     // 0-23
  int minute = 0;   // 0-59
  int second = 0;   // 0-59
  int weekday = 5;  // 1 = Sunday ... 7 = Saturday (1970-01-01 was a Thursday)

  bool operator==(const DateTime&) const = default;
};

inline constexpr std::int64_t kSecondsPerDay = 86400;

bool is_leap_year(int year);
int days_in_month(int year, int month);

// Days from 1970-01-01 to the given date. Months outside 1-12 and days
// beyond the month's length carry into the following months, as mktime does.
std::int64_t days_from_date(int year, int month, int day);
// The calendar date and weekday of second `seconds`.
DateTime datetime_from_seconds(std::int64_t seconds);
std::int64_t seconds_from_datetime(const DateTime& t);

// Floor division and modulo for possibly negative second counts.
std::int64_t floor_div(std::int64_t a, std::int64_t b);
std::int64_t floor_mod(std::int64_t a, std::int64_t b);

// "YYYY-MM-DDTHH:MM:SS" (a space may replace the T, a trailing Z is allowed),
// years 1-9999, every field in its range. nullopt otherwise.
std::optional<DateTime> parse_iso8601(const std::string& text);

}  // namespace molt::rtc
