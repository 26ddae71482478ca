#include "counter_state.hpp"

#include <string>

#include <molt/sdk/error.hpp>

namespace pci_counter {

namespace sdk = molt::sdk;

namespace {
void check_causes(const char* field, std::uint32_t value) {
  if ((value & ~kCauseMask) != 0) {
    throw sdk::StateError(field, "holds bits " + std::to_string(value & ~kCauseMask) +
                                     " outside the device's interrupt causes (mask 3)");
  }
}
}  // namespace

const sdk::StateDescriptor& counter_descriptor() {
  static const sdk::StateDescriptor descriptor =
      sdk::StateDescriptorBuilder<CounterState>("pci-counter", 1)
          .field("count", &CounterState::count)
          .field("threshold", &CounterState::threshold)
          .field("status", &CounterState::status)
          .field("interrupt_enable", &CounterState::interrupt_enable)
          .subsection(sdk::pci_function_descriptor(), &CounterState::pci,
                      [](const CounterState&) { return true; })
          .post_load([](const CounterState& s, std::uint32_t) {
            check_causes("status", s.status);
            check_causes("interrupt_enable", s.interrupt_enable);
          })
          .build();
  return descriptor;
}

}  // namespace pci_counter
