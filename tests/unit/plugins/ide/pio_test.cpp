// The ATA register file and PIO commands: IDENTIFY, READ/WRITE SECTORS and
// MULTIPLE, the 48-bit forms, errors, resets and the interrupt.
#include "ide_fixture.hpp"

namespace molt::ide::test {
namespace {

class PioTest : public IdeTest {};

std::uint16_t word(const std::vector<std::uint8_t>& data, unsigned i) {
  return static_cast<std::uint16_t>(data[2 * i] | data[2 * i + 1] << 8);
}
std::string ata_string(const std::vector<std::uint8_t>& data, unsigned first, unsigned words) {
  std::string s;
  for (unsigned i = 0; i < words; ++i) {
    s.push_back(static_cast<char>(word(data, first + i) >> 8));
    s.push_back(static_cast<char>(word(data, first + i) & 0xff));
  }
  return s;
}

TEST_F(PioTest, PowerOnSignatureAndStatus) {
  make_disk();
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(in(kRegErrorFeature), kDiagnosticPassed);
  EXPECT_EQ(in(kRegSectorCount), 1);
  EXPECT_EQ(in(kRegLbaLow), 1);
  EXPECT_EQ(in(kRegLbaMid), 0);
  EXPECT_EQ(in(kRegLbaHigh), 0);
  // No slave: selecting it reads zeros; the secondary channel has no drives.
  out(kRegDevice, kDeviceSelect);
  EXPECT_EQ(in(kRegStatusCommand), 0);
  EXPECT_EQ(machine_.bus().io_read(0x177, 1), 0u);
}

TEST_F(PioTest, IdentifyDeviceWords) {
  image_ = make_image("disk.img", 20000, 0);
  make({{"primary-master", image_}, {"primary-master-serial", std::string("SN-1234")}});
  out(kRegDevice, 0xa0);
  out(kRegStatusCommand, kCmdIdentifyDevice);
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  EXPECT_FALSE(irq());  // the status read acknowledged it
  const std::vector<std::uint8_t> id = read_data(512);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(word(id, 0), 0x0040);
  EXPECT_EQ(ata_string(id, 27, 20), "MOLT HARDDISK" + std::string(27, ' '));
  EXPECT_EQ(ata_string(id, 10, 10), "SN-1234" + std::string(13, ' '));
  EXPECT_EQ(ata_string(id, 23, 4), "1.0     ");
  EXPECT_EQ(word(id, 60) | word(id, 61) << 16, 20000);
  EXPECT_EQ(word(id, 100) | word(id, 101) << 16, 20000);
  EXPECT_EQ(word(id, 102) | word(id, 103), 0);
  EXPECT_EQ(word(id, 47), 0x8000 | kMaxMultipleSectors);
  EXPECT_EQ(word(id, 59), 0);              // multiple mode off
  EXPECT_TRUE(word(id, 49) & (1u << 9));   // LBA
  EXPECT_TRUE(word(id, 49) & (1u << 8));   // DMA
  EXPECT_TRUE(word(id, 83) & (1u << 10));  // 48-bit supported
  EXPECT_TRUE(word(id, 86) & (1u << 10));  // and enabled
  EXPECT_EQ(word(id, 63) & 0xff, 0x07);
  EXPECT_EQ(word(id, 88), 0x003f | 0x2000);  // UDMA 0-5, UDMA5 selected
  EXPECT_EQ(word(id, 255) & 0xff, 0xa5);
  unsigned sum = 0;
  for (std::uint8_t b : id) sum += b;
  EXPECT_EQ(sum & 0xff, 0u);
}

TEST_F(PioTest, IdentifyOfALargeDiskCapsLba28) {
  image_ = make_image("big.img", 600'000'000, 0);  // ~286 GiB, sparse
  make({{"primary-master", image_}});
  out(kRegStatusCommand, kCmdIdentifyDevice);
  const std::vector<std::uint8_t> id = read_data(512, true);
  EXPECT_EQ(word(id, 60) | word(id, 61) << 16, 0x0fffffff);
  EXPECT_EQ(word(id, 100) | word(id, 101) << 16, 600'000'000);
  EXPECT_EQ(word(id, 1), 16383);  // cylinders capped
}

TEST_F(PioTest, ReadSectorsInterruptsPerSector) {
  make_disk();
  lba28(10, 3);
  out(kRegStatusCommand, kCmdReadSectors);
  std::vector<std::uint8_t> got;
  for (int s = 0; s < 3; ++s) {
    ASSERT_TRUE(irq()) << "sector " << s;
    ASSERT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
    const auto data = read_data(512, s == 1);  // 16- and 32-bit accesses alike
    got.insert(got.end(), data.begin(), data.end());
  }
  EXPECT_FALSE(irq());  // no interrupt after the last PIO-in block
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(got, expected_sectors(10, 3));
}

TEST_F(PioTest, WriteSectorsReachTheImage) {
  make_disk();
  lba28(5, 2);
  out(kRegStatusCommand, kCmdWriteSectors);
  EXPECT_FALSE(irq());  // the host sends the first block unprompted
  EXPECT_EQ(alt_status(), kStatusIdle | kStatusDrq);
  std::vector<std::uint8_t> data(1024);
  for (unsigned i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i ^ 0x5a);
  write_data({data.begin(), data.begin() + 512}, true);
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  write_data({data.begin() + 512, data.end()});
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(image_sector(image_, 5), std::vector<std::uint8_t>(data.begin(), data.begin() + 512));
  EXPECT_EQ(image_sector(image_, 6), std::vector<std::uint8_t>(data.begin() + 512, data.end()));
  EXPECT_EQ(image_sector(image_, 7), expected_sectors(7, 1));
}

TEST_F(PioTest, MultipleNeedsSetMultipleMode) {
  make_disk();
  lba28(0, 4);
  out(kRegStatusCommand, kCmdReadMultiple);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
  out(kRegSectorCount, 3);  // not a power of two
  out(kRegStatusCommand, kCmdSetMultipleMode);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
}

TEST_F(PioTest, ReadMultipleMovesBlocks) {
  make_disk();
  out(kRegSectorCount, 8);
  out(kRegStatusCommand, kCmdSetMultipleMode);
  ASSERT_EQ(in(kRegStatusCommand), kStatusIdle);
  lba28(30, 20);
  out(kRegStatusCommand, kCmdReadMultiple);
  std::vector<std::uint8_t> got;
  unsigned interrupts = 0;
  for (unsigned block : {8u, 8u, 4u}) {
    interrupts += irq();
    ASSERT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
    const auto data = read_data(block * 512, true);
    got.insert(got.end(), data.begin(), data.end());
  }
  EXPECT_EQ(interrupts, 3u);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(got, expected_sectors(30, 20));
  // IDENTIFY word 59 now reports the block size.
  out(kRegStatusCommand, kCmdIdentifyDevice);
  const auto id = read_data(512);
  EXPECT_EQ(id[118] | id[119] << 8, 0x0108);
}

TEST_F(PioTest, WriteMultipleExtAtA48BitAddress) {
  image_ = make_image("big.img", 0x1'2345'6800, 1);
  make({{"primary-master", image_}});
  out(kRegSectorCount, 16);
  out(kRegStatusCommand, kCmdSetMultipleMode);
  const std::uint64_t lba = 0x1'2345'6789;
  lba48(lba, 17);
  out(kRegStatusCommand, kCmdWriteMultipleExt);
  ASSERT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  std::vector<std::uint8_t> data(17 * 512);
  for (unsigned i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 3 + 1);
  write_data({data.begin(), data.begin() + 16 * 512}, true);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  write_data({data.begin() + 16 * 512, data.end()}, true);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(image_sector(image_, lba + 16), std::vector<std::uint8_t>(data.begin() + 16 * 512, data.end()));
  // And READ SECTORS EXT reads the first of them back.
  lba48(lba, 1);
  out(kRegStatusCommand, kCmdReadSectorsExt);
  EXPECT_EQ(read_data(512), std::vector<std::uint8_t>(data.begin(), data.begin() + 512));
}

TEST_F(PioTest, HobReadsThePreviousWrites) {
  make_disk();
  lba48(0x0000'AABB'CCDD'EEFF, 0x1234);
  EXPECT_EQ(in(kRegSectorCount), 0x34);
  EXPECT_EQ(in(kRegLbaLow), 0xff);
  control(kControlHob);
  EXPECT_EQ(in(kRegSectorCount), 0x12);
  EXPECT_EQ(in(kRegLbaLow), 0xcc);
  EXPECT_EQ(in(kRegLbaMid), 0xbb);
  EXPECT_EQ(in(kRegLbaHigh), 0xaa);
  out(kRegLbaLow, 0x77);  // a command block write clears HOB
  EXPECT_EQ(in(kRegLbaLow), 0x77);
}

TEST_F(PioTest, ChsAddressingUsesTheLogicalGeometry) {
  make_disk(2000);
  // INITIALIZE DEVICE PARAMETERS: 4 heads, 10 sectors per track.
  out(kRegSectorCount, 10);
  out(kRegDevice, 0xa0 | 3);
  out(kRegStatusCommand, kCmdInitializeParameters);
  ASSERT_EQ(in(kRegStatusCommand), kStatusIdle);
  // Cylinder 2, head 1, sector 5: (2*4+1)*10+4 = 94.
  out(kRegSectorCount, 1);
  out(kRegLbaLow, 5);
  out(kRegLbaMid, 2);
  out(kRegLbaHigh, 0);
  out(kRegDevice, 0xa0 | 1);
  out(kRegStatusCommand, kCmdReadSectors);
  EXPECT_EQ(read_data(512), expected_sectors(94, 1));
  out(kRegLbaLow, 0);  // sector numbers start at 1
  out(kRegStatusCommand, kCmdReadSectors);
  EXPECT_EQ(in(kRegErrorFeature), kErrorIdnf);
}

TEST_F(PioTest, OutOfRangeSectorsEndWithIdnf) {
  make_disk(100);
  lba28(100, 1);
  out(kRegStatusCommand, kCmdReadSectors);
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr);
  EXPECT_EQ(in(kRegErrorFeature), kErrorIdnf);
  lba28(98, 3);  // starts inside, ends outside
  out(kRegStatusCommand, kCmdWriteSectors);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr);
  EXPECT_EQ(in(kRegErrorFeature), kErrorIdnf);
  lba48(99, 2);
  out(kRegStatusCommand, kCmdReadVerifyExt);
  EXPECT_EQ(in(kRegErrorFeature), kErrorIdnf);
  lba48(98, 2);
  out(kRegStatusCommand, kCmdReadVerifyExt);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  // The data register gives nothing after an error.
  EXPECT_EQ(machine_.bus().io_read(kCmd, 2), 0xffffu);
}

TEST_F(PioTest, UnknownCommandsAndDeviceResetAbort) {
  make_disk();
  for (std::uint8_t command : {std::uint8_t{0xf5}, std::uint8_t{kCmdDeviceReset}, std::uint8_t{0x00}}) {
    out(kRegStatusCommand, command);
    EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr) << int(command);
    EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt) << int(command);
  }
  // The next good command clears the error.
  out(kRegStatusCommand, kCmdIdleImmediate);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(in(kRegErrorFeature), 0);
}

