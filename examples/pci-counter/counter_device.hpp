// pci-counter: a PCI function with one 4 KiB memory BAR holding a counter.
// The guest adds to it, resets it, programs a threshold, and gets INTA# when
// an add reaches the threshold or when it rings the doorbell.
//
// BAR0 registers (32-bit accesses at 4-byte aligned offsets):
//   0x00 ID                R   0x52544e43 ("CNTR" in memory order)
//   0x04 COUNT             R   the count
//                          W   adds the value (saturates at 0xffffffff)
//   0x08 RESET             W   sets the count to 0 (reads 0)
//   0x0c THRESHOLD         RW  an add taking the count from below THRESHOLD to
//                              at least THRESHOLD raises cause 0; 0 disables
//   0x10 STATUS            R   raised causes; W: ones clear (bit 0 threshold, bit 1 doorbell)
//   0x14 INTERRUPT_ENABLE  RW  causes that assert INTA# while raised
//   0x18 DOORBELL          W   raises cause 1 (reads 0)
// Other offsets read 0 and ignore writes; other sizes or misaligned accesses
// read all ones and are ignored (both logged, rate-limited).
#pragma once

#include <cstdint>

#include <molt/sdk/device.hpp>
#include <molt/sdk/pci.hpp>
#include <molt/sdk/plugin.hpp>
#include <molt/sdk/rate_limited_log.hpp>

#include "counter_state.hpp"

namespace pci_counter {

inline constexpr std::uint16_t kVendorId = 0x1234;
inline constexpr std::uint16_t kDeviceId = 0x4d43;
inline constexpr std::uint32_t kClassCode = 0xff0000;  // "device does not fit a defined class"
inline constexpr std::uint64_t kBarSize = 4096;
inline constexpr std::uint32_t kIdValue = 0x52544e43;

namespace reg {
inline constexpr std::uint64_t kId = 0x00;
inline constexpr std::uint64_t kCount = 0x04;
inline constexpr std::uint64_t kReset = 0x08;
inline constexpr std::uint64_t kThreshold = 0x0c;
inline constexpr std::uint64_t kStatus = 0x10;
inline constexpr std::uint64_t kInterruptEnable = 0x14;
inline constexpr std::uint64_t kDoorbell = 0x18;
}  // namespace reg

class CounterDevice final : public molt::sdk::Device {
 public:
  explicit CounterDevice(molt::sdk::DeviceContext& ctx);

  void realize() override;
  void reset() override;
  molt::sdk::StateBinding state() override;
  void post_load() override;

 private:
  molt::sdk::IoOps bar_ops();
  std::uint64_t read_register(std::uint64_t offset, unsigned size);
  void write_register(std::uint64_t offset, unsigned size, std::uint32_t value);
  void add(std::uint32_t amount);
  void raise(std::uint32_t causes);
  // INTA# follows STATUS & INTERRUPT_ENABLE.
  void update_interrupt();

  molt::sdk::DeviceContext& ctx_;
  CounterState state_;
  molt::sdk::PciFunction pci_;  // after state_: it keeps a pointer to state_.pci
  molt::sdk::RateLimitedLog guest_errors_;
  std::uint32_t threshold_at_reset_;
};

// The "pci-counter" device type: its properties and factory.
molt::sdk::DeviceType counter_device_type();

}  // namespace pci_counter
