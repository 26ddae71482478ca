// An RTC on a FakeMachine: in()/out() go through the index and data ports as
// a guest driver does, step() moves the fake clock (firing due timers).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include <molt/sdk/testing/fake_bus.hpp>

#include "rtc_device.hpp"
#include "rtc_state.hpp"

namespace molt::rtc::test {

using sdk::testing::FakeMachine;

inline constexpr std::uint64_t kMs = 1'000'000;
inline constexpr std::uint64_t kSecond = 1'000'000'000;

inline const sdk::DeviceType& rtc_type() {
  return describe_rtc_plugin()->device_types.at(0);
}

// The properties the core would pass: declared defaults, then overrides.
inline sdk::Properties rtc_properties(const std::map<std::string, sdk::PropertyValue>& overrides = {}) {
  sdk::Properties props;
  for (const sdk::PropertySpec& spec : rtc_type().properties) props.set(spec.name, *spec.default_value);
  for (const auto& [name, value] : overrides) props.set(name, value);
  return props;
}

class RtcTest : public ::testing::Test {
 protected:
  static constexpr std::uint16_t kIndexPort = 0x70;
  static constexpr std::uint16_t kDataPort = 0x71;

  void make(const std::map<std::string, sdk::PropertyValue>& overrides = {}) {
    auto& ctx = machine_.add_context("rtc", rtc_properties(overrides));
    device_ = std::unique_ptr<RtcDevice>(static_cast<RtcDevice*>(rtc_type().create(ctx).release()));
    device_->realize();
    device_->reset();
  }
  // A clock started at a fixed date, updates on whole seconds of the fake clock.
  void make_at(const std::string& start) { make({{"start-time", start}}); }

  std::uint8_t in(std::uint8_t index) {
    machine_.bus().io_write(kIndexPort, 1, index);
    return static_cast<std::uint8_t>(machine_.bus().io_read(kDataPort, 1));
  }
  void out(std::uint8_t index, std::uint8_t value) {
    machine_.bus().io_write(kIndexPort, 1, index);
    machine_.bus().io_write(kDataPort, 1, value);
  }
  void step(std::uint64_t ns) { machine_.clock().advance(ns); }
  sdk::testing::FakeIrqLine& irq() { return machine_.irq(8); }
  const RtcState& state() const { return device_->chip().state(); }

  // Sets the time with SET held, as a driver does; the data mode is B's.
  void set_time_bcd24(std::uint8_t century, std::uint8_t year, std::uint8_t month, std::uint8_t day,
                      std::uint8_t hour, std::uint8_t minute, std::uint8_t second) {
    out(kRegB, kBSet | kB24Hour);
    out(kCentury, century);
    out(kYear, year);
    out(kMonth, month);
    out(kDayOfMonth, day);
    out(kHours, hour);
    out(kMinutes, minute);
    out(kSeconds, second);
    out(kRegB, kB24Hour);
  }
  // "YYYY-MM-DDTHH:MM:SS" from the BCD 24-hour registers.
  std::string read_bcd_time() {
    char text[32];
    std::snprintf(text, sizeof text, "%02x%02x-%02x-%02xT%02x:%02x:%02x", in(kCentury), in(kYear), in(kMonth),
                  in(kDayOfMonth), in(kHours), in(kMinutes), in(kSeconds));
    return text;
  }

  FakeMachine machine_;
  std::unique_ptr<RtcDevice> device_;
};

}  // namespace molt::rtc::test
