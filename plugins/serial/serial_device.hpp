// The "serial-16550a" device: a 16550A UART on ISA ports, wired to an IRQ
// line, a character-timeout timer and a host backend.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <molt/sdk/device.hpp>

#include "char_backend.hpp"
#include <molt/sdk/rate_limited_log.hpp>
#include "uart.hpp"

namespace molt::serial {

struct SerialConfig {
  std::uint16_t iobase = 0x3f8;
  unsigned irq = 4;
  BackendConfig backend;
};

// Reads and checks the properties; throws sdk::Error naming the device.
SerialConfig parse_serial_config(const sdk::DeviceContext& ctx);

class SerialDevice final : public sdk::Device {
 public:
  // Opens a backend in place of the one the properties name (tests pass a
  // pipe or a pty this way).
  using BackendFactory = std::function<std::unique_ptr<CharBackend>(sdk::DeviceContext&)>;

  explicit SerialDevice(sdk::DeviceContext& ctx, BackendFactory backend_factory = {});
  ~SerialDevice() override;

  void realize() override;
  void reset() override;
  sdk::StateBinding state() override;
  void pre_save() override;
  void post_load() override;
  sdk::FdHandover handover_fds() override;
  void handover_completed(sdk::HandoverSide side) override;

  const Uart& uart() const { return uart_; }
  CharBackend* backend() { return backend_.get(); }

 private:
  Uart::Hooks uart_hooks();

  sdk::DeviceContext& ctx_;
  BackendFactory backend_factory_;
  SerialConfig config_;
  // Handles outside the migrating State. Declared before the backend so the
  // backend (whose callbacks reach the UART) is destroyed first.
  sdk::IrqLine* irq_ = nullptr;
  std::unique_ptr<sdk::Timer> timeout_timer_;
  Uart uart_;
  std::unique_ptr<CharBackend> backend_;
};

}  // namespace molt::serial
