#include "calendar.hpp"

#include <cctype>

namespace molt::rtc {

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::int64_t floor_mod(std::int64_t a, std::int64_t b) {
  return a - floor_div(a, b) * b;
}

bool is_leap_year(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && is_leap_year(year)) return 29;
  return kDays[(month - 1) % 12];
}

namespace {

// The Gregorian calendar repeats every 400 years, which hold 146097 days. A
// year counted from March puts the leap day last, so the day of such a year
// follows from the month by a linear formula: (153 * m + 2) / 5 with m = 0
// for March.
constexpr std::int64_t kDaysPer400Years = 146097;
constexpr std::int64_t kDaysFrom0000To1970 = 719468;  // 0000-03-01 to 1970-01-01

std::int64_t days_from_march_based(std::int64_t year, int month, int day) {
  const std::int64_t march_year = month <= 2 ? year - 1 : year;
  const std::int64_t era = floor_div(march_year, 400);
  const std::int64_t year_of_era = march_year - era * 400;
  const int month_from_march = month > 2 ? month - 3 : month + 9;
  const std::int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
  const std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * kDaysPer400Years + day_of_era - kDaysFrom0000To1970;
}

}  // namespace

std::int64_t days_from_date(int year, int month, int day) {
  // Carry months outside 1-12 into the year first; days then carry by plain
  // addition since the formula is linear in the day.
  const std::int64_t month_index = static_cast<std::int64_t>(month) - 1;
  const std::int64_t full_year = year + floor_div(month_index, 12);
  const int normal_month = static_cast<int>(floor_mod(month_index, 12)) + 1;
  return days_from_march_based(full_year, normal_month, 1) + day - 1;
}

DateTime datetime_from_seconds(std::int64_t seconds) {
  const std::int64_t days = floor_div(seconds, kSecondsPerDay);
  const std::int64_t second_of_day = seconds - days * kSecondsPerDay;
  const std::int64_t shifted = days + kDaysFrom0000To1970;
  const std::int64_t era = floor_div(shifted, kDaysPer400Years);
  const std::int64_t day_of_era = shifted - era * kDaysPer400Years;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t month_from_march = (5 * day_of_year + 2) / 153;
  DateTime t;
  t.day = static_cast<int>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  t.month = static_cast<int>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  t.year = static_cast<int>(year_of_era + era * 400 + (t.month <= 2 ? 1 : 0));
  t.hour = static_cast<int>(second_of_day / 3600);
  t.minute = static_cast<int>(second_of_day / 60 % 60);
  t.second = static_cast<int>(second_of_day % 60);
  // Day 0 (1970-01-01) was a Thursday, weekday 5 when Sunday is 1.
  t.weekday = static_cast<int>(floor_mod(days + 4, 7)) + 1;
  return t;
}

std::int64_t seconds_from_datetime(const DateTime& t) {
  return days_from_date(t.year, t.month, t.day) * kSecondsPerDay + std::int64_t{t.hour} * 3600 +
         std::int64_t{t.minute} * 60 + t.second;
}

namespace {

bool read_number(const std::string& text, std::size_t& pos, std::size_t digits, int& out) {
  if (pos + digits > text.size()) return false;
  int value = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const char c = text[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  pos += digits;
  out = value;
  return true;
}

bool expect(const std::string& text, std::size_t& pos, const char* accepted) {
  if (pos >= text.size()) return false;
  for (const char* a = accepted; *a != '\0'; ++a) {
    if (text[pos] == *a) {
      ++pos;
      return true;
    }
  }
  return false;
}

}  // namespace

std::optional<DateTime> parse_iso8601(const std::string& text) {
  DateTime t;
  std::size_t pos = 0;
  if (!read_number(text, pos, 4, t.year) || !expect(text, pos, "-") || !read_number(text, pos, 2, t.month) ||
      !expect(text, pos, "-") || !read_number(text, pos, 2, t.day) || !expect(text, pos, "T ") ||
      !read_number(text, pos, 2, t.hour) || !expect(text, pos, ":") || !read_number(text, pos, 2, t.minute) ||
      !expect(text, pos, ":") || !read_number(text, pos, 2, t.second)) {
    return std::nullopt;
  }
  if (pos < text.size() && text[pos] == 'Z') ++pos;
  if (pos != text.size()) return std::nullopt;
  if (t.year < 1 || t.month < 1 || t.month > 12 || t.day < 1 || t.day > days_in_month(t.year, t.month) ||
      t.hour > 23 || t.minute > 59 || t.second > 59) {
    return std::nullopt;
  }
  t.weekday = datetime_from_seconds(seconds_from_datetime(t)).weekday;
  return t;
}

}  // namespace molt::rtc
