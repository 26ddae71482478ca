// cpr-transfer: the old molt's controller hands each drive's open image over,
// and the new molt's controller (the fixture's) takes it at realize instead
// of opening the path, as the core passes it: a duplicate under the same name.
#include <molt/sdk/error.hpp>

#include "ide_fixture.hpp"

namespace molt::ide::test {
namespace {

// The controller in the old molt, on its own FakeMachine.
struct OldMolt {
  FakeMachine machine{32 << 20};
  OneFunctionPciBus pci_bus;
  std::unique_ptr<PciContext> context;
  std::unique_ptr<PiixIdeDevice> device;

  explicit OldMolt(const std::map<std::string, sdk::PropertyValue>& props) {
    context = std::make_unique<PciContext>(machine.add_context("ide0", ide_properties(props)), pci_bus);
    device = std::make_unique<PiixIdeDevice>(*context);
    device->realize();
  }
};

class HandoverTest : public IdeTest {
 protected:
  std::vector<std::string> hand_over(PiixIdeDevice& from) {
    const sdk::FdHandover handover = from.handover_fds();
    EXPECT_EQ(handover.blocker, "");
    std::vector<std::string> names;
    for (const sdk::HandedFd& fd : handover.fds) {
      machine_.hand_over_fd("ide0", fd.name, ::fcntl(fd.fd, F_DUPFD_CLOEXEC, 0));
      names.push_back(fd.name);
    }
    return names;
  }
  std::string realize_error(const std::map<std::string, sdk::PropertyValue>& props) {
    try {
      make(props);
    } catch (const sdk::Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(HandoverTest, DrivesKeepTheirImagesAfterThePathsWereUnlinkedOrReplaced) {
  const std::string master = make_image("master.img", 300);
  const std::string slave = make_image("slave.img", 64);
  const std::map<std::string, sdk::PropertyValue> props = {{"primary-master", master},
                                                           {"secondary-slave", slave}};
  OldMolt old_molt(props);
  EXPECT_EQ(hand_over(*old_molt.device), (std::vector<std::string>{"image-primary-master",
                                                                    "image-secondary-slave"}));
  // The operator moves the images on while the guest runs on.
  const int original = ::open(master.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(original, 0);
  ASSERT_EQ(::unlink(master.c_str()), 0);
  ASSERT_EQ(::unlink(slave.c_str()), 0);
  make_image("master.img", 8, 0);  // another, smaller, blank image at the old path

  make(props);
  EXPECT_EQ(machine_.untaken_fds(), 0u);
  ASSERT_NE(device_->disk(0), nullptr);
  EXPECT_EQ(device_->disk(0)->sectors(), 300u) << "the size comes from the taken fd";
  EXPECT_EQ(device_->disk(3)->sectors(), 64u);
  old_molt.device.reset();

  lba28(200, 1);
  out(kRegStatusCommand, kCmdReadSectors);
  ASSERT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  EXPECT_EQ(read_data(512), expected_sectors(200, 1));

  std::vector<std::uint8_t> data(512);
  for (unsigned i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 3 + 1);
  lba28(250, 1);
  out(kRegStatusCommand, kCmdWriteSectors);
  write_data(data);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
  std::vector<std::uint8_t> stored(512);
  ASSERT_EQ(::pread(original, stored.data(), stored.size(), 250 * 512), 512);
  EXPECT_EQ(stored, data) << "the write reached the unlinked image the guest had";
  EXPECT_EQ(image_sector(dir_.file("master.img"), 0), std::vector<std::uint8_t>(512, 0))
      << "the file now at the path is left alone";
  ::close(original);
}

TEST_F(HandoverTest, ReadOnlyFdForAWritableDriveIsRefused) {
  const std::string path = make_image("disk.img", 16);
  machine_.hand_over_fd("ide0", "image-primary-slave", ::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(realize_error({{"primary-slave", path}}),
            "ide0: primary-slave: the handed-over disk image " + path +
                " is open read-only, but the drive is writable; set the drive read-only, or hand over an "
                "image opened for reading and writing");
  EXPECT_EQ(machine_.untaken_fds(), 0u);
}

TEST_F(HandoverTest, ReadOnlyFdForAReadOnlyDriveServesReads) {
  const std::string path = make_image("disk.img", 16);
  machine_.hand_over_fd("ide0", "image-primary-master", ::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  make({{"primary-master", path}, {"primary-master-read-only", true}});
  EXPECT_EQ(machine_.untaken_fds(), 0u);
  lba28(3, 1);
  out(kRegStatusCommand, kCmdReadSectors);
  ASSERT_EQ(in(kRegStatusCommand), kStatusIdle | kStatusDrq);
  EXPECT_EQ(read_data(512), expected_sectors(3, 1));
}

TEST_F(HandoverTest, WithoutAHandedOverFdTheImageIsOpenedByPath) {
  const std::string path = make_image("disk.img", 16);
  machine_.hand_over_fd("ide0", "image-secondary-master", ::open(path.c_str(), O_RDWR | O_CLOEXEC));
  make({{"primary-master", path}});
  EXPECT_EQ(machine_.untaken_fds(), 1u) << "a drive that is not configured takes nothing";
  EXPECT_EQ(device_->handover_fds().fds.size(), 1u);
  EXPECT_EQ(device_->handover_fds().fds[0].name, "image-primary-master");
}

}  // namespace
}  // namespace molt::ide::test
