// The MC146818 real-time clock as a register machine over a host time line:
// the device glue passes the host's monotonic time (ns) into every call, and
// the chip asks for one timer deadline through its hooks, only while an
// enabled interrupt (periodic, alarm, update-ended) can become due.
//
// The time registers are computed lazily: they hold the time of the last
// update the chip accounted for, and every access first accounts for the
// updates (and the flags they set) that the divider chain produced since.
// The divider chain is modelled at its 32.768 kHz tick: update boundaries
// fall every 32768 ticks after `anchor_ns_`, periodic interrupts every 2^n
// ticks on the same chain, so deadlines never drift.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "rtc_state.hpp"

namespace molt::rtc {

inline constexpr std::int64_t kNsPerSecond = 1'000'000'000;
inline constexpr std::int64_t kTicksPerSecond = 32768;
// UIP rises this long (8 ticks of the 32.768 kHz base, 244 us) before an update.
inline constexpr std::int64_t kUpdateWarningNs = 244'141;
// After the divider leaves reset the first update comes half a second later.
inline constexpr std::int64_t kFirstUpdateAfterResetNs = 500'000'000;

class Mc146818 {
 public:
  struct Hooks {
    std::function<void(bool asserted)> set_irq;
    std::function<void(std::int64_t deadline_ns)> arm_timer;
    std::function<void()> cancel_timer;
  };

  explicit Mc146818(Hooks hooks);

  // Power-on with a battery: the time registers show `calendar_seconds`, which
  // began `phase_ns` before `now` (so updates fall on the host's seconds).
  void set_time(std::int64_t calendar_seconds, std::int64_t now, std::int64_t phase_ns);
  // The chip's RESET input: interrupt enables and flags cleared; time, data
  // mode and divider kept.
  void reset(std::int64_t now);

  void write_index(std::uint8_t value) { s_.index = value & (kNvramSize - 1); }
  std::uint8_t read_data(std::int64_t now);
  void write_data(std::uint8_t value, std::int64_t now);
  void timer_expired(std::int64_t now);

  // Migration: fold the divider phase and the wall time into the State before
  // a save; rebuild the time line from a loaded (validated) State.
  void prepare_save(std::int64_t now, std::int64_t realtime_ns);
  void restore(std::int64_t now, std::int64_t realtime_ns);

  RtcState& state() { return s_; }
  const RtcState& state() const { return s_; }
  // The calendar seconds the time registers show (after accounting to `now`).
  std::int64_t current_seconds(std::int64_t now);
  // Hertz of the periodic interrupt selected in register A (0: none).
  unsigned periodic_hz() const;

 private:
  bool divider_running() const { return (s_.reg_a & kADividerMask) == kADivider32kHz; }
  bool updating() const { return divider_running() && (s_.reg_b & kBSet) == 0; }
  std::int64_t periodic_ticks() const;

  // Bytes <-> values in the data mode register B selects.
  std::uint8_t encode(int value) const;
  int decode(std::uint8_t byte) const;
  std::uint8_t encode_hours(int hour) const;
  int decode_hours(std::uint8_t byte) const;
  std::int64_t register_seconds() const;
  void render(std::int64_t seconds, int weekday);
  void advance_seconds(std::int64_t count);
  // Seconds from time-of-day `second_of_day` to the next one the alarm
  // matches (1..86400), or nullopt if it matches none.
  std::optional<std::int64_t> seconds_to_alarm(std::int64_t second_of_day) const;

  void sync(std::int64_t now);
  void update_irq();
  void rearm(std::int64_t now);

  Hooks hooks_;
  RtcState s_;
  std::int64_t anchor_ns_ = 0;     // host time of the last accounted update boundary
  std::int64_t last_sync_ns_ = 0;  // flags are accounted up to here
  bool irq_level_ = false;
};

}  // namespace molt::rtc
