// The 16550A register model: registers, receive FIFO, interrupt
// identification and the modem lines. It knows nothing of fds or the event
// loop; the device wires its hooks to the backend, the IRQ line and a timer.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "uart_state.hpp"

namespace molt::serial {

// Modem inputs a connected backend presents: CTS, DSR and DCD asserted, no
// ring, so guests that honour carrier or hardware flow control still talk.
inline constexpr std::uint8_t kExternalModemInputs = kMsrCts | kMsrDsr | kMsrDcd;

// The UART's input clock divided by 16: divisor 1 is 115200 baud.
inline constexpr std::uint64_t kBaseBaud = 115200;

class Uart {
 public:
  struct Hooks {
    std::function<void(std::uint8_t byte)> transmit;          // a byte leaves on the line
    std::function<void(bool asserted)> set_irq;               // called on level changes only
    std::function<void(std::uint64_t delay_ns)> arm_timeout;  // (re)start the character timer
    std::function<void()> cancel_timeout;
    std::function<void()> receive_room_changed;  // rx_room() may have grown
  };

  explicit Uart(Hooks hooks);

  // Power-on values.
  void reset();

  std::uint8_t read(unsigned offset);
  void write(unsigned offset, std::uint8_t value);

  // How many characters the receiver accepts now without an overrun. Zero in
  // loopback mode, where the line input is disconnected.
  std::size_t rx_room() const;
  // Characters from the line. Beyond rx_room() they overrun, as on hardware.
  void receive(std::span<const std::uint8_t> bytes);
  // The character timer expired.
  void character_timeout();

  // After a state load: recompute the modem lines, the IRQ level and the timer.
  void refresh_after_load();

  UartState& state() { return state_; }
  const UartState& state() const { return state_; }
  bool irq_asserted() const { return irq_asserted_; }
  bool fifo_enabled() const { return (state_.fcr & kFcrEnable) != 0; }
  bool loopback() const { return (state_.mcr & kMcrLoop) != 0; }
  // The interrupt IIR would report now (kIirNone if none).
  std::uint8_t pending_interrupt() const;
  // Four character times at the current divisor and frame format.
  std::uint64_t character_timeout_ns() const;
  unsigned rx_trigger_level() const;

 private:
  std::uint8_t read_data();
  std::uint8_t read_iir();
  std::uint8_t read_lsr();
  std::uint8_t read_msr();
  void write_data(std::uint8_t value);
  void write_ier(std::uint8_t value);
  void write_fcr(std::uint8_t value);
  void write_lcr(std::uint8_t value);
  void write_mcr(std::uint8_t value);

  std::size_t rx_capacity() const { return fifo_enabled() ? kFifoSize : 1; }
  void push_rx(std::uint8_t byte, std::uint8_t flags);
  void clear_rx();
  bool rx_has_flagged_char() const;
  void restart_character_timer();
  void set_modem_lines(std::uint8_t lines);
  std::uint8_t modem_lines_now() const;
  void update_irq();

  Hooks hooks_;
  UartState state_;
  bool irq_asserted_ = false;  // derived: last level sent to set_irq
};

}  // namespace molt::serial
