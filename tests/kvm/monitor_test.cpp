// The monitor of a running test guest over its socket: pausing really stops
// the guest, events reach subscribers, misbehaving clients leave the guest
// and other clients alone, and vm.quit ends molt with status 0 and removes
// the socket.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "molt_process.hpp"

namespace molt::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class SocketClient {
 public:
  explicit SocketClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~SocketClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& text) {
    [[maybe_unused]] auto n = ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
  }
  // The next JSON line, or null on timeout or a closed connection.
  json::value next(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        const std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return json::parse(line);
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 0))) <= 0) return nullptr;
      char chunk[65536];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return nullptr;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Sends a request and returns its reply, collecting notifications that came first.
  json::value call(const std::string& method, const std::string& params = "{}") {
    send(R"({"jsonrpc":"2.0","id":)" + std::to_string(++id_) + R"(,"method":")" + method + R"(","params":)" +
         params + "}\n");
    for (;;) {
      json::value v = next();
      if (v.is_null() || v.as_object().contains("id")) return v;
      notifications.push_back(v);
    }
  }
  std::vector<json::value> notifications;

 private:
  int fd_ = -1;
  bool connected_ = false;
  int id_ = 0;
  std::string buffer_;
};

class Monitor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    socket_ = test_socket_path("molt-kvm-mon-");
    molt_ = start_memtest_with_monitor(socket_);
    if (::testing::Test::HasFailure()) return;
  }
  void TearDown() override { std::filesystem::remove(socket_); }
  // Lets molt run for `d`, collecting its console.
  void pump(std::chrono::milliseconds d) { molt_->wait_for_line("^@never-printed$", d); }

  std::string socket_;
  std::unique_ptr<MoltProcess> molt_;
};

TEST_F(Monitor, PauseStopsTheGuestAndResumeRestartsIt) {
  SocketClient c(socket_);
  ASSERT_TRUE(c.connected());
  ASSERT_EQ(c.call("events.subscribe").at("result").at("subscribed").as_array().size(), 4u);  // vm.*, device, migrate
  EXPECT_EQ(c.call("vm.pause").at("result").at("state"), json::value("paused"));
  pump(200ms);  // lines already in the pipe
  const std::size_t paused_at = memtest_lines(*molt_);
  pump(1000ms);
  EXPECT_EQ(memtest_lines(*molt_), paused_at) << "the guest kept printing while paused";
  EXPECT_EQ(c.call("vm.status").at("result").at("state"), json::value("paused"));
  EXPECT_EQ(c.call("vm.resume").at("result").at("state"), json::value("running"));
  pump(1000ms);
  EXPECT_GT(memtest_lines(*molt_), paused_at + 3) << "the guest did not run again after vm.resume";
  // The two state changes arrived as notifications, in order.
  while (c.notifications.size() < 2) {
    const json::value n = c.next(2000ms);
    if (n.is_null()) break;
    c.notifications.push_back(n);
  }
  ASSERT_EQ(c.notifications.size(), 2u);
  EXPECT_EQ(c.notifications[0].at("params").at("state"), json::value("paused"));
  EXPECT_EQ(c.notifications[1].at("params").at("state"), json::value("running"));
}

TEST_F(Monitor, MisbehavingClientLeavesGuestAndOthersAlone) {
  SocketClient bad(socket_), good(socket_);
  bad.send("garbage\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.nope\"}\n");
  EXPECT_EQ(bad.next().at("error").at("code"), json::value(-32700));
  EXPECT_EQ(bad.next().at("error").at("code"), json::value(-32601));
  bad.send(std::string((1 << 20) + 100, 'x'));  // no newline: oversized
  EXPECT_EQ(bad.next().at("error").at("code"), json::value(-32600));
  EXPECT_TRUE(bad.next(2000ms).is_null());  // closed
  const std::size_t before = memtest_lines(*molt_);
  EXPECT_EQ(good.call("vm.status").at("result").at("state"), json::value("running"));
  pump(500ms);
  EXPECT_GT(memtest_lines(*molt_), before) << "the guest stopped";
}

TEST_F(Monitor, QuitSendsTheExitEventAndMoltExitsZero) {
  SocketClient c(socket_);
  c.call("events.subscribe", R"({"events":["vm.exit"]})");
  const json::value reply = c.call("vm.quit");
  EXPECT_EQ(reply.at("result").at("state"), json::value("shutting-down")) << reply;
  const json::value exit = c.next();
  ASSERT_FALSE(exit.is_null());
  EXPECT_EQ(exit.at("method"), json::value("vm.exit"));
  EXPECT_EQ(exit.at("params").at("exit_status"), json::value(0));
  const auto status = molt_->wait_exit(20s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << molt_->errors();
  EXPECT_FALSE(std::filesystem::exists(socket_)) << "the socket outlived molt";
}

TEST(MonitorSocket, PathThatIsNotASocketStopsMolt) {
  if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
  const auto path =
      std::filesystem::temp_directory_path() / ("molt-kvm-notsock-" + std::to_string(::getpid()));
  { std::ofstream(path) << "x"; }
  const Finished f = run_molt({"run", source_dir() + "/machines/default.json", "--kernel", testguest_elf(),
                               "--cmdline", "hello", "--api-socket", path.string()},
                              30s);
  EXPECT_EQ(f.status, 2);
  EXPECT_NE(f.errors.find("not a socket"), std::string::npos) << f.errors;
  EXPECT_EQ(f.console.find("@ready"), std::string::npos) << "the guest started";
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace molt::test
