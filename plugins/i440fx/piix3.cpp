#include "piix3.hpp"

#include <spdlog/logger.h>

namespace molt::i440fx {

namespace {

const sdk::PciIdentity kIdentity{
    .vendor_id = 0x8086,
    .device_id = 0x7000,
    .revision = 0x00,
    .class_code = 0x060100,  // bridge, ISA
    .multi_function = true,
};

// Registers firmware reads or programs, with their power-on values and the
// bits it may write (82371SB datasheet, PCI configuration of function 0).
struct RegisterSpec {
  std::uint16_t offset;
  std::uint8_t reset;
  std::uint8_t write_mask;
};
constexpr RegisterSpec kRegisters[] = {
    {0x4c, 0x4d, 0xff},                      // IORT: ISA I/O recovery timer
    {0x4e, 0x03, 0xff},                      // XBCS: X-bus chip select
    {0x4f, 0x00, 0xff}, {0x69, 0x02, 0xff},  // TOM: top of memory
    {0x6a, 0x00, 0xff},                      // MSTAT
    {0x6b, 0x00, 0xff}, {0x70, 0x80, 0xff},  // MBIRQ0
    {0x71, 0x80, 0xff},                      // MBIRQ1
    {0x76, 0x0c, 0xff},                      // MBDMA0
    {0x77, 0x0c, 0xff},                      // MBDMA1
    {0x78, 0x02, 0xff},                      // PCSC
    {0x79, 0x00, 0xff}, {0x80, 0x00, 0xff},  // APICBASE
    {0x82, 0x00, 0xff},                      // DLC
    {0xa0, 0x08, 0xff},                      // SMICNTL
    {0xa2, 0x00, 0xff},                      // SMIEN
    {0xa3, 0x00, 0xff}, {0xa8, 0x0f, 0xff},  // SEE
    {0xaa, 0x00, 0xff},                      // FTMR
    {0xab, 0x00, 0xff},
};

}  // namespace

const sdk::StateDescriptor& piix3_descriptor() {
  static const sdk::StateDescriptor d =
      sdk::StateDescriptorBuilder<Piix3State>("piix3-isa", 1)
          .subsection(sdk::pci_function_descriptor(), &Piix3State::pci,
                      [](const Piix3State&) { return true; })
          .field("reset_control", &Piix3State::reset_control)
          .post_load([](const Piix3State& s, std::uint32_t) {
            if (s.reset_control & ~kSystemReset)
              throw sdk::StateError("reset_control", "holds bits other than SRST (0x02)");
          })
          .build();
  return d;
}

Piix3::Piix3(sdk::DeviceContext& ctx) : ctx_(ctx), pci_(ctx, kIdentity, &state_.pci) {
  for (const RegisterSpec& r : kRegisters) pci_.define_register(r.offset, 1, r.reset, r.write_mask);
  // IRQEN# (bit 7) and the IRQ number (bits 3:0); bits 6:4 are reserved.
  for (unsigned pirq = 0; pirq < 4; ++pirq)
    pci_.define_register(static_cast<std::uint16_t>(kPirqRouteFirst + pirq), 1, kPirqRouteDisabled, 0x8f);
  pci_.on_write([this](std::uint16_t offset, unsigned size) {
    if (offset < kPirqRouteFirst + 4 && offset + size > kPirqRouteFirst) apply_pirq_routes();
  });
}

void Piix3::realize() {
  pci_.attach({.slot = 1, .function = 0});
  sdk::IoOps ops;
  ops.read = [this](std::uint64_t, unsigned) -> std::uint64_t { return state_.reset_control; };
  ops.write = [this](std::uint64_t, unsigned, std::uint64_t value) {
    write_reset_control(static_cast<std::uint8_t>(value));
  };
  ctx_.pci_bus().claim_reset_control(std::move(ops));
}

void Piix3::reset() {
  pci_.reset();
  state_.reset_control = 0;
  apply_pirq_routes();
}

void Piix3::post_load() {
  pci_.post_load();
  apply_pirq_routes();
}

void Piix3::apply_pirq_routes() {
  for (unsigned pirq = 0; pirq < 4; ++pirq) {
    const auto route =
        static_cast<std::uint8_t>(pci_.config(static_cast<std::uint16_t>(kPirqRouteFirst + pirq), 1));
    std::optional<unsigned> irq;
    if (!(route & kPirqRouteDisabled)) irq = route & 0x0f;
    ctx_.pci_bus().route_pirq(pirq, irq);
  }
}

void Piix3::write_reset_control(std::uint8_t value) {
  state_.reset_control = value & kSystemReset;
  if (!(value & kResetCpu)) return;
  ctx_.log().info("guest asked for a {} reset through port 0xcf9", (value & kSystemReset) ? "hard" : "soft");
  ctx_.machine().request_exit(sdk::ExitReason::Reset, 0);
}

sdk::DeviceType piix3_type() {
  return sdk::DeviceType{
      .name = "piix3-isa",
      .description =
          "PIIX3-compatible PCI-to-ISA bridge (8086:7000) at 01.0: PIRQ routing, reset control at 0xcf9",
      .properties = {},
      .create = [](sdk::DeviceContext& ctx) -> std::unique_ptr<sdk::Device> {
        return std::make_unique<Piix3>(ctx);
      },
  };
}

}  // namespace molt::i440fx
