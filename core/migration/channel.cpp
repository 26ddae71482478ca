#include "core/migration/channel.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace molt::core::migration {

namespace {

// RAM moves at memory speed on loopback; the kernel's default socket buffers
// (~200 KiB) make the sender wait on every window.
constexpr int kSocketBufferBytes = 4 << 20;
// With a rate limit, writes go in pieces this big so pacing stays smooth.
constexpr std::size_t kPacedPiece = 64 << 10;
// The token bucket lets this much time's worth of bytes go at once.
constexpr std::chrono::milliseconds kBurst{50};
constexpr int kListenBacklog = 16;

// strerror as the tail of a sentence: "connection refused".
std::string error_text(int error) {
  std::string text = std::strerror(error);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

[[noreturn]] void fail_uri(const std::string& uri, const std::string& what, int error) {
  throw sdk::Error(fmt::format("{}: {}: {}", uri, what, error_text(error)));
}

kvm::Fd make_eventfd(const std::string& uri) {
  kvm::Fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) fail_uri(uri, "cannot create an eventfd", errno);
  return fd;
}

void signal_eventfd(const kvm::Fd& fd) {
  if (!fd) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof(one));
}

// Big buffers need the FORCE variants (root / CAP_NET_ADMIN) beyond
// net.core.wmem_max. Without them, leave the kernel's autotuning alone:
// a plain SO_SNDBUF capped at wmem_max would pin a smaller buffer than
// autotuning reaches.
void enlarge_socket_buffers(int fd) {
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBufferBytes, sizeof(kSocketBufferBytes));
}

void set_nodelay(int fd) {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

void set_blocking(int fd, bool blocking) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

const char* to_string(Transport transport) {
  switch (transport) {
    case Transport::Tcp:
      return "tcp";
    case Transport::Unix:
      return "unix";
    case Transport::File:
      return "file";
    case Transport::Fd:
      return "fd";
  }
  return "unknown";
}

// ---- ChannelUri ----

namespace {

void parse_tcp(ChannelUri& uri, std::string_view rest) {
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos)
      throw sdk::Error(uri.text + ": an IPv6 address opened with '[' needs a closing ']'");
    uri.host = std::string(rest.substr(1, close - 1));
    if (uri.host.empty()) throw sdk::Error(uri.text + ": the brackets hold no IPv6 address");
    if (rest.size() == close + 1 || rest[close + 1] != ':')
      throw sdk::Error(uri.text + ": tcp:[ADDRESS]:PORT needs ':PORT' after the ']'");
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) throw sdk::Error(uri.text + ": tcp:HOST:PORT needs a port");
    uri.host = std::string(rest.substr(0, colon));
    if (uri.host.find(':') != std::string::npos)
      throw sdk::Error(uri.text + ": an IPv6 address needs brackets, as in tcp:[::1]:4444");
    port = rest.substr(colon + 1);
  }
  if (!all_digits(port) || port.size() > 5 || std::stoul(std::string(port)) > 65535)
    throw sdk::Error(
        fmt::format("{}: tcp:HOST:PORT needs a port 0-65535 (0 picks a free one when listening), not '{}'",
                    uri.text, port));
  uri.port = static_cast<std::uint16_t>(std::stoul(std::string(port)));
}

}  // namespace

ChannelUri ChannelUri::parse(const std::string& text) {
  ChannelUri uri;
  uri.text = text;
  const auto colon = text.find(':');
  if (colon == std::string::npos)
    throw sdk::Error(
        fmt::format("'{}' is not a channel URI; expected tcp:HOST:PORT, unix:PATH, file:PATH or fd:N", text));
  const std::string scheme = text.substr(0, colon);
  const std::string_view rest = std::string_view(text).substr(colon + 1);
  if (scheme == "tcp") {
    uri.transport = Transport::Tcp;
    parse_tcp(uri, rest);
  } else if (scheme == "unix" || scheme == "file") {
    uri.transport = scheme == "unix" ? Transport::Unix : Transport::File;
    if (rest.empty()) throw sdk::Error(fmt::format("{}: {}:PATH needs a path", text, scheme));
    uri.path = std::string(rest);
    if (uri.transport == Transport::Unix && uri.path.size() >= sizeof(sockaddr_un::sun_path))
      throw sdk::Error(fmt::format("{}: a UNIX socket path may have at most {} bytes, this one has {}", text,
                                   sizeof(sockaddr_un::sun_path) - 1, uri.path.size()));
  } else if (scheme == "fd") {
    uri.transport = Transport::Fd;
    if (!all_digits(rest) || rest.size() > 9)
      throw sdk::Error(fmt::format("{}: fd:N needs a file descriptor number, not '{}'", text, rest));
    uri.fd = std::stoi(std::string(rest));
  } else {
    throw sdk::Error(fmt::format("{}: unknown transport '{}'; expected tcp, unix, file or fd", text, scheme));
  }
  return uri;
}

