// PciFunction: the standard type-0 header semantics on top of a byte array of
// values and per-byte masks (what the guest may write, what it clears by
// writing ones), BAR and ROM mappings that follow the command register, INTx.
#include <molt/sdk/pci.hpp>

#include <bit>

#include <fmt/format.h>
#include <spdlog/logger.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/rate_limited_log.hpp>

namespace molt::sdk {

namespace {

using namespace pci_reg;

constexpr std::uint64_t kMaxIoBar = 256;
constexpr std::uint64_t kMaxMemory32Bar = 1ull << 31;
constexpr std::uint64_t kPhysicalAddressLimit = 1ull << 52;
constexpr std::uint64_t kMinRomSize = 2048;
constexpr std::uint64_t kMaxRomSize = 16ull << 20;
constexpr std::uint16_t kCommandWritable = kCommandIo | kCommandMemory | kCommandBusMaster | kCommandParity |
                                           kCommandSerr | kCommandInterruptDisable;

std::uint32_t size_mask(unsigned size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

bool valid_access(std::uint16_t offset, unsigned size) {
  return (size == 1 || size == 2 || size == 4) && offset % size == 0 &&
         unsigned{offset} + size <= kPciConfigSize;
}

bool touches(std::uint16_t offset, unsigned size, std::uint16_t begin, std::uint16_t end) {
  return offset < end && begin < offset + size;
}

}  // namespace

struct PciFunction::BarSlot {
  PciBar bar;
  std::unique_ptr<IoRegion> region;
  std::uint64_t mapped_at = 0;
};

PciFunction::PciFunction(DeviceContext& ctx, const PciIdentity& identity, PciFunctionState* state)
    : ctx_(ctx),
      identity_(identity),
      state_(state ? state : &own_state_),
      bars_(kPciBarCount),
      log_(std::make_unique<RateLimitedLog>(ctx.log(), ctx.clock())) {
  const auto fixed = [this](std::uint16_t offset, unsigned size, std::uint32_t value) {
    set_bytes(offset, size, value, 0, 0);
  };
  fixed(kVendorId, 2, identity.vendor_id);
  fixed(kDeviceId, 2, identity.device_id);
  set_bytes(kCommand, 2, 0, kCommandWritable, 0);
  set_bytes(kStatus, 2, 0, 0, kStatusErrorBits);
  fixed(kRevision, 1, identity.revision);
  fixed(kClassCode, 3, identity.class_code & 0xffffff);
  set_bytes(kCacheLineSize, 1, 0, 0xff, 0);
  set_bytes(kLatencyTimer, 1, 0, 0xff, 0);
  fixed(kHeaderType, 1, identity.multi_function ? kHeaderMultiFunction : 0);
  fixed(0x0f, 1, 0);  // BIST: not supported
  for (unsigned i = 0; i < kPciBarCount; ++i) fixed(static_cast<std::uint16_t>(kBar0 + 4 * i), 4, 0);
  fixed(0x28, 4, 0);  // CardBus CIS pointer
  fixed(kSubsystemVendorId, 2, identity.subsystem_vendor_id);
  fixed(kSubsystemId, 2, identity.subsystem_id);
  fixed(kRomAddress, 4, 0);
  fixed(kCapabilitiesPointer, 4, 0);  // and three reserved bytes
  fixed(0x38, 4, 0);
  set_bytes(kInterruptLine, 1, 0, 0xff, 0);
  fixed(kInterruptPin, 1, identity.interrupt_pin <= 4 ? identity.interrupt_pin : 0);
  fixed(0x3e, 2, 0);  // Min_Gnt, Max_Lat
  if (identity.interrupt_pin > 4)
    throw Error(fmt::format("PCI interrupt pin {} does not exist; use 0-4", identity.interrupt_pin));
  state_->config = reset_values_;
}

PciFunction::~PciFunction() {
  for (auto& slot : bars_) {
    if (slot) slot->region.reset();
  }
  rom_region_.reset();
  if (!attached_) return;
  if (intx_ && intx_line_level_) intx_->set_level(false);
  try {
    ctx_.pci_bus().detach(address_);
  } catch (const Error&) {
    // The bus is gone already: nothing left to unplug from.
  }
}

void PciFunction::check_not_attached(const char* what) const {
  if (attached_) throw Error(std::string("PCI function: ") + what + " must come before attach()");
}

void PciFunction::set_bytes(std::uint16_t offset, unsigned size, std::uint32_t value, std::uint32_t wmask,
                            std::uint32_t w1c) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned at = offset + i;
    reset_values_[at] = static_cast<std::uint8_t>(value >> (8 * i));
    write_mask_[at] = static_cast<std::uint8_t>(wmask >> (8 * i));
    write_one_to_clear_[at] = static_cast<std::uint8_t>(w1c >> (8 * i));
    defined_[at] = true;
  }
}