TEST_F(PioTest, SetFeaturesTransferModeAndWriteCache) {
  make_disk();
  auto set_features = [&](std::uint8_t feature, std::uint8_t count) {
    out(kRegErrorFeature, feature);
    out(kRegSectorCount, count);
    out(kRegStatusCommand, kCmdSetFeatures);
    return in(kRegStatusCommand);
  };
  auto identify = [&] {
    out(kRegStatusCommand, kCmdIdentifyDevice);
    return read_data(512);
  };
  EXPECT_EQ(set_features(kFeatureSetTransferMode, kModeMultiwordDma | 2), kStatusIdle);
  auto id = identify();
  EXPECT_EQ(word(id, 63), 0x0407);
  EXPECT_EQ(word(id, 88), 0x003f);
  EXPECT_EQ(set_features(kFeatureSetTransferMode, kModeUltraDma | 6), kStatusIdle | kStatusErr);
  EXPECT_EQ(set_features(kFeatureSetTransferMode, kModePioFlowControl | 4), kStatusIdle);
  EXPECT_EQ(set_features(kFeatureDisableWriteCache, 0), kStatusIdle);
  id = identify();
  EXPECT_EQ(word(id, 85) & (1u << 5), 0);
  EXPECT_EQ(set_features(kFeatureEnableWriteCache, 0), kStatusIdle);
  EXPECT_NE(identify()[85 * 2] & (1u << 5), 0);
  EXPECT_EQ(set_features(0x99, 0), kStatusIdle | kStatusErr);
}

