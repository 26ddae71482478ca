// State descriptors of the PCI helpers.
#include <molt/sdk/pci.hpp>

namespace molt::sdk {

namespace {
constexpr std::size_t kMaxMsixVectors = 2048;
}

const StateDescriptor& pci_function_descriptor() {
  // The config bytes are validated against the function's definition in
  // PciFunction::post_load(), which knows which bits the guest can set.
  static const StateDescriptor d = StateDescriptorBuilder<PciFunctionState>("pci-function", 1)
                                       .field("config", &PciFunctionState::config)
                                       .field("intx_level", &PciFunctionState::intx_level)
                                       .build();
  return d;
}

const StateDescriptor& pci_msix_descriptor() {
  static const StateDescriptor d =
      StateDescriptorBuilder<PciMsixState>("pci-msix", 1)
          .field("table", &PciMsixState::table)
          .field("pending", &PciMsixState::pending)
          .post_load([](const PciMsixState& s, std::uint32_t) {
            if (s.table.size() % 4 != 0 || s.table.size() > 4 * kMaxMsixVectors)
              throw StateError("table", "holds " + std::to_string(s.table.size()) +
                                            " dwords; MSI-X tables hold 4 per vector, at most 2048 vectors");
            if (s.pending.size() != (s.table.size() / 4 + 63) / 64)
              throw StateError("pending", "holds " + std::to_string(s.pending.size()) + " words for " +
                                              std::to_string(s.table.size() / 4) + " vectors");
          })
          .build();
  return d;
}

}  // namespace molt::sdk