// ---- Channel ----

Channel::Channel(kvm::Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {
  struct stat st {};
  socket_ = ::fstat(fd_.get(), &st) == 0 && S_ISSOCK(st.st_mode);
  if (!socket_) wake_ = make_eventfd(name_);
}

Channel::~Channel() = default;

void Channel::fail(const char* what, int error) const {
  if (shut_) throw sdk::Error(name_ + ": the channel was shut down");
  fail_uri(name_, what, error);
}

void Channel::wait_ready(short events) {
  pollfd fds[2] = {{fd_.get(), events, 0}, {wake_.get(), POLLIN, 0}};
  const nfds_t count = wake_ ? 2 : 1;
  while (::poll(fds, count, -1) < 0) {
    if (errno != EINTR) fail("poll failed", errno);
  }
  if (shut_) throw sdk::Error(name_ + ": the channel was shut down");
}

void Channel::write(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    const std::size_t piece_size = limiter_ ? std::min(bytes.size(), kPacedPiece) : bytes.size();
    if (limiter_) limiter_->acquire(piece_size);
    auto piece = bytes.first(piece_size);
    bytes = bytes.subspan(piece_size);
    while (!piece.empty()) {
      if (shut_) throw sdk::Error(name_ + ": the channel was shut down");
      if (!socket_) wait_ready(POLLOUT);
      const ssize_t n = socket_ ? ::send(fd_.get(), piece.data(), piece.size(), MSG_NOSIGNAL)
                                : ::write(fd_.get(), piece.data(), piece.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {  // an adopted non-blocking fd
          wait_ready(POLLOUT);
          continue;
        }
        fail("write failed", errno);
      }
      piece = piece.subspan(static_cast<std::size_t>(n));
      stats_.bytes_sent += static_cast<std::uint64_t>(n);
    }
  }
}

bool Channel::read(std::span<std::uint8_t> out) {
  std::size_t got = 0;
  while (got < out.size()) {
    if (shut_) throw sdk::Error(name_ + ": the channel was shut down");
    if (!socket_) wait_ready(POLLIN);
    const ssize_t n = socket_ ? ::recv(fd_.get(), out.data() + got, out.size() - got, 0)
                              : ::read(fd_.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        wait_ready(POLLIN);
        continue;
      }
      fail("read failed", errno);
    }
    if (n == 0) {
      if (shut_) throw sdk::Error(name_ + ": the channel was shut down");
      if (got == 0) return false;
      throw TruncatedInput(fmt::format("{}: the input ended after {} of {} bytes", name_, got, out.size()),
                           got);
    }
    got += static_cast<std::size_t>(n);
    stats_.bytes_received += static_cast<std::uint64_t>(n);
  }
  return true;
}

void Channel::shutdown() {
  shut_ = true;
  if (socket_) ::shutdown(fd_.get(), SHUT_RDWR);
  signal_eventfd(wake_);
}

// ---- RateLimiter ----

void RateLimiter::acquire(std::uint64_t bytes) {
  const std::uint64_t rate = rate_.load();
  if (rate == 0 || bytes == 0) return;
  std::chrono::steady_clock::time_point go;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    // The bucket: next_ is when everything granted so far will have drained
    // at `rate`; a caller may go while that is at most kBurst ahead of now.
    next_ = std::max(next_, now) + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                       std::chrono::duration<double>(static_cast<double>(bytes) / rate));
    go = next_ - kBurst;
  }
  std::this_thread::sleep_until(go);
}

