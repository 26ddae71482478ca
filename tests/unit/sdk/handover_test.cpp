// The SDK's handover helpers, through the fake machine's handed fds.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <molt/sdk/handover.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

namespace molt::sdk {
namespace {

namespace fs = std::filesystem;

class HandoverHelpers : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "molt-sdk-handover-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  int open_file(const std::string& name) {
    return ::open((dir_ / name).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  }
  fs::path dir_;
};

TEST_F(HandoverHelpers, NamesOpenFileComparesDeviceAndInode) {
  const int fd = open_file("out.log");
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(names_open_file(fd, (dir_ / "out.log").string()));
  EXPECT_TRUE(names_open_file(fd, (dir_ / "." / "out.log").string()));
  fs::rename(dir_ / "out.log", dir_ / "moved.log");
  EXPECT_FALSE(names_open_file(fd, (dir_ / "out.log").string())) << "a missing path names nothing";
  EXPECT_TRUE(names_open_file(fd, (dir_ / "moved.log").string()));
  const int other = open_file("out.log");
  EXPECT_FALSE(names_open_file(fd, (dir_ / "out.log").string())) << "a new file at the old path is another file";
  ::close(other);
  ::close(fd);
  EXPECT_FALSE(names_open_file(fd, (dir_ / "moved.log").string())) << "a closed fd is open on nothing";
}

TEST_F(HandoverHelpers, TakeHandedOverFileKeepsTheFdOnlyForTheNamedFile) {
  testing::FakeMachine machine;
  DeviceContext& ctx = machine.add_context("com1");
  EXPECT_EQ(take_handed_over_file(ctx, "output", (dir_ / "out.log").string()), -1) << "nothing was handed over";

  const int same = open_file("out.log");
  machine.hand_over_fd("com1", "output", same);
  EXPECT_EQ(take_handed_over_file(ctx, "output", (dir_ / "out.log").string()), same);
  EXPECT_EQ(machine.untaken_fds(), 0u);
  ::close(same);

  const int elsewhere = open_file("old.log");
  ASSERT_GE(elsewhere, 0);
  machine.hand_over_fd("com1", "output", elsewhere);
  EXPECT_EQ(take_handed_over_file(ctx, "output", (dir_ / "new.log").string()), -1);
  EXPECT_EQ(machine.untaken_fds(), 0u);
  errno = 0;
  EXPECT_EQ(::fcntl(elsewhere, F_GETFD), -1) << "the handed fd on another file is closed";
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace molt::sdk
