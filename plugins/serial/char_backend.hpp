// Where a serial port's bytes go and where its input comes from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

namespace molt::serial {

enum class BackendKind { Stdio, File, UnixSocket, None };

// The host side of a port, from its properties.
struct BackendConfig {
  BackendKind kind = BackendKind::Stdio;
  std::string path;     // file: the output file; unix-socket: the socket path
  bool server = true;   // unix-socket: listen (true) or connect (false)
  bool append = false;  // file: keep what the file holds instead of truncating it
};

// Output never blocks the guest: bytes the host cannot take at once wait in a
// buffer of this many bytes, and bytes beyond it are dropped (and logged).
inline constexpr std::size_t kMaxPendingOutput = 64 * 1024;

class CharBackend {
 public:
  // How the backend hands input to the UART. It reads no more than room()
  // bytes, and stops watching its input while room() is 0 (flow control);
  // the device calls receive_room_changed() when the guest drains the FIFO.
  struct Receiver {
    std::function<std::size_t()> room;
    std::function<void(std::span<const std::uint8_t>)> deliver;
  };

  virtual ~CharBackend() = default;
  // Called once by the device, after realize claimed its resources.
  virtual void start(Receiver receiver) = 0;
  // Bytes the guest transmitted. Never blocks.
  virtual void write(std::span<const std::uint8_t> bytes) = 0;
  virtual void receive_room_changed() = 0;
  // Output bytes discarded so far (no peer, a dead peer, or a full buffer).
  virtual std::uint64_t dropped_bytes() const = 0;
  // Output queued for the host: one more non-blocking attempt to write it.
  // The device calls it while the guest is paused, before its state is saved
  // for a migration, so that little or nothing stays behind in this process.
  virtual void flush_pending() {}

  // cpr-transfer (docs/devices/serial.md). The fds this backend hands to the
  // new molt; the backend keeps owning them.
  virtual std::vector<sdk::HandedFd> handover_fds() const { return {}; }
  // Source: the new molt serves the fds now; let go of them and never remove
  // what they stand for. Destination: what was taken at realize is ours.
  virtual void handover_completed(sdk::HandoverSide side) { (void)side; }
};

// Opens the backend a port's properties name, or takes over the fds the old
// molt's port handed over in a cpr-transfer (ctx.take_handed_over_fd). Throws
// sdk::Error with a sentence naming the device, the path and the reason when
// it cannot.
std::unique_ptr<CharBackend> open_backend(sdk::DeviceContext& ctx, const BackendConfig& config);

// The stdio backend over the given fds: stdin/stdout in production, pipes or
// a pty in tests. When in_fd is a terminal it is put in raw-ish mode (no
// ICANON, no ECHO, ISIG kept) until the backend is destroyed; both fds are
// made non-blocking and get their flags back on destruction.
std::unique_ptr<CharBackend> make_stdio_backend(sdk::DeviceContext& ctx, int in_fd, int out_fd);

}  // namespace molt::serial
