// The host backends: file, unix-socket (server and client), none, stdio on a
// terminal, output buffering when the host is slow, and property checks.
#include <pty.h>
#include <termios.h>

#include <chrono>

#include <molt/sdk/error.hpp>

#include "backend_helpers.hpp"

namespace molt::serial::test {
namespace {

TEST_F(SerialTest, FileBackendWritesAndTruncatesAtStart) {
  TempDir dir;
  const std::string path = dir.file("console.log");
  std::ofstream(path) << "old contents";
  make_from_properties({{"backend", std::string("file")}, {"path", path}});
  for (char c : std::string("boot ok\n")) out(kRegData, static_cast<std::uint8_t>(c));
  EXPECT_EQ(slurp(path), "boot ok\n");
}

TEST_F(SerialTest, FileBackendAppendsWhenAsked) {
  TempDir dir;
  const std::string path = dir.file("console.log");
  std::ofstream(path) << "before|";
  make_from_properties({{"backend", std::string("file")}, {"path", path}, {"append", true}});
  out(kRegData, 'x');
  EXPECT_EQ(slurp(path), "before|x");
}

TEST_F(SerialTest, FileBackendThatCannotBeOpenedFailsRealize) {
  try {
    make_from_properties({{"backend", std::string("file")}, {"path", std::string("/nonexistent-dir/x/y")}});
    FAIL() << "realize should have thrown";
  } catch (const sdk::Error& e) {
    EXPECT_STREQ(
        e.what(),
        "com1: cannot open /nonexistent-dir/x/y for the serial file backend: No such file or directory");
  }
}

TEST_F(SerialTest, NoneBackendDiscardsOutput) {
  make_from_properties({{"backend", std::string("none")}});
  for (int i = 0; i < 5; ++i) out(kRegData, 'n');
  EXPECT_EQ(device_->backend()->dropped_bytes(), 5u);
  EXPECT_TRUE(watched_fds(machine_).empty());
}

TEST_F(SerialTest, UnixSocketServerExchangesBytesWithOneClientAtATime) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  make_from_properties({{"backend", std::string("unix-socket")}, {"path", path}});
  enable_fifo();
  ASSERT_TRUE(fs::is_socket(path));
  const std::vector<int> listening = watched_fds(machine_);
  ASSERT_EQ(listening.size(), 1u);
  out(kRegData, '-');  // nobody connected: dropped
  EXPECT_EQ(device_->backend()->dropped_bytes(), 1u);

  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  machine_.fire_fd(listening[0], EPOLLIN);
  EXPECT_EQ(machine_.watched_events(listening[0]), 0u) << "no second client while one is connected";
  for (char c : std::string("to client")) out(kRegData, static_cast<std::uint8_t>(c));
  EXPECT_EQ(recv_some(client, 9), "to client");

  ASSERT_EQ(::send(client, "hi", 2, 0), 2);
  std::vector<int> fds = watched_fds(machine_);
  ASSERT_EQ(fds.size(), 1u);
  const int accepted = fds[0];
  machine_.fire_fd(accepted, EPOLLIN);
  EXPECT_EQ(read_all_received(), "hi");

  ::close(client);
  machine_.fire_fd(accepted, EPOLLIN | EPOLLHUP);
  machine_.clock().advance(0);
  EXPECT_EQ(machine_.watched_events(listening[0]), std::uint32_t{EPOLLIN}) << "listening again";
  const int second = connect_unix(path);
  ASSERT_GE(second, 0);
  machine_.fire_fd(listening[0], EPOLLIN);
  out(kRegData, '2');
  EXPECT_EQ(recv_some(second, 1), "2");
  ::close(second);
  device_.reset();
  EXPECT_FALSE(fs::exists(path)) << "the socket file goes with the device";
}

TEST_F(SerialTest, UnixSocketServerReplacesAStaleSocket) {
  TempDir dir;
  const std::string path = dir.file("stale.sock");
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);  // leaves the socket file behind
  }
  make_from_properties({{"backend", std::string("unix-socket")}, {"path", path}});
  const int client = connect_unix(path);
  EXPECT_GE(client, 0);
  ::close(client);
}

