// The stdio backend: output to stdout, input from stdin. A terminal on stdin
// is switched to raw-ish mode for the guest's console and switched back,
// exactly as it was, when the backend goes away, or at exit / std::terminate
// if molt never gets that far.
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>

#include <molt/sdk/error.hpp>

#include "char_backend.hpp"
#include "fd_channel.hpp"
#include <molt/sdk/rate_limited_log.hpp>

namespace molt::serial {

namespace {

// What a backend changed on one fd, so it can be put back.
struct SavedFdSettings {
  bool in_use = false;
  int fd = -1;
  int flags = 0;
  bool has_termios = false;
  termios attrs{};
};

// The safety net: settings of live stdio backends, restored by an atexit
// handler and a std::terminate handler as well as by the backend itself.
// A handful of slots is plenty (production has one stdio port).
constexpr int kSlots = 8;
SavedFdSettings g_saved[kSlots];
std::mutex g_saved_mutex;
std::terminate_handler g_previous_terminate = nullptr;
int g_live_sessions = 0;

void restore(SavedFdSettings& saved) {
  if (!saved.in_use) return;
  if (saved.has_termios) ::tcsetattr(saved.fd, TCSANOW, &saved.attrs);
  ::fcntl(saved.fd, F_SETFL, saved.flags);
  saved.in_use = false;
}

// Newest first: stdin and stdout often share one open file description, so
// the settings saved first are the originals and must be applied last.
void restore_all() {
  for (int i = kSlots - 1; i >= 0; --i) restore(g_saved[i]);
}

[[noreturn]] void restore_then_terminate() {
  restore_all();
  if (g_previous_terminate) g_previous_terminate();
  std::abort();
}

// atexit from a plugin runs when the plugin is unloaded or at exit,
// whichever comes first, so the handler never outlives this code.
void register_exit_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit([] { restore_all(); }); });
}

// Puts one fd in the mode the backend needs and remembers how to undo it.
class FdSession {
 public:
  FdSession(int fd, bool make_raw) {
    std::lock_guard lock(g_saved_mutex);
    for (int i = 0; i < kSlots; ++i) {
      if (!g_saved[i].in_use) {
        slot_ = i;
        break;
      }
    }
    if (slot_ < 0) throw sdk::Error("too many stdio serial backends are open at once");
    SavedFdSettings saved;
    saved.fd = fd;
    saved.flags = ::fcntl(fd, F_GETFL);
    if (saved.flags < 0) {
      throw sdk::Error(std::string("fd ") + std::to_string(fd) + " is not open: " + std::strerror(errno));
    }
    saved.has_termios = make_raw && ::isatty(fd) && ::tcgetattr(fd, &saved.attrs) == 0;
    saved.in_use = true;
    g_saved[slot_] = saved;
    register_exit_handler_once();
    if (g_live_sessions++ == 0) g_previous_terminate = std::set_terminate(restore_then_terminate);
    ::fcntl(fd, F_SETFL, saved.flags | O_NONBLOCK);
    if (saved.has_termios) ::tcsetattr(fd, TCSANOW, &raw_ish(saved.attrs));
  }
  ~FdSession() {
    std::lock_guard lock(g_saved_mutex);
    restore(g_saved[slot_]);
    if (--g_live_sessions == 0) std::set_terminate(g_previous_terminate);
  }
  FdSession(const FdSession&) = delete;
  FdSession& operator=(const FdSession&) = delete;

 private:
  // Characters reach the guest one by one and unechoed; Ctrl-C still raises
  // SIGINT in molt (ISIG kept), which stops the VM cleanly. Output
  // processing is left alone.
  static const termios& raw_ish(const termios& original) {
    static thread_local termios t;
    t = original;
    t.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO | ECHONL | IEXTEN));
    t.c_iflag &= static_cast<tcflag_t>(~(ICRNL | INLCR | IGNCR | IXON));
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return t;
  }

  int slot_ = -1;
};

// Two ports reading one stdin would split the user's keystrokes between them.
std::atomic<bool> g_stdin_claimed{false};

class StdinClaim {
 public:
  StdinClaim(int in_fd, const std::string& id) : claims_(in_fd == STDIN_FILENO) {
    if (claims_ && g_stdin_claimed.exchange(true)) {
      throw sdk::Error(id +
                       ": stdin is already the input of another serial port's stdio backend; give this "
                       "port another backend (file, unix-socket or none)");
    }
  }
  ~StdinClaim() {
    if (claims_) g_stdin_claimed = false;
  }
  StdinClaim(const StdinClaim&) = delete;
  StdinClaim& operator=(const StdinClaim&) = delete;

 private:
  bool claims_;
};

class StdioBackend final : public CharBackend {
 public:
  StdioBackend(sdk::DeviceContext& ctx, int in_fd, int out_fd)
      : claim_(in_fd, ctx.id()),
        in_session_(in_fd, /*make_raw=*/true),
        out_session_(out_fd, /*make_raw=*/false),
        log_(ctx.log(), ctx.clock()),
        channel_(ctx, log_, in_fd, out_fd, in_fd == STDIN_FILENO ? "stdin" : "the input fd") {}

  void start(Receiver receiver) override {
    receiver_ = std::move(receiver);
    channel_.start(&receiver_);
  }
  void write(std::span<const std::uint8_t> bytes) override { channel_.write(bytes); }
  void receive_room_changed() override { channel_.receive_room_changed(); }
  std::uint64_t dropped_bytes() const override { return channel_.dropped_bytes(); }
  void flush_pending() override { channel_.flush_pending(); }
  // Hands nothing over: each molt has its own stdin and stdout.

 private:
  // Declaration order is teardown order reversed: the channel's watches go
  // first, then the fds get their flags and terminal mode back.
  StdinClaim claim_;
  FdSession in_session_;
  FdSession out_session_;
  sdk::RateLimitedLog log_;
  Receiver receiver_;
  FdChannel channel_;
};

}  // namespace

std::unique_ptr<CharBackend> make_stdio_backend(sdk::DeviceContext& ctx, int in_fd, int out_fd) {
  return std::make_unique<StdioBackend>(ctx, in_fd, out_fd);
}

}  // namespace molt::serial
