// One byte stream between a serial port and the host: an input fd and an
// output fd (the same one for a socket, -1 for a direction that does not
// exist). Reads only as much as the UART has room for and stops watching its
// input while the UART is full; buffers output the host cannot take at once,
// up to kMaxPendingOutput, and watches for writability until it drains.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

#include "char_backend.hpp"
#include <molt/sdk/rate_limited_log.hpp>

namespace molt::serial {

class FdChannel {
 public:
  // Does not own the fds; the owner closes them after destroying the channel.
  // `what` names the stream in log messages ("stdin", "the socket client").
  FdChannel(sdk::DeviceContext& ctx, sdk::RateLimitedLog& log, int in_fd, int out_fd, std::string what);
  ~FdChannel();
  FdChannel(const FdChannel&) = delete;
  FdChannel& operator=(const FdChannel&) = delete;

  // Starts watching input. `on_finished` runs (from a timer callback, never
  // from inside a channel callback, so it may destroy the channel) once both
  // directions are over: EOF or an error on a socket, for example.
  void start(const CharBackend::Receiver* receiver, std::function<void()> on_finished = {});
  void write(std::span<const std::uint8_t> bytes);
  void receive_room_changed();
  // One non-blocking attempt to write the queued output (it stays queued, and
  // watched, if the host still cannot take it).
  void flush_pending() {
    if (output_open_ && pending_output() > 0) flush_output();
  }

  bool input_open() const { return input_ != Input::Finished; }
  bool output_open() const { return output_open_; }
  std::size_t pending_output() const { return out_.size() - out_start_; }
  std::uint64_t dropped_bytes() const { return dropped_; }

  // False for fds epoll refuses (regular files, /dev/null).
  static bool pollable(int fd);

 private:
  // Watching: input watched while the UART has room. Draining: the peer hung
  // up while the UART was full; the watch is gone (a hangup would be reported
  // on every loop iteration) and what is left is read as the guest makes room.
  enum class Input { Watching, Draining, Finished };

  void on_in_ready(std::uint32_t revents);
  void on_out_ready(std::uint32_t revents);
  void pump_input(std::uint32_t revents);
  void read_some();
  void finish_input();
  void fail_output(int error);
  void flush_output();
  void enqueue(std::span<const std::uint8_t> bytes);
  long write_now(const std::uint8_t* data, std::size_t size);
  void apply_events();
  void schedule_cleanup();
  void cleanup();

  sdk::DeviceContext& ctx_;
  sdk::RateLimitedLog& log_;
  int in_fd_;
  int out_fd_;
  bool shared_fd_;
  bool out_is_socket_ = false;
  std::string what_;
  const CharBackend::Receiver* receiver_ = nullptr;
  std::function<void()> on_finished_;
  bool finished_reported_ = false;

  Input input_ = Input::Finished;
  bool input_paused_ = false;
  bool output_open_;
  std::vector<std::uint8_t> out_;
  std::size_t out_start_ = 0;
  std::uint64_t dropped_ = 0;

  std::unique_ptr<sdk::FdWatch> in_watch_;   // also the output watch for a shared fd
  std::unique_ptr<sdk::FdWatch> out_watch_;  // created on the first EAGAIN
  std::unique_ptr<sdk::Timer> cleanup_timer_;
};

}  // namespace molt::serial
