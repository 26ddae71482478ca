// A blocking JSON-RPC client for moltctl: one connection, one request at a
// time, notifications handed to a callback while a reply is awaited.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include <boost/json.hpp>

namespace moltctl {

namespace json = boost::json;

// A connection or protocol failure (not an error reply).
class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An error reply: its code and message.
class ReplyError : public std::runtime_error {
 public:
  ReplyError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class RpcClient {
 public:
  RpcClient(const std::string& socket_path, std::chrono::milliseconds timeout);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends a request and returns its result; throws ReplyError or ClientError.
  json::value call(const std::string& method, const json::object& params = {});

  // The next notification, waiting at most `timeout` (nullopt: none came).
  // Throws ClientError when the monitor closed the connection.
  std::optional<json::object> next_notification(std::optional<std::chrono::milliseconds> timeout);

 private:
  std::optional<std::string> read_line(std::optional<std::chrono::milliseconds> timeout);

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::int64_t next_id_ = 1;
  std::vector<json::object> pending_notifications_;
};

}  // namespace moltctl
