#include "core/monitor/server.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

namespace molt::core::monitor {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kReadChunk = 64 << 10;

sockaddr_un unix_address(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string s = path.string();
  if (s.empty() || s.size() >= sizeof addr.sun_path)
    throw sdk::Error(
        fmt::format("api socket path {} must be 1 to {} bytes long", s, sizeof addr.sun_path - 1));
  std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
  return addr;
}

// A socket file left by a process that is gone is removed; one that still
// answers, or anything that is not a socket, is left alone and refused.
void clear_stale_socket(const fs::path& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode))
    throw sdk::Error(fmt::format("api socket {} exists and is not a socket; remove it or choose another path",
                                 path.string()));
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool live =
      probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (probe >= 0) ::close(probe);
  if (live)
    throw sdk::Error(fmt::format("api socket {} is served by another running process", path.string()));
  ::unlink(path.c_str());
}

}  // namespace

struct MonitorServer::Client {
  int fd = -1;
  std::uint64_t handle = 0;
  std::uint32_t interest = EPOLLIN;
  std::string in;
  std::string out;
  std::size_t out_sent = 0;
  bool close_after_flush = false;
  bool dead = false;
  Session session;
  std::size_t pending() const { return out.size() - out_sent; }
};

MonitorServer::MonitorServer(io::EventLoop& loop, const MethodTable& table, Services services,
                             ServerLimits limits)
    : loop_(loop), table_(table), services_(services), limits_(limits) {}

MonitorServer::~MonitorServer() {
  for (auto& [id, client] : clients_) {
    loop_.remove_fd(client->handle);
    ::close(client->fd);
  }
  clients_.clear();
  if (listen_fd_ >= 0) {
    loop_.remove_fd(listen_handle_);
    ::close(listen_fd_);
    ::unlink(socket_path_.c_str());
  }
}

void MonitorServer::listen(const fs::path& path) {
  const sockaddr_un addr = unix_address(path);
  clear_stale_socket(path, addr);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw sdk::Error(std::string("cannot create the api socket: ") + std::strerror(errno));
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    throw sdk::Error(fmt::format("cannot listen on api socket {}: {}", path.string(), std::strerror(err)));
  }
  listen_fd_ = fd;
  socket_path_ = path;
  listen_handle_ = loop_.add_fd(fd, EPOLLIN, [this](std::uint32_t) { accept_clients(); });
}

void MonitorServer::accept_clients() {
  for (int i = 0; i < 16; ++i) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (clients_.size() >= limits_.max_clients) {
      const std::string refusal =
          json::serialize(
              error_reply(nullptr, kInvalidRequest,
                          fmt::format("too many monitor clients ({}); close one", limits_.max_clients))) +
          "\n";
      [[maybe_unused]] auto n = ::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    adopt(fd);
  }
}

void MonitorServer::adopt(int fd) {
  const std::uint64_t id = next_client_++;
  auto client = std::make_unique<Client>();
  client->fd = fd;
  client->handle =
      loop_.add_fd(fd, EPOLLIN, [this, id](std::uint32_t revents) { on_client_ready(id, revents); });
  clients_.emplace(id, std::move(client));
}

void MonitorServer::on_client_ready(std::uint64_t id, std::uint32_t revents) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  if ((revents & EPOLLOUT) && !write_pending(c)) return drop(id);
  if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c.close_after_flush && !read_requests(c))
    return drop(id);
  if ((revents & (EPOLLHUP | EPOLLERR)) && c.close_after_flush) return drop(id);
  if (c.dead || (c.close_after_flush && c.pending() == 0)) return drop(id);
  update_interest(c);
}

bool MonitorServer::read_requests(Client& c) {
  char buffer[kReadChunk];
  const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
  if (n == 0) return false;  // gone; a half line goes with it
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  c.in.append(buffer, static_cast<std::size_t>(n));
  std::size_t start = 0;
  for (std::size_t nl; !c.dead && (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(c.in.data() + start, nl - start);
    if (line.size() > limits_.max_line) break;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string reply = handle_line(table_, line, c.session, services_);
    if (!reply.empty()) queue(c, reply);
  }
  c.in.erase(0, start);
  const std::size_t line_length = std::min(c.in.find('\n'), c.in.size());
  if (line_length > limits_.max_line) {
    queue(c, json::serialize(
                 error_reply(nullptr, kInvalidRequest,
                             fmt::format("a request line is longer than {} bytes; the connection is closed",
                                         limits_.max_line))));
    c.in.clear();
    c.close_after_flush = true;
  }
  return true;
}

void MonitorServer::queue(Client& c, const std::string& line) {
  if (c.dead) return;
  c.out += line;
  c.out += '\n';
  if (!write_pending(c) || c.pending() > limits_.max_output) c.dead = true;
}

bool MonitorServer::write_pending(Client& c) {
  while (c.pending() > 0) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.out_sent += static_cast<std::size_t>(n);
  }
  c.out.clear();
  c.out_sent = 0;
  return true;
}

void MonitorServer::update_interest(Client& c) {
  const std::uint32_t wanted =
      (c.close_after_flush ? 0u : std::uint32_t{EPOLLIN}) | (c.pending() ? EPOLLOUT : 0u);
  if (wanted == c.interest) return;
  c.interest = wanted;
  loop_.modify_fd(c.handle, wanted);
}

void MonitorServer::drop(std::uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  loop_.remove_fd(it->second->handle);
  ::close(it->second->fd);
  clients_.erase(it);
}

void MonitorServer::publish(const std::string& event, json::object params) {
  {
    std::lock_guard lock(published_mutex_);
    published_.emplace_back(event, std::move(params));
  }
  loop_.post([this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.lock()) deliver_published();
  });
}

void MonitorServer::deliver_published() {
  std::vector<std::pair<std::string, json::object>> events;
  {
    std::lock_guard lock(published_mutex_);
    events.swap(published_);
  }
  for (const auto& [event, params] : events) {
    const std::string line = notification_line(event, params);
    for (auto& [id, client] : clients_)
      if (client->session.subscriptions.count(event)) queue(*client, line);
  }
  std::vector<std::uint64_t> dead;
  for (auto& [id, client] : clients_) {
    if (client->dead)
      dead.push_back(id);
    else
      update_interest(*client);
  }
  for (std::uint64_t id : dead) drop(id);
}

void MonitorServer::flush(std::chrono::milliseconds timeout) {
  deliver_published();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<Client*> waiting;
    for (auto& [id, client] : clients_) {
      if (client->dead || client->pending() == 0) continue;
      fds.push_back(pollfd{client->fd, POLLOUT, 0});
      waiting.push_back(client.get());
    }
    if (fds.empty()) return;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<long>(left.count(), 1))) <= 0) return;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL))
        waiting[i]->dead = true;
      else if ((fds[i].revents & POLLOUT) && !write_pending(*waiting[i]))
        waiting[i]->dead = true;
    }
  }
}

}  // namespace molt::core::monitor
