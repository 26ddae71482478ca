// cpr-transfer's fd channel in-process (no guest): the RAM blocks' and the
// devices' backend fds cross one SCM_RIGHTS message with their names, and the
// receiver refuses a message whose list and fds disagree, or whose device fd
// entries are malformed, naming what was wrong. Also the source's check of
// what a device offers (invalid_handover).
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include <molt/sdk/error.hpp>

#include "core/migration/cpr.hpp"
#include "migration_support.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
using core::kvm::Fd;
using core::migration::ChannelUri;
using core::migration::CprHandover;
using core::migration::CprReceiver;
using core::migration::HandedBlock;
using core::migration::HandedDeviceFd;

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

Fd memfd(const char* name) {
  return Fd(::memfd_create(name, MFD_CLOEXEC));
}

// Sends one framed message (u32 length + `text`) with `fds` attached, as a
// source would, over a fresh connection to `path`; returns the connection.
Fd send_raw(const std::string& path, const std::string& text, const std::vector<int>& fds) {
  Fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  const auto length = static_cast<std::uint32_t>(text.size());
  std::string frame(reinterpret_cast<const char*>(&length), 4);
  frame += text;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{frame.data(), frame.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  EXPECT_EQ(::sendmsg(s.get(), &msg, MSG_NOSIGNAL), static_cast<ssize_t>(frame.size()))
      << std::strerror(errno);
  return s;
}

// What receive() throws for `text` with `fds`; empty when it accepts.
std::string receive_error(const std::string& text, const std::vector<int>& fds) {
  const std::string path = short_socket_path("cpr");
  CprReceiver receiver(ChannelUri::parse("unix:" + path));
  const Fd connection = send_raw(path, text, fds);
  try {
    receiver.receive();
  } catch (const sdk::Error& e) {
    ::unlink(path.c_str());
    return e.what();
  }
  ::unlink(path.c_str());
  return {};
}

TEST(CprChannel, DeviceFdsTravelAfterTheRamBlocksWithTheirNames) {
  const std::string path = short_socket_path("cpr");
  CprReceiver receiver(ChannelUri::parse("unix:" + path));
  std::vector<HandedBlock> blocks;
  blocks.push_back(HandedBlock{"pc.ram", 4096, memfd("ram")});
  std::vector<HandedDeviceFd> device_fds;
  device_fds.push_back(HandedDeviceFd{"com1", "listener", memfd("listener")});
  device_fds.push_back(HandedDeviceFd{"com1", "client", memfd("client")});
  device_fds.push_back(HandedDeviceFd{"disk0", "image", memfd("image")});

  CprHandover got;
  std::thread new_molt([&] {
    got = receiver.receive();
    CprReceiver::answer(got, {{"accept", true}});
  });
  const boost::json::object reply = core::migration::hand_over_ram(
      ChannelUri::parse("unix:" + path), blocks, device_fds, boost::json::object{{"vcpus", 1}}, 5s);
  new_molt.join();
  ::unlink(path.c_str());

  EXPECT_EQ(reply.at("accept"), boost::json::value(true));
  ASSERT_EQ(got.blocks.size(), 1u);
  EXPECT_EQ(got.blocks[0].name, "pc.ram");
  EXPECT_EQ(inode_of(got.blocks[0].fd.get()), inode_of(blocks[0].fd.get()));
  ASSERT_EQ(got.device_fds.size(), device_fds.size());
  for (std::size_t i = 0; i < device_fds.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got.device_fds[i].device, device_fds[i].device);
    EXPECT_EQ(got.device_fds[i].name, device_fds[i].name);
    EXPECT_EQ(inode_of(got.device_fds[i].fd.get()), inode_of(device_fds[i].fd.get()));
  }
}

TEST(CprChannel, ListedAndReceivedFdCountsMustMatch) {
  const Fd ram = memfd("ram");
  EXPECT_EQ(receive_error(R"({"blocks": [{"name": "pc.ram", "size": 4096}],
                             "device_fds": [{"device": "com1", "name": "listener"}]})",
                          {ram.get()}),
            "cpr channel: 1 RAM blocks and 1 device fds listed but 1 file descriptors came");
}

TEST(CprChannel, MalformedOrRepeatedDeviceFdEntriesAreRefused) {
  const Fd ram = memfd("ram"), a = memfd("a"), b = memfd("b");
  const std::string block = R"("blocks": [{"name": "pc.ram", "size": 4096}])";
  EXPECT_EQ(
      receive_error("{" + block + R"(, "device_fds": [{"device": "com1"}]})", {ram.get(), a.get()}),
      "cpr channel: device_fds[0] needs a device id (1 to 128 characters) and a name (1 to 64 characters)");
  EXPECT_EQ(receive_error("{" + block + R"(, "device_fds": [{"device": "com1", "name": "x"},
                                                           {"device": "com1", "name": "x"}]})",
                          {ram.get(), a.get(), b.get()}),
            "cpr channel: device_fds[1] repeats device com1 fd 'x'");
  EXPECT_EQ(receive_error("{" + block + R"(, "device_fds": {}})", {ram.get()}),
            "cpr channel: device_fds in the source's message is not a list");
}

TEST(CprChannel, WhatADeviceOffersIsChecked) {
  using core::migration::invalid_handover;
  EXPECT_EQ(invalid_handover({{{"image", 3}, {"log", 4}}, {}}), "");
  EXPECT_EQ(invalid_handover({{{"image", 3}, {"image", 4}}, {}}),
            "it offers two fds named 'image' to hand over");
  EXPECT_EQ(invalid_handover({{{"", 3}}, {}}),
            "fd 0 it offers to hand over needs a name of 1 to 64 characters");
  EXPECT_EQ(invalid_handover({{{"image", -1}}, {}}), "it offers fd 'image' to hand over, but that fd is -1");
  sdk::FdHandover many;
  for (int i = 0; i < 33; ++i) many.fds.push_back({"fd" + std::to_string(i), 3});
  EXPECT_EQ(invalid_handover(many), "it offers 33 fds to hand over; at most 32 can go");
}

}  // namespace
}  // namespace molt::test
