// A PIIX3-compatible PCI-to-ISA bridge (8086:7000) at 01.0, function 0 of a
// multi-function device (the IDE controller is 01.1): PIRQ route control
// (0x60-0x63), which the core applies as PIC-mode routes, and the reset
// control register at port 0xCF9.
#pragma once

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>
#include <molt/sdk/plugin.hpp>
#include <molt/sdk/state.hpp>

namespace molt::i440fx {

inline constexpr std::uint16_t kPirqRouteFirst = 0x60;  // PIRQRC[A-D]
inline constexpr std::uint8_t kPirqRouteDisabled = 0x80;
inline constexpr std::uint8_t kResetCpu = 1u << 2;     // RCPU: reset on writing 1
inline constexpr std::uint8_t kSystemReset = 1u << 1;  // SRST: hard reset when RCPU is written

struct Piix3State {
  sdk::PciFunctionState pci;
  std::uint8_t reset_control = 0;  // the SRST bit as last written
  bool operator==(const Piix3State&) const = default;
};

// "piix3-isa" version 1.
const sdk::StateDescriptor& piix3_descriptor();

class Piix3 final : public sdk::Device {
 public:
  explicit Piix3(sdk::DeviceContext& ctx);
  void realize() override;
  void reset() override;
  sdk::StateBinding state() override { return sdk::StateBinding::of(piix3_descriptor(), state_); }
  void post_load() override;

 private:
  void apply_pirq_routes();
  void write_reset_control(std::uint8_t value);

  sdk::DeviceContext& ctx_;
  Piix3State state_;
  sdk::PciFunction pci_;
};

sdk::DeviceType piix3_type();

}  // namespace molt::i440fx
