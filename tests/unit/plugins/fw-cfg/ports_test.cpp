// The traditional interface: selector and data ports, the legacy items, the
// file directory and the files built from the machine.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <molt/sdk/error.hpp>

#include "fw_cfg_fixture.hpp"

namespace molt::fw_cfg::test {
namespace {

using namespace std::string_literals;

std::uint64_t le(const std::vector<std::uint8_t>& bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) v = (v << 8) | bytes[i];
  return v;
}

TEST_F(FwCfgTest, SignatureAndFeatureBits) {
  make();
  const std::vector<std::uint8_t> signature = read_item(kSignature, 4);
  EXPECT_EQ(std::string(signature.begin(), signature.end()), "QEMU");
  EXPECT_EQ(le(read_item(kId, 4)), kFeatureTraditional | kFeatureDma);
}

TEST_F(FwCfgTest, WithoutDmaTheFeatureBitAndPortsAreAbsent) {
  sdk::Properties props = default_properties();
  props.set("dma", false);
  make(props);
  EXPECT_EQ(le(read_item(kId, 4)), kFeatureTraditional);
  EXPECT_EQ(machine_.bus().io_read(kDmaHigh, 4), 0xffffffffu);  // unclaimed: floats high
}

TEST_F(FwCfgTest, MachineFacts) {
  make();
  EXPECT_EQ(le(read_item(kRamSize, 8)), 16u << 20);
  EXPECT_EQ(le(read_item(kNbCpus, 2)), 2u);
  EXPECT_EQ(le(read_item(kMaxCpus, 2)), 2u);
  EXPECT_EQ(le(read_item(kNoGraphic, 2)), 1u);
  EXPECT_EQ(le(read_item(kBootMenu, 2)), 0u);
}

TEST_F(FwCfgTest, DirectoryIsSortedWithBigEndianEntries) {
  make();
  const auto entries = directory();
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"etc/boot-fail-wait", "etc/e820", "etc/sercon-port",
                                             "etc/show-boot-menu"}));
  for (std::size_t i = 0; i < entries.size(); ++i) EXPECT_EQ(entries[i].select, kFileFirst + i);
  EXPECT_EQ(entries[1].size, 3u * 20u);
}

TEST_F(FwCfgTest, FilesCarryTheMachine) {
  make();
  const std::vector<std::uint8_t> e820 = read_file("etc/e820");
  ASSERT_EQ(e820.size(), 60u);
  const auto field = [&](std::size_t entry, std::size_t at, std::size_t width) {
    return le(
        std::vector<std::uint8_t>(e820.begin() + entry * 20 + at, e820.begin() + entry * 20 + at + width));
  };
  EXPECT_EQ(field(1, 0, 8), 0x9fc00u);
  EXPECT_EQ(field(1, 8, 8), 0x60400u);
  EXPECT_EQ(field(1, 16, 4), 2u);
  EXPECT_EQ(field(2, 0, 8), 0x100000u);
  EXPECT_EQ(field(2, 16, 4), 1u);
  EXPECT_EQ(le(read_file("etc/sercon-port")), 0x3f8u);
  EXPECT_EQ(le(read_file("etc/boot-fail-wait")), 0xffffffffu);
  EXPECT_EQ(le(read_file("etc/show-boot-menu")), 0u);
}

TEST_F(FwCfgTest, BootOrderFromPropertyOrMachinePaths) {
  machine_.info().boot_order = {"disk0", "/pci@i0cf8/ide@1,1/drive@1/disk@0"};
  make();
  const std::vector<std::uint8_t> from_machine = read_file("bootorder");
  EXPECT_EQ(std::string(from_machine.begin(), from_machine.end()), "/pci@i0cf8/ide@1,1/drive@1/disk@0\0"s);
}

TEST_F(FwCfgTest, BootOrderPropertyWins) {
  sdk::Properties props = default_properties();
  props.set("bootorder", std::string("/pci@i0cf8/ide@1,1/drive@0/disk@0  /rom@genroms/x"));
  props.set("sercon-port", std::uint64_t{0});
  make(props);
  const std::vector<std::uint8_t> order = read_file("bootorder");
  EXPECT_EQ(std::string(order.begin(), order.end()), "/pci@i0cf8/ide@1,1/drive@0/disk@0\n/rom@genroms/x\0"s);
  for (const auto& e : directory()) EXPECT_NE(e.name, "etc/sercon-port");
}

TEST_F(FwCfgTest, ReadsPastTheEndGiveZerosAndStopTheOffset) {
  make();
  select(kNbCpus);
  EXPECT_EQ(read_data(5), (std::vector<std::uint8_t>{2, 0, 0, 0, 0}));
  EXPECT_EQ(device_->current().offset, 2u);
  select(0x3fff);  // no such item
  EXPECT_EQ(read_data(3), (std::vector<std::uint8_t>{0, 0, 0}));
  EXPECT_EQ(device_->current().offset, 0u);
}

TEST_F(FwCfgTest, WriteBitSelectsTheSameItemAndDataWritesAreIgnored) {
  make();
  select(kSignature | kWriteBit);
  machine_.bus().io_write(kData, 1, 'X');
  EXPECT_EQ(read_data(4), (std::vector<std::uint8_t>{'Q', 'E', 'M', 'U'}));
  EXPECT_EQ(machine_.bus().io_read(kSelector, 1), 0u);  // the selector is write-only
  EXPECT_EQ(read_item(kSignature, 1)[0], 'Q');
}

TEST_F(FwCfgTest, KernelItemsOnlyForFirmwareBoot) {
  char path[] = "/tmp/fwcfg-kernel-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  std::vector<std::uint8_t> image(8192, 0x90);
  image[0x1f1] = 3;  // setup sectors: setup is (3 + 1) * 512 bytes
  std::memcpy(image.data() + 0x202, "HdrS", 4);
  ASSERT_EQ(::write(fd, image.data(), image.size()), static_cast<ssize_t>(image.size()));
  ::close(fd);
  machine_.info().kernel_path = path;
  machine_.info().cmdline = "console=ttyS0";
  machine_.info().firmware_path = "/usr/share/seabios/bios.bin";
  make();
  EXPECT_EQ(le(read_item(kSetupSize, 4)), 2048u);
  EXPECT_EQ(le(read_item(kKernelSize, 4)), 8192u - 2048u);
  EXPECT_EQ(le(read_item(kCmdlineSize, 4)), 14u);
  const std::vector<std::uint8_t> cmdline = read_item(kCmdlineData, 14);
  EXPECT_EQ(std::string(cmdline.begin(), cmdline.end()), "console=ttyS0\0"s);
  EXPECT_EQ(read_item(kSetupData, 0x206)[0x205], 'S');
  EXPECT_EQ(le(read_item(kInitrdSize, 4)), 0u);
  ::unlink(path);
}

TEST_F(FwCfgTest, NoKernelItemsForDirectBoot) {
  machine_.info().kernel_path = "/nonexistent/kernel";
  make();  // not read: without firmware the core loads the kernel itself
  EXPECT_EQ(device_->items().find(kKernelSize), nullptr);
}

TEST_F(FwCfgTest, UnreadableKernelIsASetupError) {
  machine_.info().kernel_path = "/nonexistent/kernel";
  machine_.info().firmware_path = "/usr/share/seabios/bios.bin";
  EXPECT_THROW(make(), sdk::Error);
}

}  // namespace
}  // namespace molt::fw_cfg::test
