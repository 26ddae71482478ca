#include "uart_state.hpp"

#include <string>

#include <molt/sdk/error.hpp>

namespace molt::serial {

namespace {

void require_clear(std::uint8_t value, std::uint8_t allowed, const char* field, const char* what) {
  if ((value & ~allowed) != 0) {
    throw sdk::StateError(
        field, "holds " + std::to_string(value) + ", which sets bits reserved on a 16550A (" + what + ")");
  }
}

}  // namespace

void validate_uart_state(const UartState& s) {
  require_clear(s.ier, kIerWritable, "ier", "only bits 0-3 exist");
  require_clear(s.mcr, kMcrWritable, "mcr", "only bits 0-4 exist");
  require_clear(s.fcr, kFcrLatched, "fcr", "only enable, DMA mode and trigger level are latched");
  require_clear(s.line_errors, kLsrErrors, "line_errors", "only OE, PE, FE and BI latch");
  for (std::uint8_t flags : s.rx_flags)
    require_clear(flags, kLsrCharErrors, "rx_flags", "only PE, FE and BI");
  if (s.rx_head >= kFifoSize) {
    throw sdk::StateError("rx_head", std::to_string(s.rx_head) + " is outside the 16-entry receive FIFO");
  }
  if (s.rx_count > kFifoSize) {
    throw sdk::StateError("rx_count", std::to_string(s.rx_count) + " exceeds the FIFO size 16");
  }
  if ((s.fcr & kFcrEnable) == 0 && s.rx_count > 1) {
    throw sdk::StateError(
        "rx_count",
        std::to_string(s.rx_count) + " characters, but with the FIFOs disabled the UART holds at most one");
  }
  if (s.timeout_interrupt && (s.rx_count == 0 || (s.fcr & kFcrEnable) == 0)) {
    throw sdk::StateError("timeout_interrupt", "is set although the receive FIFO is empty or disabled");
  }
}

const sdk::StateDescriptor& uart_state_descriptor() {
  static const sdk::StateDescriptor descriptor =
      sdk::StateDescriptorBuilder<UartState>("serial-16550a", 1, 1)
          .field("ier", &UartState::ier)
          .field("lcr", &UartState::lcr)
          .field("mcr", &UartState::mcr)
          .field("fcr", &UartState::fcr)
          .field("msr", &UartState::msr)
          .field("scr", &UartState::scr)
          .field("dll", &UartState::dll)
          .field("dlm", &UartState::dlm)
          .field("line_errors", &UartState::line_errors)
          .field("rx_fifo", &UartState::rx_fifo)
          .field("rx_flags", &UartState::rx_flags)
          .field("rx_head", &UartState::rx_head)
          .field("rx_count", &UartState::rx_count)
          .field("thr_interrupt", &UartState::thr_interrupt)
          .field("timeout_interrupt", &UartState::timeout_interrupt)
          .post_load([](const UartState& s, std::uint32_t) { validate_uart_state(s); })
          .build();
  return descriptor;
}

}  // namespace molt::serial