TEST_F(PioTest, FlushPowerAndDiagnostics) {
  make_disk();
  for (std::uint8_t command : {kCmdFlushCache, kCmdFlushCacheExt, kCmdStandbyImmediate, kCmdIdle, kCmdSeek}) {
    out(kRegStatusCommand, command);
    EXPECT_TRUE(irq());
    EXPECT_EQ(in(kRegStatusCommand), kStatusIdle) << int(command);
  }
  out(kRegStatusCommand, kCmdCheckPowerMode);
  EXPECT_EQ(in(kRegSectorCount), 0xff);
  lba28(77, 9);
  out(kRegStatusCommand, kCmdExecuteDiagnostic);
  EXPECT_TRUE(irq());
  EXPECT_EQ(in(kRegErrorFeature), kDiagnosticPassed);
  EXPECT_EQ(in(kRegSectorCount), 1);
  EXPECT_EQ(in(kRegLbaLow), 1);
}

TEST_F(PioTest, SoftResetAbortsATransferAndLeavesTheSignature) {
  make_disk();
  lba28(3, 4);
  out(kRegStatusCommand, kCmdReadSectors);
  read_data(100);
  control(kControlSrst);
  EXPECT_EQ(alt_status(), kStatusBsy);
  EXPECT_FALSE(irq());
  control(0);
  EXPECT_FALSE(irq());  // a soft reset completes without an interrupt
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  EXPECT_EQ(in(kRegErrorFeature), kDiagnosticPassed);
  EXPECT_EQ(in(kRegSectorCount), 1);
  EXPECT_EQ(in(kRegLbaLow), 1);
  EXPECT_EQ(in(kRegLbaMid), 0);
  EXPECT_EQ(in(kRegLbaHigh), 0);
  EXPECT_EQ(in(kRegDevice), 0);
  EXPECT_EQ(machine_.bus().io_read(kCmd, 2), 0xffffu);  // nothing left to read
}

