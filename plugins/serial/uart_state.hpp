// The migrating state of a 16550A UART and its state descriptor.
#pragma once

#include <array>
#include <cstdint>

#include <molt/sdk/state.hpp>

namespace molt::serial {

inline constexpr std::size_t kFifoSize = 16;

// Register offsets from the port base.
enum Reg : unsigned {
  kRegData = 0,    // RBR (read) / THR (write); DLL when LCR.DLAB
  kRegIer = 1,     // DLM when LCR.DLAB
  kRegIirFcr = 2,  // IIR (read) / FCR (write)
  kRegLcr = 3,
  kRegMcr = 4,
  kRegLsr = 5,
  kRegMsr = 6,
  kRegScr = 7,
};

// IER bits.
inline constexpr std::uint8_t kIerRxData = 0x01;
inline constexpr std::uint8_t kIerThrEmpty = 0x02;
inline constexpr std::uint8_t kIerLineStatus = 0x04;
inline constexpr std::uint8_t kIerModemStatus = 0x08;
inline constexpr std::uint8_t kIerWritable = 0x0f;

// IIR interrupt identification (bit 0 clear = interrupt pending).
inline constexpr std::uint8_t kIirNone = 0x01;
inline constexpr std::uint8_t kIirModemStatus = 0x00;
inline constexpr std::uint8_t kIirThrEmpty = 0x02;
inline constexpr std::uint8_t kIirRxData = 0x04;
inline constexpr std::uint8_t kIirLineStatus = 0x06;
inline constexpr std::uint8_t kIirCharTimeout = 0x0c;
inline constexpr std::uint8_t kIirFifoEnabled = 0xc0;

// FCR bits.
inline constexpr std::uint8_t kFcrEnable = 0x01;
inline constexpr std::uint8_t kFcrRxReset = 0x02;
inline constexpr std::uint8_t kFcrTxReset = 0x04;
inline constexpr std::uint8_t kFcrDmaMode = 0x08;
inline constexpr std::uint8_t kFcrTriggerMask = 0xc0;
// The FCR bits the UART latches (resets are actions, bits 4-5 are reserved).
inline constexpr std::uint8_t kFcrLatched = kFcrEnable | kFcrDmaMode | kFcrTriggerMask;

// LCR bits.
inline constexpr std::uint8_t kLcrWordLengthMask = 0x03;
inline constexpr std::uint8_t kLcrTwoStopBits = 0x04;
inline constexpr std::uint8_t kLcrParity = 0x08;
inline constexpr std::uint8_t kLcrBreak = 0x40;
inline constexpr std::uint8_t kLcrDlab = 0x80;

// MCR bits.
inline constexpr std::uint8_t kMcrDtr = 0x01;
inline constexpr std::uint8_t kMcrRts = 0x02;
inline constexpr std::uint8_t kMcrOut1 = 0x04;
inline constexpr std::uint8_t kMcrOut2 = 0x08;
inline constexpr std::uint8_t kMcrLoop = 0x10;
inline constexpr std::uint8_t kMcrWritable = 0x1f;

// LSR bits.
inline constexpr std::uint8_t kLsrDataReady = 0x01;
inline constexpr std::uint8_t kLsrOverrun = 0x02;
inline constexpr std::uint8_t kLsrParity = 0x04;
inline constexpr std::uint8_t kLsrFraming = 0x08;
inline constexpr std::uint8_t kLsrBreak = 0x10;
inline constexpr std::uint8_t kLsrThrEmpty = 0x20;
inline constexpr std::uint8_t kLsrTxEmpty = 0x40;
inline constexpr std::uint8_t kLsrFifoError = 0x80;
inline constexpr std::uint8_t kLsrErrors = kLsrOverrun | kLsrParity | kLsrFraming | kLsrBreak;
// Errors that travel with a received character through the FIFO.
inline constexpr std::uint8_t kLsrCharErrors = kLsrParity | kLsrFraming | kLsrBreak;

// MSR bits: deltas in the low nibble, line states in the high nibble.
inline constexpr std::uint8_t kMsrDeltaCts = 0x01;
inline constexpr std::uint8_t kMsrDeltaDsr = 0x02;
inline constexpr std::uint8_t kMsrTrailingRi = 0x04;
inline constexpr std::uint8_t kMsrDeltaDcd = 0x08;
inline constexpr std::uint8_t kMsrDeltas = 0x0f;
inline constexpr std::uint8_t kMsrCts = 0x10;
inline constexpr std::uint8_t kMsrDsr = 0x20;
inline constexpr std::uint8_t kMsrRi = 0x40;
inline constexpr std::uint8_t kMsrDcd = 0x80;

// Everything the guest can observe, and nothing else: backends, timers and
// loggers live in the device. THRE and TEMT are not stored because the
// transmitter hands every byte to the backend at once, so both always read 1;
// DR and the FIFO-error bit are derived from the FIFO.
struct UartState {
  std::uint8_t ier = 0;
  std::uint8_t lcr = 0;
  std::uint8_t mcr = 0;
  std::uint8_t fcr = 0;  // kFcrLatched bits only
  std::uint8_t msr = 0;
  std::uint8_t scr = 0;
  std::uint8_t dll = 1;
  std::uint8_t dlm = 0;
  // LSR OE/PE/FE/BI, latched until the guest reads LSR.
  std::uint8_t line_errors = 0;
  // The receive FIFO as a ring: rx_count characters starting at rx_head. In
  // non-FIFO (16450) mode it holds at most one character, the RBR.
  std::array<std::uint8_t, kFifoSize> rx_fifo{};
  // PE/FE/BI of each character, revealed in LSR when it reaches the top.
  std::array<std::uint8_t, kFifoSize> rx_flags{};
  std::uint8_t rx_head = 0;
  std::uint8_t rx_count = 0;
  // The THR-empty interrupt is pending (cleared by an IIR read that reports
  // it, or by a THR write).
  bool thr_interrupt = false;
  // The character timeout fired and no RBR read has happened since.
  bool timeout_interrupt = false;

  bool operator==(const UartState&) const = default;
};

// "serial-16550a", version 1. Its post_load rejects out-of-range indices,
// counts and reserved register bits, naming the field.
const sdk::StateDescriptor& uart_state_descriptor();

// The same checks, usable on their own; throws sdk::StateError.
void validate_uart_state(const UartState& state);

}  // namespace molt::serial
