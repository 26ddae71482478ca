// A long run of random port writes, reads and clock steps: the chip's
// invariants hold throughout, and a copy restored from a save at random points
// reads and interrupts exactly like the original from then on.
#include <random>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "rtc_fixture.hpp"

namespace molt::rtc::test {
namespace {

class RtcRandomTest : public RtcTest {
 protected:
  // Register indices a driver touches most, plus any NVRAM byte.
  std::uint8_t random_index(std::mt19937_64& rng) {
    static constexpr std::uint8_t kHot[] = {kSeconds,    kSecondsAlarm, kMinutes,    kMinutesAlarm, kHours,
                                            kHoursAlarm, kDayOfWeek,    kDayOfMonth, kMonth,        kYear,
                                            kRegA,       kRegB,         kRegC,       kRegD,         kCentury};
    if (rng() % 4 == 0) return static_cast<std::uint8_t>(rng());  // NMI bit and all
    return kHot[rng() % std::size(kHot)];
  }
  // Mostly values that keep the clock running, sometimes anything.
  std::uint8_t random_value(std::uint8_t index, std::mt19937_64& rng) {
    const auto any = static_cast<std::uint8_t>(rng());
    if (rng() % 3 == 0) return any;
    if ((index & 0x7f) == kRegA) return static_cast<std::uint8_t>(kADivider32kHz | (any & kARateMask));
    if ((index & 0x7f) == kRegB) return static_cast<std::uint8_t>(any & ~kBSet);
    return any;
  }
  void check_invariants(const char* when, int op) {
    const RtcState& s = state();
    ASSERT_LT(s.index, kNvramSize) << when << " op " << op;
    ASSERT_EQ(s.reg_d, kDValidRamAndTime) << when << " op " << op;
    ASSERT_EQ(s.reg_c & 0x0f, 0) << when << " op " << op;
    ASSERT_EQ(s.reg_a & kAUpdateInProgress, 0) << when << " op " << op;
    ASSERT_EQ(irq().level(), (s.reg_c & kCIrqFlag) != 0) << when << " op " << op;
    const bool can_interrupt = (s.reg_b & (kBPeriodicEnable | kBAlarmEnable | kBUpdateEnable)) != 0 &&
                               (s.reg_a & kADividerMask) == kADivider32kHz;
    if (!can_interrupt) {
      ASSERT_EQ(machine_.clock().armed_timers(), 0u) << when << " op " << op;
    }
  }
};

TEST_F(RtcRandomTest, RandomRegisterTrafficKeepsTheInvariants) {
  std::mt19937_64 rng(0x6d633134);
  make_at("2006-06-17T16:01:21");
  for (int op = 0; op < 200'000; ++op) {
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        const std::uint8_t index = random_index(rng);
        machine_.bus().io_write(kIndexPort, 1, index);
        machine_.bus().io_write(kDataPort, 1, random_value(index, rng));
        break;
      }
      case 3:
      case 4:
        machine_.bus().io_write(kIndexPort, 1, random_index(rng));
        machine_.bus().io_read(kDataPort, 1);
        break;
      case 5:
        step(rng() % (5 * kMs));
        break;
      case 6:
        step(rng() % (3 * kSecond));
        break;
      default:
        if (irq().level()) in(kRegC);
        break;
    }
    check_invariants("after", op);
    if (HasFatalFailure()) return;
  }
}

TEST_F(RtcRandomTest, RestoredCopiesBehaveLikeTheOriginal) {
  std::mt19937_64 rng(0x72746331);
  make_at("2006-06-17T16:01:21");
  for (int round = 0; round < 40; ++round) {
    for (int op = 0; op < 500; ++op) {
      const std::uint8_t index = random_index(rng);
      machine_.bus().io_write(kIndexPort, 1, index);
      machine_.bus().io_write(kDataPort, 1, random_value(index, rng));
      step(rng() % (20 * kMs));
    }
    device_->pre_save();
    const sdk::StateBinding binding = device_->state();
    const std::vector<std::uint8_t> record = sdk::save_state(*binding.descriptor, binding.state);
    FakeMachine copy_machine;
    copy_machine.clock().set_realtime_base(0);  // behind the source: no time added
    auto& ctx = copy_machine.add_context("rtc", rtc_properties());
    RtcDevice copy(ctx);
    copy.realize();
    const sdk::StateBinding copy_binding = copy.state();
    sdk::load_state(*copy_binding.descriptor, copy_binding.state, record);
    copy.post_load();
    ASSERT_EQ(copy.chip().state(), state()) << "round " << round;
    for (int op = 0; op < 300; ++op) {
      const std::uint64_t ns = rng() % (50 * kMs);
      step(ns);
      copy_machine.clock().advance(ns);
      ASSERT_EQ(copy_machine.irq(8).level(), irq().level()) << "round " << round << " op " << op;
      const std::uint8_t index = random_index(rng);
      const bool write = rng() % 2 == 0;
      const std::uint8_t value = random_value(index, rng);
      for (FakeMachine* m : {&machine_, &copy_machine}) m->bus().io_write(kIndexPort, 1, index);
      if (write) {
        for (FakeMachine* m : {&machine_, &copy_machine}) m->bus().io_write(kDataPort, 1, value);
      } else {
        ASSERT_EQ(copy_machine.bus().io_read(kDataPort, 1), machine_.bus().io_read(kDataPort, 1))
            << "round " << round << " op " << op << " index " << int{index};
      }
    }
  }
}

}  // namespace
}  // namespace molt::rtc::test
