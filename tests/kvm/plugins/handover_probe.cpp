#include "handover_probe.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <molt/sdk/device.hpp>
#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include <spdlog/logger.h>

namespace molt::iterative_probe {

namespace {

struct HandoverProbeState {
  std::uint64_t timer_fired = 0;  // times its timer fired, in every molt it ran in
  bool operator==(const HandoverProbeState&) const = default;
};

const sdk::StateDescriptor& handover_probe_descriptor() {
  static const sdk::StateDescriptor d = sdk::StateDescriptorBuilder<HandoverProbeState>("handover-probe", 1)
                                            .field("timer_fired", &HandoverProbeState::timer_fired)
                                            .build();
  return d;
}

class HandoverProbe final : public sdk::Device {
 public:
  explicit HandoverProbe(sdk::DeviceContext& ctx) : ctx_(ctx) {}
  ~HandoverProbe() override {
    if (file_ >= 0) ::close(file_);
  }

  void realize() override {
    const std::string& path = ctx_.properties().get_string("handover_file");
    if (!path.empty()) {
      file_ = ctx_.take_handed_over_fd("file");
      const bool took = file_ >= 0;
      if (!took) file_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (file_ < 0) throw sdk::Error("handover_file " + path + ": cannot open it: " + std::strerror(errno));
      log_line("realize pid=" + pid() + " took=" + (took ? "yes" : "no"));
    }
    timer_ = ctx_.create_timer([this] { on_timer(); });
  }
  void reset() override {
    state_ = HandoverProbeState{};
    timer_->arm_after(0);
  }
  sdk::StateBinding state() override { return sdk::StateBinding::of(handover_probe_descriptor(), state_); }
  void post_load() override { loaded_ = true; }

  sdk::FdHandover handover_fds() override {
    sdk::FdHandover out;
    out.blocker = ctx_.properties().get_string("handover_blocker");
    if (file_ >= 0) out.fds.push_back(sdk::HandedFd{"file", file_});
    return out;
  }
  void handover_completed(sdk::HandoverSide side) override {
    log_line(std::string("completed ") + (side == sdk::HandoverSide::Source ? "source" : "destination") +
             " pid=" + pid());
  }

 private:
  void on_timer() {
    ++state_.timer_fired;
    log_line("timer pid=" + pid() + " loaded=" + (loaded_ ? "yes" : "no"));
  }
  static std::string pid() { return std::to_string(::getpid()); }
  // One write(2) of a whole line: O_APPEND keeps lines from both molts whole.
  void log_line(std::string line) {
    if (file_ < 0) return;
    line += '\n';
    if (::write(file_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      ctx_.log().warn("handover_file: a line was not written whole");
  }

  sdk::DeviceContext& ctx_;
  HandoverProbeState state_;
  int file_ = -1;
  bool loaded_ = false;
  std::unique_ptr<sdk::Timer> timer_;
};

}  // namespace

sdk::DeviceType handover_probe_type() {
  using sdk::PropertyType;
  return sdk::DeviceType{
      .name = "handover-probe",
      .description = "test device: logs its realize, timer and cpr-transfer handover to a file it hands over",
      .properties =
          {
              {.name = "handover_file",
               .type = PropertyType::String,
               .default_value = std::string(),
               .doc = "append-only log; handed to the new molt over cpr-transfer as fd \"file\""},
              {.name = "handover_blocker",
               .type = PropertyType::String,
               .default_value = std::string(),
               .doc = "when set, the reason handover_fds gives for blocking cpr-transfer"},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<HandoverProbe>(ctx);
      },
  };
}

}  // namespace molt::iterative_probe
