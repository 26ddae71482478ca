// QEMU's ISA debug console: a byte written to the port goes to the host, a
// read returns a fixed value (0xe9) that tells firmware the port is there.
// SeaBIOS prints its debug log (memory map, drives found, boot) this way.
#pragma once

#include <cstdint>
#include <string>

#include <molt/sdk/device.hpp>

namespace molt::fw_cfg {

class DebugconDevice final : public sdk::Device {
 public:
  explicit DebugconDevice(sdk::DeviceContext& ctx) : ctx_(ctx) {}
  ~DebugconDevice() override;

  void realize() override;
  sdk::StateBinding state() override;
  // cpr-transfer: the output file goes over as "output" (stdout does not).
  sdk::FdHandover handover_fds() override;
  void handover_completed(sdk::HandoverSide side) override;

 private:
  void put(std::uint8_t byte);
  void flush();

  sdk::DeviceContext& ctx_;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::string line_;
};

}  // namespace molt::fw_cfg
