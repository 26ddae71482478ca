// The MC146818's registers and its migrating state.
#pragma once

#include <array>
#include <cstdint>

#include <molt/sdk/state.hpp>

namespace molt::rtc {

inline constexpr std::size_t kNvramSize = 128;

// Register indices (the address written to the index port).
enum RtcIndex : std::uint8_t {
  kSeconds = 0x00,
  kSecondsAlarm = 0x01,
  kMinutes = 0x02,
  kMinutesAlarm = 0x03,
  kHours = 0x04,
  kHoursAlarm = 0x05,
  kDayOfWeek = 0x06,
  kDayOfMonth = 0x07,
  kMonth = 0x08,
  kYear = 0x09,
  kRegA = 0x0a,
  kRegB = 0x0b,
  kRegC = 0x0c,
  kRegD = 0x0d,
  // Not part of the chip: the byte PC firmware keeps the century in.
  kCentury = 0x32,
};

// Register A.
inline constexpr std::uint8_t kAUpdateInProgress = 0x80;
inline constexpr std::uint8_t kADividerMask = 0x70;
inline constexpr std::uint8_t kADivider32kHz = 0x20;  // DV = 010: the PC's time base, the clock runs
inline constexpr std::uint8_t kADividerReset = 0x60;  // DV = 11x: divider chain held in reset
inline constexpr std::uint8_t kARateMask = 0x0f;

// Register B.
inline constexpr std::uint8_t kBSet = 0x80;
inline constexpr std::uint8_t kBPeriodicEnable = 0x40;
inline constexpr std::uint8_t kBAlarmEnable = 0x20;
inline constexpr std::uint8_t kBUpdateEnable = 0x10;
inline constexpr std::uint8_t kBSquareWave = 0x08;
inline constexpr std::uint8_t kBBinary = 0x04;
inline constexpr std::uint8_t kB24Hour = 0x02;
inline constexpr std::uint8_t kBDaylightSaving = 0x01;

// Register C.
inline constexpr std::uint8_t kCIrqFlag = 0x80;
inline constexpr std::uint8_t kCPeriodic = 0x40;
inline constexpr std::uint8_t kCAlarm = 0x20;
inline constexpr std::uint8_t kCUpdate = 0x10;
inline constexpr std::uint8_t kCFlags = kCPeriodic | kCAlarm | kCUpdate;

// Register D.
inline constexpr std::uint8_t kDValidRamAndTime = 0x80;

// An alarm byte with its two top bits set matches every value.
inline constexpr std::uint8_t kAlarmDontCare = 0xc0;

// The PM flag of the hours byte in 12-hour mode.
inline constexpr std::uint8_t kHoursPm = 0x80;

// Everything the guest can observe. The time registers (0x00, 0x02, 0x04,
// 0x06-0x09) and the century byte hold the time as of the last update the
// device accounted for; host-clock instants never enter the State: the
// divider phase is saved relative to the last update, and the host wall time
// of the save lets the destination add the time that passed in between.
struct RtcState {
  // The CMOS RAM as addressed through the index port. Bytes 0x0a-0x0d are
  // the registers A-D, kept in the named fields below; their slots stay 0.
  std::array<std::uint8_t, kNvramSize> nvram{};
  std::uint8_t index = 0;
  std::uint8_t reg_a = kADivider32kHz | 0x06;  // UIP is computed, never stored
  std::uint8_t reg_b = kB24Hour;
  std::uint8_t reg_c = 0;
  std::uint8_t reg_d = kDValidRamAndTime;
  // Nanoseconds since the last update boundary of the divider chain when the
  // state was saved (below one second); 0 while the divider is stopped.
  std::uint64_t divider_phase_ns = 0;
  // The host's wall-clock time at the save, in ns since the Unix epoch.
  std::int64_t saved_realtime_ns = 0;

  bool operator==(const RtcState&) const = default;
};

// "mc146818", version 1. Its post_load rejects an index beyond the NVRAM,
// a stored UIP bit, flags register C cannot hold, an IRQF that disagrees with
// the enabled flags, and a divider phase of a second or more.
const sdk::StateDescriptor& rtc_state_descriptor();

// The same checks, usable on their own; throws sdk::StateError.
void validate_rtc_state(const RtcState& state);

}  // namespace molt::rtc
