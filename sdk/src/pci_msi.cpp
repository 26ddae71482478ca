// MSI and MSI-X capabilities (PCI Local Bus Specification 3.0, section 6.8),
// delivering through DeviceContext::signal_msi.
#include <bit>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/pci.hpp>

namespace molt::sdk {

namespace {

// MSI message control bits.
constexpr std::uint16_t kMsiEnable = 1u << 0;
constexpr unsigned kMsiMmcShift = 1;
constexpr unsigned kMsiMmeShift = 4;
constexpr std::uint16_t kMsiMmeMask = 0x7u << kMsiMmeShift;
constexpr std::uint16_t kMsi64Bit = 1u << 7;
constexpr std::uint16_t kMsiPerVectorMask = 1u << 8;

// MSI-X message control bits.
constexpr std::uint16_t kMsixFunctionMask = 1u << 14;
constexpr std::uint16_t kMsixEnable = 1u << 15;
constexpr unsigned kMsixMaxVectors = 2048;
constexpr unsigned kMsixEntryBytes = 16;
constexpr unsigned kMsixVectorControlDword = 3;
constexpr std::uint32_t kMsixVectorMasked = 1u << 0;

std::uint32_t all_ones(unsigned size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

}  // namespace

// ---- MSI -----------------------------------------------------------------------------

PciMsi::PciMsi(PciFunction& function, const PciMsiOptions& options, std::optional<std::uint16_t> at)
    : function_(function), options_(options) {
  if (!std::has_single_bit(options.vectors) || options.vectors > 32)
    throw Error(fmt::format("MSI offers 1, 2, 4, 8, 16 or 32 vectors, not {}", options.vectors));
  const unsigned length = (options.address64 ? 14u : 10u) + (options.per_vector_mask ? 10u : 0u);
  offset_ = function.add_capability(pci_reg::kCapabilityMsi, length, at);
  const auto mmc = static_cast<std::uint16_t>(std::countr_zero(options.vectors) << kMsiMmcShift);
  const std::uint16_t control =
      mmc | (options.address64 ? kMsi64Bit : 0) | (options.per_vector_mask ? kMsiPerVectorMask : 0);
  const auto reg = [this](unsigned delta) { return static_cast<std::uint16_t>(offset_ + delta); };
  function.define_register(reg(2), 2, control, kMsiEnable | kMsiMmeMask);
  function.define_register(reg(4), 4, 0, 0xfffffffcu);
  unsigned next = 8;
  if (options.address64) {
    function.define_register(reg(8), 4, 0, 0xffffffffu);
    next = 12;
  }
  function.define_register(reg(next), 2, 0, 0xffff);
  if (options.per_vector_mask) {
    const std::uint32_t vector_bits = options.vectors == 32 ? 0xffffffffu : (1u << options.vectors) - 1;
    function.define_register(mask_offset(), 4, 0, vector_bits);
    function.define_register(static_cast<std::uint16_t>(mask_offset() + 4), 4, 0, 0);  // pending: device-set
  }
  function.on_write([this](std::uint16_t offset, unsigned size) { on_config_write(offset, size); });
}

std::uint16_t PciMsi::control() const {
  return static_cast<std::uint16_t>(function_.config(offset_ + 2, 2));
}

std::uint16_t PciMsi::mask_offset() const {
  return static_cast<std::uint16_t>(offset_ + (options_.address64 ? 0x10 : 0x0c));
}

bool PciMsi::enabled() const {
  return control() & kMsiEnable;
}

unsigned PciMsi::enabled_vectors() const {
  const unsigned requested = 1u << ((control() & kMsiMmeMask) >> kMsiMmeShift);
  return std::min(requested, options_.vectors);
}

std::uint64_t PciMsi::message_address() const {
  std::uint64_t address = function_.config(offset_ + 4, 4);
  if (options_.address64) address |= std::uint64_t{function_.config(offset_ + 8, 4)} << 32;
  return address;
}

std::uint16_t PciMsi::message_data() const {
  return static_cast<std::uint16_t>(
      function_.config(static_cast<std::uint16_t>(offset_ + (options_.address64 ? 12 : 8)), 2));
}

void PciMsi::deliver(unsigned vector) {
  const unsigned count = enabled_vectors();
  const std::uint32_t data = (message_data() & ~(count - 1)) | vector;
  function_.context().signal_msi(message_address(), data);
}

bool PciMsi::notify(unsigned vector) {
  if (!enabled() || vector >= enabled_vectors()) return false;
  if (options_.per_vector_mask) {
    const std::uint32_t mask = function_.config(mask_offset(), 4);
    if (mask & (1u << vector)) {
      const auto pending_at = static_cast<std::uint16_t>(mask_offset() + 4);
      function_.set_config(pending_at, 4, function_.config(pending_at, 4) | (1u << vector));
      return false;
    }
  }
  deliver(vector);
  return true;
}

void PciMsi::on_config_write(std::uint16_t offset, unsigned size) {
  if (!options_.per_vector_mask || !enabled()) return;
  const std::uint16_t mask_at = mask_offset();
  if (offset + size <= mask_at || offset >= mask_at + 4) return;
  // Vectors unmasked with a message pending are sent now.
  const auto pending_at = static_cast<std::uint16_t>(mask_at + 4);
  const std::uint32_t pending = function_.config(pending_at, 4);
  const std::uint32_t ready = pending & ~function_.config(mask_at, 4);
  if (ready == 0) return;
  function_.set_config(pending_at, 4, pending & ~ready);
  for (unsigned v = 0; v < options_.vectors; ++v) {
    if (ready & (1u << v)) deliver(v);
  }
}

// ---- MSI-X ---------------------------------------------------------------------------

PciMsix::PciMsix(PciFunction& function, const PciMsixOptions& options, PciMsixState& state,
                 std::optional<std::uint16_t> at)
    : function_(function), options_(options), state_(state) {
  const unsigned n = options.vectors;
  if (n < 1 || n > kMsixMaxVectors) throw Error(fmt::format("MSI-X offers 1 to 2048 vectors, not {}", n));
  if (options.table_bar >= kPciBarCount || options.pba_bar >= kPciBarCount)
    throw Error("the MSI-X table and PBA must live in BARs 0-5");
  if (options.table_offset % 8 != 0 || options.pba_offset % 8 != 0)
    throw Error("the MSI-X table and PBA offsets must be 8-byte aligned");
  const std::uint64_t table_end = std::uint64_t{options.table_offset} + n * kMsixEntryBytes;
  const std::uint64_t pba_end = std::uint64_t{options.pba_offset} + (n + 63) / 64 * 8;
  if (options.table_bar == options.pba_bar && options.table_offset < pba_end &&
      options.pba_offset < table_end)
    throw Error("the MSI-X table and PBA overlap");
  offset_ = function.add_capability(pci_reg::kCapabilityMsix, 12, at);
  const auto reg = [this](unsigned delta) { return static_cast<std::uint16_t>(offset_ + delta); };
  function.define_register(reg(2), 2, n - 1, kMsixEnable | kMsixFunctionMask);
  function.define_register(reg(4), 4, options.table_offset | options.table_bar, 0);
  function.define_register(reg(8), 4, options.pba_offset | options.pba_bar, 0);
  function.on_write([this](std::uint16_t offset, unsigned size) { on_config_write(offset, size); });
  reset();
}

void PciMsix::reset() {
  state_.table.assign(std::size_t{options_.vectors} * 4, 0);
  for (unsigned v = 0; v < options_.vectors; ++v)
    state_.table[v * 4 + kMsixVectorControlDword] = kMsixVectorMasked;
  state_.pending.assign((options_.vectors + 63) / 64, 0);
}

bool PciMsix::enabled() const {
  return function_.config(offset_ + 2, 2) & kMsixEnable;
}
bool PciMsix::function_masked() const {
  return function_.config(offset_ + 2, 2) & kMsixFunctionMask;
}

bool PciMsix::vector_masked(unsigned vector) const {
  return vector >= options_.vectors ||
         (state_.table[vector * 4 + kMsixVectorControlDword] & kMsixVectorMasked);
}

bool PciMsix::pending(unsigned vector) const {
  return vector < options_.vectors && ((state_.pending[vector / 64] >> (vector % 64)) & 1);
}

void PciMsix::set_pending(unsigned vector, bool on) {
  const std::uint64_t bit = 1ull << (vector % 64);
  if (on)
    state_.pending[vector / 64] |= bit;
  else
    state_.pending[vector / 64] &= ~bit;
}

bool PciMsix::notify(unsigned vector) {
  if (vector >= options_.vectors || !enabled()) return false;
  if (function_masked() || vector_masked(vector)) {
    set_pending(vector, true);
    return false;
  }
  const std::uint32_t* entry = &state_.table[vector * 4];
  const std::uint64_t address = (std::uint64_t{entry[1]} << 32) | (entry[0] & ~0x3u);
  function_.context().signal_msi(address, entry[2]);
  return true;
}

void PciMsix::deliver_unmasked_pending() {
  if (!enabled() || function_masked()) return;
  for (unsigned v = 0; v < options_.vectors; ++v) {
    if (pending(v) && !vector_masked(v)) {
      set_pending(v, false);
      notify(v);
    }
  }
}

void PciMsix::on_config_write(std::uint16_t offset, unsigned size) {
  const unsigned control = offset_ + 2u;
  if (unsigned{offset} + size > control && unsigned{offset} < control + 2) deliver_unmasked_pending();
}

bool PciMsix::mmio_read(unsigned bar, std::uint64_t offset, unsigned size, std::uint64_t& value) {
  if (size == 0 || size > 8) return false;
  const std::uint64_t table_bytes = std::uint64_t{options_.vectors} * kMsixEntryBytes;
  const std::uint64_t pba_bytes = state_.pending.size() * 8;
  value = 0;
  if (bar == options_.table_bar && offset >= options_.table_offset &&
      offset - options_.table_offset + size <= table_bytes) {
    const std::uint64_t base = offset - options_.table_offset;
    for (unsigned i = 0; i < size; ++i) {
      const std::uint64_t at = base + i;
      value |= std::uint64_t{static_cast<std::uint8_t>(state_.table[at / 4] >> (8 * (at % 4)))} << (8 * i);
    }
    return true;
  }
  if (bar == options_.pba_bar && offset >= options_.pba_offset &&
      offset - options_.pba_offset + size <= pba_bytes) {
    const std::uint64_t base = offset - options_.pba_offset;
    for (unsigned i = 0; i < size; ++i) {
      const std::uint64_t at = base + i;
      value |= ((state_.pending[at / 8] >> (8 * (at % 8))) & 0xff) << (8 * i);
    }
    return true;
  }
  return false;
}

bool PciMsix::mmio_write(unsigned bar, std::uint64_t offset, unsigned size, std::uint64_t value) {
  if (size == 0 || size > 8) return false;
  const std::uint64_t table_bytes = std::uint64_t{options_.vectors} * kMsixEntryBytes;
  if (bar == options_.table_bar && offset >= options_.table_offset &&
      offset - options_.table_offset + size <= table_bytes) {
    const std::uint64_t base = offset - options_.table_offset;
    for (unsigned i = 0; i < size; ++i) {
      const std::uint64_t at = base + i;
      std::uint32_t& dword = state_.table[at / 4];
      const unsigned shift = 8 * (at % 4);
      dword = (dword & ~(0xffu << shift)) | (static_cast<std::uint32_t>((value >> (8 * i)) & 0xff) << shift);
      // Only the mask bit of vector control is defined; the rest reads zero.
      if (at / 4 % 4 == kMsixVectorControlDword) dword &= kMsixVectorMasked;
    }
    deliver_unmasked_pending();
    return true;
  }
  const std::uint64_t pba_bytes = state_.pending.size() * 8;
  // The PBA is read-only: writes are accepted and dropped.
  return bar == options_.pba_bar && offset >= options_.pba_offset &&
         offset - options_.pba_offset + size <= pba_bytes;
}

IoOps PciMsix::bar_ops() {
  IoOps ops;
  const unsigned bar = options_.table_bar;
  ops.read = [this, bar](std::uint64_t offset, unsigned size) -> std::uint64_t {
    std::uint64_t value = 0;
    return mmio_read(bar, offset, size, value) ? value : (size >= 8 ? ~0ull : all_ones(size));
  };
  ops.write = [this, bar](std::uint64_t offset, unsigned size, std::uint64_t value) {
    mmio_write(bar, offset, size, value);
  };
  return ops;
}

void PciMsix::post_load() {
  if (state_.table.size() != std::size_t{options_.vectors} * 4)
    throw StateError("table", fmt::format("holds {} vectors; this function has {}", state_.table.size() / 4,
                                          options_.vectors));
  if (state_.pending.size() != (options_.vectors + 63) / 64)
    throw StateError("pending",
                     fmt::format("holds {} words for {} vectors", state_.pending.size(), options_.vectors));
  for (unsigned v = 0; v < options_.vectors; ++v)
    state_.table[v * 4 + kMsixVectorControlDword] &= kMsixVectorMasked;
  if (options_.vectors % 64 != 0) state_.pending.back() &= (1ull << (options_.vectors % 64)) - 1;
  deliver_unmasked_pending();
}

}  // namespace molt::sdk
