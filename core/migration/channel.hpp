// Migration channels: where a migration stream travels. A URI names one:
//   tcp:HOST:PORT   (HOST may be a name, an IPv4 address or [IPv6])
//   unix:PATH
//   file:PATH       (one way: a snapshot; no return path)
//   fd:N            (an fd the process already holds, e.g. passed by a supervisor)
// Sockets are two-way: the destination answers on the same connection (the
// return path). All I/O is blocking, on the migration thread, and can be
// interrupted from another thread with shutdown().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/kvm/kvm.hpp"
#include "core/migration/stream.hpp"

namespace molt::core::migration {

enum class Transport { Tcp, Unix, File, Fd };
const char* to_string(Transport transport);

struct ChannelUri {
  Transport transport = Transport::Tcp;
  std::string host;      // tcp
  std::uint16_t port = 0;  // tcp
  std::string path;      // unix, file
  int fd = -1;           // fd
  std::string text;      // as given, for messages

  // Throws sdk::Error naming the URI and what is wrong with it ("tcp:host:port
  // needs a port 1-65535", "unknown transport 'udp'; expected tcp, unix, file or fd").
  static ChannelUri parse(const std::string& uri);
  bool two_way() const { return transport != Transport::File; }
};

// Counts bytes both ways and, when a cap is set, paces writes to it.
struct ChannelStats {
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bytes_received{0};
};

// One open channel: a connected socket, a file, or an adopted fd.
class Channel final : public ByteSink, public ByteSource {
 public:
  explicit Channel(kvm::Fd fd, std::string name);
  ~Channel() override;

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  void write(std::span<const std::uint8_t> bytes) override;
  // A clean end of input before the first byte returns false; an end after
  // some bytes throws TruncatedInput.
  bool read(std::span<std::uint8_t> out) override;
  // Bytes per second, 0 = unlimited. Shared by all channels of a migration
  // through the limiter they are given.
  void set_rate_limit(std::shared_ptr<class RateLimiter> limiter) { limiter_ = std::move(limiter); }
  // Unblocks a read or write in progress on another thread, which then throws.
  void shutdown();
  const ChannelStats& stats() const { return stats_; }

 private:
  // Non-sockets (files, pipes) wait in poll() beside wake_, an eventfd that
  // shutdown() signals; sockets are unblocked by ::shutdown() itself.
  void wait_ready(short events);
  [[noreturn]] void fail(const char* what, int error) const;
  kvm::Fd fd_;
  std::string name_;
  ChannelStats stats_;
  std::shared_ptr<RateLimiter> limiter_;
  std::atomic<bool> shut_{false};
  bool socket_ = false;
  kvm::Fd wake_;
};

// A token bucket over every channel of one migration. Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(std::uint64_t bytes_per_second) : rate_(bytes_per_second) {}
  void set_rate(std::uint64_t bytes_per_second) { rate_ = bytes_per_second; }
  // Blocks until `bytes` may go; returns at once when the rate is 0.
  void acquire(std::uint64_t bytes);

 private:
  std::atomic<std::uint64_t> rate_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point next_{};
};

// Source side: connects (tcp, unix), creates/truncates (file) or adopts (fd).
// Throws sdk::Error naming the URI ("tcp:127.0.0.1:4444: connection refused").
std::unique_ptr<Channel> connect_channel(const ChannelUri& uri, std::chrono::milliseconds timeout);
// The same, retrying a refused or missing listener until `timeout`: for a
// peer that is still starting (cpr-transfer's new molt builds its VM, or
// waits for migrate.incoming, before it listens).
std::unique_ptr<Channel> connect_when_listening(const ChannelUri& uri, std::chrono::milliseconds timeout);

// Destination side: listens on the URI now (so the caller can report the
// address; a tcp port 0 gets an ephemeral port), and accepts connections
// later. For file: and fd: accept() opens the file / adopts the fd once.
class Listener {
 public:
  explicit Listener(const ChannelUri& uri);
  ~Listener();
  // The URI with the real port (for tcp port 0).
  std::string address() const;
  int fd() const { return fd_.get(); }  // pollable for readiness; -1 for file/fd
  // Blocks until a connection arrives (or shutdown()). Throws sdk::Error.
  std::unique_ptr<Channel> accept();
  void shutdown();

 private:
  ChannelUri uri_;
  kvm::Fd fd_;
  kvm::Fd wake_;  // eventfd: shutdown() wakes a blocked accept()
  std::atomic<bool> shut_{false};
  bool consumed_ = false;  // file/fd: accepted once
  bool bound_unix_ = false;  // we created the socket file, so we remove it
};

}  // namespace molt::core::migration
