// The file, unix-socket and none backends, and the choice between backends.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <molt/sdk/error.hpp>

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

// Output appended to a file; the file is truncated when the port is realized
// unless `append` is set (use that when a migration destination reopens it).
class FileBackend final : public CharBackend {
 public:
  FileBackend(sdk::DeviceContext& ctx, const std::string& path, bool append)
      : fd_(::open(path.c_str(),
                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | (append ? 0 : O_TRUNC), 0644)),
        log_(ctx.log(), ctx.clock()) {
    if (!fd_) fail_open(ctx, "open", path, errno);
    channel_ = std::make_unique<FdChannel>(ctx, log_, -1, fd_.get(), path);
  }
  void start(Receiver) override { channel_->start(nullptr); }
  void write(std::span<const std::uint8_t> bytes) override { channel_->write(bytes); }
  void receive_room_changed() override {}
  std::uint64_t dropped_bytes() const override { return channel_->dropped_bytes(); }

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

// One client at a time: while one is connected the listening socket is not
// watched, so the next client waits in the backlog. Output while no client is
// connected is dropped, as on a serial line with nothing plugged in.
class UnixSocketBackend final : public CharBackend {
 public:
  UnixSocketBackend(sdk::DeviceContext& ctx, const BackendConfig& config)
      : ctx_(ctx), path_(config.path), server_(config.server), log_(ctx.log(), ctx.clock()) {
    const sockaddr_un addr = socket_address(ctx, path_);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail_open(ctx, "create a socket for", path_, errno);
    if (server_) {
      remove_stale_socket();
      if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
          ::listen(fd.get(), 1) != 0) {
        fail_open(ctx, "listen on", path_, errno);
      }
      struct stat st {};
      if (::stat(path_.c_str(), &st) == 0) bound_inode_ = st.st_ino;
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
      listen_fd_ = std::move(fd);
    } else {
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        fail_open(ctx, "connect to", path_, errno);
      }
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
      client_fd_ = std::move(fd);
    }
  }

  ~UnixSocketBackend() override {
    client_.reset();
    listen_watch_.reset();
    // Remove the socket file only if it is still the one this port bound.
    struct stat st {};
    if (server_ && ::stat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == bound_inode_) {
      ::unlink(path_.c_str());
    }
  }

  void start(Receiver receiver) override {
    receiver_ = std::move(receiver);
    if (server_) {
      listen_watch_ = ctx_.watch_fd(listen_fd_.get(), EPOLLIN, [this](std::uint32_t) { accept_client(); });
    } else {
      attach_client(std::move(client_fd_));
    }
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

 private:
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
