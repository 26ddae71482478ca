// cpr-transfer: a port in the "old molt" hands its backend fds over, a port
// in the "new molt" (another FakeMachine) takes them at realize, as the core
// does it: the old port keeps its fds and the new one gets duplicates.
#include <molt/sdk/error.hpp>

#include "backend_helpers.hpp"

namespace molt::serial::test {
namespace {

// One molt's port: its own FakeMachine, realized from its properties.
struct Molt {
  FakeMachine machine;
  std::unique_ptr<SerialDevice> port;
  std::vector<int> handed;  // the duplicates the core offered this molt

  void realize(const std::map<std::string, sdk::PropertyValue>& overrides) {
    port = std::make_unique<SerialDevice>(machine.add_context("com1", serial_properties(overrides)));
    port->realize();
    port->reset();
    machine.bus().io_write(0x3f8 + kRegIirFcr, 1, kFcrEnable);  // room for more than one byte
  }
  void out(std::uint8_t byte) { machine.bus().io_write(0x3f8, 1, byte); }
  void out(const std::string& text) {
    for (char c : text) out(static_cast<std::uint8_t>(c));
  }
  std::string received() {
    std::string text;
    for (int i = 0; i < 64 && (machine.bus().io_read(0x3f8 + kRegLsr, 1) & kLsrDataReady); ++i)
      text.push_back(static_cast<char>(machine.bus().io_read(0x3f8, 1)));
    return text;
  }
};

// What the core does between the two: duplicates of the old port's fds,
// offered to the new port under the same names.
std::vector<std::string> hand_over(Molt& from, Molt& to) {
  const sdk::FdHandover handover = from.port->handover_fds();
  EXPECT_EQ(handover.blocker, "");
  std::vector<std::string> names;
  for (const sdk::HandedFd& fd : handover.fds) {
    const int duplicate = ::fcntl(fd.fd, F_DUPFD_CLOEXEC, 0);
    to.machine.hand_over_fd("com1", fd.name, duplicate);
    to.handed.push_back(duplicate);
    names.push_back(fd.name);
  }
  return names;
}

// The file (or socket) an fd is open on, to tell a closed handed fd from
// a number the port reused for what it opened afresh.
std::pair<dev_t, ino_t> file_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

// Records what the handed fds are open on; check_closed() then verifies the
// port closed every one of them (an fd number may be open again, but then on
// something else).
class HandedFds {
 public:
  explicit HandedFds(const Molt& molt) {
    for (int fd : molt.handed) files_.emplace_back(fd, file_of(fd));
  }
  void check_closed() const {
    for (const auto& [fd, file] : files_) {
      if (::fcntl(fd, F_GETFD) == -1) {
        EXPECT_EQ(errno, EBADF) << fd;
      } else {
        EXPECT_NE(file_of(fd), file) << "the handed fd " << fd << " is still open";
      }
    }
  }

 private:
  std::vector<std::pair<int, std::pair<dev_t, ino_t>>> files_;
};

ino_t inode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::map<std::string, sdk::PropertyValue> socket_server(const std::string& path) {
  return {{"backend", std::string("unix-socket")}, {"path", path}};
}

std::map<std::string, sdk::PropertyValue> socket_client(const std::string& path) {
  return {{"backend", std::string("unix-socket")}, {"path", path}, {"server", false}};
}

std::map<std::string, sdk::PropertyValue> output_file(const std::string& path) {
  return {{"backend", std::string("file")}, {"path", path}};
}

// A listening UNIX socket bound to `path` (non-blocking accept), or -1.
int listen_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(SerialHandover, FileBackendGoesOnAppendingToTheTakenFile) {
  TempDir dir;
  const std::string path = dir.file("console.log");
  Molt old_molt;
  old_molt.realize(output_file(path));
  old_molt.out("old molt|");
  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), std::vector<std::string>{"output"});
  const std::pair<dev_t, ino_t> output = file_of(new_molt.handed.at(0));
  // Without the fd the new port would truncate the file (append is false).
  new_molt.realize(output_file(path));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  EXPECT_EQ(file_of(new_molt.handed.at(0)), output) << "the port keeps the handed fd";
  EXPECT_EQ(slurp(path), "old molt|");
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  new_molt.out("new molt");
  old_molt.port.reset();
  EXPECT_EQ(slurp(path), "old molt|new molt");
}

