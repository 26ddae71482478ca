// The monitor server on real UNIX sockets, its event loop on a test thread:
// concurrent clients where one misbehaves, oversized lines, disconnects
// mid-request, slow readers, notifications only to subscribers, and the
// socket file's life.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>

#include "core/monitor/server.hpp"
#include "fake_vm.hpp"

namespace molt::core::monitor::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path temp_socket(const std::string& name) {
  return fs::temp_directory_path() / ("molt-mon-" + std::to_string(::getpid()) + "-" + name + ".sock");
}

class TestClient {
 public:
  explicit TestClient(const fs::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~TestClient() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }
  void send(const std::string& text) {
    ASSERT_EQ(::send(fd_, text.data(), text.size(), MSG_NOSIGNAL), ssize_t(text.size()));
  }
  // The next line, or nullopt on timeout or when the server closed the connection.
  std::optional<std::string> line(std::chrono::milliseconds timeout = 2000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string l = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return l;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0))) <= 0) return std::nullopt;
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  json::value reply(std::chrono::milliseconds timeout = 2000ms) {
    const auto l = line(timeout);
    return l ? json::parse(*l) : json::value(nullptr);
  }
  // True once the server closed the connection (reads EOF within the timeout).
  bool closed_by_server(std::chrono::milliseconds timeout = 2000ms) {
    while (!closed_ && line(timeout)) {
    }
    return closed_;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerLimits limits = {}) {
    path_ = temp_socket(::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_.emplace(loop_, method_table(), Services{vm_}, limits);
    server_->listen(path_);
    thread_ = std::thread([this] { loop_.run(); });
  }
  void TearDown() override {
    loop_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }
  std::size_t clients() {
    std::promise<std::size_t> count;
    loop_.post([&] { count.set_value(server_->client_count()); });
    return count.get_future().get();
  }

  FakeVm vm_;
  io::EventLoop loop_;
  std::optional<MonitorServer> server_;
  std::thread thread_;
  fs::path path_;
};

const std::string kStatus = R"({"jsonrpc":"2.0","id":7,"method":"vm.status"})"
                            "\n";

TEST_F(ServerTest, AnswersRequestsSplitAcrossWrites) {
  start();
  TestClient c(path_);
  ASSERT_TRUE(c.connected());
  c.send(kStatus.substr(0, 10));
  std::this_thread::sleep_for(50ms);
  c.send(kStatus.substr(10));
  const json::value r = c.reply();
  EXPECT_EQ(r.at("id"), json::value(7)) << r;
  EXPECT_EQ(r.at("result").at("state"), json::value("running"));
}

TEST_F(ServerTest, GarbageFromOneClientLeavesAnotherServed) {
  start();
  TestClient bad(path_), good(path_);
  bad.send("this is not json\n\x01\x02\x03\n{\"jsonrpc\":\"2.0\"}\n");
  EXPECT_EQ(error_code(bad.reply()), kParseError);
  EXPECT_EQ(error_code(bad.reply()), kParseError);
  EXPECT_EQ(error_code(bad.reply()), kInvalidRequest);
  good.send(kStatus);
  EXPECT_EQ(good.reply().at("result").at("state"), json::value("running"));
  bad.send(kStatus);  // still served after its garbage
  EXPECT_EQ(bad.reply().at("id"), json::value(7));
}

TEST_F(ServerTest, OversizedLineGetsAnErrorAndTheConnectionCloses) {
  ServerLimits limits;
  limits.max_line = 4096;
  start(limits);
  TestClient big(path_), good(path_);
  big.send(std::string(10000, 'x'));
  const json::value r = big.reply();
  EXPECT_EQ(error_code(r), kInvalidRequest) << r;
  EXPECT_NE(error_message(r).find("4096"), std::string::npos);
  EXPECT_TRUE(big.closed_by_server());
  good.send(kStatus);
  EXPECT_EQ(good.reply().at("id"), json::value(7));
}

TEST_F(ServerTest, DisconnectMidRequestIsHarmless) {
  start();
  {
    TestClient quitter(path_);
    quitter.send(R"({"jsonrpc":"2.0","id":1,"method":"vm.pa)");
  }
  TestClient good(path_);
  good.send(kStatus);
  EXPECT_EQ(good.reply().at("id"), json::value(7));
  EXPECT_EQ(vm_.pauses, 0);
  EXPECT_EQ(clients(), 1u);
}

