// Interrupt identification, priorities, the THR-empty rules and the IRQ line
// gated by MCR.OUT2.
#include "serial_fixture.hpp"

namespace molt::serial::test {
namespace {

class SerialIrqTest : public SerialTest {
 protected:
  void SetUp() override {
    make_piped();
    out(kRegMcr, kMcrOut2);
  }
};

TEST_F(SerialIrqTest, EnablingEtbeiWhileThrEmptyRaisesThrEmpty) {
  EXPECT_FALSE(irq().level());
  out(kRegIer, kIerThrEmpty);
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
  // That IIR read acknowledged it.
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
}

TEST_F(SerialIrqTest, ThrWriteClearsAndRaisesThrEmptyAgain) {
  out(kRegIer, kIerThrEmpty);
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
  irq().clear_counts();
  out(kRegData, 'a');
  // The byte left at once, so THR is empty again: a fresh edge.
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(irq().edges(), 1u);
  out(kRegData, 'b');
  EXPECT_EQ(irq().edges(), 2u) << "each THR write deasserts, then the empty THR asserts again";
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
}

TEST_F(SerialIrqTest, RewritingEtbeiDoesNotReRaiseButToggleDoes) {
  out(kRegIer, kIerThrEmpty);
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
  out(kRegIer, kIerThrEmpty);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  // Linux's THRE test: IER=0 then IER=THRI must interrupt again.
  out(kRegIer, 0);
  out(kRegIer, kIerThrEmpty);
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
}

TEST_F(SerialIrqTest, IrqLineNeedsOut2) {
  out(kRegIer, kIerThrEmpty);
  EXPECT_TRUE(irq().level());
  out(kRegMcr, 0);
  EXPECT_FALSE(irq().level()) << "OUT2 gates the interrupt on a PC";
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty) << "the UART itself still reports it";
  out(kRegIer, 0);
  out(kRegIer, kIerThrEmpty);
  out(kRegMcr, kMcrOut2);
  EXPECT_TRUE(irq().level());
}

TEST_F(SerialIrqTest, ReceivedDataNeedsErbfi) {
  feed("a");
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_FALSE(irq().level());
  out(kRegIer, kIerRxData);
  EXPECT_EQ(in(kRegIirFcr), kIirRxData);
  EXPECT_TRUE(irq().level());
  EXPECT_EQ(in(kRegData), 'a');
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_FALSE(irq().level());
}

TEST_F(SerialIrqTest, ModemStatusDeltaInterruptsUntilMsrRead) {
  out(kRegIer, kIerModemStatus);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  out(kRegMcr, kMcrOut2 | kMcrLoop | kMcrRts);  // looped lines change: CTS on, DSR off, ...
  EXPECT_EQ(in(kRegIirFcr), kIirModemStatus);
  EXPECT_TRUE(irq().level());
  const std::uint8_t msr = in(kRegMsr);
  EXPECT_EQ(msr & kMsrDeltas, kMsrDeltaDsr) << "DSR dropped; CTS and DCD stayed asserted";
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_FALSE(irq().level());
}

TEST_F(SerialIrqTest, LineStatusInterruptOnOverrunUntilLsrRead) {
  out(kRegIer, kIerLineStatus);
  out(kRegMcr, kMcrOut2 | kMcrLoop);
  out(kRegData, '1');
  out(kRegData, '2');  // 16450 mode: RBR overrun
  EXPECT_EQ(in(kRegIirFcr), kIirLineStatus);
  EXPECT_EQ(in(kRegLsr) & (kLsrOverrun | kLsrDataReady), kLsrOverrun | kLsrDataReady);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_EQ(in(kRegData), '2') << "a 16450 overwrites RBR on overrun";
}

// All four sources at once: IIR reports them from highest to lowest priority,
// each one disappearing as its own condition is cleared.
TEST_F(SerialIrqTest, PrioritiesLineStatusDataThrModem) {
  out(kRegIer, 0x0f);
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);      // acknowledge the one from enabling ETBEI
  out(kRegMcr, kMcrOut2 | kMcrLoop | kMcrDtr);  // looped lines: CTS drops, a modem delta
  out(kRegData, 'a');
  out(kRegData, 'b');  // overrun, and THR is empty again
  EXPECT_EQ(in(kRegIirFcr), kIirLineStatus);
  in(kRegLsr);
  EXPECT_EQ(in(kRegIirFcr), kIirRxData);
  EXPECT_EQ(in(kRegIirFcr), kIirRxData) << "reading IIR does not clear received data";
  in(kRegData);
  EXPECT_EQ(in(kRegIirFcr), kIirThrEmpty);
  EXPECT_EQ(in(kRegIirFcr), kIirModemStatus);
  EXPECT_TRUE(irq().level());
  in(kRegMsr);
  EXPECT_EQ(in(kRegIirFcr), kIirNone);
  EXPECT_FALSE(irq().level());
}

TEST_F(SerialIrqTest, CharacterTimeoutRanksWithReceivedDataAboveThr) {
  enable_fifo(0xc0);  // trigger 14
  out(kRegIer, kIerRxData | kIerThrEmpty);
  feed("ab");
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirThrEmpty);  // below trigger: only THRE
  out(kRegIer, kIerRxData);
  out(kRegIer, kIerRxData | kIerThrEmpty);  // THRE pending again
  machine_.clock().advance(device_->uart().character_timeout_ns());
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout) << "THRE waits behind the timeout";
}

TEST_F(SerialIrqTest, LineStatusOutranksCharacterTimeout) {
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData | kIerLineStatus);
  out(kRegMcr, kMcrOut2 | kMcrLoop);
  for (int i = 0; i < 17; ++i) out(kRegData, static_cast<std::uint8_t>('A' + i));
  machine_.clock().advance(device_->uart().character_timeout_ns());
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirLineStatus);
  in(kRegLsr);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
  in(kRegData);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirRxData) << "15 characters are above trigger 14";
}

}  // namespace
}  // namespace molt::serial::test
