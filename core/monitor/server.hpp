// The monitor's transport: a listening UNIX socket and its clients, served
// from the main event loop (non-blocking fds, no threads of its own).
// Newline-delimited JSON-RPC 2.0, one request (or batch) per line.
//
// Limits (docs/monitor.md): a line longer than max_line bytes gets one -32600
// error and the connection is closed once that reply is written; a client
// whose unsent output passes max_output (it does not read its replies or
// events) is dropped; at most max_clients connections at once. A client that
// sends garbage gets error replies; one that disconnects mid-line is dropped
// with its half line. None of this touches other clients or the guest.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/io/event_loop.hpp"
#include "core/monitor/methods.hpp"
#include "core/monitor/rpc.hpp"

namespace molt::core::monitor {

struct ServerLimits {
  std::size_t max_line = 1 << 20;
  std::size_t max_output = 4 << 20;
  std::size_t max_clients = 32;
};

class MonitorServer {
 public:
  MonitorServer(io::EventLoop& loop, const MethodTable& table, Services services, ServerLimits limits = {});
  ~MonitorServer();
  MonitorServer(const MonitorServer&) = delete;
  MonitorServer& operator=(const MonitorServer&) = delete;

  // Creates and listens on `path`. A stale socket file there is replaced; a
  // socket another process still serves, or a file that is not a socket, is
  // an sdk::Error. The file is removed when the server is destroyed.
  void listen(const std::filesystem::path& path);
  // Serves an already-connected socket (tests use a socketpair); takes it.
  void adopt(int fd);

  // Sends `event` to every client that subscribed to it. Thread-safe: from a
  // vCPU thread or device callback it is queued and sent from the loop.
  void publish(const std::string& event, json::object params);

  // At exit, once the loop stopped: delivers queued events and writes what
  // the clients are owed (the vm.quit reply), for at most `timeout`.
  void flush(std::chrono::milliseconds timeout);

  std::size_t client_count() const { return clients_.size(); }

 private:
  struct Client;
  void accept_clients();
  void on_client_ready(std::uint64_t id, std::uint32_t revents);
  // False when the client must be dropped.
  bool read_requests(Client& client);
  void queue(Client& client, const std::string& line);
  bool write_pending(Client& client);
  void update_interest(Client& client);
  void drop(std::uint64_t id);
  void deliver_published();

  io::EventLoop& loop_;
  const MethodTable& table_;
  Services services_;
  ServerLimits limits_;
  int listen_fd_ = -1;
  std::uint64_t listen_handle_ = 0;
  std::filesystem::path socket_path_;
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_client_ = 1;

  std::mutex published_mutex_;
  std::vector<std::pair<std::string, json::object>> published_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // posted closures check it
};

}  // namespace molt::core::monitor
