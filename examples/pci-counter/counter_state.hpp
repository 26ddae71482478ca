// The migrating state of the pci-counter device: one plain struct, and the
// versioned descriptor that saves and loads it.
#pragma once

#include <cstdint>

#include <molt/sdk/pci.hpp>
#include <molt/sdk/state.hpp>

namespace pci_counter {

// Interrupt causes: bits of STATUS and of INTERRUPT_ENABLE.
inline constexpr std::uint32_t kCauseThreshold = 1u << 0;  // an add reached THRESHOLD
inline constexpr std::uint32_t kCauseDoorbell = 1u << 1;   // the guest rang DOORBELL
inline constexpr std::uint32_t kCauseMask = kCauseThreshold | kCauseDoorbell;

struct CounterState {
  molt::sdk::PciFunctionState pci;  // config space (BAR address, command) and INTx level
  std::uint32_t count = 0;
  std::uint32_t threshold = 0;  // 0: no threshold interrupt
  std::uint32_t status = 0;     // causes raised and not yet cleared by the guest
  std::uint32_t interrupt_enable = 0;
  bool operator==(const CounterState&) const = default;
};

// "pci-counter" version 1: count, threshold, status, interrupt_enable and the
// "pci-function" subsection. Its post_load refuses cause bits the device
// does not have.
const molt::sdk::StateDescriptor& counter_descriptor();

}  // namespace pci_counter
