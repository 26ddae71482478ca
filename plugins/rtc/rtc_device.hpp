// The "mc146818-rtc" device: an MC146818 on the ISA index/data ports, its
// interrupt on an IRQ line, its CMOS RAM filled with what firmware reads.
#pragma once

#include <cstdint>
#include <memory>

#include <molt/sdk/device.hpp>
#include <molt/sdk/plugin.hpp>

#include "mc146818.hpp"

namespace molt::rtc {

enum class TimeBase { Utc, Localtime };

struct RtcConfig {
  std::uint16_t iobase = 0x70;
  unsigned irq = 8;
  TimeBase base = TimeBase::Utc;
  // Calendar seconds to start at; nullopt: the host's time ("now").
  std::optional<std::int64_t> start_seconds;
};

// Reads and checks the properties; throws sdk::Error naming the device.
RtcConfig parse_rtc_config(const sdk::DeviceContext& ctx);

class RtcDevice final : public sdk::Device {
 public:
  explicit RtcDevice(sdk::DeviceContext& ctx);
  ~RtcDevice() override;

  void realize() override;
  void reset() override;
  sdk::StateBinding state() override;
  void pre_save() override;
  void post_load() override;

  Mc146818& chip() { return chip_; }
  const RtcConfig& config() const { return config_; }

 private:
  std::int64_t now() const { return static_cast<std::int64_t>(ctx_.clock().monotonic_ns()); }

  sdk::DeviceContext& ctx_;
  RtcConfig config_;
  sdk::IrqLine* irq_ = nullptr;
  std::unique_ptr<sdk::Timer> timer_;
  Mc146818 chip_;
};

const sdk::PluginInfo* describe_rtc_plugin();

}  // namespace molt::rtc
