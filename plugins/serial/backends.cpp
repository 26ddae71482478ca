// The file, unix-socket and none backends, and the choice between backends.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <molt/sdk/error.hpp>
#include <molt/sdk/handover.hpp>

#include "char_backend.hpp"
#include "fd_channel.hpp"
#include <molt/sdk/rate_limited_log.hpp>
#include "unique_fd.hpp"

namespace molt::serial {

namespace {

[[noreturn]] void fail_open(sdk::DeviceContext& ctx, const std::string& what, const std::string& path,
                            int error) {
  throw sdk::Error(ctx.id() + ": cannot " + what + " " + path + " for the serial " +
                   (what == "open" ? "file" : "unix-socket") + " backend: " + std::strerror(error));
}

class NoneBackend final : public CharBackend {
 public:
  void start(Receiver) override {}
  void write(std::span<const std::uint8_t> bytes) override { dropped_ += bytes.size(); }
  void receive_room_changed() override {}
  std::uint64_t dropped_bytes() const override { return dropped_; }

 private:
  std::uint64_t dropped_ = 0;
};

// A path made absolute, with "." and ".." and symlinks of its existing part
// resolved, so that two spellings of one path compare equal.
std::string normalised(const std::string& path) {
  std::error_code error;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(path, error);
  if (!error) return canonical.string();
  const std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

// Output appended to a file; the file is truncated when the port is realized
// unless `append` is set (use that when a migration destination reopens it).
// In a cpr-transfer the old molt's fd is taken instead ("output") when it is
// open on the file `path` names: the same open file, appended to where the
// old molt left off, never truncated. A `path` naming another file is the
// operator's choice: it is opened as on a fresh start.
class FileBackend final : public CharBackend {
 public:
  FileBackend(sdk::DeviceContext& ctx, const std::string& path, bool append)
      : fd_(sdk::take_handed_over_file(ctx, "output", path)), log_(ctx.log(), ctx.clock()) {
    if (!fd_) {
      fd_.reset(::open(path.c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | (append ? 0 : O_TRUNC), 0644));
      if (!fd_) fail_open(ctx, "open", path, errno);
    }
    channel_ = std::make_unique<FdChannel>(ctx, log_, -1, fd_.get(), path);
  }
  void start(Receiver) override { channel_->start(nullptr); }
  void write(std::span<const std::uint8_t> bytes) override { channel_->write(bytes); }
  void receive_room_changed() override {}
  std::uint64_t dropped_bytes() const override { return channel_->dropped_bytes(); }
  void flush_pending() override { channel_->flush_pending(); }
  std::vector<sdk::HandedFd> handover_fds() const override { return {{"output", fd_.get()}}; }

 private:
  UniqueFd fd_;
  sdk::RateLimitedLog log_;
  std::unique_ptr<FdChannel> channel_;  // destroyed before fd_ closes
};

sockaddr_un socket_address(sdk::DeviceContext& ctx, const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    throw sdk::Error(ctx.id() + ": the socket path " + path + " is longer than the " +
                     std::to_string(sizeof(addr.sun_path) - 1) +
                     " bytes a UNIX socket address holds; choose a "
                     "shorter path");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// The path a UNIX socket is bound to (`peer` false) or connected to (`peer`
// true), or "" for an unnamed or abstract one.
std::string socket_path(int fd, bool peer) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  auto* raw = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(fd, raw, &len) : ::getsockname(fd, raw, &len)) != 0 || addr.sun_family != AF_UNIX)
    return {};
  if (len <= offsetof(sockaddr_un, sun_path) || addr.sun_path[0] == '\0') return {};
  return std::string(addr.sun_path, ::strnlen(addr.sun_path, sizeof(addr.sun_path)));
}

ino_t socket_inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_ino : 0;
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// One client at a time: while one is connected the listening socket is not
// watched, so the next client waits in the backlog. Output while no client is
// connected is dropped, as on a serial line with nothing plugged in.
//
// cpr-transfer: a server hands over "listener" and, while a client is
// connected, "client"; a client-mode port hands over "connection". The new
// molt's port takes them instead of binding or connecting when they are on
// the socket its `path` names; a `path` naming another socket is the
// operator's choice, served as on a fresh start. The socket path belongs to
// exactly one molt at a time: the one that bound it, until it completes a
// handover as the source; the one that took the listener only once it
// completes the handover as the destination.
class UnixSocketBackend final : public CharBackend {
 public:
  UnixSocketBackend(sdk::DeviceContext& ctx, const BackendConfig& config)
      : ctx_(ctx), path_(config.path), server_(config.server), log_(ctx.log(), ctx.clock()) {
    if (server_) {
      UniqueFd listener(ctx.take_handed_over_fd("listener"));
      UniqueFd client(ctx.take_handed_over_fd("client"));
      if (listener && on_configured_path(socket_path(listener.get(), false))) {
        adopt_listener(std::move(listener));
        client_fd_ = std::move(client);
      } else {
        if (listener || client) {
          ctx.log().info("{}: the path property names {}, not the socket the previous molt handed over; "
                         "its console client is not carried over and {} is bound afresh",
                         ctx.id(), path_, path_);
        }
        listen_on_path();
      }
    } else {
      UniqueFd connection(ctx.take_handed_over_fd("connection"));
      if (connection && on_configured_path(socket_path(connection.get(), true))) {
        client_fd_ = std::move(connection);
      } else {
        if (connection) {
          ctx.log().info("{}: the path property names {}, not the socket the previous molt's connection "
                         "goes to; connecting to {} afresh",
                         ctx.id(), path_, path_);
        }
        connection.reset();
        connect_to_path();
      }
    }
    if (client_fd_) {
      set_nonblocking(client_fd_.get());
      ctx.log().info("{}: the connection to {} continues from the previous molt", ctx.id(), path_);
    }
  }

