// Register semantics of the 16550A: reset values, DLAB and the divisor latch,
// masks, transmit and receive through the data register, Linux's probe.
#include "serial_fixture.hpp"

namespace molt::serial::test {
namespace {

TEST_F(SerialTest, PowerOnValues) {
  make_piped();
  EXPECT_EQ(in(kRegIer), 0);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_EQ(in(kRegLcr), 0);
  EXPECT_EQ(in(kRegMcr), 0);
  EXPECT_EQ(in(kRegLsr), kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_EQ(in(kRegMsr), kMsrCts | kMsrDsr | kMsrDcd);
  EXPECT_EQ(in(kRegScr), 0);
  EXPECT_FALSE(irq().level());
}

TEST_F(SerialTest, ScratchRegisterHoldsAnyByte) {
  make_piped();
  for (unsigned v : {0x00u, 0x55u, 0xaau, 0xffu}) {
    out(kRegScr, static_cast<std::uint8_t>(v));
    EXPECT_EQ(in(kRegScr), v);
  }
}

TEST_F(SerialTest, DlabSwitchesOffsetsZeroAndOneToTheDivisorLatch) {
  make_piped();
  out(kRegIer, 0x05);
  out(kRegLcr, kLcrDlab | 0x03);
  out(kRegData, 0x0c);
  out(kRegIer, 0x01);
  EXPECT_EQ(in(kRegData), 0x0c);
  EXPECT_EQ(in(kRegIer), 0x01);
  EXPECT_EQ(state().dll, 0x0c);
  EXPECT_EQ(state().dlm, 0x01);
  EXPECT_EQ(take_output(), "") << "a DLL write must not transmit";
  out(kRegLcr, 0x03);
  EXPECT_EQ(in(kRegIer), 0x05) << "IER kept its value under the latch";
  // 8N1 at divisor 0x10c: four characters of 10 bits each.
  EXPECT_EQ(device_->uart().character_timeout_ns(), 4ull * 10 * 0x10c * 1'000'000'000ull / 115200);
}

TEST_F(SerialTest, TimeoutFollowsFrameFormat) {
  make_piped();
  out(kRegLcr, 0x00);  // 5 data bits, 1 stop, no parity: 7 bits
  EXPECT_EQ(device_->uart().character_timeout_ns(), 4ull * 7 * 1'000'000'000ull / 115200);
  out(kRegLcr, 0x0f);  // 8 data bits, 2 stop, parity: 12 bits
  EXPECT_EQ(device_->uart().character_timeout_ns(), 4ull * 12 * 1'000'000'000ull / 115200);
}

TEST_F(SerialTest, ReservedBitsReadAsZero) {
  make_piped();
  out(kRegIer, 0xff);
  EXPECT_EQ(in(kRegIer), 0x0f);
  out(kRegIer, 0);
  out(kRegMcr, 0xff);
  EXPECT_EQ(in(kRegMcr), 0x1f);
}

TEST_F(SerialTest, LsrAndMsrIgnoreWrites) {
  make_piped();
  out(kRegLsr, 0x1f);
  out(kRegMsr, 0x0f);
  EXPECT_EQ(in(kRegLsr), kLsrThrEmpty | kLsrTxEmpty);
  EXPECT_EQ(in(kRegMsr), kMsrCts | kMsrDsr | kMsrDcd);
}

TEST_F(SerialTest, ThrWritesReachTheBackendAtOnce) {
  make_piped();
  for (char c : std::string("hello\r\n")) out(kRegData, static_cast<std::uint8_t>(c));
  EXPECT_EQ(take_output(), "hello\r\n");
  EXPECT_EQ(in(kRegLsr) & (kLsrThrEmpty | kLsrTxEmpty), kLsrThrEmpty | kLsrTxEmpty);
}

TEST_F(SerialTest, ReceivedBytesSetDataReadyUntilRead) {
  make_piped();
  feed("x");
  EXPECT_EQ(in(kRegLsr)&kLsrDataReady, kLsrDataReady);
  EXPECT_EQ(in(kRegData), 'x');
  EXPECT_EQ(in(kRegLsr)&kLsrDataReady, 0);
}

TEST_F(SerialTest, WideAccessesSplitIntoBytes) {
  make_piped();
  out(kRegLcr, 0x03);
  out(kRegMcr, 0x0b);
  EXPECT_EQ(machine_.bus().io_read(kBase + kRegLcr, 2), 0x0b03u);
  machine_.bus().io_write(kBase + kRegMcr, 2, 0x0000);  // MCR and LSR (ignored)
  EXPECT_EQ(in(kRegMcr), 0);
}

TEST_F(SerialTest, FcrEnablesFifosAndIirShowsIt) {
  make_piped();
  EXPECT_EQ(in(kRegIirFcr)&kIirFifoEnabled, 0);
  enable_fifo(0xc0);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  EXPECT_EQ(device_->uart().rx_trigger_level(), 14u);
  out(kRegIirFcr, 0x00);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
}

TEST_F(SerialTest, FcrBitsNeedFifoEnableInTheSameWrite) {
  make_piped();
  out(kRegIirFcr, 0xc0);  // trigger 14 without FCR0: not programmed
  EXPECT_EQ(state().fcr, 0);
  EXPECT_EQ(in(kRegIirFcr)&kIirFifoEnabled, 0);
}

// The probe of Linux's 8250 driver (autoconfig) must find a 16550A.
TEST_F(SerialTest, LinuxAutoconfigFindsA16550A) {
  make_piped();
  out(kRegIer, 0);
  EXPECT_EQ(in(kRegIer)&0x0f, 0);
  out(kRegIer, 0x0f);
  EXPECT_EQ(in(kRegIer)&0x0f, 0x0f);
  out(kRegIer, 0);
  // Loopback test: RTS and OUT2 looped to CTS and DCD.
  out(kRegMcr, kMcrLoop | 0x0a);
  EXPECT_EQ(in(kRegMsr)&0xf0, 0x90);
  out(kRegMcr, 0);
  // FIFO probe: IIR bits 7-6 read 3 on a 16550A.
  out(kRegIirFcr, kFcrEnable);
  EXPECT_EQ(in(kRegIirFcr) >> 6, 3);
  // No EFR: with LCR=0xbf offset 2 still reads IIR, which is non-zero.
  out(kRegLcr, 0xbf);
  EXPECT_NE(in(kRegIirFcr), 0);
  out(kRegLcr, 0);
  // No 64-byte FIFO (16750): FCR bit 5 does not show in IIR.
  out(kRegIirFcr, kFcrEnable | 0x20);
  EXPECT_EQ(in(kRegIirFcr)&0x20, 0);
}

}  // namespace
}  // namespace molt::serial::test
