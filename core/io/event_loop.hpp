// One epoll event loop on the main thread: fds (monitor, backends, signals),
// timers (a timerfd each) and closures posted from other threads. Callbacks
// run on the loop thread; a handler removed from another thread is never
// called after remove() returns, except for one already running.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <molt/sdk/device.hpp>

#include "core/kvm/kvm.hpp"

namespace molt::core::io {

class HostClock final : public sdk::Clock {
 public:
  std::uint64_t monotonic_ns() const override;
  std::int64_t realtime_ns() const override;
};

class EventLoop {
 public:
  using FdCallback = std::function<void(std::uint32_t revents)>;

  EventLoop();
  ~EventLoop();

  // Runs until stop(); returns after the current callback finishes.
  void run();
  // Thread-safe.
  void stop();
  // Runs `fn` on the loop thread soon. Thread-safe.
  void post(std::function<void()> fn);

  std::uint64_t add_fd(int fd, std::uint32_t events, FdCallback callback);
  void modify_fd(std::uint64_t handle, std::uint32_t events);
  void remove_fd(std::uint64_t handle);

  // Timers on CLOCK_MONOTONIC, deadlines in HostClock::monotonic_ns().
  std::unique_ptr<sdk::Timer> create_timer(std::function<void()> on_expiry);
  std::unique_ptr<sdk::FdWatch> watch_fd(int fd, std::uint32_t events, FdCallback callback);

 private:
  struct Handler {
    int fd;
    FdCallback callback;
  };
  void dispatch(std::uint64_t handle, std::uint32_t revents);
  void drain_posted();

  kvm::Fd epoll_;
  kvm::Fd wake_;  // eventfd for stop() and post()
  std::mutex mutex_;
  std::map<std::uint64_t, std::shared_ptr<Handler>> handlers_;
  std::vector<std::function<void()>> posted_;
  std::uint64_t next_handle_ = 1;
  std::atomic<bool> stop_{false};
};

}  // namespace molt::core::io
