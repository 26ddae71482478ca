// Interrupt lines into the in-kernel PIC/IOAPIC. Several devices may share a
// GSI: the line is the OR of their levels, as on a wired-OR bus.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

#include "core/kvm/kvm.hpp"

namespace molt::core::io {

class IrqRouter {
 public:
  static constexpr unsigned kGsiCount = 24;  // one IOAPIC

  explicit IrqRouter(kvm::Vm& vm);
  ~IrqRouter();
  // Throws sdk::Error for a GSI the IOAPIC doesn't have.
  sdk::IrqLine& claim(unsigned gsi, const std::string& owner);

 private:
  class Line;
  void change(unsigned gsi, int delta);
  void pulse(unsigned gsi);

  kvm::Vm& vm_;
  std::mutex mutex_;
  std::array<int, kGsiCount> asserted_{};
  std::vector<std::unique_ptr<Line>> lines_;
};

}  // namespace molt::core::io
