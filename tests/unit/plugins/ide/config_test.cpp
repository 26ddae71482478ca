// The device type, its properties, realize errors and the PCI function.
#include <molt/sdk/error.hpp>

#include "ide_fixture.hpp"

namespace molt::ide::test {
namespace {

class ConfigTest : public IdeTest {
 protected:
  std::string realize_error(const std::map<std::string, sdk::PropertyValue>& overrides) {
    try {
      make(overrides);
    } catch (const sdk::Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(ConfigTest, TypeAndProperties) {
  EXPECT_EQ(ide_type().name, "piix3-ide");
  std::vector<std::string> names;
  for (const auto& spec : ide_type().properties) names.push_back(spec.name);
  for (const char* expected :
       {"primary-master", "primary-master-read-only", "primary-master-serial", "primary-slave",
        "secondary-master", "secondary-slave-read-only", "model", "pci-slot", "pci-function"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
}

TEST_F(ConfigTest, MissingImageNamesTheFile) {
  const std::string path = dir_.file("absent.img");
  const std::string error = realize_error({{"primary-master", path}});
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("primary-master"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

TEST_F(ConfigTest, UnreadableImageNamesTheFile) {
  if (::geteuid() == 0) {
    // root reads anything; a directory is unreadable as an image for everyone.
    const std::string error = realize_error({{"primary-slave", dir_.file("")}});
    EXPECT_NE(error.find("primary-slave"), std::string::npos) << error;
    return;
  }
  const std::string path = make_image("locked.img", 8);
  ::chmod(path.c_str(), 0);
  EXPECT_NE(realize_error({{"primary-slave", path}}).find(path), std::string::npos);
}

TEST_F(ConfigTest, PartialSectorImageIsRefused) {
  const std::string path = dir_.file("odd.img");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_EQ(::ftruncate(fd, 1000), 0);
  ::close(fd);
  const std::string error = realize_error({{"secondary-master", path}});
  EXPECT_NE(error.find("not a whole number of 512-byte sectors"), std::string::npos) << error;
  const std::string empty = dir_.file("empty.img");
  ::close(::open(empty.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_NE(realize_error({{"secondary-master", empty}}).find("empty"), std::string::npos);
}

TEST_F(ConfigTest, PciIdentityAndBar4) {
  make_disk();
  EXPECT_EQ(pci_bus_.address(), (sdk::PciAddress{1, 1}));
  EXPECT_EQ(pci_bus_.read(0x00, 2), 0x8086u);
  EXPECT_EQ(pci_bus_.read(0x02, 2), 0x7010u);
  EXPECT_EQ(pci_bus_.read(0x08, 4) >> 8, 0x010180u);
  EXPECT_EQ(pci_bus_.read(0x3d, 1), 0u);       // compatibility mode: IRQ 14/15, no INTx pin
  EXPECT_EQ(pci_bus_.read(0x40, 2), 0x8000u);  // IDETIM decode enabled
  // BAR4 is a 16-byte I/O BAR.
  pci_bus_.write(0x20, 4, 0xffffffff);
  EXPECT_EQ(pci_bus_.read(0x20, 4) & 0xffff, 0xfff1u);
  pci_bus_.write(0x20, 4, 0xd000);
  EXPECT_EQ(pci_bus_.read(0x20, 4), 0xd001u);
  EXPECT_EQ(machine_.bus().io_read(0xd000 + kBmStatus, 1), kBmStatusDrive0Dma);
  EXPECT_EQ(machine_.bus().io_read(kBm + kBmStatus, 1), 0xffu);  // moved away
  // With I/O decoding off the block disappears; the legacy ports stay.
  pci_bus_.write(0x04, 2, 0);
  EXPECT_EQ(machine_.bus().io_read(0xd000 + kBmStatus, 1), 0xffu);
  EXPECT_EQ(in(kRegStatusCommand), kStatusIdle);
}

TEST_F(ConfigTest, PlacementFromProperties) {
  make({{"pci-slot", std::uint64_t{7}}, {"pci-function", std::uint64_t{0}}});
  EXPECT_EQ(pci_bus_.address(), (sdk::PciAddress{7, 0}));
  // No disks: every register of both channels reads zero.
  EXPECT_EQ(in(kRegStatusCommand), 0);
  EXPECT_EQ(machine_.bus().io_read(0x376, 1), 0u);
}

}  // namespace
}  // namespace molt::ide::test
