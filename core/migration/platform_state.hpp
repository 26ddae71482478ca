// The core's own platform pieces that migrate besides KVM's state: the PCI
// host bridge's 0xCF8 address latch (a guest may be paused between writing
// it and using the data window).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/pci/pci_host.hpp"

namespace molt::core::migration {

std::vector<std::uint8_t> save_pci_host(const pci::PciHost& host);
// Validates first; throws sdk::StateError naming the field.
std::uint32_t decode_pci_host(std::span<const std::uint8_t> record);

}  // namespace molt::core::migration
