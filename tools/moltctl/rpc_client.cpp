#include "rpc_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace moltctl {

namespace {
using Clock = std::chrono::steady_clock;
}

RpcClient::RpcClient(const std::string& socket_path, std::chrono::milliseconds timeout) : timeout_(timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path)
    throw ClientError("socket path '" + socket_path + "' is empty or too long");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    throw ClientError("cannot connect to " + socket_path + ": " + why +
                      " (is molt running with --api-socket?)");
  }
}

RpcClient::~RpcClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> RpcClient::read_line(std::optional<std::chrono::milliseconds> timeout) {
  const auto deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
  for (;;) {
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    int wait_ms = -1;
    if (timeout) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      wait_ms = static_cast<int>(left);
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char chunk[65536];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n <= 0) throw ClientError("the monitor closed the connection");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

json::value RpcClient::call(const std::string& method, const json::object& params) {
  const std::int64_t id = next_id_++;
  json::object request{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.empty()) request["params"] = params;
  const std::string line = json::serialize(request) + "\n";
  if (::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    throw ClientError("cannot send the request: " + std::string(std::strerror(errno)));
  for (;;) {
    const auto reply_line = read_line(timeout_);
    if (!reply_line)
      throw ClientError("no reply to " + method + " within " + std::to_string(timeout_.count()) + " ms");
    json::error_code ec;
    const json::value reply = json::parse(*reply_line, ec);
    if (ec || !reply.is_object())
      throw ClientError("the monitor sent something that is not JSON-RPC: " + *reply_line);
    const json::object& obj = reply.as_object();
    if (!obj.contains("id")) {  // a notification that arrived first
      pending_notifications_.push_back(obj);
      continue;
    }
    if (const json::value* error = obj.if_contains("error")) {
      const json::object& e = error->as_object();
      throw ReplyError(static_cast<int>(e.at("code").to_number<std::int64_t>()),
                       std::string(e.at("message").as_string()));
    }
    if (obj.at("id") != json::value(id)) continue;  // not ours (should not happen with one request at a time)
    return obj.at("result");
  }
}

std::optional<json::object> RpcClient::next_notification(std::optional<std::chrono::milliseconds> timeout) {
  if (!pending_notifications_.empty()) {
    json::object n = std::move(pending_notifications_.front());
    pending_notifications_.erase(pending_notifications_.begin());
    return n;
  }
  const auto line = read_line(timeout);
  if (!line) return std::nullopt;
  json::error_code ec;
  const json::value v = json::parse(*line, ec);
  if (ec || !v.is_object()) throw ClientError("the monitor sent something that is not JSON-RPC: " + *line);
  return v.as_object();
}

}  // namespace moltctl