TEST(SerialHandover, FileBackendOpensAnotherConfiguredFileAfresh) {
  TempDir dir;
  const std::string old_path = dir.file("old.log");
  const std::string new_path = dir.file("new.log");
  std::ofstream(new_path) << "from an earlier run";
  Molt old_molt;
  old_molt.realize(output_file(old_path));
  old_molt.out("old molt|");
  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), std::vector<std::string>{"output"});
  const HandedFds handed(new_molt);
  new_molt.realize(output_file(new_path));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  handed.check_closed();
  EXPECT_EQ(slurp(new_path), "") << "opened as on a fresh start: truncated";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  new_molt.out("new molt");
  old_molt.port.reset();
  EXPECT_EQ(slurp(old_path), "old molt|");
  EXPECT_EQ(slurp(new_path), "new molt");
}

// The log was rotated (renamed) before the new molt started: the path names
// no file, so the new molt starts a new one there instead of writing on into
// the rotated one.
TEST(SerialHandover, FileBackendStartsANewFileWhereTheOldOneWasRotatedAway) {
  TempDir dir;
  const std::string path = dir.file("console.log");
  Molt old_molt;
  old_molt.realize(output_file(path));
  old_molt.out("old molt|");
  fs::rename(path, path + ".1");
  Molt new_molt;
  hand_over(old_molt, new_molt);
  const HandedFds handed(new_molt);
  new_molt.realize(output_file(path));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  handed.check_closed();
  new_molt.out("new molt");
  EXPECT_EQ(slurp(path + ".1"), "old molt|");
  EXPECT_EQ(slurp(path), "new molt");
}

TEST(SerialHandover, ServerKeepsItsClientConnectedAcrossTheHandover) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  Molt old_molt;
  old_molt.realize(socket_server(path));
  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  const std::vector<int> listening = watched_fds(old_molt.machine);
  ASSERT_EQ(listening.size(), 1u);
  old_molt.machine.fire_fd(listening[0], EPOLLIN);
  old_molt.out("before|");
  const ino_t bound = inode_of(path);

  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), (std::vector<std::string>{"listener", "client"}));
  new_molt.realize(socket_server(path));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  EXPECT_EQ(inode_of(path), bound) << "the live socket file was neither removed nor bound again";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  EXPECT_TRUE(watched_fds(old_molt.machine).empty()) << "the old molt lets go of the socket";

  new_molt.out("after");
  EXPECT_EQ(recv_some(client, 12), "before|after");
  ASSERT_EQ(::send(client, "in", 2, 0), 2);
  const std::vector<int> watched = watched_fds(new_molt.machine);
  ASSERT_EQ(watched.size(), 1u) << "the client only: no second client while one is connected";
  new_molt.machine.fire_fd(watched[0], EPOLLIN);
  EXPECT_EQ(new_molt.received(), "in");

  old_molt.port.reset();
  EXPECT_EQ(inode_of(path), bound) << "the old molt leaves the new molt's socket in place";
  const int second = connect_unix(path);
  EXPECT_GE(second, 0) << "and the new molt still listens on it";
  ::close(second);
  ::close(client);
  new_molt.port.reset();
  EXPECT_FALSE(fs::exists(path)) << "the new molt owns the path after the handover";
}

TEST(SerialHandover, ListenerOnTheConfiguredPathSpelledDifferentlyIsTaken) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  Molt old_molt;
  old_molt.realize(socket_server(path));
  const ino_t bound = inode_of(path);
  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), std::vector<std::string>{"listener"});
  const std::pair<dev_t, ino_t> listener = file_of(new_molt.handed.at(0));
  new_molt.realize(socket_server(dir.file(".") + "/./com1.sock"));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  EXPECT_EQ(inode_of(path), bound) << "no stale-socket removal, no bind";
  EXPECT_EQ(file_of(new_molt.handed.at(0)), listener) << "the port serves the handed listener";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  old_molt.port.reset();
  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  new_molt.machine.fire_fd(new_molt.handed.at(0), EPOLLIN);
  new_molt.out("x");
  EXPECT_EQ(recv_some(client, 1), "x");
  ::close(client);
}

