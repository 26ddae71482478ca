#include "core/io/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <molt/sdk/error.hpp>

namespace molt::core::io {

namespace {

constexpr std::uint64_t kWakeHandle = 0;

std::uint64_t read_clock(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

class TimerFd final : public sdk::Timer {
 public:
  TimerFd(EventLoop& loop, std::function<void()> on_expiry) : loop_(loop) {
    fd_ = kvm::Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!fd_) throw sdk::Error(std::string("timerfd_create failed: ") + std::strerror(errno));
    handle_ = loop_.add_fd(fd_.get(), EPOLLIN, [this, cb = std::move(on_expiry)](std::uint32_t) {
      std::uint64_t expirations = 0;
      if (::read(fd_.get(), &expirations, sizeof expirations) != sizeof expirations) return;
      armed_ = false;
      cb();
    });
  }
  ~TimerFd() override { loop_.remove_fd(handle_); }

  void arm_at(std::uint64_t deadline) override {
    itimerspec spec{};
    // A deadline already passed fires at once (a zero it_value would disarm).
    const std::uint64_t when = deadline == 0 ? 1 : deadline;
    spec.it_value.tv_sec = static_cast<time_t>(when / 1'000'000'000ull);
    spec.it_value.tv_nsec = static_cast<long>(when % 1'000'000'000ull);
    armed_ = true;
    ::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  }
  void arm_after(std::uint64_t delay) override { arm_at(read_clock(CLOCK_MONOTONIC) + std::max<std::uint64_t>(delay, 1)); }
  void cancel() override {
    itimerspec spec{};
    armed_ = false;
    ::timerfd_settime(fd_.get(), 0, &spec, nullptr);
  }
  bool armed() const override { return armed_; }

 private:
  EventLoop& loop_;
  kvm::Fd fd_;
  std::uint64_t handle_ = 0;
  std::atomic<bool> armed_{false};
};

class LoopFdWatch final : public sdk::FdWatch {
 public:
  LoopFdWatch(EventLoop& loop, std::uint64_t handle) : loop_(loop), handle_(handle) {}
  ~LoopFdWatch() override { loop_.remove_fd(handle_); }
  void set_events(std::uint32_t events) override { loop_.modify_fd(handle_, events); }

 private:
  EventLoop& loop_;
  std::uint64_t handle_;
};

}  // namespace

std::uint64_t HostClock::monotonic_ns() const { return read_clock(CLOCK_MONOTONIC); }
std::int64_t HostClock::realtime_ns() const { return static_cast<std::int64_t>(read_clock(CLOCK_REALTIME)); }

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!epoll_ || !wake_) throw sdk::Error(std::string("cannot create the event loop: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeHandle;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
}

EventLoop::~EventLoop() = default;

// A stop() that came before run() (a vCPU that exited at once) still counts:
// run() returns at once. A loop runs once.
void EventLoop::run() {
  epoll_event events[32];
  while (!stop_) {
    const int n = ::epoll_wait(epoll_.get(), events, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sdk::Error(std::string("epoll_wait failed: ") + std::strerror(errno));
    }
    for (int i = 0; i < n && !stop_; ++i) {
      if (events[i].data.u64 == kWakeHandle) {
        std::uint64_t count;
        [[maybe_unused]] auto r = ::read(wake_.get(), &count, sizeof count);
        drain_posted();
      } else {
        dispatch(events[i].data.u64, events[i].events);
      }
    }
  }
  drain_posted();
}

void EventLoop::stop() {
  stop_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_.get(), &one, sizeof one);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(wake_.get(), &one, sizeof one);
}

void EventLoop::drain_posted() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

std::uint64_t EventLoop::add_fd(int fd, std::uint32_t events, FdCallback callback) {
  std::lock_guard lock(mutex_);
  const std::uint64_t handle = next_handle_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = handle;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
    throw sdk::Error("cannot watch fd " + std::to_string(fd) + ": " + std::strerror(errno));
  handlers_[handle] = std::make_shared<Handler>(Handler{fd, std::move(callback)});
  return handle;
}

void EventLoop::modify_fd(std::uint64_t handle, std::uint32_t events) {
  std::lock_guard lock(mutex_);
  auto it = handlers_.find(handle);
  if (it == handlers_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = handle;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, it->second->fd, &ev);
}

void EventLoop::remove_fd(std::uint64_t handle) {
  std::lock_guard lock(mutex_);
  auto it = handlers_.find(handle);
  if (it == handlers_.end()) return;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd, nullptr);
  handlers_.erase(it);
}

void EventLoop::dispatch(std::uint64_t handle, std::uint32_t revents) {
  std::shared_ptr<Handler> handler;
  {
    std::lock_guard lock(mutex_);
    auto it = handlers_.find(handle);
    if (it == handlers_.end()) return;  // removed after epoll_wait returned
    handler = it->second;
  }
  handler->callback(revents);
}

std::unique_ptr<sdk::Timer> EventLoop::create_timer(std::function<void()> on_expiry) {
  return std::make_unique<TimerFd>(*this, std::move(on_expiry));
}

std::unique_ptr<sdk::FdWatch> EventLoop::watch_fd(int fd, std::uint32_t events, FdCallback callback) {
  return std::make_unique<LoopFdWatch>(*this, add_fd(fd, events, std::move(callback)));
}

}  // namespace molt::core::io
