#include "fd_channel.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "unique_fd.hpp"

namespace molt::serial {

namespace {

bool is_socket(int fd) {
  struct stat st {};
  return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

bool would_block(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

}  // namespace

bool FdChannel::pollable(int fd) {
  UniqueFd probe(::epoll_create1(EPOLL_CLOEXEC));
  if (!probe) return true;  // cannot tell; let the event loop decide
  epoll_event ev{};
  ev.events = EPOLLIN;
  return ::epoll_ctl(probe.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
}

FdChannel::FdChannel(sdk::DeviceContext& ctx, sdk::RateLimitedLog& log, int in_fd, int out_fd, std::string what)
    : ctx_(ctx),
      log_(log),
      in_fd_(in_fd),
      out_fd_(out_fd),
      shared_fd_(in_fd >= 0 && in_fd == out_fd),
      out_is_socket_(is_socket(out_fd)),
      what_(std::move(what)),
      output_open_(out_fd >= 0) {
  cleanup_timer_ = ctx_.create_timer([this] { cleanup(); });
}

FdChannel::~FdChannel() = default;

void FdChannel::start(const CharBackend::Receiver* receiver, std::function<void()> on_finished) {
  receiver_ = receiver;
  on_finished_ = std::move(on_finished);
  if (in_fd_ >= 0 && !pollable(in_fd_)) {
    ctx_.log().info("{} cannot be watched for input (a regular file or /dev/null); the port gets no input",
                    what_);
  } else if (in_fd_ >= 0) {
    input_ = Input::Watching;
  }
  if (input_ == Input::Watching || shared_fd_) {
    in_watch_ = ctx_.watch_fd(in_fd_, 0, [this](std::uint32_t revents) { on_in_ready(revents); });
  }
  apply_events();
}

// ---- Input ----

void FdChannel::on_in_ready(std::uint32_t revents) {
  if (shared_fd_ && (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && pending_output() > 0) flush_output();
  if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) pump_input(revents);
}

void FdChannel::pump_input(std::uint32_t revents) {
  if (input_ != Input::Watching) return;
  if (receiver_->room() == 0) {
    input_paused_ = true;
    if (revents & (EPOLLHUP | EPOLLERR)) {
      // Keep the unread bytes; read them as the guest makes room.
      input_ = Input::Draining;
      if (shared_fd_) fail_output(0);
      schedule_cleanup();
    }
    apply_events();
    return;
  }
  read_some();
}

void FdChannel::read_some() {
  const std::size_t room = receiver_->room();
  if (room == 0) {
    input_paused_ = true;
    apply_events();
    return;
  }
  std::array<std::uint8_t, 4096> buffer;
  const ssize_t n = ::read(in_fd_, buffer.data(), std::min(room, buffer.size()));
  if (n > 0) {
    receiver_->deliver(std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)));
  } else if (n == 0) {
    ctx_.log().info("{} reached end of file; no more input for the port", what_);
    finish_input();
    return;
  } else if (!would_block(errno)) {
    log_.warn("reading {} failed: {}; no more input for the port", what_, std::strerror(errno));
    finish_input();
    return;
  }
  input_paused_ = receiver_->room() == 0;
  apply_events();
}

void FdChannel::finish_input() {
  input_ = Input::Finished;
  input_paused_ = false;
  // A socket peer that closed its side is gone as a whole.
  if (shared_fd_ && output_open_) fail_output(0);
  schedule_cleanup();
  apply_events();
}

void FdChannel::receive_room_changed() {
  if (!receiver_) return;
  if (input_ == Input::Draining) {
    if (receiver_->room() > 0) read_some();
    return;
  }
  if (input_ == Input::Watching && input_paused_ && receiver_->room() > 0) {
    input_paused_ = false;
    apply_events();
  }
}

// ---- Output ----

long FdChannel::write_now(const std::uint8_t* data, std::size_t size) {
  // MSG_NOSIGNAL: a vanished socket peer must not raise SIGPIPE in molt.
  if (out_is_socket_) return ::send(out_fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  return ::write(out_fd_, data, size);
}

void FdChannel::write(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  if (!output_open_) {
    dropped_ += bytes.size();
    return;
  }
  std::size_t done = 0;
  if (pending_output() == 0) {
    const long n = write_now(bytes.data(), bytes.size());
    if (n < 0 && !would_block(errno)) {
      fail_output(errno);
      dropped_ += bytes.size();
      return;
    }
    done = n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  if (done < bytes.size()) {
    enqueue(bytes.subspan(done));
    apply_events();
  }
}

void FdChannel::enqueue(std::span<const std::uint8_t> bytes) {
  const std::size_t space = kMaxPendingOutput - std::min(kMaxPendingOutput, pending_output());
  const std::size_t taken = std::min(space, bytes.size());
  if (out_start_ > 0 && out_start_ + pending_output() + taken > out_.capacity()) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_start_));
    out_start_ = 0;
  }
  out_.insert(out_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(taken));
  if (taken < bytes.size()) {
    dropped_ += bytes.size() - taken;
    log_.warn("{} does not keep up; {} bytes of serial output dropped (the buffer holds {} bytes)", what_,
              bytes.size() - taken, kMaxPendingOutput);
  }
}

void FdChannel::flush_output() {
  // Bounded: each pass either writes bytes or stops.
  while (pending_output() > 0) {
    const long n = write_now(out_.data() + out_start_, pending_output());
    if (n > 0) {
      out_start_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && !would_block(errno)) fail_output(errno);
    break;
  }
  if (pending_output() == 0) {
    out_.clear();
    out_start_ = 0;
  }
  apply_events();
}

void FdChannel::on_out_ready(std::uint32_t revents) {
  if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush_output();
}

void FdChannel::fail_output(int error) {
  if (error != 0)
    log_.warn("writing to {} failed: {}; serial output is discarded", what_, std::strerror(error));
  output_open_ = false;
  dropped_ += pending_output();
  out_.clear();
  out_start_ = 0;
  // A socket that cannot be written is a connection that is over.
  if (shared_fd_ && input_ == Input::Watching) input_ = Input::Finished;
  schedule_cleanup();
  apply_events();
}

// ---- Watches ----

void FdChannel::apply_events() {
  const std::uint32_t in_events = (input_ == Input::Watching && !input_paused_) ? std::uint32_t{EPOLLIN} : 0u;
  const std::uint32_t out_events = (output_open_ && pending_output() > 0) ? std::uint32_t{EPOLLOUT} : 0u;
  if (shared_fd_) {
    if (in_watch_) in_watch_->set_events(in_events | out_events);
    return;
  }
  if (in_watch_) in_watch_->set_events(in_events);
  if (out_events && !out_watch_) {
    // Only fds that can return EAGAIN (pipes, ttys, sockets) get here, and
    // those epoll accepts; regular files never do.
    out_watch_ = ctx_.watch_fd(out_fd_, out_events, [this](std::uint32_t revents) { on_out_ready(revents); });
  } else if (out_watch_) {
    out_watch_->set_events(out_events);
  }
}

void FdChannel::schedule_cleanup() {
  cleanup_timer_->arm_after(0);
}

// Runs from a timer, outside any watch callback, so it may drop watches.
void FdChannel::cleanup() {
  if (input_ != Input::Watching && (!shared_fd_ || !output_open_)) in_watch_.reset();
  if (!output_open_) out_watch_.reset();
  const bool over = input_ == Input::Finished && !output_open_;
  if (over && !finished_reported_ && on_finished_) {
    finished_reported_ = true;
    auto notify = on_finished_;
    notify();  // may destroy this channel: nothing after this line
  }
}

}  // namespace molt::serial
