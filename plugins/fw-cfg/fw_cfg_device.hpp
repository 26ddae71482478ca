// QEMU's firmware configuration interface on x86 ports: selector 0x510
// (16-bit), data 0x511 (8-bit reads), DMA address 0x514-0x51b (big-endian,
// two 32-bit halves; the low half at 0x518 starts the transfer).
#pragma once

#include <cstdint>
#include <memory>

#include <molt/sdk/device.hpp>
#include <molt/sdk/rate_limited_log.hpp>
#include <molt/sdk/state.hpp>

#include "items.hpp"
#include "machine_items.hpp"

namespace molt::fw_cfg {

inline constexpr std::uint16_t kDefaultIobase = 0x510;
inline constexpr std::uint16_t kDmaOffset = 4;  // from iobase
// "QEMU CFG": what the DMA address register reads when DMA is offered.
inline constexpr char kDmaSignature[] = "QEMU CFG";

// FWCfgDmaAccess.control bits.
inline constexpr std::uint32_t kDmaError = 1u << 0;
inline constexpr std::uint32_t kDmaRead = 1u << 1;
inline constexpr std::uint32_t kDmaSkip = 1u << 2;
inline constexpr std::uint32_t kDmaSelect = 1u << 3;
inline constexpr std::uint32_t kDmaWrite = 1u << 4;

// Everything that migrates. The items themselves do not: both sides rebuild
// them from the machine, and must build the same ones (contents_digest).
struct FwCfgState {
  std::uint16_t selector = 0;
  std::uint32_t offset = 0;            // into the selected item, at most its size
  std::uint32_t dma_address_high = 0;  // latched by a write at 0x514, cleared by each transfer
  std::uint64_t contents_digest = 0;   // ItemTable::digest() of the side that saved
  bool operator==(const FwCfgState&) const = default;
};

class FwCfgDevice final : public sdk::Device {
 public:
  FwCfgDevice(sdk::DeviceContext& ctx, ContentOptions options);

  void realize() override;
  void reset() override;
  sdk::StateBinding state() override { return sdk::StateBinding::of(*descriptor_, state_); }
  void pre_save() override { state_.contents_digest = items_.digest(); }

  const FwCfgState& current() const { return state_; }
  const ItemTable& items() const { return items_; }
  // The descriptor, built per device: its post_load checks loaded offsets
  // against this device's items.
  const sdk::StateDescriptor& descriptor() const { return *descriptor_; }

 private:
  std::uint64_t read_port(std::uint64_t offset, unsigned size);
  void write_port(std::uint64_t offset, unsigned size, std::uint64_t value);
  std::uint64_t read_dma_register(std::uint64_t offset, unsigned size) const;
  void write_dma_register(std::uint64_t offset, unsigned size, std::uint64_t value);
  void select(std::uint16_t selector);
  std::uint8_t next_byte();
  void run_dma(std::uint64_t access_address);
  bool dma_read(std::uint64_t address, std::uint32_t length);
  void dma_skip(std::uint32_t length);
  void validate(const FwCfgState& loaded) const;

  sdk::DeviceContext& ctx_;
  ContentOptions options_;
  sdk::RateLimitedLog log_;
  ItemTable items_;
  FwCfgState state_;
  std::unique_ptr<sdk::StateDescriptor> descriptor_;
};

}  // namespace molt::fw_cfg
