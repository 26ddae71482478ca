#include "rtc_device.hpp"

#include <ctime>

#include <molt/sdk/error.hpp>

#include "calendar.hpp"
#include "cmos_layout.hpp"

namespace molt::rtc {

namespace {

constexpr std::uint16_t kPortCount = 2;  // index, data
constexpr unsigned kMaxGsi = 23;

// The host's wall time as the guest calendar counts it: UTC, or local time
// with the host zone's offset at that instant.
std::int64_t host_calendar_seconds(std::int64_t unix_seconds, TimeBase base) {
  if (base == TimeBase::Utc) return unix_seconds;
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm local{};
  if (::localtime_r(&t, &local) == nullptr) return unix_seconds;
  return unix_seconds + local.tm_gmtoff;
}

}  // namespace

RtcConfig parse_rtc_config(const sdk::DeviceContext& ctx) {
  const sdk::Properties& props = ctx.properties();
  RtcConfig config;
  const std::uint64_t iobase = props.get_uint("iobase");
  if (iobase + kPortCount > 0x10000) {
    throw sdk::Error(ctx.id() + ": iobase " + std::to_string(iobase) +
                     " puts the RTC's 2 ports beyond port 0xffff; choose at most 0xfffe (PCs use 0x70)");
  }
  config.iobase = static_cast<std::uint16_t>(iobase);
  const std::uint64_t irq = props.get_uint("irq");
  if (irq > kMaxGsi) {
    throw sdk::Error(ctx.id() + ": irq " + std::to_string(irq) +
                     " is not an IOAPIC input; choose 0 to 23 (PCs use 8)");
  }
  config.irq = static_cast<unsigned>(irq);
  const std::string& base = props.get_string("base");
  if (base == "utc") {
    config.base = TimeBase::Utc;
  } else if (base == "localtime") {
    config.base = TimeBase::Localtime;
  } else {
    throw sdk::Error(ctx.id() + ": base \"" + base + "\" is not one of utc, localtime");
  }
  const std::string& start = props.get_string("start-time");
  if (start != "now") {
    const auto parsed = parse_iso8601(start);
    if (!parsed) {
      throw sdk::Error(ctx.id() + ": start-time \"" + start +
                       "\" is neither \"now\" nor a date-time like \"2006-06-17T16:01:21\"");
    }
    config.start_seconds = seconds_from_datetime(*parsed);
  }
  return config;
}

RtcDevice::RtcDevice(sdk::DeviceContext& ctx)
    : ctx_(ctx),
      chip_(Mc146818::Hooks{
          .set_irq =
              [this](bool asserted) {
                if (irq_) irq_->set_level(asserted);
              },
          .arm_timer =
              [this](std::int64_t deadline) {
                if (timer_) timer_->arm_at(static_cast<std::uint64_t>(std::max<std::int64_t>(deadline, 0)));
              },
          .cancel_timer =
              [this] {
                if (timer_) timer_->cancel();
              },
      }) {}

RtcDevice::~RtcDevice() = default;

void RtcDevice::realize() {
  config_ = parse_rtc_config(ctx_);
  timer_ = ctx_.create_timer([this] { chip_.timer_expired(now()); });
  sdk::IoOps ops;
  // Byte registers; a wider access is split as an 8-bit ISA device sees it.
  // Port 0x70 is write-only on PCs: reads float high.
  ops.read = [this](std::uint64_t offset, unsigned size) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size && i < 8; ++i) {
      const std::uint8_t byte = offset + i == 1 ? chip_.read_data(now()) : 0xff;
      value |= std::uint64_t{byte} << (8 * i);
    }
    return value;
  };
  ops.write = [this](std::uint64_t offset, unsigned size, std::uint64_t value) {
    for (unsigned i = 0; i < size && i < 8; ++i) {
      const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
      if (offset + i == 0) chip_.write_index(byte);
      if (offset + i == 1) chip_.write_data(byte, now());
    }
  };
  ctx_.claim_ports(config_.iobase, kPortCount, std::move(ops));
  irq_ = &ctx_.claim_irq(config_.irq);

  // Power-on with a good battery: firmware bytes, then the clock.
  fill_firmware_bytes(chip_.state().nvram, ctx_.machine_info());
  if (config_.start_seconds) {
    chip_.set_time(*config_.start_seconds, now(), 0);
  } else {
    const std::int64_t realtime = ctx_.clock().realtime_ns();
    const std::int64_t unix_seconds = floor_div(realtime, kNsPerSecond);
    chip_.set_time(host_calendar_seconds(unix_seconds, config_.base), now(),
                   realtime - unix_seconds * kNsPerSecond);
  }
}

void RtcDevice::reset() {
  chip_.reset(now());
}

sdk::StateBinding RtcDevice::state() {
  return sdk::StateBinding::of(rtc_state_descriptor(), chip_.state());
}

void RtcDevice::pre_save() {
  chip_.prepare_save(now(), ctx_.clock().realtime_ns());
}

// The descriptor's post_load already validated the loaded State.
void RtcDevice::post_load() {
  chip_.restore(now(), ctx_.clock().realtime_ns());
}

// ---- Device type ----

namespace {

std::vector<sdk::PropertySpec> rtc_properties() {
  using sdk::PropertyType;
  std::vector<sdk::PropertySpec> props;
  props.push_back({.name = "iobase",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{0x70},
                   .doc = "the index port; the data port follows it",
                   .max = 0x10000 - kPortCount});
  props.push_back({.name = "irq",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{8},
                   .doc = "IOAPIC/PIC input (GSI) of the RTC's interrupt",
                   .max = kMaxGsi});
  props.push_back({.name = "base",
                   .type = PropertyType::Enum,
                   .default_value = std::string("utc"),
                   .doc = "what the guest clock shows at start: the host's UTC time or its local time",
                   .choices = {"utc", "localtime"},
                   .migration_relevant = false});
  props.push_back(
      {.name = "start-time",
       .type = PropertyType::String,
       .default_value = std::string("now"),
       .doc = "\"now\" (the host's time) or a fixed date-time to start at, e.g. \"2006-06-17T16:01:21\"",
       .migration_relevant = false});
  return props;
}

}  // namespace

const sdk::PluginInfo* describe_rtc_plugin() {
  static const sdk::PluginInfo info{{sdk::DeviceType{
      .name = "mc146818-rtc",
      .description = "MC146818 real-time clock with 128 bytes of CMOS RAM (PC ports 0x70/0x71, IRQ 8)",
      .properties = rtc_properties(),
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<RtcDevice>(ctx);
      },
  }}};
  return &info;
}

}  // namespace molt::rtc
