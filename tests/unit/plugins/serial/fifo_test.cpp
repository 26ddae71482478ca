// The receive FIFO: trigger levels, the character timeout, overrun, resets,
// loopback, and flow control towards the backend.
#include "serial_fixture.hpp"

namespace molt::serial::test {
namespace {

struct Trigger {
  std::uint8_t fcr_bits;
  unsigned level;
};

class SerialTriggerTest : public SerialTest, public ::testing::WithParamInterface<Trigger> {};

TEST_P(SerialTriggerTest, ReceivedDataInterruptAtTriggerLevel) {
  make_piped();
  out(kRegMcr, kMcrOut2);
  enable_fifo(GetParam().fcr_bits);
  out(kRegIer, kIerRxData);
  const unsigned level = GetParam().level;
  feed(std::string(level - 1, 'x'));
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  EXPECT_FALSE(irq().level());
  feed("y");
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirRxData);
  EXPECT_TRUE(irq().level());
  in(kRegData);
  if (level > 1) {
    EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone) << "one read drops below the trigger level";
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, SerialTriggerTest,
                         ::testing::Values(Trigger{0x00, 1}, Trigger{0x40, 4}, Trigger{0x80, 8},
                                           Trigger{0xc0, 14}));

class SerialFifoTest : public SerialTest {
 protected:
  void SetUp() override {
    make_piped();
    out(kRegMcr, kMcrOut2);
  }
  std::uint64_t timeout() { return device_->uart().character_timeout_ns(); }
};

TEST_F(SerialFifoTest, CharacterTimeoutAfterFourCharacterTimesBelowTrigger) {
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData);
  feed("abc");
  machine_.clock().advance(timeout() - 1);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  machine_.clock().advance(1);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
  EXPECT_TRUE(irq().level());
  // A read clears the timeout and restarts the timer for what is left.
  EXPECT_EQ(in(kRegData), 'a');
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  EXPECT_FALSE(irq().level());
  machine_.clock().advance(timeout());
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
  EXPECT_EQ(read_all_received(), "bc");
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  EXPECT_EQ(machine_.clock().armed_timers(), 0u) << "an empty FIFO has no timer running";
}

TEST_F(SerialFifoTest, NewCharactersRestartTheTimer) {
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData);
  feed("a");
  machine_.clock().advance(timeout() / 2);
  feed("b");
  machine_.clock().advance(timeout() / 2 + 10);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  machine_.clock().advance(timeout());
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
}

TEST_F(SerialFifoTest, TimeoutScalesWithTheDivisor) {
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData);
  out(kRegLcr, kLcrDlab | 0x03);
  out(kRegData, 12);  // 9600 baud
  out(kRegLcr, 0x03);
  feed("a");
  machine_.clock().advance(11 * timeout() / 12);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirNone);
  machine_.clock().advance(timeout() / 12 + 1);
  EXPECT_EQ(in(kRegIirFcr), kIirFifoEnabled | kIirCharTimeout);
}

