// A long run of random register accesses, input and time: the device never
// crashes, and its invariants hold after every step.
#include <random>

#include "serial_fixture.hpp"

namespace molt::serial::test {
namespace {

TEST_F(SerialTest, RandomAccessesKeepInvariants) {
  make_piped();
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> reg(0, 7);
  std::uniform_int_distribution<int> action(0, 99);
  constexpr int kSteps = 100'000;
  std::size_t transmitted = 0;
  unsigned data_reads_with_data = 0;
  for (int step = 0; step < kSteps; ++step) {
    const int a = action(rng);
    if (a < 45) {
      const auto r = static_cast<unsigned>(reg(rng));
      const bool had_data = device_->uart().state().rx_count > 0 && !(device_->uart().state().lcr & kLcrDlab);
      in(r);
      if (r == kRegData && had_data) ++data_reads_with_data;
    } else if (a < 90) {
      const auto r = static_cast<unsigned>(reg(rng));
      // Keep LCR mostly without DLAB so data and IER see traffic too.
      std::uint8_t v = static_cast<std::uint8_t>(byte(rng));
      if (r == kRegLcr && (rng() % 4 != 0)) v &= static_cast<std::uint8_t>(~kLcrDlab);
      out(r, v);
    } else if (a < 95) {
      if (input_.available() < 256) feed(std::string(static_cast<std::size_t>(byte(rng) % 20), 'r'));
    } else {
      machine_.clock().advance(static_cast<std::uint64_t>(byte(rng)) * 10'000);
    }
    transmitted += take_output().size();

    const Uart& uart = device_->uart();
    const UartState& s = uart.state();
    ASSERT_NO_THROW(validate_uart_state(s)) << "step " << step;
    const bool expected_irq = uart.pending_interrupt() != kIirNone && (s.mcr & kMcrOut2);
    ASSERT_EQ(irq().level(), expected_irq) << "step " << step;
    ASSERT_EQ(uart.irq_asserted(), irq().level()) << "step " << step;
    // Input is held back only while the UART has no room for it.
    if (uart.rx_room() > 0 && !uart.loopback()) {
      ASSERT_NE(machine_.watched_events(input_.read_end) & EPOLLIN, 0u) << "input stalled at step " << step;
    }
  }
  // The run exercised the paths it claims to.
  EXPECT_GT(transmitted, 1000u);
  EXPECT_GT(data_reads_with_data, 1000u);
  EXPECT_GT(irq().edges(), 100u);
}

}  // namespace
}  // namespace molt::serial::test
