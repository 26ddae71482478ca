// Bus-master DMA: READ/WRITE DMA through PRD tables that fit, are short,
// long, empty or endless, and the gates (direction, PCI bus master bit).
#include "ide_fixture.hpp"

namespace molt::ide::test {
namespace {

class DmaTest : public IdeTest {
 protected:
  void read_dma(std::uint32_t lba, std::uint8_t count) {
    lba28(lba, count);
    out(kRegStatusCommand, kCmdReadDma);
  }
  void write_dma(std::uint32_t lba, std::uint8_t count) {
    lba28(lba, count);
    out(kRegStatusCommand, kCmdWriteDma);
  }
};

TEST_F(DmaTest, ReadIntoOneRegion) {
  make_disk();
  prd(0, kBufferAt, 4 * 512, true);
  read_dma(20, 4);
  EXPECT_EQ(alt_status(), kStatusIdle | kStatusDrq);  // waits for the engine
  EXPECT_FALSE(irq());
  bm_start(true);
  EXPECT_EQ(ram(kBufferAt, 2048), expected_sectors(20, 4));
  EXPECT_TRUE(irq());
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt | kBmStatusError), kBmStatusInterrupt);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  // The pages the device wrote are marked dirty for migration.
  const auto& dirty = machine_.memory().dirty();
  ASSERT_FALSE(dirty.empty());
  EXPECT_EQ(dirty.front().first, kBufferAt);
  // Interrupt is write-one-to-clear; the stop bit clears the engine.
  machine_.bus().io_write(kBm + kBmStatus, 1, kBmStatusInterrupt);
  EXPECT_EQ(bm_status() & kBmStatusInterrupt, 0);
  machine_.bus().io_write(kBm + kBmCommand, 1, 0);
  EXPECT_EQ(bm_status() & kBmStatusActive, 0);
}

TEST_F(DmaTest, EngineStartedBeforeTheCommandAndScatteredRegions) {
  make_disk();
  // Odd-sized regions that split sectors: 700 + 324 + 1024 bytes.
  prd(0, kBufferAt, 700, false);
  prd(1, kBufferAt + 0x10000, 324, false);
  prd(2, kBufferAt + 0x20000, 1024, true);
  bm_start(true);
  EXPECT_EQ(bm_status() & kBmStatusActive, kBmStatusActive);
  read_dma(7, 4);
  const auto want = expected_sectors(7, 4);
  EXPECT_EQ(ram(kBufferAt, 700), std::vector<std::uint8_t>(want.begin(), want.begin() + 700));
  EXPECT_EQ(ram(kBufferAt + 0x10000, 324),
            std::vector<std::uint8_t>(want.begin() + 700, want.begin() + 1024));
  EXPECT_EQ(ram(kBufferAt + 0x20000, 1024), std::vector<std::uint8_t>(want.begin() + 1024, want.end()));
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), kBmStatusInterrupt);
}

TEST_F(DmaTest, WriteFromMemoryReachesTheImage) {
  make_disk();
  auto& mem = machine_.memory().bytes();
  for (unsigned i = 0; i < 3 * 512; ++i) mem[kBufferAt + i] = static_cast<std::uint8_t>(i * 5 + 3);
  prd(0, kBufferAt, 3 * 512, true);
  write_dma(40, 3);
  bm_start(false);
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  for (unsigned s = 0; s < 3; ++s) EXPECT_EQ(image_sector(image_, 40 + s), ram(kBufferAt + s * 512, 512));
  EXPECT_EQ(image_sector(image_, 43), expected_sectors(43, 1));
}

TEST_F(DmaTest, ByteCountZeroMeans64KiB) {
  make_disk(1024);
  prd(0, kBufferAt, 0, true);
  read_dma(0, 128);
  bm_start(true);
  EXPECT_EQ(ram(kBufferAt, 0x10000), expected_sectors(0, 128));
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), kBmStatusInterrupt);
}

TEST_F(DmaTest, Ext48ReadAcrossSeveralBlocks) {
  make_disk(2048);
  for (unsigned i = 0; i < 16; ++i) prd(i, static_cast<std::uint32_t>(kBufferAt + i * 0x10000), 0, i == 15);
  lba48(100, 1000);  // 500 KiB: several internal blocks
  out(kRegStatusCommand, kCmdReadDmaExt);
  bm_start(true);
  EXPECT_EQ(ram(kBufferAt, 1000 * 512), expected_sectors(100, 1000));
  // A long table: the transfer ended inside descriptor 7; the engine stays active.
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), kBmStatusActive | kBmStatusInterrupt);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
}

TEST_F(DmaTest, ShortTableStopsAndTheTransferResumes) {
  make_disk();
  prd(0, kBufferAt, 512, true);  // one sector of room for two
  read_dma(50, 2);
  bm_start(true);
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt | kBmStatusError), 0);
  EXPECT_FALSE(irq());
  EXPECT_EQ(alt_status(), kStatusIdle | kStatusDrq);  // the drive still wants to send
  EXPECT_EQ(ram(kBufferAt, 512), expected_sectors(50, 1));
  // The host restarts the engine with a table for the rest.
  machine_.bus().io_write(kBm + kBmCommand, 1, kBmCmdToMemory);
  prd(0, kBufferAt + 0x1000, 512, true, kPrdAt + 0x100);
  bm_start(true, kPrdAt + 0x100);
  EXPECT_EQ(ram(kBufferAt + 0x1000, 512), expected_sectors(51, 1));
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
}

