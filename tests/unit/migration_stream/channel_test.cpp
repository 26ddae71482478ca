// Channels over real sockets, pipes and files: bytes and stats both ways,
// pacing, shutdown from another thread, and the listener's side.
#include <gtest/gtest.h>

#include <netinet/in.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "core/migration/channel.hpp"

namespace molt::core::migration {
namespace {

using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

Bytes pattern(std::size_t size) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return out;
}

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
  return {std::make_unique<Channel>(kvm::Fd(fds[0]), "pair:a"),
          std::make_unique<Channel>(kvm::Fd(fds[1]), "pair:b")};
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/molt-channel-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Sends `data` from `from` while `to` reads it; both directions' counters must agree.
void expect_transfer(Channel& from, Channel& to, const Bytes& data) {
  const std::uint64_t sent_before = from.stats().bytes_sent, received_before = to.stats().bytes_received;
  auto writer = std::async(std::launch::async, [&] { from.write(data); });
  Bytes got(data.size());
  EXPECT_TRUE(to.read(got));
  writer.get();
  EXPECT_EQ(got, data);
  EXPECT_EQ(from.stats().bytes_sent - sent_before, data.size());
  EXPECT_EQ(to.stats().bytes_received - received_before, data.size());
}

TEST(Channel, SocketPairCarriesBytesBothWaysAndSeesTheEnd) {
  auto [a, b] = socket_pair();
  expect_transfer(*a, *b, pattern(3 << 20));
  expect_transfer(*b, *a, pattern(1000));
  a->write(pattern(3));
  a.reset();  // the peer goes away after 3 bytes
  std::uint8_t out[8];
  try {
    b->read(out);
    FAIL() << "a read across the peer's close succeeded";
  } catch (const TruncatedInput& e) {
    EXPECT_EQ(e.delivered(), 3u);
    EXPECT_EQ(std::string(e.what()), "pair:b: the input ended after 3 of 8 bytes");
  }
  EXPECT_FALSE(b->read(out));  // a clean end before the first byte
}

TEST(Channel, WritingToAClosedPeerIsAnErrorNotSigpipe) {
  auto [a, b] = socket_pair();
  b.reset();
  try {
    a->write(pattern(1 << 20));
    FAIL() << "a write to a closed peer succeeded";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()), "pair:a: write failed: broken pipe");
  }
}

TEST(Channel, ShutdownUnblocksAReadInAnotherThread) {
  auto [a, b] = socket_pair();
  auto reader = std::async(std::launch::async, [&b = b] {
    std::uint8_t out[16];
    b->read(out);
  });
  EXPECT_EQ(reader.wait_for(100ms), std::future_status::timeout);  // really blocked
  b->shutdown();
  ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
  try {
    reader.get();
    FAIL() << "the read returned normally";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()), "pair:b: the channel was shut down");
  }
}

TEST(Channel, ShutdownUnblocksAReadOnAPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  kvm::Fd write_end(fds[1]);
  Channel channel{kvm::Fd(fds[0]), "fd:pipe"};
  auto reader = std::async(std::launch::async, [&] {
    std::uint8_t out[4];
    channel.read(out);
  });
  EXPECT_EQ(reader.wait_for(100ms), std::future_status::timeout);
  channel.shutdown();
  ASSERT_EQ(reader.wait_for(5s), std::future_status::ready);
  EXPECT_THROW(reader.get(), sdk::Error);
}

TEST(Channel, RateLimiterPacesWrites) {
  auto [a, b] = socket_pair();
  constexpr std::uint64_t kRate = 1'000'000;
  constexpr std::size_t kBytes = 300'000;
  a->set_rate_limit(std::make_shared<RateLimiter>(kRate));
  auto drain = std::async(std::launch::async, [&b = b] {
    Bytes sink(kBytes);
    return b->read(sink);
  });
  const auto start = std::chrono::steady_clock::now();
  a->write(pattern(kBytes));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(drain.get());
  // 300 ms at the rate, less the 50 ms burst the bucket lets through at once.
  EXPECT_GE(elapsed, 240ms);
  EXPECT_LT(elapsed, 3s);
}