void PciFunction::add_bar(unsigned index, PciBar bar) {
  check_not_attached("add_bar");
  const bool wide = bar.kind == PciBarKind::Memory64;
  if (index >= kPciBarCount || (wide && index + 1 >= kPciBarCount))
    throw Error(
        fmt::format("PCI BAR {} does not exist; a function has BARs 0-5 and a 64-bit BAR takes two", index));
  if (bars_[index] || upper_half_[index] || (wide && (bars_[index + 1] || upper_half_[index + 1])))
    throw Error(fmt::format("PCI BAR {} is defined twice", index));
  const std::uint64_t size = bar.size;
  const bool io = bar.kind == PciBarKind::Io;
  const std::uint64_t min = io ? 4 : 16;
  const std::uint64_t max = io ? kMaxIoBar : wide ? (1ull << 62) : kMaxMemory32Bar;
  if (!std::has_single_bit(size) || size < min || size > max)
    throw Error(fmt::format("PCI BAR {} size {:#x} must be a power of two from {:#x} to {:#x}", index, size,
                            min, max));
  if (io && bar.prefetchable)
    throw Error(fmt::format("PCI BAR {}: an I/O BAR cannot be prefetchable", index));

  const auto reg = static_cast<std::uint16_t>(kBar0 + 4 * index);
  const std::uint64_t address_mask = ~(size - 1);
  if (io) {
    // All 32 address bits are writable, as on PIIX and QEMU: firmware sizes a
    // BAR as the complement of what reads back, and 16 writable bits would
    // make a 16-byte I/O BAR look nearly 4 GiB wide. Decoding uses 16 bits.
    set_bytes(reg, 4, 0x1, static_cast<std::uint32_t>(address_mask & 0xfffffffcu), 0);
  } else {
    const std::uint32_t type = (wide ? 0x4u : 0x0u) | (bar.prefetchable ? 0x8u : 0x0u);
    set_bytes(reg, 4, type, static_cast<std::uint32_t>(address_mask & 0xfffffff0u), 0);
    if (wide) {
      set_bytes(static_cast<std::uint16_t>(reg + 4), 4, 0, static_cast<std::uint32_t>(address_mask >> 32), 0);
      upper_half_[index + 1] = true;
    }
  }
  bars_[index] = std::make_unique<BarSlot>();
  bars_[index]->bar = std::move(bar);
  state_->config = reset_values_;
}

void PciFunction::set_rom(std::vector<std::uint8_t> contents) {
  check_not_attached("set_rom");
  if (contents.empty() || contents.size() > kMaxRomSize)
    throw Error(
        fmt::format("an expansion ROM of {} bytes cannot be mapped; give 1 byte to 16 MiB", contents.size()));
  rom_size_ = std::max<std::uint64_t>(kMinRomSize, std::bit_ceil(contents.size()));
  rom_ = std::move(contents);
  set_bytes(kRomAddress, 4, 0, static_cast<std::uint32_t>(~(rom_size_ - 1) & 0xfffff800u) | kRomEnable, 0);
  state_->config = reset_values_;
}

void PciFunction::define_register(std::uint16_t offset, unsigned size, std::uint32_t reset_value,
                                  std::uint32_t write_mask, std::uint32_t write_one_to_clear) {
  check_not_attached("define_register");
  if (size < 1 || size > 4 || offset < kDeviceSpecific || offset + size > kPciConfigSize)
    throw Error(
        fmt::format("PCI register {:#x}+{} is outside the device-specific space 0x40-0xff", offset, size));
  set_bytes(offset, size, reset_value, write_mask, write_one_to_clear);
  state_->config = reset_values_;
}

std::uint16_t PciFunction::add_capability(std::uint8_t id, unsigned length, std::optional<std::uint16_t> at) {
  check_not_attached("add_capability");
  const std::uint16_t offset = at.value_or(static_cast<std::uint16_t>((next_capability_offset_ + 3) & ~3u));
  if (offset % 4 != 0 || offset < kDeviceSpecific || length < 2 || offset + length > kPciConfigSize)
    throw Error(fmt::format("PCI capability {:#x} of {} bytes does not fit at {:#x}", id, length, offset));
  set_bytes(offset, 1, id, 0, 0);
  set_bytes(static_cast<std::uint16_t>(offset + 1), 1, 0, 0, 0);
  if (last_capability_ == 0) {
    set_bytes(kCapabilitiesPointer, 1, offset, 0, 0);
    reset_values_[kStatus] |= kStatusCapabilities;
  } else {
    reset_values_[last_capability_ + 1] = static_cast<std::uint8_t>(offset);
  }
  capability_headers_.push_back(offset);
  last_capability_ = offset;
  next_capability_offset_ =
      static_cast<std::uint16_t>(std::max<unsigned>(next_capability_offset_, offset + length));
  state_->config = reset_values_;
  return offset;
}

