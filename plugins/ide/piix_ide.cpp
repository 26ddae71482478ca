#include "piix_ide.hpp"


#include <string>

#include <molt/sdk/error.hpp>
#include <molt/sdk/handover.hpp>

#include "identify.hpp"

namespace molt::ide {

namespace {

constexpr std::uint16_t kCommandBase[2] = {0x1f0, 0x170};
constexpr std::uint16_t kControlPort[2] = {0x3f6, 0x376};
constexpr unsigned kIrq[2] = {14, 15};
constexpr unsigned kBusMasterBar = 4;
// IDETIM (primary 0x40, secondary 0x42): bit 15 enables the channel's decode.
constexpr std::uint16_t kIdetim[2] = {0x40, 0x42};
constexpr std::uint32_t kIdetimDecodeEnable = 0x8000;
constexpr std::uint16_t kSidetim = 0x44;
constexpr unsigned kMaxSerial = 20;


}  // namespace

PiixIdeDevice::PiixIdeDevice(sdk::DeviceContext& ctx) : ctx_(ctx), log_(ctx.log(), ctx.clock()) {}

PiixIdeDevice::~PiixIdeDevice() = default;

void PiixIdeDevice::open_disks() {
  const sdk::Properties& props = ctx_.properties();
  for (unsigned i = 0; i < 4; ++i) {
    const std::string name = kPositionNames[i];
    const std::string& path = props.get_string(name);
    if (path.empty()) continue;
    const bool read_only = props.get_bool(name + "-read-only");
    try {
      // cpr-transfer: the old molt's open image, whatever `path` names now
      // (the file may have been renamed, replaced or unlinked since).
      const int handed = ctx_.take_handed_over_fd(handover_name(i));
      if (handed >= 0) {
        images_[i] = std::make_unique<DiskImage>(handed, path, read_only);
        ctx_.log().info("{}: {}: using the image {} the previous molt handed over", ctx_.id(), name, path);
        if (!sdk::names_open_file(images_[i]->fd(), path)) {
          ctx_.log().info("{}: {}: {} no longer names that image (renamed, replaced or removed); the guest "
                          "keeps the image it has been using",
                          ctx_.id(), name, path);
        }
      } else {
        images_[i] = std::make_unique<DiskImage>(path, read_only);
      }
    } catch (const sdk::Error& e) {
      throw sdk::Error(ctx_.id() + ": " + name + ": " + e.what());
    }
  }
}

std::string PiixIdeDevice::handover_name(unsigned position) {
  return std::string("image-") + kPositionNames[position];
}

// Every attached image goes over as it is open: no lock to release or take
// again (images are not locked), and nothing to flush (both molts share the
// page cache of the same open file).
sdk::FdHandover PiixIdeDevice::handover_fds() {
  sdk::FdHandover handover;
  for (unsigned i = 0; i < 4; ++i)
    if (images_[i]) handover.fds.push_back({handover_name(i), images_[i]->fd()});
  return handover;
}

void PiixIdeDevice::realize() {
  open_disks();
  const sdk::Properties& props = ctx_.properties();
  for (unsigned c = 0; c < 2; ++c) {
    std::array<DrivePosition, 2> drives;
    for (unsigned d = 0; d < 2; ++d) {
      const unsigned position = c * 2 + d;
      if (!images_[position]) continue;
      std::string serial = props.get_string(std::string(kPositionNames[position]) + "-serial");
      if (serial.empty()) serial = "MOLT" + ctx_.id() + "-" + std::to_string(position);
      drives[d] =
          DrivePosition{images_[position].get(), DriveIdentity{.sectors = images_[position]->sectors(),
                                                               .serial = serial.substr(0, kMaxSerial),
                                                               .model = props.get_string("model"),
                                                               .firmware = "1.0",
                                                               .is_slave = d == 1}};
    }
    channels_[c] = std::make_unique<IdeChannel>(
        state_.channel(c), drives,
        IdeChannel::Hooks{.set_irq = [this, c](bool level) { irqs_[c]->set_level(level); },
                          .dma_ready = [this, c] { bus_masters_[c]->run(); }},
        log_);
    bus_masters_[c] = std::make_unique<BusMaster>(state_.channel(c), *channels_[c], ctx_.memory(), log_,
                                                  [this] { return pci_->bus_master_enabled(); });
  }
  for (unsigned c = 0; c < 2; ++c) claim_channel(c);

  // Compatibility mode, bus-master capable, fixed (not switchable to native).
  pci_ = std::make_unique<sdk::PciFunction>(
      ctx_, sdk::PciIdentity{.vendor_id = 0x8086, .device_id = 0x7010, .class_code = 0x010180}, &state_.pci);
  pci_->add_bar(kBusMasterBar, {.kind = sdk::PciBarKind::Io, .size = kBmBlockSize, .ops = bus_master_ops()});
  // IDETIM and SIDETIM hold timings the emulation ignores. Both channels come
  // up with decoding enabled, as firmware leaves them, so a guest booted
  // without firmware (and Linux's ata_piix check of bit 15) finds them on.
  for (unsigned c = 0; c < 2; ++c) pci_->define_register(kIdetim[c], 2, kIdetimDecodeEnable, 0xf3ff);
  pci_->define_register(kSidetim, 1, 0, 0xff);
  pci_->on_write([this](std::uint16_t offset, unsigned size) {
    if (offset <= sdk::pci_reg::kCommand && offset + size > sdk::pci_reg::kCommand)
      for (auto& bm : bus_masters_) bm->run();  // bus mastering may just have been enabled
  });
  const std::uint64_t slot = props.get_uint("pci-slot");
  const std::uint64_t function = props.get_uint("pci-function");
  pci_->attach({.slot = static_cast<unsigned>(slot), .function = static_cast<unsigned>(function)});

  DriveCapacities capacities{};
  for (unsigned i = 0; i < 4; ++i) capacities[i] = images_[i] ? images_[i]->sectors() : 0;
  descriptor_ = make_ide_state_descriptor(capacities, [this] { pre_save(); });
}

void PiixIdeDevice::claim_channel(unsigned c) {
  irqs_[c] = &ctx_.claim_irq(kIrq[c]);
  IdeChannel& channel = *channels_[c];
  sdk::IoOps command_block{.read = [&channel](std::uint64_t offset, unsigned size) -> std::uint64_t {
                             return channel.read_command_block(static_cast<unsigned>(offset), size);
                           },
                           .write =
                               [&channel](std::uint64_t offset, unsigned size, std::uint64_t value) {
                                 channel.write_command_block(static_cast<unsigned>(offset), size,
                                                             static_cast<std::uint32_t>(value));
                               }};
  ctx_.claim_ports(kCommandBase[c], 8, std::move(command_block));
  sdk::IoOps control_block{.read = [&channel](std::uint64_t, unsigned) -> std::uint64_t {
                             return channel.read_alternate_status();
                           },
                           .write =
                               [&channel](std::uint64_t, unsigned, std::uint64_t value) {
                                 channel.write_device_control(static_cast<std::uint8_t>(value));
                               }};
  ctx_.claim_ports(kControlPort[c], 1, std::move(control_block));
}

sdk::IoOps PiixIdeDevice::bus_master_ops() {
  return sdk::IoOps{.read = [this](std::uint64_t offset, unsigned size) -> std::uint64_t {
                      const unsigned c = offset >= kBmChannelStride ? 1 : 0;
                      return bus_masters_[c]->read(static_cast<unsigned>(offset % kBmChannelStride), size);
                    },
                    .write =
                        [this](std::uint64_t offset, unsigned size, std::uint64_t value) {
                          const unsigned c = offset >= kBmChannelStride ? 1 : 0;
                          bus_masters_[c]->write(static_cast<unsigned>(offset % kBmChannelStride), size,
                                                 static_cast<std::uint32_t>(value));
                        }};
}

void PiixIdeDevice::reset() {
  pci_->reset();
  for (unsigned c = 0; c < 2; ++c) {
    channels_[c]->reset();
    // The "drive N is DMA capable" bits: firmware sets them; start with them
    // describing the drives present.
    std::uint8_t capable = 0;
    if (channels_[c]->present(0)) capable |= kBmStatusDrive0Dma;
    if (channels_[c]->present(1)) capable |= kBmStatusDrive1Dma;
    state_.channel(c).bm_status = capable;
  }
}

sdk::StateBinding PiixIdeDevice::state() {
  return sdk::StateBinding::of(*descriptor_, state_);
}

void PiixIdeDevice::pre_save() {
  for (auto& channel : channels_) channel->load_pending_blocks();
}

void PiixIdeDevice::post_load() {
  for (auto& channel : channels_) channel->mark_blocks_loaded();
  pci_->post_load();
  for (auto& channel : channels_) channel->update_irq();
}

}  // namespace molt::ide
