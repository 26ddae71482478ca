#include "serial_device.hpp"

#include <cstdio>

#include <spdlog/logger.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/plugin.hpp>

#include "serial_plugin.hpp"
#include "uart_state.hpp"

namespace molt::serial {

namespace {

constexpr std::uint16_t kPortCount = 8;
constexpr unsigned kMaxGsi = 23;

std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

BackendKind parse_backend_kind(const sdk::DeviceContext& ctx, const std::string& name) {
  if (name == "stdio") return BackendKind::Stdio;
  if (name == "file") return BackendKind::File;
  if (name == "unix-socket") return BackendKind::UnixSocket;
  if (name == "none") return BackendKind::None;
  throw sdk::Error(ctx.id() + ": backend \"" + name + "\" is not one of stdio, file, unix-socket, none");
}

}  // namespace

SerialConfig parse_serial_config(const sdk::DeviceContext& ctx) {
  const sdk::Properties& props = ctx.properties();
  SerialConfig config;
  const std::uint64_t iobase = props.get_uint("iobase");
  if (iobase + kPortCount > 0x10000) {
    throw sdk::Error(ctx.id() + ": iobase " + hex(iobase) +
                     " puts the UART's 8 ports beyond port 0xffff; choose an iobase of at most 0xfff8");
  }
  config.iobase = static_cast<std::uint16_t>(iobase);
  const std::uint64_t irq = props.get_uint("irq");
  if (irq > kMaxGsi) {
    throw sdk::Error(ctx.id() + ": irq " + std::to_string(irq) + " is not an IOAPIC input; choose 0 to 23");
  }
  config.irq = static_cast<unsigned>(irq);
  config.backend.kind = parse_backend_kind(ctx, props.get_string("backend"));
  config.backend.path = props.get_string("path");
  config.backend.server = props.get_bool("server");
  config.backend.append = props.get_bool("append");
  const bool needs_path =
      config.backend.kind == BackendKind::File || config.backend.kind == BackendKind::UnixSocket;
  if (needs_path && config.backend.path.empty()) {
    throw sdk::Error(ctx.id() + ": the " + props.get_string("backend") +
                     " backend needs a path; set the \"path\" property");
  }
  return config;
}

SerialDevice::SerialDevice(sdk::DeviceContext& ctx, BackendFactory backend_factory)
    : ctx_(ctx), backend_factory_(std::move(backend_factory)), uart_(uart_hooks()) {}

SerialDevice::~SerialDevice() = default;

Uart::Hooks SerialDevice::uart_hooks() {
  // Until realize() the handles do not exist; the hooks then do nothing.
  return Uart::Hooks{
      .transmit =
          [this](std::uint8_t byte) {
            if (backend_) backend_->write(std::span(&byte, 1));
          },
      .set_irq =
          [this](bool asserted) {
            if (irq_) irq_->set_level(asserted);
          },
      .arm_timeout =
          [this](std::uint64_t delay) {
            if (timeout_timer_) timeout_timer_->arm_after(delay);
          },
      .cancel_timeout =
          [this] {
            if (timeout_timer_) timeout_timer_->cancel();
          },
      .receive_room_changed =
          [this] {
            if (backend_) backend_->receive_room_changed();
          },
  };
}

void SerialDevice::realize() {
  config_ = parse_serial_config(ctx_);
  backend_ = backend_factory_ ? backend_factory_(ctx_) : open_backend(ctx_, config_.backend);
  timeout_timer_ = ctx_.create_timer([this] { uart_.character_timeout(); });
  sdk::IoOps ops;
  // The UART decodes bytes; a wider access is split as an 8-bit ISA card sees it.
  ops.read = [this](std::uint64_t offset, unsigned size) {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size && i < 8; ++i) {
      value |= std::uint64_t{uart_.read(static_cast<unsigned>(offset + i))} << (8 * i);
    }
    return value;
  };
  ops.write = [this](std::uint64_t offset, unsigned size, std::uint64_t value) {
    for (unsigned i = 0; i < size && i < 8; ++i) {
      uart_.write(static_cast<unsigned>(offset + i), static_cast<std::uint8_t>(value >> (8 * i)));
    }
  };
  ctx_.claim_ports(config_.iobase, kPortCount, std::move(ops));
  irq_ = &ctx_.claim_irq(config_.irq);
  backend_->start(CharBackend::Receiver{
      .room = [this] { return uart_.rx_room(); },
      .deliver = [this](std::span<const std::uint8_t> bytes) { uart_.receive(bytes); },
  });
}

void SerialDevice::reset() {
  uart_.reset();
}

sdk::StateBinding SerialDevice::state() {
  return sdk::StateBinding::of(uart_state_descriptor(), uart_.state());
}

// The guest is paused and its state about to be saved: output still queued
// for a slow host gets one more chance to leave, so a migration (cpr-transfer
// above all, where the new molt writes to the same socket) strands as little
// as possible in this process.
void SerialDevice::pre_save() {
  if (backend_) backend_->flush_pending();
}

sdk::FdHandover SerialDevice::handover_fds() {
  if (!backend_) return {};
  return sdk::FdHandover{.fds = backend_->handover_fds(), .blocker = {}};
}

void SerialDevice::handover_completed(sdk::HandoverSide side) {
  if (backend_) backend_->handover_completed(side);
}

// The descriptor's post_load already validated indices and counts.
void SerialDevice::post_load() {
  uart_.refresh_after_load();
}

// ---- Device type ----

namespace {

std::vector<sdk::PropertySpec> serial_properties() {
  using sdk::PropertyType;
  std::vector<sdk::PropertySpec> props;
  props.push_back({.name = "iobase",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{0x3f8},
                   .doc = "first of the UART's 8 I/O ports",
                   .max = 0x10000 - kPortCount});
  props.push_back({.name = "irq",
                   .type = PropertyType::UInt,
                   .default_value = std::uint64_t{4},
                   .doc = "IOAPIC/PIC input (GSI) of the UART's interrupt",
                   .max = kMaxGsi});
  props.push_back({.name = "backend",
                   .type = PropertyType::Enum,
                   .default_value = std::string("stdio"),
                   .doc = "where bytes go and come from: stdio, file (output only), unix-socket, none",
                   .choices = {"stdio", "file", "unix-socket", "none"},
                   .migration_relevant = false});
  props.push_back({.name = "path",
                   .type = PropertyType::Path,
                   .default_value = std::string(),
                   .doc = "file backend: the output file; unix-socket backend: the socket path",
                   .migration_relevant = false});
  props.push_back({.name = "server",
                   .type = PropertyType::Bool,
                   .default_value = true,
                   .doc = "unix-socket backend: listen on path (true) or connect to it (false)",
                   .migration_relevant = false});
  props.push_back({.name = "append",
                   .type = PropertyType::Bool,
                   .default_value = false,
                   .doc = "file backend: append to the file instead of truncating it at start",
                   .migration_relevant = false});
  return props;
}

}  // namespace

const sdk::PluginInfo* describe_serial_plugin() {
  static const sdk::PluginInfo info{{sdk::DeviceType{
      .name = "serial-16550a",
      .description = "16550A UART (PC COM port) with stdio, file, unix-socket or no backend",
      .properties = serial_properties(),
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<SerialDevice>(ctx);
      },
  }}};
  return &info;
}

}  // namespace molt::serial
