/* `rtc`: the MC146818 driven from its datasheet. Reads the date and time
 * (UIP, BCD or binary, 12- or 24-hour as register B says), sets an alarm a
 * few seconds ahead and sees it arrive as IRQ 8, and measures three periodic
 * interrupt rates against the TSC.
 *
 * Port accesses cost tens of microseconds here (the #GP gate), more than the
 * 244 us that UIP warns ahead of an update, so a consistent reading is taken
 * by reading twice and comparing, as robust drivers do. */
#include "guest.h"
#include "irq.h"

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define RTC_IRQ 8

#define REG_SECONDS 0x00
#define REG_SECONDS_ALARM 0x01
#define REG_MINUTES 0x02
#define REG_MINUTES_ALARM 0x03
#define REG_HOURS 0x04
#define REG_HOURS_ALARM 0x05
#define REG_DAY 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_CENTURY 0x32 /* PC convention, not the chip's */

#define A_UIP 0x80
#define A_DIVIDER_32K 0x20
#define B_PIE 0x40
#define B_AIE 0x20
#define B_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define ALARM_DONT_CARE 0xc0
#define HOURS_PM 0x80

#define PERIODIC_SECONDS 2

static uint8_t rtc_read(uint8_t reg) {
  outb(RTC_INDEX, reg);
  return inb(RTC_DATA);
}

static void rtc_write(uint8_t reg, uint8_t value) {
  outb(RTC_INDEX, reg);
  outb(RTC_DATA, value);
}

static unsigned from_rtc(uint8_t byte, uint8_t reg_b) {
  return (reg_b & B_BINARY) ? byte : (unsigned)(byte >> 4) * 10 + (byte & 0x0f);
}

static uint8_t to_rtc(unsigned value, uint8_t reg_b) {
  return (reg_b & B_BINARY) ? (uint8_t)value : (uint8_t)(((value / 10) << 4) | (value % 10));
}

static unsigned hours_from_rtc(uint8_t byte, uint8_t reg_b) {
  if (reg_b & B_24H) return from_rtc(byte, reg_b);
  unsigned hour = from_rtc(byte & (uint8_t)~HOURS_PM, reg_b) % 12; /* 12 AM is 0 */
  return (byte & HOURS_PM) ? hour + 12 : hour;
}

static void read_once(struct rtc_time* t, uint8_t reg_b) {
  for (unsigned i = 0; i < 1000 && (rtc_read(REG_A) & A_UIP); i++) {
  }
  t->second = from_rtc(rtc_read(REG_SECONDS), reg_b);
  t->minute = from_rtc(rtc_read(REG_MINUTES), reg_b);
  t->hour = hours_from_rtc(rtc_read(REG_HOURS), reg_b);
  t->day = from_rtc(rtc_read(REG_DAY), reg_b);
  t->month = from_rtc(rtc_read(REG_MONTH), reg_b);
  unsigned century = from_rtc(rtc_read(REG_CENTURY), reg_b);
  if (century < 19 || century > 99) century = 20; /* firmware that keeps no century */
  t->year = century * 100 + from_rtc(rtc_read(REG_YEAR), reg_b);
}

/* Two identical readings in a row: no update fell in between. */
bool rtc_read_time(struct rtc_time* t, uint8_t reg_b) {
  struct rtc_time again;
  read_once(t, reg_b);
  for (unsigned attempt = 0; attempt < 10; attempt++) {
    read_once(&again, reg_b);
    if (memcmp(t, &again, sizeof again) == 0) return true;
    *t = again;
  }
  return false;
}