  ~UnixSocketBackend() override {
    client_.reset();
    listen_watch_.reset();
    // Remove the socket file only if this port owns it and it is still the
    // one that was bound.
    if (owns_path_ && bound_inode_ != 0 && socket_inode(path_) == bound_inode_) ::unlink(path_.c_str());
  }

  void start(Receiver receiver) override {
    receiver_ = std::move(receiver);
    if (server_) {
      listen_watch_ = ctx_.watch_fd(listen_fd_.get(), client_fd_ ? 0u : std::uint32_t{EPOLLIN},
                                    [this](std::uint32_t) { accept_client(); });
    }
    if (client_fd_) attach_client(std::move(client_fd_));
  }
  void write(std::span<const std::uint8_t> bytes) override {
    if (client_) {
      client_->write(bytes);
    } else {
      dropped_ += bytes.size();
    }
  }
  void receive_room_changed() override {
    if (client_) client_->receive_room_changed();
  }
  std::uint64_t dropped_bytes() const override { return dropped_ + (client_ ? client_->dropped_bytes() : 0); }
  void flush_pending() override {
    if (client_) client_->flush_pending();
  }

  std::vector<sdk::HandedFd> handover_fds() const override {
    std::vector<sdk::HandedFd> fds;
    if (listen_fd_) fds.push_back({"listener", listen_fd_.get()});
    if (client_ && client_fd_) fds.push_back({server_ ? "client" : "connection", client_fd_.get()});
    return fds;
  }

  void handover_completed(sdk::HandoverSide side) override {
    if (side == sdk::HandoverSide::Destination) {
      owns_path_ = server_ && bound_inode_ != 0;
      return;
    }
    // The new molt serves the socket and the client now: stop watching them,
    // close this process's copies (the new molt's keep them open) and leave
    // the path alone.
    owns_path_ = false;
    if (client_) {
      const std::size_t stranded = client_->pending_output();
      if (stranded > 0) {
        ctx_.log().warn("{}: {} bytes of serial output the client of {} had not taken stay with this molt "
                        "and are discarded",
                        ctx_.id(), stranded, path_);
      }
      dropped_ += client_->dropped_bytes() + stranded;
    }
    client_.reset();
    client_fd_.reset();
    listen_watch_.reset();
    listen_fd_.reset();
  }

