#include "counter_device.hpp"

#include <algorithm>
#include <limits>
#include <memory>

namespace pci_counter {

namespace sdk = molt::sdk;

namespace {
const sdk::PciIdentity kIdentity{
    .vendor_id = kVendorId,
    .device_id = kDeviceId,
    .revision = 1,
    .class_code = kClassCode,
    .interrupt_pin = 1,  // INTA#
};
}  // namespace

CounterDevice::CounterDevice(sdk::DeviceContext& ctx)
    : ctx_(ctx),
      pci_(ctx, kIdentity, &state_.pci),
      guest_errors_(ctx.log(), ctx.clock()),
      threshold_at_reset_(static_cast<std::uint32_t>(ctx.properties().get_uint("threshold"))) {
  pci_.add_bar(0, {.kind = sdk::PciBarKind::Memory32, .size = kBarSize, .ops = bar_ops()});
}

void CounterDevice::realize() {
  const std::uint64_t slot = ctx_.properties().get_uint("slot");
  sdk::PciPlacement where;
  if (slot != 0) where.slot = static_cast<unsigned>(slot);
  pci_.attach(where);  // throws sdk::Error naming the device that holds the slot
}

void CounterDevice::reset() {
  pci_.reset();  // config space to power-on values: BAR unassigned, decoding off, INTx low
  state_.count = 0;
  state_.threshold = threshold_at_reset_;
  state_.status = 0;
  state_.interrupt_enable = 0;
}

sdk::StateBinding CounterDevice::state() {
  return sdk::StateBinding::of(counter_descriptor(), state_);
}

void CounterDevice::post_load() {
  pci_.post_load();    // BAR mapping from the loaded config space
  update_interrupt();  // INTx is derived from STATUS and INTERRUPT_ENABLE
}

sdk::IoOps CounterDevice::bar_ops() {
  return {
      .read = [this](std::uint64_t offset, unsigned size) { return read_register(offset, size); },
      .write = [this](
                   std::uint64_t offset, unsigned size,
                   std::uint64_t value) { write_register(offset, size, static_cast<std::uint32_t>(value)); },
  };
}

std::uint64_t CounterDevice::read_register(std::uint64_t offset, unsigned size) {
  if (size != 4 || offset % 4 != 0) {
    guest_errors_.warn("{}-byte read at BAR offset {:#x}: registers are 32-bit and aligned", size, offset);
    return size >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * size)) - 1;
  }
  switch (offset) {
    case reg::kId:
      return kIdValue;
    case reg::kCount:
      return state_.count;
    case reg::kThreshold:
      return state_.threshold;
    case reg::kStatus:
      return state_.status;
    case reg::kInterruptEnable:
      return state_.interrupt_enable;
    case reg::kReset:
    case reg::kDoorbell:
      return 0;  // write-only
    default:
      return 0;  // reserved
  }
}

void CounterDevice::write_register(std::uint64_t offset, unsigned size, std::uint32_t value) {
  if (size != 4 || offset % 4 != 0) {
    guest_errors_.warn("{}-byte write at BAR offset {:#x} ignored: registers are 32-bit and aligned", size,
                       offset);
    return;
  }
  switch (offset) {
    case reg::kCount:
      add(value);
      break;
    case reg::kReset:
      state_.count = 0;
      break;
    case reg::kThreshold:
      state_.threshold = value;
      break;
    case reg::kStatus:
      state_.status &= ~value;
      update_interrupt();
      break;
    case reg::kInterruptEnable:
      state_.interrupt_enable = value & kCauseMask;
      update_interrupt();
      break;
    case reg::kDoorbell:
      raise(kCauseDoorbell);
      break;
    default:
      guest_errors_.warn("write of {:#x} to read-only or reserved BAR offset {:#x} ignored", value, offset);
  }
}

void CounterDevice::add(std::uint32_t amount) {
  const std::uint32_t before = state_.count;
  const std::uint64_t sum = std::uint64_t{before} + amount;
  state_.count =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(sum, std::numeric_limits<std::uint32_t>::max()));
  const std::uint32_t threshold = state_.threshold;
  if (threshold != 0 && before < threshold && state_.count >= threshold) raise(kCauseThreshold);
}

void CounterDevice::raise(std::uint32_t causes) {
  state_.status |= causes;
  update_interrupt();
}

void CounterDevice::update_interrupt() {
  pci_.set_intx((state_.status & state_.interrupt_enable) != 0);
}

sdk::DeviceType counter_device_type() {
  using sdk::PropertyType;
  return sdk::DeviceType{
      .name = "pci-counter",
      .description = "example PCI device (1234:4d43): a counter in BAR0 with a threshold interrupt on INTA#",
      .properties =
          {
              {.name = "threshold",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0},
               .doc = "THRESHOLD after reset; 0 disables the threshold interrupt until the guest sets one",
               .max = std::numeric_limits<std::uint32_t>::max()},
              {.name = "slot",
               .type = PropertyType::UInt,
               .default_value = std::uint64_t{0},
               .doc = "PCI slot on bus 0 (1-31); 0 takes the lowest free slot",
               .max = sdk::kPciSlots - 1},
          },
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<CounterDevice>(ctx);
      },
  };
}

}  // namespace pci_counter