TEST_F(DmaTest, LongTableLeavesTheEngineActive) {
  make_disk();
  prd(0, kBufferAt, 4096, true);
  read_dma(0, 2);
  bm_start(true);
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), kBmStatusActive | kBmStatusInterrupt);
  EXPECT_EQ(ram(kBufferAt + 1024, 16), std::vector<std::uint8_t>(16, 0));  // nothing beyond the transfer
}

TEST_F(DmaTest, EmptyTableOutsideRamIsABusError) {
  make_disk();
  read_dma(0, 1);
  bm_start(true, 0xf0000000u);
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusError | kBmStatusInterrupt),
            kBmStatusError | kBmStatusInterrupt);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
}

TEST_F(DmaTest, RegionOutsideRamIsABusError) {
  make_disk();
  prd(0, 0xf0000000u, 512, true);
  read_dma(0, 1);
  bm_start(true);
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusError), kBmStatusError);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
}

TEST_F(DmaTest, EndlessTableOfTinyRegionsIsBoundedByTheTransfer) {
  make_disk();
  // 2-byte regions, no end bit anywhere in 64 KiB of descriptors.
  for (unsigned i = 0; i < kMaxPrdDescriptors; ++i)
    prd(i, static_cast<std::uint32_t>(kBufferAt + 2 * i), 2, false);
  read_dma(9, 1);  // 256 descriptors carry it
  bm_start(true);
  EXPECT_EQ(ram(kBufferAt, 512), expected_sectors(9, 1));
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), kBmStatusActive | kBmStatusInterrupt);
}

TEST_F(DmaTest, EndlessTableBeyondTheDescriptorCapStops) {
  make_disk();
  // Every descriptor points at the same two bytes and none ends the table:
  // 8192 of them carry 16 KiB of a 64 KiB transfer, then the walk gives up.
  auto& mem = machine_.memory().bytes();
  for (std::uint64_t at = kPrdAt; at < kPrdAt + 0x20000; at += 8) {
    mem[at] = 0x00;
    mem[at + 1] = 0x00;
    mem[at + 2] = 0x10;  // 0x100000
    mem[at + 3] = 0x00;
    mem[at + 4] = 2;
    mem[at + 5] = mem[at + 6] = mem[at + 7] = 0;
  }
  read_dma(0, 128);
  bm_start(true);
  EXPECT_EQ(bm_status() & (kBmStatusActive | kBmStatusInterrupt), 0);
  EXPECT_EQ(alt_status(), kStatusIdle | kStatusDrq);  // the drive waits; the host must reset it
  control(kControlSrst);
  control(0);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
}

TEST_F(DmaTest, WrongDirectionAborts) {
  make_disk();
  prd(0, kBufferAt, 512, true);
  read_dma(0, 1);
  bm_start(false);  // engine set to read memory for a disk read
  EXPECT_EQ(bm_status() & kBmStatusError, kBmStatusError);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
}

TEST_F(DmaTest, NothingMovesUntilBusMasteringIsEnabled) {
  image_ = make_image("disk.img", 64);
  make({{"primary-master", image_}}, false);
  pci_bus_.write(0x20, 4, kBm);
  pci_bus_.write(0x04, 2, sdk::pci_reg::kCommandIo);
  prd(0, kBufferAt, 512, true);
  read_dma(3, 1);
  bm_start(true);
  EXPECT_EQ(ram(kBufferAt, 512), std::vector<std::uint8_t>(512, 0));
  EXPECT_EQ(bm_status() & kBmStatusActive, kBmStatusActive);
  pci_bus_.write(0x04, 2, sdk::pci_reg::kCommandIo | sdk::pci_reg::kCommandBusMaster);
  EXPECT_EQ(ram(kBufferAt, 512), expected_sectors(3, 1));
  EXPECT_TRUE(irq());
}

TEST_F(DmaTest, ReadOnlyDiskRefusesWriteDma) {
  image_ = make_image("ro.img", 64);
  make({{"primary-master", image_}, {"primary-master-read-only", true}});
  prd(0, kBufferAt, 512, true);
  write_dma(0, 1);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
  bm_start(false);
  EXPECT_EQ(image_sector(image_, 0), expected_sectors(0, 1));
}

TEST_F(DmaTest, BusMasterRegisters) {
  make_disk();
  machine_.bus().io_write(kBm + kBmPrdTable, 4, 0x12345677);
  EXPECT_EQ(machine_.bus().io_read(kBm + kBmPrdTable, 4), 0x12345674u);  // dword aligned
  machine_.bus().io_write(kBm + kBmCommand, 1, 0xff);
  EXPECT_EQ(machine_.bus().io_read(kBm + kBmCommand, 1), kBmCmdWritable);
  machine_.bus().io_write(kBm + kBmCommand, 1, 0);
  EXPECT_EQ(bm_status(), kBmStatusDrive0Dma);  // drive 0 present, engine idle
  machine_.bus().io_write(kBm + kBmStatus, 1, kBmStatusDrive1Dma | kBmStatusActive);
  EXPECT_EQ(bm_status(), kBmStatusDrive1Dma);  // active is read-only
  // The secondary channel's block sits 8 bytes on.
  machine_.bus().io_write(kBm + 8 + kBmPrdTable, 4, 0x2000);
  EXPECT_EQ(machine_.bus().io_read(kBm + 8 + kBmPrdTable, 4), 0x2000u);
  EXPECT_EQ(machine_.bus().io_read(kBm + kBmPrdTable, 4), 0x12345674u);
}

}  // namespace
}  // namespace molt::ide::test
