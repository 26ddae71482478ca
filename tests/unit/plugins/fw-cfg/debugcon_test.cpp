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

}  // namespace
}  // namespace molt::fw_cfg::test