TEST_F(SerialFifoTest, NoTimeoutIn16450Mode) {
  out(kRegIer, kIerRxData);
  feed("a");
  EXPECT_EQ(machine_.clock().armed_timers(), 0u);
  machine_.clock().advance(1'000'000'000);
  EXPECT_EQ(in(kRegIirFcr), kIirRxData);
}

TEST_F(SerialFifoTest, RxResetEmptiesTheFifoAndClearsTheTimeout) {
  enable_fifo(0xc0);
  out(kRegIer, kIerRxData);
  feed("abc");
  machine_.clock().advance(timeout());
  EXPECT_TRUE(irq().level());
  out(kRegIirFcr, kFcrEnable | kFcrRxReset | 0xc0);
  EXPECT_EQ(in(kRegLsr)&kLsrDataReady, 0);
  EXPECT_FALSE(irq().level());
  EXPECT_EQ(state().fcr, kFcrEnable | 0xc0) << "resets are actions, not latched bits";
  feed("d");
  EXPECT_EQ(in(kRegData), 'd');
}

TEST_F(SerialFifoTest, DisablingTheFifoEmptiesIt) {
  enable_fifo();
  feed("abc");
  out(kRegIirFcr, 0);
  EXPECT_EQ(in(kRegLsr)&kLsrDataReady, 0);
}

TEST_F(SerialFifoTest, LoopbackOverrunKeepsSixteenAndFlagsOverrun) {
  enable_fifo();
  out(kRegMcr, kMcrOut2 | kMcrLoop);
  for (int i = 0; i < 17; ++i) out(kRegData, static_cast<std::uint8_t>('a' + i));
  const std::uint8_t lsr = in(kRegLsr);
  EXPECT_EQ(lsr & kLsrOverrun, kLsrOverrun);
  EXPECT_EQ(in(kRegLsr)&kLsrOverrun, 0) << "reading LSR clears OE";
  EXPECT_EQ(read_all_received(), "abcdefghijklmnop");
  EXPECT_EQ(take_output(), "") << "nothing leaves in loopback";
}

TEST_F(SerialFifoTest, LoopbackWiresMcrToMsr) {
  out(kRegMcr, kMcrLoop);
  EXPECT_EQ(in(kRegMsr)&0xf0, 0);
  out(kRegMcr, kMcrLoop | kMcrDtr | kMcrRts | kMcrOut1 | kMcrOut2);
  EXPECT_EQ(in(kRegMsr), kMsrCts | kMsrDsr | kMsrRi | kMsrDcd | kMsrDeltaCts | kMsrDeltaDsr | kMsrDeltaDcd);
  EXPECT_EQ(in(kRegMsr)&kMsrDeltas, 0) << "reading MSR clears the deltas";
  out(kRegMcr, kMcrLoop | kMcrDtr | kMcrRts | kMcrOut2);  // RI falls: trailing edge
  EXPECT_EQ(in(kRegMsr), kMsrCts | kMsrDsr | kMsrDcd | kMsrTrailingRi);
  out(kRegMcr, kMcrLoop | kMcrDtr | kMcrRts | kMcrOut1 | kMcrOut2);  // RI rises: no delta
  EXPECT_EQ(in(kRegMsr)&kMsrDeltas, 0);
  out(kRegMcr, 0);
  EXPECT_EQ(in(kRegMsr)&0xf0, kMsrCts | kMsrDsr | kMsrDcd) << "the backend's lines again";
}

TEST_F(SerialFifoTest, LoopbackBreakArrivesAsBreakCharacter) {
  enable_fifo();
  out(kRegMcr, kMcrLoop);
  out(kRegLcr, kLcrBreak | 0x03);
  const std::uint8_t lsr = in(kRegLsr);
  EXPECT_EQ(lsr & (kLsrDataReady | kLsrBreak | kLsrFraming | kLsrFifoError),
            kLsrDataReady | kLsrBreak | kLsrFraming | kLsrFifoError);
  EXPECT_EQ(in(kRegData), 0);
  EXPECT_EQ(in(kRegLsr) & (kLsrBreak | kLsrFifoError), 0);
}

TEST_F(SerialFifoTest, BackendInputWaitsWhileInLoopback) {
  out(kRegMcr, kMcrLoop);
  ASSERT_EQ(::write(input_.write_end, "z", 1), 1);
  machine_.fire_fd(input_.read_end, EPOLLIN);
  EXPECT_EQ(machine_.watched_events(input_.read_end), 0u);
  EXPECT_EQ(in(kRegLsr)&kLsrDataReady, 0);
  out(kRegMcr, 0);
  EXPECT_EQ(machine_.watched_events(input_.read_end), std::uint32_t{EPOLLIN});
  machine_.fire_fd(input_.read_end, EPOLLIN);
  EXPECT_EQ(in(kRegData), 'z');
}

TEST_F(SerialFifoTest, FullFifoStopsReadingTheBackendInsteadOfDropping) {
  enable_fifo();
  const std::string text = "abcdefghijklmnopqrstuvwxyz";
  feed(text);
  EXPECT_EQ(state().rx_count, 16);
  EXPECT_EQ(machine_.watched_events(input_.read_end), 0u) << "flow control: input not watched while full";
  EXPECT_EQ(input_.available(), 10) << "the rest stays in the pipe";
  EXPECT_EQ(in(kRegLsr)&kLsrOverrun, 0);
  std::string received;
  for (int i = 0; i < 64 && received.size() < text.size(); ++i) {
    received.push_back(static_cast<char>(in(kRegData)));
    if (machine_.watched_events(input_.read_end) & EPOLLIN) machine_.fire_fd(input_.read_end, EPOLLIN);
  }
  EXPECT_EQ(received, text);
  EXPECT_EQ(in(kRegLsr) & (kLsrOverrun | kLsrDataReady), 0);
  EXPECT_EQ(machine_.watched_events(input_.read_end), std::uint32_t{EPOLLIN});
}

TEST_F(SerialFifoTest, In16450ModeOneCharacterAtATime) {
  feed("xy");
  EXPECT_EQ(state().rx_count, 1);
  EXPECT_EQ(machine_.watched_events(input_.read_end), 0u);
  EXPECT_EQ(in(kRegData), 'x');
  machine_.fire_fd(input_.read_end, EPOLLIN);
  EXPECT_EQ(in(kRegData), 'y');
  EXPECT_EQ(in(kRegLsr)&kLsrOverrun, 0);
}

TEST_F(SerialFifoTest, EndOfInputStopsWatchingIt) {
  feed("q");
  input_.close_write();
  EXPECT_EQ(in(kRegData), 'q');
  machine_.fire_fd(input_.read_end, EPOLLIN | EPOLLHUP);
  machine_.clock().advance(0);  // the deferred cleanup drops the watch
  EXPECT_FALSE(machine_.fire_fd(input_.read_end, EPOLLHUP));
  out(kRegData, '!');
  EXPECT_EQ(take_output(), "!") << "output still works after input ended";
}

TEST_F(SerialFifoTest, HangupWhileFullStillDeliversWhatWasSent) {
  enable_fifo();
  const std::string text = "0123456789abcdefghijklmnopqrstuv";  // 32 bytes
  ASSERT_EQ(::write(input_.write_end, text.data(), text.size()), 32);
  input_.close_write();
  machine_.fire_fd(input_.read_end, EPOLLIN | EPOLLHUP);
  machine_.fire_fd(input_.read_end, EPOLLIN | EPOLLHUP);  // FIFO full now
  machine_.clock().advance(0);
  EXPECT_FALSE(machine_.fire_fd(input_.read_end, EPOLLHUP)) << "a hangup must not be watched while paused";
  std::string received;
  for (int i = 0; i < 64 && (in(kRegLsr)&kLsrDataReady); ++i)
    received.push_back(static_cast<char>(in(kRegData)));
  EXPECT_EQ(received, text);
}

}  // namespace
}  // namespace molt::serial::test
