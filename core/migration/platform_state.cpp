#include "core/migration/platform_state.hpp"

#include <molt/sdk/state.hpp>

namespace molt::core::migration {

namespace {

struct PciHostState {
  std::uint32_t config_address = 0;
};

const sdk::StateDescriptor& pci_host_descriptor() {
  static const sdk::StateDescriptor d =
      sdk::StateDescriptorBuilder<PciHostState>("pci-host", 1)
          .field("config_address", &PciHostState::config_address)
          .post_load([](const PciHostState& s, std::uint32_t) {
            if (s.config_address & 0x7f000003u)
              throw sdk::StateError("config_address", "reserved bits are set");
          })
          .build();
  return d;
}

}  // namespace

std::vector<std::uint8_t> save_pci_host(const pci::PciHost& host) {
  PciHostState state{host.config_address()};
  return sdk::save_state(pci_host_descriptor(), &state);
}

std::uint32_t decode_pci_host(std::span<const std::uint8_t> record) {
  PciHostState state;
  sdk::load_state(pci_host_descriptor(), &state, record);
  return state.config_address;
}

}  // namespace molt::core::migration
