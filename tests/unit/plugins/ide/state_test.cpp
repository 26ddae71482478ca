// State: round trips in the middle of PIO and DMA, the frozen version-1
// stream, and loads refused with the field named.
#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "ide_fixture.hpp"
#include "state_golden.hpp"

namespace molt::ide::test {
namespace {

class StateTest : public IdeTest {
 protected:
  std::vector<std::uint8_t> save() {
    const sdk::StateBinding binding = device_->state();
    return sdk::save_state(*binding.descriptor, binding.state);
  }
  // A second controller on the same image in another machine.
  void make_destination(const std::map<std::string, sdk::PropertyValue>& overrides) {
    auto& inner = dest_machine_.add_context("ide0", ide_properties(overrides));
    dest_context_ = std::make_unique<PciContext>(inner, dest_bus_);
    dest_ = std::make_unique<PiixIdeDevice>(*dest_context_);
    dest_->realize();
  }
  void load(const std::vector<std::uint8_t>& record) {
    const sdk::StateBinding binding = dest_->state();
    sdk::load_state(*binding.descriptor, binding.state, record);
    dest_->post_load();
  }

  FakeMachine dest_machine_{32 << 20};
  OneFunctionPciBus dest_bus_;
  std::unique_ptr<PciContext> dest_context_;
  std::unique_ptr<PiixIdeDevice> dest_;
};

TEST_F(StateTest, DescriptorIsNamedAndVersioned) {
  make_disk();
  const sdk::StateBinding binding = device_->state();
  ASSERT_NE(binding.descriptor, nullptr);
  EXPECT_EQ(binding.descriptor->name(), "piix3-ide");
  EXPECT_EQ(binding.descriptor->version(), 1u);
}

TEST_F(StateTest, MidPioReadRoundTripsAndContinues) {
  make_disk();
  out(kRegSectorCount, 4);
  out(kRegStatusCommand, kCmdSetMultipleMode);
  lba28(60, 10);
  out(kRegStatusCommand, kCmdReadMultiple);
  const auto first = read_data(1000);
  make_destination({{"primary-master", image_}});
  load(save());
  EXPECT_EQ(dest_->ide_state(), device_->ide_state());
  EXPECT_TRUE(dest_machine_.irq(14).level() == irq());
  // The destination carries on where the source stopped.
  std::vector<std::uint8_t> rest;
  for (std::size_t i = 1000; i < 10 * 512; i += 2) {
    const auto v = dest_machine_.bus().io_read(kCmd, 2);
    rest.push_back(static_cast<std::uint8_t>(v));
    rest.push_back(static_cast<std::uint8_t>(v >> 8));
    if ((i + 2) % 2048 == 0) dest_machine_.bus().io_read(kCmd + kRegStatusCommand, 1);
  }
  std::vector<std::uint8_t> all = first;
  all.insert(all.end(), rest.begin(), rest.end());
  EXPECT_EQ(all, expected_sectors(60, 10));
  EXPECT_EQ(dest_machine_.bus().io_read(kCmd + kRegStatusCommand, 1), kStatusIdle);
}

TEST_F(StateTest, PendingDmaAndBarRoundTrip) {
  make_disk();
  prd(0, kBufferAt, 1024, true);
  lba28(0, 2);
  out(kRegStatusCommand, kCmdReadDma);
  make_destination({{"primary-master", image_}});
  load(save());
  EXPECT_EQ(dest_->ide_state(), device_->ide_state());
  // BAR4 is mapped again on the destination, bus mastering on: start it there.
  for (unsigned i = 0; i < 16; ++i)
    dest_machine_.memory().bytes()[kPrdAt + i] = machine_.memory().bytes()[kPrdAt + i];
  dest_machine_.bus().io_write(kBm + kBmPrdTable, 4, kPrdAt);
  dest_machine_.bus().io_write(kBm + kBmCommand, 1, kBmCmdStart | kBmCmdToMemory);
  auto& mem = dest_machine_.memory().bytes();
  EXPECT_EQ(std::vector<std::uint8_t>(mem.begin() + kBufferAt, mem.begin() + kBufferAt + 1024),
            expected_sectors(0, 2));
  EXPECT_TRUE(dest_machine_.irq(14).level());
}

// A save while the guest has selected the other (absent) drive must load the
// pending block from the drive that owns the command, not the selected one.
TEST_F(StateTest, PendingDmaOfTheUnselectedDriveRoundTrips) {
  make_disk();
  prd(0, kBufferAt, 1024, true);
  lba28(0, 2);
  out(kRegStatusCommand, kCmdReadDma);
  out(kRegDevice, 0xf0);  // select the slave position, where no drive sits
  make_destination({{"primary-master", image_}});
  load(save());
  EXPECT_EQ(dest_->ide_state(), device_->ide_state());
  dest_machine_.bus().io_write(kCmd + kRegDevice, 1, 0xe0);  // back to the master
  for (unsigned i = 0; i < 16; ++i)
    dest_machine_.memory().bytes()[kPrdAt + i] = machine_.memory().bytes()[kPrdAt + i];
  dest_machine_.bus().io_write(kBm + kBmPrdTable, 4, kPrdAt);
  dest_machine_.bus().io_write(kBm + kBmCommand, 1, kBmCmdStart | kBmCmdToMemory);
  auto& mem = dest_machine_.memory().bytes();
  EXPECT_EQ(std::vector<std::uint8_t>(mem.begin() + kBufferAt, mem.begin() + kBufferAt + 1024),
            expected_sectors(0, 2));
}

TEST_F(StateTest, GoldenVersion1StreamStillLoads) {
  image_ = make_image("golden.img", 64);
  make_destination({{"primary-master", image_}});
  load(kGoldenIdeV1);
  const IdeState& s = dest_->ide_state();
  EXPECT_EQ(s.primary.lba_low, 0x21);
  EXPECT_EQ(s.primary.hob_lba_low, 0x11);
  EXPECT_EQ(s.primary.bm_prd_table, 0x10000u);
  EXPECT_EQ(s.primary.master.transfer, Transfer::PioIn);
  EXPECT_EQ(s.primary.master.lba, 8u);
  EXPECT_EQ(s.primary.master.sectors_left, 3u);
  EXPECT_EQ(s.primary.master.block_sectors, 2u);
  EXPECT_EQ(s.primary.master.buffer.size(), 1024u);
  EXPECT_EQ(s.primary.master.buffer_pos, 6u);
  EXPECT_EQ(s.primary.master.buffer[5], 0x55);
  EXPECT_EQ(s.primary.master.multiple_sectors, 2u);
  EXPECT_FALSE(s.primary.master.write_cache);
  EXPECT_EQ(s.secondary.control, kControlNien);
  // And the codec writes that state back byte for byte.
  const sdk::StateBinding binding = dest_->state();
  EXPECT_EQ(sdk::save_state(*binding.descriptor, binding.state), kGoldenIdeV1);
}

class BadStateTest : public StateTest {
 protected:
  void expect_refused(const std::function<void(IdeState&)>& corrupt, const std::string& field) {
    make_disk(64);
    make_destination({{"primary-master", image_}});
    const IdeState before = dest_->ide_state();
    corrupt(const_cast<IdeState&>(device_->ide_state()));
    const std::vector<std::uint8_t> record = save();
    try {
      load(record);
      FAIL() << "a state with a bad " << field << " was loaded";
    } catch (const sdk::StateError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_EQ(dest_->ide_state(), before);
  }
  static void pio_in(DriveState& d) {
    d.transfer = Transfer::PioIn;
    d.block_sectors = 1;
    d.lba = 0;
    d.sectors_left = 1;
    d.buffer.assign(512, 0);
  }
};

TEST_F(BadStateTest, UnknownTransferKind) {
  expect_refused([](IdeState& s) { s.primary.master.transfer = static_cast<Transfer>(9); }, "transfer");
}
TEST_F(BadStateTest, BufferPositionOutsideTheBlock) {
  expect_refused(
      [](IdeState& s) {
        pio_in(s.primary.master);
        s.primary.master.buffer_pos = 512;
      },
      "buffer_pos");
}
TEST_F(BadStateTest, BufferOfTheWrongSize) {
  expect_refused(
      [](IdeState& s) {
        pio_in(s.primary.master);
        s.primary.master.buffer.resize(4096);
      },
      "buffer");
}
TEST_F(BadStateTest, TransferBeyondTheDisk) {
  expect_refused(
      [](IdeState& s) {
        pio_in(s.primary.master);
        s.primary.master.lba = 64;
      },
      "lba");
}
TEST_F(BadStateTest, TransferOnAnEmptyPosition) {
  expect_refused([](IdeState& s) { pio_in(s.secondary.slave); }, "secondary.slave.transfer");
}
TEST_F(BadStateTest, MultipleCountNotAPowerOfTwo) {
  expect_refused([](IdeState& s) { s.primary.master.multiple_sectors = 6; }, "multiple_sectors");
}
TEST_F(BadStateTest, BlockLargerThanTheDmaBuffer) {
  expect_refused(
      [](IdeState& s) {
        pio_in(s.primary.master);
        s.primary.master.transfer = Transfer::DmaIn;
        s.primary.master.block_sectors = 200;
      },
      "block_sectors");
}
TEST_F(BadStateTest, ReservedBusMasterBits) {
  expect_refused([](IdeState& s) { s.secondary.bm_command = 0x80; }, "bm_command");
}
TEST_F(BadStateTest, MisalignedPrdTable) {
  expect_refused([](IdeState& s) { s.primary.bm_prd_table = 0x1002; }, "bm_prd_table");
}

}  // namespace
}  // namespace molt::ide::test