TEST_F(ServerTest, FloodOfRequestsIsAnsweredInOrderWhileOthersAreServed) {
  start();
  TestClient flood(path_), good(path_);
  std::string burst;
  for (int i = 0; i < 2000; ++i)
    burst += R"({"jsonrpc":"2.0","id":)" + std::to_string(i) +
             R"(,"method":"vm.status"})"
             "\n";
  std::thread sender([&] { flood.send(burst); });
  good.send(kStatus);
  EXPECT_EQ(good.reply().at("id"), json::value(7));
  for (int i = 0; i < 2000; ++i) {
    const json::value r = flood.reply();
    ASSERT_EQ(r.at("id"), json::value(i));
  }
  sender.join();
}

TEST_F(ServerTest, ClientThatDoesNotReadIsDroppedOthersKeepEvents) {
  ServerLimits limits;
  limits.max_output = 64 << 10;
  start(limits);
  TestClient stuck(path_), reader(path_);
  const std::string subscribe = R"({"jsonrpc":"2.0","id":1,"method":"events.subscribe"})"
                                "\n";
  stuck.send(subscribe);
  reader.send(subscribe);
  ASSERT_EQ(stuck.reply().at("id"), json::value(1));
  ASSERT_EQ(reader.reply().at("id"), json::value(1));
  // Far more than the socket buffer plus 64 KiB of events; `stuck` reads none.
  const std::string pad(1000, 'p');
  int received = 0;
  for (int i = 0; i < 4000; ++i) {
    server_->publish(
        kEventDevice,
        json::object{{"device", "nic0"}, {"event", "tick"}, {"data", json::object{{"pad", pad}}}});
    // The reader keeps up: it has everything published so far before more comes.
    if (i % 20 == 19)
      while (received <= i && reader.line(2000ms)) ++received;
  }
  while (received < 4000 && reader.line(1000ms)) ++received;
  EXPECT_EQ(received, 4000);
  EXPECT_TRUE(stuck.closed_by_server(3000ms));
  EXPECT_EQ(clients(), 1u);
}

TEST_F(ServerTest, NotificationsGoOnlyToSubscribers) {
  start();
  TestClient subscriber(path_), bystander(path_);
  subscriber.send(
      R"({"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"events":["vm.state-changed"]}})"
      "\n");
  ASSERT_EQ(subscriber.reply().at("id"), json::value(1));
  bystander.send(kStatus);
  ASSERT_EQ(bystander.reply().at("id"), json::value(7));
  server_->publish(kEventDevice, json::object{{"device", "nic0"}});  // not subscribed to by anyone
  server_->publish(kEventStateChanged, json::object{{"state", "paused"}, {"reason", "test"}});
  const json::value n = subscriber.reply();
  EXPECT_FALSE(n.as_object().contains("id"));
  EXPECT_EQ(n.at("method"), json::value(kEventStateChanged));
  EXPECT_EQ(n.at("params").at("state"), json::value("paused"));
  EXPECT_FALSE(bystander.line(300ms)) << "a client that did not subscribe got an event";
  EXPECT_FALSE(subscriber.line(100ms)) << "the unsubscribed device event was sent";
}

TEST_F(ServerTest, TooManyClientsAreRefusedWithAnError) {
  ServerLimits limits;
  limits.max_clients = 2;
  start(limits);
  TestClient a(path_), b(path_);
  a.send(kStatus);
  b.send(kStatus);
  ASSERT_EQ(a.reply().at("id"), json::value(7));
  ASSERT_EQ(b.reply().at("id"), json::value(7));
  TestClient c(path_);
  EXPECT_EQ(error_code(c.reply()), kInvalidRequest);
  EXPECT_TRUE(c.closed_by_server());
}

TEST(ServerSocket, StaleSocketIsReplacedAndRemovedAtExit) {
  const fs::path path = temp_socket("stale");
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // the file stays; nobody listens: stale
  }
  FakeVm vm;
  io::EventLoop loop;
  {
    MonitorServer server(loop, method_table(), Services{vm});
    server.listen(path);
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    // A second server on a live socket is refused.
    MonitorServer second(loop, method_table(), Services{vm});
    EXPECT_THROW(second.listen(path), sdk::Error);
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(ServerSocket, PathThatIsNotASocketIsAnError) {
  const fs::path path = temp_socket("regular");
  std::ofstream(path) << "keep me";
  FakeVm vm;
  io::EventLoop loop;
  MonitorServer server(loop, method_table(), Services{vm});
  try {
    server.listen(path);
    ADD_FAILURE() << "listen replaced a regular file";
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(path));
  fs::remove(path);
}

}  // namespace
}  // namespace molt::core::monitor::testing