// The operator gave the new molt's port another socket path (each molt its
// own console socket): the old console client is not carried over, and the
// new path is served as on a fresh start.
TEST(SerialHandover, ListenerOnAnotherPathIsClosedAndTheConfiguredPathIsBoundAfresh) {
  TempDir dir;
  const std::string old_path = dir.file("old.sock");
  const std::string new_path = dir.file("new.sock");
  Molt old_molt;
  old_molt.realize(socket_server(old_path));
  const int old_client = connect_unix(old_path);
  ASSERT_GE(old_client, 0);
  old_molt.machine.fire_fd(watched_fds(old_molt.machine).at(0), EPOLLIN);
  old_molt.out("old|");
  const int stale = listen_unix(new_path);  // a socket file nobody serves any more
  ::close(stale);
  const ino_t stale_inode = inode_of(new_path);
  // A second name keeps the stale inode alive, so a new socket cannot reuse its number.
  ASSERT_EQ(::link(new_path.c_str(), dir.file("stale.sock").c_str()), 0);

  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), (std::vector<std::string>{"listener", "client"}));
  const HandedFds handed(new_molt);
  new_molt.realize(socket_server(new_path));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  handed.check_closed();
  ASSERT_TRUE(fs::is_socket(new_path));
  EXPECT_NE(inode_of(new_path), stale_inode) << "the stale socket was removed and the path bound again";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  new_molt.out("unheard|");  // no client on the new path yet: dropped
  EXPECT_EQ(new_molt.port->backend()->dropped_bytes(), 8u);

  EXPECT_EQ(recv_some(old_client, 4), "old|");
  char byte;
  EXPECT_EQ(::recv(old_client, &byte, 1, MSG_DONTWAIT), 0) << "the old console client was let go";
  ::close(old_client);
  old_molt.port.reset();

  const int new_client = connect_unix(new_path);
  ASSERT_GE(new_client, 0);
  const std::vector<int> listening = watched_fds(new_molt.machine);
  ASSERT_EQ(listening.size(), 1u);
  new_molt.machine.fire_fd(listening[0], EPOLLIN);
  new_molt.out("new");
  EXPECT_EQ(recv_some(new_client, 3), "new");
  ::close(new_client);
  new_molt.port.reset();
  EXPECT_FALSE(fs::exists(new_path)) << "the new molt removes the socket it bound";
}

TEST(SerialHandover, PortThatTookItsListenerOwnsThePathOnlyOnceTheHandoverCompleted) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  Molt old_molt;
  old_molt.realize(socket_server(path));
  {
    Molt failed_molt;  // the new molt gives up before the handover completes
    hand_over(old_molt, failed_molt);
    failed_molt.realize(socket_server(path));
  }
  EXPECT_TRUE(fs::is_socket(path)) << "a new molt that failed leaves the old molt's socket";
  const int client = connect_unix(path);
  EXPECT_GE(client, 0) << "the old molt still serves it";
  ::close(client);

  Molt new_molt;
  hand_over(old_molt, new_molt);
  new_molt.realize(socket_server(path));
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  old_molt.port.reset();
  EXPECT_TRUE(fs::is_socket(path));
  new_molt.port.reset();
  EXPECT_FALSE(fs::exists(path));
}

TEST(SerialHandover, ClientModeHandsOverItsConnectionWithoutConnectingAgain) {
  TempDir dir;
  const std::string path = dir.file("server.sock");
  const int server = listen_unix(path);
  ASSERT_GE(server, 0);
  const std::map<std::string, sdk::PropertyValue> props = socket_client(path);
  Molt old_molt;
  old_molt.realize(props);
  const int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);

  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), std::vector<std::string>{"connection"});
  const std::pair<dev_t, ino_t> connection = file_of(new_molt.handed.at(0));
  new_molt.realize(props);
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  EXPECT_EQ(file_of(new_molt.handed.at(0)), connection) << "the port keeps the handed connection";
  EXPECT_LT(::accept(server, nullptr, nullptr), 0) << "the new molt did not connect again";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  old_molt.port.reset();

  new_molt.out("c");
  EXPECT_EQ(recv_some(peer, 1), "c");
  ASSERT_EQ(::send(peer, "s", 1, 0), 1);
  const std::vector<int> fds = watched_fds(new_molt.machine);
  ASSERT_EQ(fds.size(), 1u);
  new_molt.machine.fire_fd(fds[0], EPOLLIN);
  EXPECT_EQ(new_molt.received(), "s");
  ::close(peer);
  ::close(server);
}

