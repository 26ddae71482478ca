// Part of the SDK: every device logs guest misbehaviour through one of these.
// Warnings about guest or peer behaviour, at most `burst` per interval so a
// misbehaving guest cannot flood the host log. Suppressed messages are counted
// and reported with the next one that gets through.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include <molt/sdk/device.hpp>

namespace molt::sdk {

class RateLimitedLog {
 public:
  RateLimitedLog(spdlog::logger& log, const Clock& clock, unsigned burst = 5,
                 std::uint64_t interval_ns = 10'000'000'000ull)
      : log_(log), clock_(clock), burst_(burst), interval_ns_(interval_ns) {}

  template <class... Args>
  void warn(spdlog::format_string_t<Args...> format, Args&&... args) {
    if (!admit()) return;
    const std::string text = fmt::format(format, std::forward<Args>(args)...);
    if (suppressed_ == 0) {
      log_.warn("{}", text);
    } else {
      log_.warn("{} ({} similar messages suppressed)", text, suppressed_);
      suppressed_ = 0;
    }
  }

  spdlog::logger& logger() { return log_; }

 private:
  bool admit() {
    const std::uint64_t now = clock_.monotonic_ns();
    if (now - window_start_ >= interval_ns_ || !started_) {
      started_ = true;
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ < burst_) {
      ++in_window_;
      return true;
    }
    ++suppressed_;
    return false;
  }

  spdlog::logger& log_;
  const Clock& clock_;
  unsigned burst_;
  std::uint64_t interval_ns_;
  bool started_ = false;
  std::uint64_t window_start_ = 0;
  unsigned in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace molt::sdk
