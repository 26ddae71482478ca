#include "rtc_state.hpp"

#include <string>

#include <molt/sdk/error.hpp>

namespace molt::rtc {

namespace {

std::string hex_byte(unsigned value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[(value >> 4) & 0xf] + kDigits[value & 0xf];
}

std::uint8_t irq_flag_for(std::uint8_t reg_b, std::uint8_t reg_c) {
  // IRQF = PF.PIE + AF.AIE + UF.UIE: each enable bit of B sits where its flag sits in C.
  return (reg_c & reg_b & kCFlags) != 0 ? kCIrqFlag : 0;
}

}  // namespace

void validate_rtc_state(const RtcState& s) {
  if (s.index >= kNvramSize) {
    throw sdk::StateError("index", std::to_string(s.index) + " is outside the 128-byte NVRAM");
  }
  for (unsigned i = kRegA; i <= kRegD; ++i) {
    if (s.nvram[i] != 0) {
      throw sdk::StateError("nvram", "byte " + hex_byte(i) +
                                         " must be 0: registers A-D live in reg_a..reg_d, not in the NVRAM");
    }
  }
  if ((s.reg_a & kAUpdateInProgress) != 0) {
    throw sdk::StateError("reg_a", "has UIP set; UIP follows the divider and is never stored");
  }
  if ((s.reg_b & kBSet) != 0 && (s.reg_b & kBUpdateEnable) != 0) {
    throw sdk::StateError("reg_b", hex_byte(s.reg_b) + " sets both SET and UIE; setting SET clears UIE");
  }
  if ((s.reg_c & ~(kCIrqFlag | kCFlags)) != 0) {
    throw sdk::StateError("reg_c", hex_byte(s.reg_c) + " sets bits 0-3, which read 0 on an MC146818");
  }
  if ((s.reg_c & kCIrqFlag) != irq_flag_for(s.reg_b, s.reg_c)) {
    throw sdk::StateError("reg_c", "IRQF in " + hex_byte(s.reg_c) +
                                       " disagrees with the flags enabled in B " + hex_byte(s.reg_b));
  }
  if (s.reg_d != kDValidRamAndTime) {
    throw sdk::StateError("reg_d", hex_byte(s.reg_d) + " is not 0x80: register D holds only VRT, always set");
  }
  if (s.saved_realtime_ns < 0) {
    // The source's wall clock at save time; the catch-up on load subtracts it.
    throw sdk::StateError("saved_realtime_ns", std::to_string(s.saved_realtime_ns) + " is before 1970");
  }
  if (s.divider_phase_ns >= 1'000'000'000ull) {
    throw sdk::StateError("divider_phase_ns", std::to_string(s.divider_phase_ns) +
                                                  " ns is a second or more past the last update");
  }
}

const sdk::StateDescriptor& rtc_state_descriptor() {
  static const sdk::StateDescriptor descriptor =
      sdk::StateDescriptorBuilder<RtcState>("mc146818", 1, 1)
          .field("nvram", &RtcState::nvram)
          .field("index", &RtcState::index)
          .field("reg_a", &RtcState::reg_a)
          .field("reg_b", &RtcState::reg_b)
          .field("reg_c", &RtcState::reg_c)
          .field("reg_d", &RtcState::reg_d)
          .field("divider_phase_ns", &RtcState::divider_phase_ns)
          .field("saved_realtime_ns", &RtcState::saved_realtime_ns)
          .post_load([](const RtcState& s, std::uint32_t) { validate_rtc_state(s); })
          .build();
  return descriptor;
}

}  // namespace molt::rtc
