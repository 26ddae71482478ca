// The default DeviceContext::pci_bus(): a machine without PCI.
#include <molt/sdk/device.hpp>
#include <molt/sdk/error.hpp>
#include <molt/sdk/pci.hpp>

namespace molt::sdk {

PciBus& DeviceContext::pci_bus() {
  throw Error("this machine has no PCI bus; use a machine type with one (molt-pc) for PCI devices");
}

}  // namespace molt::sdk