TEST_F(SerialTest, UnixSocketServerRefusesToReplaceARegularFile) {
  TempDir dir;
  const std::string path = dir.file("precious");
  std::ofstream(path) << "data";
  EXPECT_THROW(make_from_properties({{"backend", std::string("unix-socket")}, {"path", path}}), sdk::Error);
  EXPECT_EQ(slurp(path), "data");
}

TEST_F(SerialTest, UnixSocketClientConnectsToAServer) {
  TempDir dir;
  const std::string path = dir.file("server.sock");
  const int server = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(server, 1), 0);
  make_from_properties({{"backend", std::string("unix-socket")}, {"path", path}, {"server", false}});
  const int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  out(kRegData, 'c');
  EXPECT_EQ(recv_some(peer, 1), "c");
  ASSERT_EQ(::send(peer, "s", 1, 0), 1);
  const std::vector<int> fds = watched_fds(machine_);
  ASSERT_EQ(fds.size(), 1u);
  machine_.fire_fd(fds[0], EPOLLIN);
  EXPECT_EQ(in(kRegData), 's');
  ::close(peer);
  ::close(server);
}

TEST_F(SerialTest, UnixSocketClientWithoutServerFailsRealize) {
  TempDir dir;
  try {
    make_from_properties(
        {{"backend", std::string("unix-socket")}, {"path", dir.file("nobody.sock")}, {"server", false}});
    FAIL() << "realize should have thrown";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("com1: cannot connect to"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
}

TEST_F(SerialTest, SlowHostBuffersOutputThenDropsBeyondTheBound) {
  make_piped();
  // Fill the output pipe from our side so the device's next write would block.
  ::fcntl(output_.write_end, F_SETFL, ::fcntl(output_.write_end, F_GETFL) | O_NONBLOCK);
  std::string filler(4096, 'f');
  std::size_t in_pipe = 0;
  for (int i = 0; i < 1024; ++i) {
    const ssize_t n = ::write(output_.write_end, filler.data(), filler.size());
    if (n <= 0) break;
    in_pipe += static_cast<std::size_t>(n);
  }
  const std::size_t sent = kMaxPendingOutput + 100;
  for (std::size_t i = 0; i < sent; ++i) out(kRegData, static_cast<std::uint8_t>('a' + i % 26));
  EXPECT_EQ(machine_.watched_events(output_.write_end), std::uint32_t{EPOLLOUT});
  EXPECT_EQ(device_->backend()->dropped_bytes(), 100u);
  // The guest never noticed: THR stayed empty.
  EXPECT_EQ(in(kRegLsr)&kLsrThrEmpty, kLsrThrEmpty);
  // Drain the pipe as the host catches up; the buffered bytes follow in order.
  std::string got;
  for (int i = 0; i < 1000 && got.size() < in_pipe + kMaxPendingOutput; ++i) {
    got += take_output();
    machine_.fire_fd(output_.write_end, EPOLLOUT);
  }
  got += take_output();
  ASSERT_EQ(got.size(), in_pipe + kMaxPendingOutput);
  for (std::size_t i = 0; i < kMaxPendingOutput; ++i) {
    ASSERT_EQ(got[in_pipe + i], static_cast<char>('a' + i % 26)) << "byte " << i;
  }
  EXPECT_EQ(machine_.watched_events(output_.write_end), 0u);
}

TEST(SerialStdioTerminal, RawishModeKeepsIsigAndIsRestoredExactly) {
  int master = -1;
  int slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  termios before{};
  ASSERT_EQ(::tcgetattr(slave, &before), 0);
  const int flags_before = ::fcntl(slave, F_GETFL);
  Pipe output;
  {
    FakeMachine machine;
    auto& ctx = machine.add_context("com1", serial_properties());
    SerialDevice device(
        ctx, [&](sdk::DeviceContext& c) { return make_stdio_backend(c, slave, output.write_end); });
    device.realize();
    device.reset();
    termios during{};
    ASSERT_EQ(::tcgetattr(slave, &during), 0);
    EXPECT_EQ(during.c_lflag & (ICANON | ECHO), 0u);
    EXPECT_NE(during.c_lflag & ISIG, 0u) << "Ctrl-C must still reach molt";
    EXPECT_EQ(during.c_cc[VMIN], 1);
    EXPECT_NE(::fcntl(slave, F_GETFL) & O_NONBLOCK, 0);
    // A key typed on the terminal reaches the guest unbuffered.
    ASSERT_EQ(::write(master, "k", 1), 1);
    for (int i = 0; i < 100 && !(machine.bus().io_read(0x3fd, 1) & kLsrDataReady); ++i) {
      machine.fire_fd(slave, EPOLLIN);
      ::usleep(1000);
    }
    EXPECT_EQ(machine.bus().io_read(0x3f8, 1), 'k');
  }
  termios after{};
  ASSERT_EQ(::tcgetattr(slave, &after), 0);
  EXPECT_EQ(after.c_iflag, before.c_iflag);
  EXPECT_EQ(after.c_oflag, before.c_oflag);
  EXPECT_EQ(after.c_cflag, before.c_cflag);
  EXPECT_EQ(after.c_lflag, before.c_lflag);
  EXPECT_EQ(std::memcmp(after.c_cc, before.c_cc, sizeof before.c_cc), 0);
  EXPECT_EQ(::fcntl(slave, F_GETFL), flags_before);
  ::close(master);
  ::close(slave);
}

TEST(SerialProperties, DefaultsAndLimits) {
  const sdk::DeviceType& type = serial_type();
  EXPECT_EQ(type.name, "serial-16550a");
  const sdk::Properties props = serial_properties();
  EXPECT_EQ(props.get_uint("iobase"), 0x3f8u);
  EXPECT_EQ(props.get_uint("irq"), 4u);
  EXPECT_EQ(props.get_string("backend"), "stdio");
  EXPECT_EQ(props.get_string("path"), "");
  EXPECT_TRUE(props.get_bool("server"));
  for (const sdk::PropertySpec& spec : type.properties) {
    if (spec.name == "irq") {
      EXPECT_EQ(spec.max, 23u);
    } else if (spec.name == "iobase") {
      EXPECT_EQ(spec.max, 0xfff8u);
    } else if (spec.name == "backend") {
      EXPECT_EQ(spec.choices.size(), 4u);
    }
  }
}

TEST_F(SerialTest, RefusesAnIobaseWhosePortsPassTheTopOfIoSpace) {
  try {
    make_from_properties({{"iobase", std::uint64_t{0xfff9}}, {"backend", std::string("none")}});
    FAIL() << "realize should have thrown";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("0xfff8"), std::string::npos) << e.what();
  }
  EXPECT_EQ(machine_.bus().io_read(0xfff9, 1), 0xffu) << "nothing was claimed";
}

TEST_F(SerialTest, AcceptsTheHighestIobaseAndOtherIrq) {
  make_from_properties(
      {{"iobase", std::uint64_t{0xfff8}}, {"irq", std::uint64_t{3}}, {"backend", std::string("none")}});
  machine_.bus().io_write(0xfffc, 1, kMcrOut2);
  machine_.bus().io_write(0xfff9, 1, kIerThrEmpty);
  EXPECT_TRUE(machine_.irq(3).level());
}

TEST_F(SerialTest, RefusesAFileBackendWithoutPathAndAnIrqBeyond23) {
  EXPECT_THROW(make_from_properties({{"backend", std::string("file")}}), sdk::Error);
  EXPECT_THROW(make_from_properties({{"irq", std::uint64_t{24}}, {"backend", std::string("none")}}),
               sdk::Error);
}

}  // namespace
}  // namespace molt::serial::test