TEST(Channel, RateLimiterOfZeroDoesNotWait) {
  RateLimiter limiter(0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) limiter.acquire(1 << 30);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms);
  limiter.set_rate(10'000);
  const auto paced = std::chrono::steady_clock::now();
  limiter.acquire(2'000);  // 200 ms of budget; 50 ms may go at once
  EXPECT_GE(std::chrono::steady_clock::now() - paced, 140ms);
}

TEST(Channel, TcpListenerOnPortZeroReportsTheRealPort) {
  Listener listener(ChannelUri::parse("tcp:127.0.0.1:0"));
  const std::string address = listener.address();
  ASSERT_EQ(address.rfind("tcp:127.0.0.1:", 0), 0u) << address;
  const ChannelUri real = ChannelUri::parse(address);
  EXPECT_NE(real.port, 0);
  EXPECT_GE(listener.fd(), 0);
  auto source = std::async(std::launch::async, [&] { return connect_channel(real, 2s); });
  std::unique_ptr<Channel> destination = listener.accept();
  std::unique_ptr<Channel> sender = source.get();
  EXPECT_EQ(sender->name(), address);
  expect_transfer(*sender, *destination, pattern(5 << 20));
  expect_transfer(*destination, *sender, pattern(64));  // the return path
}

// The host decides whether ::1 exists: where it does, bytes flow; where it
// does not, the listener's refusal names the URI.
bool host_has_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TEST(Channel, TcpOverIpv6Loopback) {
  if (!host_has_ipv6_loopback()) {
    try {
      Listener refused(ChannelUri::parse("tcp:[::1]:0"));
      ADD_FAILURE() << "listening on ::1 worked although the host has no IPv6 loopback";
    } catch (const sdk::Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("tcp:[::1]:0: ", 0), 0u) << e.what();
    }
    return;
  }
  auto listener = std::make_unique<Listener>(ChannelUri::parse("tcp:[::1]:0"));
  const std::string address = listener->address();
  EXPECT_EQ(address.rfind("tcp:[::1]:", 0), 0u) << address;
  auto source =
      std::async(std::launch::async, [&] { return connect_channel(ChannelUri::parse(address), 2s); });
  auto destination = listener->accept();
  auto sender = source.get();
  expect_transfer(*sender, *destination, pattern(4096));
}

TEST(Channel, ConnectionRefusedNamesTheUri) {
  std::string address;
  {
    Listener listener(ChannelUri::parse("tcp:127.0.0.1:0"));
    address = listener.address();
  }
  try {
    connect_channel(ChannelUri::parse(address), 2s);
    FAIL() << "connected to a closed port";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()), address + ": cannot connect: connection refused; is the destination listening there?");
  }
  EXPECT_THROW(connect_channel(ChannelUri::parse("tcp:127.0.0.1:0"), 1s), sdk::Error);
}

TEST(Channel, ListenerShutdownUnblocksAccept) {
  Listener listener(ChannelUri::parse("tcp:127.0.0.1:0"));
  auto waiting = std::async(std::launch::async, [&] { return listener.accept(); });
  EXPECT_EQ(waiting.wait_for(100ms), std::future_status::timeout);
  listener.shutdown();
  ASSERT_EQ(waiting.wait_for(5s), std::future_status::ready);
  EXPECT_THROW(waiting.get(), sdk::Error);
}

TEST(Channel, UnixSocketsReplaceStaleSocketsButNothingElse) {
  TempDir dir;
  const std::string path = dir.file("mig.sock");
  {  // a socket file left behind by a process that died
    const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(stale);
  }
  {
    Listener listener(ChannelUri::parse("unix:" + path));
    EXPECT_EQ(listener.address(), "unix:" + path);
    auto source = std::async(std::launch::async,
                             [&] { return connect_channel(ChannelUri::parse("unix:" + path), 2s); });
    auto destination = listener.accept();
    auto sender = source.get();
    expect_transfer(*sender, *destination, pattern(2 << 20));
    expect_transfer(*destination, *sender, pattern(10));
  }
  EXPECT_FALSE(std::filesystem::exists(path));  // the listener removed its socket

  const std::string regular = dir.file("notes.txt");
  std::ofstream(regular) << "keep me";
  try {
    Listener listener(ChannelUri::parse("unix:" + regular));
    FAIL() << "replaced a regular file";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "unix:" + regular + ": the path exists and is not a socket; refusing to replace it");
  }
  EXPECT_TRUE(std::filesystem::exists(regular));
  EXPECT_THROW(connect_channel(ChannelUri::parse("unix:" + dir.file("none.sock")), 1s), sdk::Error);
}

TEST(Channel, FileChannelWritesASnapshotThatAListenerReadsBackOnce) {
  TempDir dir;
  const ChannelUri uri = ChannelUri::parse("file:" + dir.file("snap.molt"));
  const Bytes data = pattern(100'000);
  {
    auto out = connect_channel(uri, 1s);
    out->write(data);
    EXPECT_EQ(out->stats().bytes_sent, data.size());
  }
  Listener listener(uri);
  EXPECT_EQ(listener.fd(), -1);
  auto in = listener.accept();
  Bytes got(data.size());
  EXPECT_TRUE(in->read(got));
  EXPECT_EQ(got, data);
  EXPECT_FALSE(in->read(got));
  EXPECT_EQ(in->stats().bytes_received, data.size());
  EXPECT_THROW(listener.accept(), sdk::Error);
  try {
    Listener missing(ChannelUri::parse("file:" + dir.file("absent.molt")));
    FAIL() << "listened on a file that does not exist";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "file:" + dir.file("absent.molt") + ": cannot read the file: no such file or directory");
  }
}

TEST(Channel, FdChannelsAdoptADuplicate) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto out = connect_channel(ChannelUri::parse("fd:" + std::to_string(fds[1])), 1s);
  ::close(fds[1]);  // the channel holds its own duplicate
  Listener listener(ChannelUri::parse("fd:" + std::to_string(fds[0])));
  auto in = listener.accept();
  ::close(fds[0]);
  expect_transfer(*out, *in, pattern(50'000));
  EXPECT_THROW(listener.accept(), sdk::Error);
  EXPECT_THROW(connect_channel(ChannelUri::parse("fd:987654"), 1s), sdk::Error);
}

}  // namespace
}  // namespace molt::core::migration