void PciFunction::on_write(std::function<void(std::uint16_t, unsigned)> hook) {
  write_hooks_.push_back(std::move(hook));
}
void PciFunction::on_read(std::function<void(std::uint16_t, unsigned)> hook) {
  read_hooks_.push_back(std::move(hook));
}

void PciFunction::attach(const PciPlacement& where) {
  if (attached_) throw Error("this PCI function is attached already");
  IoOps config;
  config.read = [this](std::uint64_t offset, unsigned size) -> std::uint64_t {
    return config_read(static_cast<std::uint16_t>(offset), size);
  };
  config.write = [this](std::uint64_t offset, unsigned size, std::uint64_t value) {
    config_write(static_cast<std::uint16_t>(offset), size, static_cast<std::uint32_t>(value));
  };
  const PciAttachment attachment = ctx_.pci_bus().attach(where, identity_.interrupt_pin, std::move(config));
  address_ = attachment.address;
  intx_ = attachment.intx;
  attached_ = true;
}

void PciFunction::reset() {
  for (auto& slot : bars_) {
    if (slot) slot->region.reset();
  }
  rom_region_.reset();
  state_->config = reset_values_;
  state_->intx_level = false;
  update_intx_line();
}

void PciFunction::set_intx(bool asserted) {
  state_->intx_level = asserted;
  if (asserted)
    state_->config[kStatus] |= kStatusInterrupt;
  else
    state_->config[kStatus] &= static_cast<std::uint8_t>(~kStatusInterrupt);
  update_intx_line();
}

void PciFunction::update_intx_line() {
  const bool level = state_->intx_level && !(command() & kCommandInterruptDisable);
  if (intx_ && level != intx_line_level_) intx_->set_level(level);
  intx_line_level_ = level;
}

std::uint16_t PciFunction::command() const {
  return static_cast<std::uint16_t>(config(kCommand, 2));
}

std::uint32_t PciFunction::config(std::uint16_t offset, unsigned size) const {
  if (size < 1 || size > 4 || unsigned{offset} + size > kPciConfigSize) return size_mask(size);
  std::uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) value |= std::uint32_t{state_->config[offset + i]} << (8 * i);
  return value;
}

void PciFunction::set_config(std::uint16_t offset, unsigned size, std::uint32_t value) {
  if (size < 1 || size > 4 || unsigned{offset} + size > kPciConfigSize) return;
  for (unsigned i = 0; i < size; ++i)
    state_->config[offset + i] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint32_t PciFunction::config_read(std::uint16_t offset, unsigned size) {
  if (!valid_access(offset, size)) {
    log_->warn("{}: misaligned PCI config read of {} bytes at {:#x}", ctx_.id(), size, offset);
    return size_mask(size);
  }
  for (auto& hook : read_hooks_) hook(offset, size);
  return config(offset, size);
}

void PciFunction::write_masked(std::uint16_t offset, unsigned size, std::uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    const unsigned at = offset + i;
    const auto byte = static_cast<std::uint8_t>(value >> (8 * i));
    std::uint8_t next =
        static_cast<std::uint8_t>((state_->config[at] & ~write_mask_[at]) | (byte & write_mask_[at]));
    next &= static_cast<std::uint8_t>(~(byte & write_one_to_clear_[at]));
    state_->config[at] = next;
  }
}

void PciFunction::config_write(std::uint16_t offset, unsigned size, std::uint32_t value) {
  if (!valid_access(offset, size)) {
    log_->warn("{}: misaligned PCI config write of {} bytes at {:#x}", ctx_.id(), size, offset);
    return;
  }
  write_masked(offset, size, value);
  const bool command_changed = touches(offset, size, kCommand, kCommand + 2);
  if (command_changed || touches(offset, size, kBar0, kBar0 + 4 * kPciBarCount) ||
      touches(offset, size, kRomAddress, kRomAddress + 4)) {
    update_mappings();
  }
  if (command_changed) update_intx_line();
  for (auto& hook : write_hooks_) hook(offset, size);
}

std::uint64_t PciFunction::decode_bar_address(unsigned index) const {
  if (index >= kPciBarCount || !bars_[index]) return 0;
  const auto reg = static_cast<std::uint16_t>(kBar0 + 4 * index);
  const std::uint32_t low = config(reg, 4);
  switch (bars_[index]->bar.kind) {
    case PciBarKind::Io:
      return low & 0xfffcu;
    case PciBarKind::Memory32:
      return low & 0xfffffff0u;
    case PciBarKind::Memory64:
      return (std::uint64_t{config(static_cast<std::uint16_t>(reg + 4), 4)} << 32) | (low & 0xfffffff0u);
  }
  return 0;
}

