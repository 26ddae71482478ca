#include "fw_cfg_device.hpp"

#include <algorithm>
#include <array>

#include <molt/sdk/error.hpp>

namespace molt::fw_cfg {

namespace {

constexpr std::uint32_t kZeroChunk = 64 * 1024;

std::uint32_t bswap32(std::uint64_t v) {
  return __builtin_bswap32(static_cast<std::uint32_t>(v));
}

std::uint64_t be(const std::uint8_t* p, unsigned width) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < width; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

FwCfgDevice::FwCfgDevice(sdk::DeviceContext& ctx, ContentOptions options)
    : ctx_(ctx), options_(std::move(options)), log_(ctx.log(), ctx.clock()) {
  descriptor_ = std::make_unique<sdk::StateDescriptor>(
      sdk::StateDescriptorBuilder<FwCfgState>("fw-cfg", 1)
          .field("selector", &FwCfgState::selector)
          .field("offset", &FwCfgState::offset)
          .field("dma_address_high", &FwCfgState::dma_address_high)
          .field("contents_digest", &FwCfgState::contents_digest)
          .post_load([this](const FwCfgState& s, std::uint32_t) { validate(s); })
          .build());
}

void FwCfgDevice::realize() {
  items_ = build_machine_items(ctx_.machine_info(), options_);
  const auto iobase = static_cast<std::uint16_t>(ctx_.properties().get_uint("iobase"));
  ctx_.claim_ports(iobase, 2,
                   sdk::IoOps{[this](std::uint64_t o, unsigned s) { return read_port(o, s); },
                              [this](std::uint64_t o, unsigned s, std::uint64_t v) { write_port(o, s, v); }});
  if (options_.dma) {
    ctx_.claim_ports(
        static_cast<std::uint16_t>(iobase + kDmaOffset), 8,
        sdk::IoOps{[this](std::uint64_t o, unsigned s) { return read_dma_register(o, s); },
                   [this](std::uint64_t o, unsigned s, std::uint64_t v) { write_dma_register(o, s, v); }});
  }
}

void FwCfgDevice::reset() {
  state_ = FwCfgState{.contents_digest = items_.digest()};
}

void FwCfgDevice::validate(const FwCfgState& s) const {
  if (s.contents_digest != items_.digest()) {
    throw sdk::StateError("contents_digest",
                          "the source served other fw_cfg contents than this machine builds; both sides need "
                          "the same RAM, vCPUs, boot order, kernel and fw-cfg properties");
  }
  const Bytes* item = items_.find(s.selector);
  const std::uint64_t size = item ? item->size() : 0;
  if (s.offset > size) {
    throw sdk::StateError("offset", std::to_string(s.offset) + " is past the end of item " +
                                        std::to_string(s.selector) + " (" + std::to_string(size) + " bytes)");
  }
}

void FwCfgDevice::select(std::uint16_t selector) {
  state_.selector = selector;
  state_.offset = 0;
}

// Past the end of the item, and for keys with no item, the data port reads 0.
std::uint8_t FwCfgDevice::next_byte() {
  const Bytes* item = items_.find(state_.selector);
  if (!item || state_.offset >= item->size()) return 0;
  return (*item)[state_.offset++];
}

std::uint64_t FwCfgDevice::read_port(std::uint64_t offset, unsigned size) {
  if (offset != 1) return 0;  // the selector is write-only
  std::uint64_t value = 0;
  for (unsigned i = 0; i < size; ++i) value |= std::uint64_t{next_byte()} << (8 * i);
  return value;
}

void FwCfgDevice::write_port(std::uint64_t offset, unsigned size, std::uint64_t value) {
  if (offset == 0 && size >= 2) {
    select(static_cast<std::uint16_t>(value));
    return;
  }
  // Data-port writes have been ignored since QEMU 2.4; firmware writes through DMA.
  log_.warn("ignored a {}-byte write of {:#x} at fw_cfg port offset {}", size, value, offset);
}

std::uint64_t FwCfgDevice::read_dma_register(std::uint64_t offset, unsigned size) const {
  std::uint64_t value = 0;
  for (unsigned i = 0; i < size && offset + i < 8; ++i)
    value |= std::uint64_t{static_cast<std::uint8_t>(kDmaSignature[offset + i])} << (8 * i);
  return value;
}

void FwCfgDevice::write_dma_register(std::uint64_t offset, unsigned size, std::uint64_t value) {
  if (size != 4 || (offset != 0 && offset != 4)) {
    log_.warn("ignored a {}-byte write at DMA register offset {}: the halves are 32-bit", size, offset);
    return;
  }
  if (offset == 0) {
    state_.dma_address_high = bswap32(value);
    return;
  }
  const std::uint64_t address = (std::uint64_t{state_.dma_address_high} << 32) | bswap32(value);
  state_.dma_address_high = 0;  // the register reads as 0 again after an operation
  run_dma(address);
}

void FwCfgDevice::run_dma(std::uint64_t access_address) {
  sdk::GuestMemory& memory = ctx_.memory();
  std::array<std::uint8_t, 16> access{};
  if (!memory.read(access_address, access)) {
    log_.warn("DMA access structure at {:#x} is not in guest RAM; nothing done", access_address);
    return;
  }
  const auto control = static_cast<std::uint32_t>(be(access.data(), 4));
  const auto length = static_cast<std::uint32_t>(be(access.data() + 4, 4));
  const std::uint64_t address = be(access.data() + 8, 8);

  if (control & kDmaSelect) select(static_cast<std::uint16_t>(control >> 16));
  bool ok = true;
  if (control & kDmaRead) {
    ok = dma_read(address, length);
  } else if (control & kDmaWrite) {
    ok = false;  // every item is read-only to the guest
  } else if (control & kDmaSkip) {
    dma_skip(length);
  }
  const std::array<std::uint8_t, 4> status{0, 0, 0, static_cast<std::uint8_t>(ok ? 0 : kDmaError)};
  if (!memory.write(access_address, status))
    log_.warn("cannot write the DMA status back to {:#x}", access_address);
}

// Copies the item from the current offset, then zeros for what lies past its
// end, as reads of the data port would give. `length` is the guest's; the
// zero fill goes in bounded chunks.
bool FwCfgDevice::dma_read(std::uint64_t address, std::uint32_t length) {
  sdk::GuestMemory& memory = ctx_.memory();
  const Bytes* item = items_.find(state_.selector);
  const std::uint64_t available = item && state_.offset < item->size() ? item->size() - state_.offset : 0;
  const auto copied = static_cast<std::uint32_t>(std::min<std::uint64_t>(length, available));
  if (copied > 0) {
    if (!memory.write(address, std::span(item->data() + state_.offset, copied))) {
      log_.warn("DMA read of {} bytes to {:#x} leaves guest RAM", length, address);
      return false;
    }
    state_.offset += copied;
  }
  static const std::vector<std::uint8_t> zeros(kZeroChunk, 0);
  for (std::uint32_t done = copied; done < length;) {
    const std::uint32_t n = std::min(length - done, kZeroChunk);
    if (!memory.write(address + done, std::span(zeros.data(), n))) {
      log_.warn("DMA read of {} bytes to {:#x} leaves guest RAM", length, address);
      return false;
    }
    done += n;
  }
  return true;
}

void FwCfgDevice::dma_skip(std::uint32_t length) {
  const Bytes* item = items_.find(state_.selector);
  const std::uint64_t size = item ? item->size() : 0;
  state_.offset =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(std::uint64_t{state_.offset} + length, size));
}

}  // namespace molt::fw_cfg