// ---- connect_channel ----

namespace {

// Waits for a non-blocking connect; returns "" when connected, else why not.
std::string finish_connect(int fd, std::chrono::steady_clock::time_point deadline,
                           std::chrono::milliseconds timeout) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return "poll failed: " + error_text(errno);
    if (r == 0) return fmt::format("no connection within {} ms", timeout.count());
    int error = 0;
    socklen_t length = sizeof(error);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return error_text(errno);
    return error == 0 ? "" : error_text(error);
  }
}

struct AddrInfoDeleter {
  void operator()(addrinfo* list) const { ::freeaddrinfo(list); }
};
using AddrInfoList = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoList resolve(const ChannelUri& uri, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* list = nullptr;
  const std::string port = std::to_string(uri.port);
  const int rc = ::getaddrinfo(uri.host.empty() ? nullptr : uri.host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0)
    throw sdk::Error(fmt::format("{}: cannot resolve host '{}': {}", uri.text, uri.host, ::gai_strerror(rc)));
  return AddrInfoList(list);
}

std::unique_ptr<Channel> connect_tcp(const ChannelUri& uri, std::chrono::milliseconds timeout) {
  if (uri.port == 0)
    throw sdk::Error(uri.text + ": cannot connect to port 0; name the port the destination listens on");
  const AddrInfoList list = resolve(uri, false);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string why = "no address to connect to";
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    kvm::Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      why = error_text(errno);
      continue;
    }
    enlarge_socket_buffers(fd.get());
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      why.clear();
    } else if (errno == EINPROGRESS || errno == EINTR) {
      why = finish_connect(fd.get(), deadline, timeout);
    } else {
      why = error_text(errno);
    }
    if (why.empty()) {
      set_blocking(fd.get(), true);
      set_nodelay(fd.get());
      return std::make_unique<Channel>(std::move(fd), uri.text);
    }
  }
  throw sdk::Error(uri.text + ": cannot connect: " + why + "; is the destination listening there?");
}

sockaddr_un unix_address(const ChannelUri& uri) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (uri.path.size() >= sizeof(addr.sun_path))
    throw sdk::Error(uri.text + ": the UNIX socket path is too long");
  std::memcpy(addr.sun_path, uri.path.data(), uri.path.size());
  return addr;
}

std::unique_ptr<Channel> connect_unix(const ChannelUri& uri) {
  const sockaddr_un addr = unix_address(uri);
  kvm::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) fail_uri(uri.text, "cannot create a socket", errno);
  enlarge_socket_buffers(fd.get());
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0)
    throw sdk::Error(uri.text + ": cannot connect: " + error_text(errno) + "; is the destination listening there?");
  return std::make_unique<Channel>(std::move(fd), uri.text);
}

kvm::Fd adopt_fd(const ChannelUri& uri) {
  kvm::Fd fd(::fcntl(uri.fd, F_DUPFD_CLOEXEC, 0));
  if (!fd) {
    if (errno == EBADF) throw sdk::Error(uri.text + ": not an open file descriptor");
    fail_uri(uri.text, "cannot duplicate the descriptor", errno);
  }
  return fd;
}

}  // namespace

std::unique_ptr<Channel> connect_channel(const ChannelUri& uri, std::chrono::milliseconds timeout) {
  switch (uri.transport) {
    case Transport::Tcp:
      return connect_tcp(uri, timeout);
    case Transport::Unix:
      return connect_unix(uri);
    case Transport::File: {
      // A snapshot holds guest memory: readable by its owner only.
      kvm::Fd fd(::open(uri.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      if (!fd) fail_uri(uri.text, "cannot create the file", errno);
      return std::make_unique<Channel>(std::move(fd), uri.text);
    }
    case Transport::Fd:
      return std::make_unique<Channel>(adopt_fd(uri), uri.text);
  }
  throw sdk::Error(uri.text + ": unknown transport");
}

// ---- Listener ----

namespace {

kvm::Fd listen_tcp(const ChannelUri& uri) {
  const AddrInfoList list = resolve(uri, true);
  std::string why = "no address to listen on";
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    kvm::Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      why = error_text(errno);
      continue;
    }
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    enlarge_socket_buffers(fd.get());  // accepted sockets inherit them
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), kListenBacklog) == 0)
      return fd;
    why = error_text(errno);
  }
  throw sdk::Error(uri.text + ": cannot listen: " + why);
}