TEST_F(PioTest, NienHoldsTheLineLow) {
  make_disk();
  control(kControlNien);
  out(kRegStatusCommand, kCmdIdentifyDevice);
  EXPECT_FALSE(irq());
  EXPECT_EQ(alt_status(), kStatusIdle | kStatusDrq);
  control(0);
  EXPECT_TRUE(irq());  // still pending: the line follows nIEN
  in(kRegStatusCommand);
  EXPECT_FALSE(irq());
}

TEST_F(PioTest, SlaveDriveAnswersWhenSelected) {
  const std::string master = make_image("m.img", 64);
  const std::string slave = make_image("s.img", 32, 0);
  make({{"primary-master", master}, {"primary-slave", slave}});
  out(kRegDevice, 0xb0);
  out(kRegStatusCommand, kCmdIdentifyDevice);
  const auto id = read_data(512);
  EXPECT_EQ(word(id, 60), 32);
  out(kRegDevice, 0xa0);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);  // the master had nothing to do
}

TEST_F(PioTest, ReadOnlyDiskRefusesWrites) {
  image_ = make_image("ro.img", 64);
  make({{"primary-master", image_}, {"primary-master-read-only", true}});
  lba28(1, 1);
  out(kRegStatusCommand, kCmdWriteSectors);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusErr);
  EXPECT_EQ(in(kRegErrorFeature), kErrorAbrt);
  write_data(std::vector<std::uint8_t>(512, 0xee));
  EXPECT_EQ(image_sector(image_, 1), expected_sectors(1, 1));
  out(kRegStatusCommand, kCmdReadSectors);
  EXPECT_EQ(read_data(512), expected_sectors(1, 1));
}

TEST_F(PioTest, SecondaryChannelUsesIrq15) {
  image_ = make_image("sec.img", 16);
  make({{"secondary-master", image_}});
  machine_.bus().io_write(0x177, 1, kCmdIdentifyDevice);
  EXPECT_TRUE(machine_.irq(15).level());
  EXPECT_FALSE(machine_.irq(14).level());
  EXPECT_EQ(machine_.bus().io_read(0x376, 1), kStatusIdle | kStatusDrq);
}

}  // namespace
}  // namespace molt::ide::test