 private:
  void listen_on_path() {
    const sockaddr_un addr = socket_address(ctx_, path_);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail_open(ctx_, "create a socket for", path_, errno);
    remove_stale_socket();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd.get(), 1) != 0) {
      fail_open(ctx_, "listen on", path_, errno);
    }
    bound_inode_ = socket_inode(path_);
    owns_path_ = true;
    set_nonblocking(fd.get());
    listen_fd_ = std::move(fd);
  }

  bool on_configured_path(const std::string& socket) const {
    return !socket.empty() && normalised(socket) == normalised(path_);
  }

  // The listener, bound to path_, is used as it is: no bind, no stale-socket
  // removal (the socket file is the live one).
  void adopt_listener(UniqueFd fd) {
    ctx_.log().info("{}: serving the socket {} the previous molt handed over", ctx_.id(), path_);
    bound_inode_ = socket_inode(path_);
    owns_path_ = false;  // until handover_completed(Destination)
    set_nonblocking(fd.get());
    listen_fd_ = std::move(fd);
  }

  void connect_to_path() {
    const sockaddr_un addr = socket_address(ctx_, path_);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail_open(ctx_, "create a socket for", path_, errno);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      fail_open(ctx_, "connect to", path_, errno);
    }
    set_nonblocking(fd.get());
    client_fd_ = std::move(fd);
  }

  void remove_stale_socket() {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode)) {
      throw sdk::Error(ctx_.id() + ": " + path_ +
                       " exists and is not a socket; remove it or choose another path for the unix-socket "
                       "backend");
    }
    ::unlink(path_.c_str());
  }

  void accept_client() {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;  // the client went away before we got to it
    ctx_.log().info("a client connected to {}", path_);
    listen_watch_->set_events(0);
    attach_client(std::move(fd));
  }

  void attach_client(UniqueFd fd) {
    client_fd_ = std::move(fd);
    client_ =
        std::make_unique<FdChannel>(ctx_, log_, client_fd_.get(), client_fd_.get(), "the client of " + path_);
    client_->start(&receiver_, [this] { drop_client(); });
  }

  // Runs from the channel's cleanup timer, never inside the channel's own
  // fd callback, so destroying it here is safe.
  void drop_client() {
    dropped_ += client_->dropped_bytes();
    client_.reset();
    client_fd_.reset();
    if (server_) {
      ctx_.log().info("the client of {} disconnected; waiting for the next one", path_);
      listen_watch_->set_events(EPOLLIN);
    } else {
      ctx_.log().warn("the connection to {} closed; serial output is discarded from now on", path_);
    }
  }

  sdk::DeviceContext& ctx_;
  std::string path_;
  bool server_;
  sdk::RateLimitedLog log_;
  Receiver receiver_;
  ino_t bound_inode_ = 0;
  bool owns_path_ = false;  // remove path_ on destruction (if still the socket bound)
  UniqueFd listen_fd_;
  std::unique_ptr<sdk::FdWatch> listen_watch_;
  UniqueFd client_fd_;
  std::unique_ptr<FdChannel> client_;
  std::uint64_t dropped_ = 0;
};

}  // namespace

std::unique_ptr<CharBackend> open_backend(sdk::DeviceContext& ctx, const BackendConfig& config) {
  switch (config.kind) {
    case BackendKind::Stdio:
      return make_stdio_backend(ctx, STDIN_FILENO, STDOUT_FILENO);
    case BackendKind::File:
      return std::make_unique<FileBackend>(ctx, config.path, config.append);
    case BackendKind::UnixSocket:
      return std::make_unique<UnixSocketBackend>(ctx, config);
    case BackendKind::None:
      break;
  }
  return std::make_unique<NoneBackend>();
}

}  // namespace molt::serial