kvm::Fd listen_unix(const ChannelUri& uri) {
  const sockaddr_un addr = unix_address(uri);
  struct stat st {};
  if (::lstat(uri.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw sdk::Error(uri.text + ": the path exists and is not a socket; refusing to replace it");
    ::unlink(uri.path.c_str());  // a stale socket from an earlier run
  }
  kvm::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) fail_uri(uri.text, "cannot create a socket", errno);
  enlarge_socket_buffers(fd.get());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0)
    fail_uri(uri.text, "cannot listen", errno);
  if (::listen(fd.get(), kListenBacklog) < 0) fail_uri(uri.text, "cannot listen", errno);
  return fd;
}

}  // namespace

Listener::Listener(const ChannelUri& uri) : uri_(uri) {
  switch (uri_.transport) {
    case Transport::Tcp:
      fd_ = listen_tcp(uri_);
      break;
    case Transport::Unix:
      fd_ = listen_unix(uri_);
      bound_unix_ = true;
      break;
    case Transport::File:
      // Checked now so a missing snapshot is reported before anything waits on it.
      if (::access(uri_.path.c_str(), R_OK) < 0) fail_uri(uri_.text, "cannot read the file", errno);
      return;
    case Transport::Fd:
      if (::fcntl(uri_.fd, F_GETFD) < 0) throw sdk::Error(uri_.text + ": not an open file descriptor");
      return;
  }
  wake_ = make_eventfd(uri_.text);
}

Listener::~Listener() {
  if (bound_unix_) ::unlink(uri_.path.c_str());
}

std::string Listener::address() const {
  if (uri_.transport != Transport::Tcp) return uri_.text;
  sockaddr_storage addr{};
  socklen_t length = sizeof(addr);
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &length) < 0) return uri_.text;
  char numeric[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (addr.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, numeric, sizeof(numeric));
    port = ntohs(a6->sin6_port);
  } else {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a4->sin_addr, numeric, sizeof(numeric));
    port = ntohs(a4->sin_port);
  }
  const std::string host = uri_.host.empty() ? std::string(numeric) : uri_.host;
  return fmt::format("tcp:{}:{}", bracketed(host), port);
}

std::unique_ptr<Channel> Listener::accept() {
  if (uri_.transport == Transport::File || uri_.transport == Transport::Fd) {
    if (consumed_)
      throw sdk::Error(uri_.text + ": a " + to_string(uri_.transport) + " channel is accepted once");
    if (shut_) throw sdk::Error(uri_.text + ": the listener was shut down");
    consumed_ = true;
    if (uri_.transport == Transport::Fd) return std::make_unique<Channel>(adopt_fd(uri_), uri_.text);
    kvm::Fd fd(::open(uri_.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) fail_uri(uri_.text, "cannot open the file", errno);
    return std::make_unique<Channel>(std::move(fd), uri_.text);
  }
  for (;;) {
    if (shut_) throw sdk::Error(uri_.text + ": the listener was shut down");
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) fail_uri(uri_.text, "poll failed", errno);
    if (shut_) throw sdk::Error(uri_.text + ": the listener was shut down");
    kvm::Fd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      fail_uri(uri_.text, "accept failed", errno);
    }
    if (uri_.transport == Transport::Tcp) set_nodelay(fd.get());
    return std::make_unique<Channel>(std::move(fd), address());
  }
}

void Listener::shutdown() {
  shut_ = true;
  signal_eventfd(wake_);
}

std::unique_ptr<Channel> connect_when_listening(const ChannelUri& uri, std::chrono::milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      return connect_channel(uri, timeout);
    } catch (const sdk::Error&) {
      if (std::chrono::steady_clock::now() >= give_up) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

}  // namespace molt::core::migration