TEST(SerialHandover, ConnectionToAnotherPathIsClosedAndTheConfiguredPathConnected) {
  TempDir dir;
  const int old_server = listen_unix(dir.file("old-server.sock"));
  const int new_server = listen_unix(dir.file("new-server.sock"));
  ASSERT_GE(old_server, 0);
  ASSERT_GE(new_server, 0);
  Molt old_molt;
  old_molt.realize(socket_client(dir.file("old-server.sock")));
  const int old_peer = ::accept(old_server, nullptr, nullptr);
  ASSERT_GE(old_peer, 0);

  Molt new_molt;
  EXPECT_EQ(hand_over(old_molt, new_molt), std::vector<std::string>{"connection"});
  const HandedFds handed(new_molt);
  new_molt.realize(socket_client(dir.file("new-server.sock")));
  EXPECT_EQ(new_molt.machine.untaken_fds(), 0u);
  handed.check_closed();
  const int new_peer = ::accept(new_server, nullptr, nullptr);
  ASSERT_GE(new_peer, 0) << "the new molt connected to its configured path";
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  new_molt.port->handover_completed(sdk::HandoverSide::Destination);
  old_molt.port.reset();

  new_molt.out("n");
  EXPECT_EQ(recv_some(new_peer, 1), "n");
  char byte;
  EXPECT_EQ(::recv(old_peer, &byte, 1, MSG_DONTWAIT), 0) << "nobody holds the old connection any more";
  for (int fd : {old_peer, new_peer, old_server, new_server}) ::close(fd);
}

// Writes guest bytes (`byte_at(i)` for the i-th) until the port has to queue
// behind the client's full socket; returns how many it wrote.
template <class ByteAt>
std::size_t fill_until_queued(Molt& molt, int accepted, ByteAt byte_at) {
  std::size_t sent = 0;
  while (!(molt.machine.watched_events(accepted) & EPOLLOUT) && sent < (8u << 20)) {
    molt.out(byte_at(sent));
    ++sent;
  }
  return sent;
}

TEST(SerialHandover, QueuedOutputGetsOneMoreChanceBeforeTheStateIsSaved) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  Molt molt;
  molt.realize(socket_server(path));
  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  molt.machine.fire_fd(watched_fds(molt.machine).at(0), EPOLLIN);
  const int accepted = watched_fds(molt.machine).at(0);
  // The client reads nothing until the socket is full and the port queues.
  const std::size_t sent =
      fill_until_queued(molt, accepted, [](std::size_t i) { return static_cast<std::uint8_t>('a' + i % 26); });
  ASSERT_TRUE(molt.machine.watched_events(accepted) & EPOLLOUT) << "the port never had to queue";
  std::string got;
  char buffer[65536];
  for (ssize_t n; (n = ::recv(client, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;)
    got.append(buffer, static_cast<std::size_t>(n));
  ASSERT_LT(got.size(), sent);

  molt.port->pre_save();  // no EPOLLOUT fired: the pause flushes by itself
  for (ssize_t n; (n = ::recv(client, buffer, sizeof buffer, MSG_DONTWAIT)) > 0;)
    got.append(buffer, static_cast<std::size_t>(n));
  ASSERT_EQ(got.size(), sent);
  for (std::size_t i = 0; i < sent; i += 4099) ASSERT_EQ(got[i], static_cast<char>('a' + i % 26)) << i;
  EXPECT_EQ(molt.machine.watched_events(accepted), std::uint32_t{EPOLLIN});
  EXPECT_EQ(molt.port->backend()->dropped_bytes(), 0u);
  ::close(client);
}

TEST(SerialHandover, OutputTheClientNeverTookStaysBehindAndIsCounted) {
  TempDir dir;
  const std::string path = dir.file("com1.sock");
  Molt old_molt;
  old_molt.realize(socket_server(path));
  const int client = connect_unix(path);
  ASSERT_GE(client, 0);
  old_molt.machine.fire_fd(watched_fds(old_molt.machine).at(0), EPOLLIN);
  const int accepted = watched_fds(old_molt.machine).at(0);
  fill_until_queued(old_molt, accepted, [](std::size_t) { return std::uint8_t{'q'}; });
  for (int i = 0; i < 10; ++i) old_molt.out('z');  // queued behind a full socket
  old_molt.port->pre_save();
  Molt new_molt;
  hand_over(old_molt, new_molt);
  new_molt.realize(socket_server(path));
  old_molt.port->handover_completed(sdk::HandoverSide::Source);
  const std::uint64_t stranded = old_molt.port->backend()->dropped_bytes();
  EXPECT_GE(stranded, 10u);
  EXPECT_TRUE(watched_fds(old_molt.machine).empty());
  old_molt.out('!');  // a paused guest would not, but nothing goes to the client from here
  EXPECT_EQ(old_molt.port->backend()->dropped_bytes(), stranded + 1);
  ::close(client);
}

TEST_F(SerialTest, StdioBackendHandsNothingOver) {
  make_piped();
  const sdk::FdHandover handover = device_->handover_fds();
  EXPECT_TRUE(handover.fds.empty());
  EXPECT_EQ(handover.blocker, "");
}

}  // namespace
}  // namespace molt::serial::test
