#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fw_cfg_fixture.hpp"

namespace molt::fw_cfg::test {
namespace {

TEST(DebugconTest, ReadsBackAndWritesLinesToTheFile) {
  char path[] = "/tmp/fwcfg-debugcon-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    FakeMachine machine;
    sdk::Properties props = default_properties("debugcon");
    props.set("path", std::string(path));
    const sdk::DeviceType& type = describe_fw_cfg_plugin()->device_types.at(1);
    ASSERT_EQ(type.name, "debugcon");
    auto device = type.create(machine.add_context("dbg", props));
    device->realize();
    EXPECT_EQ(machine.bus().io_read(0x402, 1), 0xe9u);
    for (char c : std::string("Found QEMU fw_cfg\npartial")) machine.bus().io_write(0x402, 1, c);
    std::ifstream early(path);
    std::stringstream seen;
    seen << early.rdbuf();
    EXPECT_EQ(seen.str(), "Found QEMU fw_cfg\n");  // the partial line waits for its end
  }
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  EXPECT_EQ(all.str(), "Found QEMU fw_cfg\npartial");  // flushed when the device goes
  ::unlink(path);
}

std::string contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

// The file (dev, inode) an fd is open on.
std::pair<dev_t, ino_t> file_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

// cpr-transfer: the old molt's debugcon hands its file over; the new one
// appends to it instead of truncating it, and the line the guest was in the
// middle of comes out whole.
TEST(DebugconTest, HandedOverFileGoesOnWhereTheOldMoltStopped) {
  char path[] = "/tmp/fwcfg-debugcon-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  sdk::Properties props = default_properties("debugcon");
  props.set("path", std::string(path));
  const sdk::DeviceType& type = describe_fw_cfg_plugin()->device_types.at(1);
  FakeMachine old_machine;
  auto old_device = type.create(old_machine.add_context("dbg", props));
  old_device->realize();
  for (char c : std::string("SeaBIOS\nBoot")) old_machine.bus().io_write(0x402, 1, c);

  FakeMachine new_machine;
  const sdk::FdHandover handover = old_device->handover_fds();
  ASSERT_EQ(handover.fds.size(), 1u);
  EXPECT_EQ(handover.fds[0].name, "output");
  const int handed = ::fcntl(handover.fds[0].fd, F_DUPFD_CLOEXEC, 0);
  new_machine.hand_over_fd("dbg", "output", handed);
  auto new_device = type.create(new_machine.add_context("dbg", props));
  new_device->realize();
  EXPECT_EQ(new_machine.untaken_fds(), 0u);
  EXPECT_EQ(file_of(handed), file_of(handover.fds[0].fd)) << "the device keeps the handed fd";
  EXPECT_EQ(contents(path), "SeaBIOS\n") << "not truncated";

  old_device->handover_completed(sdk::HandoverSide::Source);
  new_device->handover_completed(sdk::HandoverSide::Destination);
  for (char c : std::string("ing from disk\n")) new_machine.bus().io_write(0x402, 1, c);
  old_device.reset();
  new_device.reset();
  EXPECT_EQ(contents(path), "SeaBIOS\nBooting from disk\n");
  ::unlink(path);
}

// A debugcon writing to `path` in its own "molt".
struct DebugconMolt {
  FakeMachine machine;
  std::unique_ptr<sdk::Device> device;
  int handed = -1;  // the duplicate the core offered this molt

  void realize(const std::string& path) {
    sdk::Properties props = default_properties("debugcon");
    props.set("path", path);
    device = describe_fw_cfg_plugin()->device_types.at(1).create(machine.add_context("dbg", props));
    device->realize();
  }
  void write(const std::string& text) {
    for (char c : text) machine.bus().io_write(0x402, 1, static_cast<std::uint8_t>(c));
  }
  void take_over_from(DebugconMolt& old_molt) {
    const sdk::FdHandover handover = old_molt.device->handover_fds();
    ASSERT_EQ(handover.fds.size(), 1u);
    handed = ::fcntl(handover.fds[0].fd, F_DUPFD_CLOEXEC, 0);
    machine.hand_over_fd("dbg", "output", handed);
  }
};

class DebugconHandoverTest : public ::testing::Test {
 protected:
  DebugconHandoverTest() {
    char pattern[] = "/tmp/fwcfg-debugcon-XXXXXX";
    dir_ = ::mkdtemp(pattern);
  }
  ~DebugconHandoverTest() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  // The handed fd was closed: its number is free, or open on something else.
  void expect_closed(int fd, std::pair<dev_t, ino_t> handed_file) {
    if (::fcntl(fd, F_GETFD) == -1) {
      EXPECT_EQ(errno, EBADF);
    } else {
      EXPECT_NE(file_of(fd), handed_file) << "the handed fd " << fd << " is still open";
    }
  }

  std::string dir_;
};

// The operator gave the new molt another file: it is opened as on a fresh
// start (truncated), and the handed fd is closed.
TEST_F(DebugconHandoverTest, AnotherConfiguredFileIsOpenedAfresh) {
  std::ofstream(file("new.log")) << "from an earlier run\n";
  DebugconMolt old_molt;
  old_molt.realize(file("old.log"));
  old_molt.write("SeaBIOS\nBoot");
  DebugconMolt new_molt;
  new_molt.take_over_from(old_molt);
  const std::pair<dev_t, ino_t> handed_file = file_of(new_molt.handed);
  new_molt.realize(file("new.log"));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  expect_closed(new_molt.handed, handed_file);
  EXPECT_EQ(contents(file("new.log")), "") << "truncated as on a fresh start";

  old_molt.device->handover_completed(sdk::HandoverSide::Source);
  new_molt.device->handover_completed(sdk::HandoverSide::Destination);
  new_molt.write("ing from disk\n");
  old_molt.device.reset();
  new_molt.device.reset();
  EXPECT_EQ(contents(file("old.log")), "SeaBIOS\nBoot");
  EXPECT_EQ(contents(file("new.log")), "ing from disk\n");
}

// The log was rotated away before the new molt started: the path names no
// file, so the new molt starts a new one instead of writing into the old.
TEST_F(DebugconHandoverTest, FileRotatedAwayIsStartedAfresh) {
  const std::string path = file("debug.log");
  DebugconMolt old_molt;
  old_molt.realize(path);
  old_molt.write("SeaBIOS\n");
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  DebugconMolt new_molt;
  new_molt.take_over_from(old_molt);
  const std::pair<dev_t, ino_t> handed_file = file_of(new_molt.handed);
  new_molt.realize(path);
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  expect_closed(new_molt.handed, handed_file);
  new_molt.write("Booting from disk\n");
  EXPECT_EQ(contents(path + ".1"), "SeaBIOS\n");
  EXPECT_EQ(contents(path), "Booting from disk\n");
}

TEST(DebugconTest, StdoutIsNotHandedOver) {
  FakeMachine machine;
  const sdk::DeviceType& type = describe_fw_cfg_plugin()->device_types.at(1);
  auto device = type.create(machine.add_context("dbg", default_properties("debugcon")));
  device->realize();
  EXPECT_TRUE(device->handover_fds().fds.empty());
}

}  // namespace
}  // namespace molt::fw_cfg::test
