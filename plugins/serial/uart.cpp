#include "uart.hpp"

#include <algorithm>
#include <array>

namespace molt::serial {

// Construction only sets power-on values; the hooks run from reset() on,
// once the device has its timer and backend.
Uart::Uart(Hooks hooks) : hooks_(std::move(hooks)) {
  state_.msr = kExternalModemInputs;
}

void Uart::reset() {
  state_ = UartState{};
  // The modem inputs show their line states from power-on; no deltas yet.
  state_.msr = kExternalModemInputs;
  // THR starts empty; its interrupt waits for IER.ETBEI to be set.
  hooks_.cancel_timeout();
  update_irq();
  hooks_.receive_room_changed();
}

// ---- Register dispatch ----

std::uint8_t Uart::read(unsigned offset) {
  const bool dlab = (state_.lcr & kLcrDlab) != 0;
  switch (offset & 7) {
    case kRegData:
      return dlab ? state_.dll : read_data();
    case kRegIer:
      return dlab ? state_.dlm : state_.ier;
    case kRegIirFcr:
      return read_iir();
    case kRegLcr:
      return state_.lcr;
    case kRegMcr:
      return state_.mcr;
    case kRegLsr:
      return read_lsr();
    case kRegMsr:
      return read_msr();
    default:
      return state_.scr;
  }
}

void Uart::write(unsigned offset, std::uint8_t value) {
  const bool dlab = (state_.lcr & kLcrDlab) != 0;
  switch (offset & 7) {
    case kRegData:
      if (dlab) {
        state_.dll = value;
      } else {
        write_data(value);
      }
      break;
    case kRegIer:
      if (dlab) {
        state_.dlm = value;
      } else {
        write_ier(value);
      }
      break;
    case kRegIirFcr:
      write_fcr(value);
      break;
    case kRegLcr:
      write_lcr(value);
      break;
    case kRegMcr:
      write_mcr(value);
      break;
    case kRegScr:
      state_.scr = value;
      break;
    default:
      break;  // LSR and MSR are read-only (writes are a factory test mode)
  }
}

// ---- Reads ----

std::uint8_t Uart::read_data() {
  UartState& s = state_;
  if (s.rx_count == 0) {
    // An empty receiver still shows the last character in RBR.
    return s.rx_fifo[(s.rx_head + kFifoSize - 1) % kFifoSize];
  }
  const std::uint8_t byte = s.rx_fifo[s.rx_head];
  s.rx_head = static_cast<std::uint8_t>((s.rx_head + 1) % kFifoSize);
  --s.rx_count;
  // The next character's errors show in LSR once it is at the top.
  if (s.rx_count > 0) s.line_errors |= s.rx_flags[s.rx_head];
  s.timeout_interrupt = false;
  restart_character_timer();
  update_irq();
  hooks_.receive_room_changed();
  return byte;
}

std::uint8_t Uart::read_iir() {
  const std::uint8_t id = pending_interrupt();
  if (id == kIirThrEmpty) {
    // Reading IIR acknowledges a THR-empty interrupt it reports.
    state_.thr_interrupt = false;
    update_irq();
  }
  return static_cast<std::uint8_t>((fifo_enabled() ? kIirFifoEnabled : 0) | id);
}

std::uint8_t Uart::read_lsr() {
  std::uint8_t lsr = kLsrThrEmpty | kLsrTxEmpty | state_.line_errors;
  if (state_.rx_count > 0) lsr |= kLsrDataReady;
  if (fifo_enabled() && rx_has_flagged_char()) lsr |= kLsrFifoError;
  state_.line_errors = 0;
  update_irq();
  return lsr;
}

std::uint8_t Uart::read_msr() {
  const std::uint8_t msr = state_.msr;
  state_.msr &= static_cast<std::uint8_t>(~kMsrDeltas);
  update_irq();
  return msr;
}

// ---- Writes ----

void Uart::write_data(std::uint8_t value) {
  // Writing THR acknowledges the THR-empty interrupt ...
  state_.thr_interrupt = false;
  update_irq();
  if (loopback()) {
    push_rx(value, 0);
    restart_character_timer();
  } else {
    hooks_.transmit(value);
  }
  // ... and the transmitter takes the byte at once, so THR is empty again.
  state_.thr_interrupt = true;
  update_irq();
}

void Uart::write_ier(std::uint8_t value) {
  const std::uint8_t old = state_.ier;
  state_.ier = value & kIerWritable;
  // Enabling ETBEI while THR is empty (always, here) raises the interrupt.
  if ((state_.ier & kIerThrEmpty) && !(old & kIerThrEmpty)) state_.thr_interrupt = true;
  update_irq();
}

void Uart::write_fcr(std::uint8_t value) {
  const bool was_enabled = fifo_enabled();
  if (!(value & kFcrEnable)) {
    // Other FCR bits are programmed only together with FCR0.
    state_.fcr = 0;
    if (was_enabled) clear_rx();
  } else {
    state_.fcr = value & kFcrLatched;
    // Switching between 16450 and FIFO mode empties the FIFOs.
    if (!was_enabled || (value & kFcrRxReset)) clear_rx();
    // The transmit FIFO is always empty here, so kFcrTxReset has nothing to do.
  }
  restart_character_timer();
  update_irq();
  hooks_.receive_room_changed();
}

void Uart::write_lcr(std::uint8_t value) {
  const bool break_started = (value & kLcrBreak) && !(state_.lcr & kLcrBreak);
  state_.lcr = value;
  if (break_started && loopback()) {
    // The looped-back line goes to spacing: the receiver sees a break, a
    // zero character with BI and FE.
    push_rx(0, kLsrBreak | kLsrFraming);
    restart_character_timer();
    update_irq();
  }
}

void Uart::write_mcr(std::uint8_t value) {
  const bool was_loop = loopback();
  state_.mcr = value & kMcrWritable;
  set_modem_lines(modem_lines_now());
  update_irq();
  if (was_loop != loopback()) hooks_.receive_room_changed();
}

// ---- Receiver ----

std::size_t Uart::rx_room() const {
  if (loopback()) return 0;
  return rx_capacity() - std::min<std::size_t>(state_.rx_count, rx_capacity());
}

void Uart::receive(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  for (std::uint8_t byte : bytes) push_rx(byte, 0);
  restart_character_timer();
  update_irq();
}

void Uart::push_rx(std::uint8_t byte, std::uint8_t flags) {
  UartState& s = state_;
  if (s.rx_count < rx_capacity()) {
    const std::size_t slot = (s.rx_head + s.rx_count) % kFifoSize;
    s.rx_fifo[slot] = byte;
    s.rx_flags[slot] = flags;
    ++s.rx_count;
    if (s.rx_count == 1) s.line_errors |= flags;
    return;
  }
  s.line_errors |= kLsrOverrun;
  if (!fifo_enabled()) {
    // A 16450 overwrites RBR with the new character; a full FIFO keeps its
    // contents and loses the character in the shift register.
    s.rx_fifo[s.rx_head] = byte;
    s.rx_flags[s.rx_head] = flags;
    s.line_errors |= flags;
  }
}

void Uart::clear_rx() {
  state_.rx_count = 0;
  state_.rx_head = 0;
  state_.rx_flags.fill(0);
  state_.timeout_interrupt = false;
}

bool Uart::rx_has_flagged_char() const {
  for (std::size_t i = 0; i < state_.rx_count && i < kFifoSize; ++i) {
    if (state_.rx_flags[(state_.rx_head + i) % kFifoSize] != 0) return true;
  }
  return false;
}

unsigned Uart::rx_trigger_level() const {
  static constexpr std::array<unsigned, 4> kLevels{1, 4, 8, 14};
  return kLevels[(state_.fcr & kFcrTriggerMask) >> 6];
}

std::uint64_t Uart::character_timeout_ns() const {
  const std::uint8_t lcr = state_.lcr;
  // start bit + 5..8 data bits + parity + 1 or 2 stop bits (1.5 counts as 2)
  const std::uint64_t bits =
      1 + 5 + (lcr & kLcrWordLengthMask) + ((lcr & kLcrParity) ? 1 : 0) + ((lcr & kLcrTwoStopBits) ? 2 : 1);
  const std::uint64_t divisor = std::max<std::uint64_t>(1, (std::uint64_t{state_.dlm} << 8) | state_.dll);
  return 4 * bits * divisor * 1'000'000'000ull / kBaseBaud;
}

void Uart::restart_character_timer() {
  if (fifo_enabled() && state_.rx_count > 0 && !state_.timeout_interrupt) {
    hooks_.arm_timeout(character_timeout_ns());
  } else {
    hooks_.cancel_timeout();
  }
}

void Uart::character_timeout() {
  if (!fifo_enabled() || state_.rx_count == 0) return;
  state_.timeout_interrupt = true;
  update_irq();
}

// ---- Modem lines ----

std::uint8_t Uart::modem_lines_now() const {
  if (!loopback()) return kExternalModemInputs;
  // Loopback wires the MCR outputs to the MSR inputs.
  const std::uint8_t mcr = state_.mcr;
  std::uint8_t lines = 0;
  if (mcr & kMcrRts) lines |= kMsrCts;
  if (mcr & kMcrDtr) lines |= kMsrDsr;
  if (mcr & kMcrOut1) lines |= kMsrRi;
  if (mcr & kMcrOut2) lines |= kMsrDcd;
  return lines;
}

void Uart::set_modem_lines(std::uint8_t lines) {
  const std::uint8_t old = state_.msr & static_cast<std::uint8_t>(~kMsrDeltas);
  const std::uint8_t changed = old ^ lines;
  std::uint8_t deltas = state_.msr & kMsrDeltas;
  if (changed & kMsrCts) deltas |= kMsrDeltaCts;
  if (changed & kMsrDsr) deltas |= kMsrDeltaDsr;
  if (changed & kMsrDcd) deltas |= kMsrDeltaDcd;
  // TERI reports only the trailing edge of ring: RI going inactive.
  if ((old & kMsrRi) && !(lines & kMsrRi)) deltas |= kMsrTrailingRi;
  state_.msr = static_cast<std::uint8_t>(lines | deltas);
}

// ---- Interrupts ----

std::uint8_t Uart::pending_interrupt() const {
  const UartState& s = state_;
  if ((s.ier & kIerLineStatus) && (s.line_errors & kLsrErrors)) return kIirLineStatus;
  if (s.ier & kIerRxData) {
    if (s.timeout_interrupt) return kIirCharTimeout;
    const unsigned threshold = fifo_enabled() ? rx_trigger_level() : 1;
    if (s.rx_count >= threshold) return kIirRxData;
  }
  if ((s.ier & kIerThrEmpty) && s.thr_interrupt) return kIirThrEmpty;
  if ((s.ier & kIerModemStatus) && (s.msr & kMsrDeltas)) return kIirModemStatus;
  return kIirNone;
}

void Uart::update_irq() {
  // On a PC the UART's interrupt output reaches the PIC only through a buffer
  // enabled by OUT2; Linux's 8250 driver sets OUT2 for that reason.
  const bool asserted = pending_interrupt() != kIirNone && (state_.mcr & kMcrOut2);
  if (asserted == irq_asserted_) return;
  irq_asserted_ = asserted;
  hooks_.set_irq(asserted);
}

void Uart::refresh_after_load() {
  set_modem_lines(modem_lines_now());
  // Force the line to the loaded level even if the cached level agrees.
  irq_asserted_ = !(pending_interrupt() != kIirNone && (state_.mcr & kMcrOut2));
  update_irq();
  restart_character_timer();
  hooks_.receive_room_changed();
}

}  // namespace molt::serial