std::uint64_t PciFunction::bar_address(unsigned index) const {
  return decode_bar_address(index);
}

bool PciFunction::bar_mapped(unsigned index) const {
  return index < kPciBarCount && bars_[index] && bars_[index]->region != nullptr;
}

void PciFunction::update_mappings() {
  for (unsigned i = 0; i < kPciBarCount; ++i) {
    if (bars_[i]) update_bar_mapping(i);
  }
  update_rom_mapping();
}

void PciFunction::update_bar_mapping(unsigned index) {
  BarSlot& slot = *bars_[index];
  const std::uint64_t size = slot.bar.size;
  const std::uint64_t base = decode_bar_address(index);
  bool wanted = false;
  switch (slot.bar.kind) {
    case PciBarKind::Io:
      wanted = io_enabled() && base != 0 && base + size <= 0x10000;
      break;
    case PciBarKind::Memory32:
      wanted = memory_enabled() && base != 0 && base + size <= (1ull << 32);
      break;
    case PciBarKind::Memory64:
      wanted = memory_enabled() && base != 0 && size <= kPhysicalAddressLimit &&
               base <= kPhysicalAddressLimit - size;  // no wrap when the guest writes the top dword as all ones
      break;
  }
  if (wanted && slot.region && slot.mapped_at == base) return;
  if (!wanted && !slot.region) return;
  slot.region.reset();
  if (!wanted) return;
  slot.mapped_at = base;
  if (slot.bar.kind == PciBarKind::Io) {
    slot.region =
        ctx_.map_ports(static_cast<std::uint16_t>(base), static_cast<std::uint16_t>(size), slot.bar.ops);
  } else {
    slot.region = ctx_.map_mmio(base, size, slot.bar.ops);
  }
  if (!slot.region)
    log_->warn("{}: BAR {} at {:#x} overlaps another mapping; left unmapped", ctx_.id(), index, base);
}

void PciFunction::update_rom_mapping() {
  if (rom_size_ == 0) return;
  const std::uint32_t reg = config(kRomAddress, 4);
  const std::uint64_t base = reg & 0xfffff800u;
  const bool wanted = memory_enabled() && (reg & kRomEnable) && base != 0 && base + rom_size_ <= (1ull << 32);
  if (wanted && rom_region_ && rom_mapped_at_ == base) return;
  rom_region_.reset();
  if (!wanted) return;
  rom_mapped_at_ = base;
  IoOps ops;
  ops.read = [this](std::uint64_t offset, unsigned size) -> std::uint64_t {
    std::uint64_t value = 0;
    for (unsigned i = 0; i < size; ++i) {
      const std::uint64_t at = offset + i;
      const std::uint64_t byte = at < rom_.size() ? rom_[at] : 0xff;
      value |= byte << (8 * i);
    }
    return value;
  };
  ops.write = [this](std::uint64_t offset, unsigned, std::uint64_t) {
    log_->warn("{}: write to the expansion ROM at offset {:#x} ignored", ctx_.id(), offset);
  };
  rom_region_ = ctx_.map_mmio(base, rom_size_, std::move(ops));
}

void PciFunction::impose_read_only_bits() {
  auto& config = state_->config;
  for (unsigned at = 0; at < kDeviceSpecific; ++at) {
    if (at == kStatus || at == kStatus + 1) continue;
    const std::uint8_t guest_bits = write_mask_[at];
    config[at] = static_cast<std::uint8_t>((config[at] & guest_bits) | (reset_values_[at] & ~guest_bits));
  }
  // Status: the error bits are the guest's to clear; the rest is the definition's.
  const std::uint16_t loaded_status =
      static_cast<std::uint16_t>(config[kStatus] | (config[kStatus + 1] << 8));
  std::uint16_t status =
      static_cast<std::uint16_t>(reset_values_[kStatus] | (reset_values_[kStatus + 1] << 8));
  status = static_cast<std::uint16_t>((status & ~kStatusErrorBits) | (loaded_status & kStatusErrorBits));
  if (state_->intx_level) status |= kStatusInterrupt;
  config[kStatus] = static_cast<std::uint8_t>(status);
  config[kStatus + 1] = static_cast<std::uint8_t>(status >> 8);
  for (std::uint16_t cap : capability_headers_) {
    config[cap] = reset_values_[cap];
    config[cap + 1] = reset_values_[cap + 1];
  }
}

void PciFunction::post_load() {
  impose_read_only_bits();
  for (auto& slot : bars_) {
    if (slot) slot->region.reset();
  }
  rom_region_.reset();
  update_mappings();
  update_intx_line();
}

}  // namespace molt::sdk
