#include "debugcon.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <molt/sdk/error.hpp>
#include <molt/sdk/handover.hpp>

namespace molt::fw_cfg {

namespace {
constexpr std::size_t kLineLimit = 256;  // flush long lines without waiting for '\n'
}

DebugconDevice::~DebugconDevice() {
  flush();
  if (owns_fd_) ::close(fd_);
}

void DebugconDevice::realize() {
  const std::string& path = ctx_.properties().get_string("path");
  if (path.empty()) {
    fd_ = STDOUT_FILENO;
  } else {
    fd_ = sdk::take_handed_over_file(ctx_, "output", path);
    if (fd_ < 0) fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw sdk::Error("cannot open " + path + " for the debug console: " + std::strerror(errno));
    owns_fd_ = true;
  }
  const auto readback = static_cast<std::uint8_t>(ctx_.properties().get_uint("readback"));
  sdk::IoOps ops;
  ops.read = [readback](std::uint64_t, unsigned) -> std::uint64_t { return readback; };
  ops.write = [this](std::uint64_t, unsigned size, std::uint64_t value) {
    for (unsigned i = 0; i < size; ++i) put(static_cast<std::uint8_t>(value >> (8 * i)));
  };
  ctx_.claim_ports(static_cast<std::uint16_t>(ctx_.properties().get_uint("iobase")), 1, std::move(ops));
}

sdk::StateBinding DebugconDevice::state() {
  return sdk::StateBinding::stateless(
      "bytes go to the host as they are written; a partial line is host-side only");
}

sdk::FdHandover DebugconDevice::handover_fds() {
  if (!owns_fd_) return {};  // stdout: each molt has its own
  return sdk::FdHandover{.fds = {{"output", fd_}}, .blocker = {}};
}

// The guest runs in the new molt now and goes on with the line it was in the
// middle of: write this molt's part of it now, ahead of the rest, rather
// than when this molt exits.
void DebugconDevice::handover_completed(sdk::HandoverSide side) {
  if (side == sdk::HandoverSide::Source) flush();
}

void DebugconDevice::put(std::uint8_t byte) {
  line_.push_back(static_cast<char>(byte));
  if (byte == '\n' || line_.size() >= kLineLimit) flush();
}

void DebugconDevice::flush() {
  std::size_t done = 0;
  // Bounded: a write that makes no progress ends the attempt; the line is dropped.
  while (done < line_.size()) {
    const ssize_t n = ::write(fd_, line_.data() + done, line_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  line_.clear();
}

}  // namespace molt::fw_cfg
