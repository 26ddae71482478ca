#include <fcntl.h>
#include <unistd.h>

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
  new_machine.hand_over_fd("dbg", "output", ::fcntl(handover.fds[0].fd, F_DUPFD_CLOEXEC, 0));
  auto new_device = type.create(new_machine.add_context("dbg", props));
  new_device->realize();
  EXPECT_EQ(new_machine.untaken_fds(), 0u);
  EXPECT_EQ(contents(path), "SeaBIOS\n") << "not truncated";

  old_device->handover_completed(sdk::HandoverSide::Source);
  new_device->handover_completed(sdk::HandoverSide::Destination);
  for (char c : std::string("ing from disk\n")) new_machine.bus().io_write(0x402, 1, c);
  old_device.reset();
  new_device.reset();
  EXPECT_EQ(contents(path), "SeaBIOS\nBooting from disk\n");
  ::unlink(path);
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