/* An alarm on a second a few seconds ahead; hours and minutes don't care. */
static bool check_alarm(int slot, uint8_t reg_b, uint64_t tsc_khz) {
  struct rtc_time now;
  if (!rtc_read_time(&now, reg_b)) return false;
  rtc_write(REG_SECONDS_ALARM, to_rtc((now.second + 3) % 60, reg_b));
  rtc_write(REG_MINUTES_ALARM, ALARM_DONT_CARE);
  rtc_write(REG_HOURS_ALARM, ALARM_DONT_CARE);
  (void)rtc_read(REG_C);
  uint64_t seen = irq_count(slot);
  uint64_t start = rdtsc();
  rtc_write(REG_B, reg_b | B_AIE);
  bool fired = irq_wait(slot, seen, 5000000);
  uint64_t ms = (rdtsc() - start) / tsc_khz;
  uint8_t flags = rtc_read(REG_C);
  rtc_write(REG_B, reg_b);
  printf("@rtc alarm fired=%d after_ms=%lu flags=%#x\n", fired ? 1 : 0, ms, flags);
  return fired && (flags & (C_IRQF | C_AF)) == (C_IRQF | C_AF) && ms >= 1900 && ms <= 3500;
}

/* Counts interrupts for PERIODIC_SECONDS; the rate is the intervals between
 * the first and the last interrupt over the TSC time between them. Each
 * interrupt is serviced by reading register C (the index stays on C, so that
 * is one port access) so the line falls and the next edge can come. */
static bool measure_rate(int slot, uint8_t reg_b, unsigned rate_select, uint64_t tsc_khz) {
  const unsigned nominal = rate_select <= 2 ? 256u >> (rate_select - 1) : 32768u >> (rate_select - 1);
  rtc_write(REG_A, (uint8_t)(A_DIVIDER_32K | rate_select));
  rtc_write(REG_B, reg_b | B_PIE);
  outb(RTC_INDEX, REG_C);
  (void)inb(RTC_DATA);
  uint64_t seen = irq_count(slot);
  if (!irq_wait(slot, seen, 2000000)) {
    printf("@rtc periodic hz=%u interrupts=0 measured_mhz=0\n", nominal);
    return false;
  }
  uint64_t first = rdtsc(), last = first;
  (void)inb(RTC_DATA);
  uint64_t intervals = 0;
  uint64_t end = first + PERIODIC_SECONDS * tsc_khz * 1000;
  seen = irq_count(slot);
  while (last < end && irq_wait(slot, seen, 1000000)) {
    last = rdtsc();
    (void)inb(RTC_DATA);
    seen = irq_count(slot);
    intervals++;
  }
  rtc_write(REG_B, reg_b);
  (void)rtc_read(REG_C);
  uint64_t elapsed_us = tsc_to_us(last - first);
  uint64_t mhz = elapsed_us == 0 ? 0 : intervals * 1000000000ull / elapsed_us;
  printf("@rtc periodic hz=%u interrupts=%lu us=%lu measured_mhz=%lu\n", nominal, intervals, elapsed_us, mhz);
  return intervals > 0;
}

/* Register B's data-mode bits, what rtc_read_time needs to decode. */
uint8_t rtc_data_mode(void) { return rtc_read(REG_B) & (B_BINARY | B_24H); }

int scenario_rtc(int argc, char** argv) {
  (void)argc;
  (void)argv;
  uint64_t tsc_khz = clock_init()->tsc_khz;
  uint8_t reg_a = rtc_read(REG_A);
  uint8_t reg_b = rtc_read(REG_B) & (B_BINARY | B_24H);
  printf("@rtc mode=%s hours=%s divider=%#x\n", (reg_b & B_BINARY) ? "binary" : "bcd",
         (reg_b & B_24H) ? "24" : "12", reg_a & 0x70);
  struct rtc_time t;
  if (!rtc_read_time(&t, reg_b)) fail("rtc-unstable");
  printf("@rtc time=%04u-%02u-%02uT%02u:%02u:%02u\n", t.year, t.month, t.day, t.hour, t.minute, t.second);

  int slot = irq_route(RTC_IRQ, IRQ_EDGE_HIGH);
  if (slot < 0) fail("rtc-no-vector");
  bool ok = check_alarm(slot, reg_b, tsc_khz);
  static const unsigned rates[] = {8, 10, 13}; /* 256, 64 and 8 Hz */
  for (unsigned i = 0; i < sizeof rates / sizeof rates[0]; i++)
    ok &= measure_rate(slot, reg_b, rates[i], tsc_khz);
  irq_mask(RTC_IRQ);
  rtc_write(REG_A, reg_a);
  if (!ok) fail("rtc-interrupts");
  return 0;
}
