// A PIIX3 IDE controller on a FakeMachine, with a one-function PCI bus the
// test reaches through config_read/config_write, and disk images in a
// temporary directory that the test creates and inspects.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <molt/sdk/pci.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

#include "ata.hpp"
#include "piix_ide.hpp"

namespace molt::ide::test {

using sdk::testing::FakeMachine;

// Bus 0 with room for one function: keeps its config handlers.
class OneFunctionPciBus final : public sdk::PciBus {
 public:
  sdk::PciAttachment attach(const sdk::PciPlacement& where, std::uint8_t, sdk::IoOps config) override {
    config_ = std::move(config);
    address_ = {where.slot.value_or(0), where.function};
    return {address_, nullptr};
  }
  void detach(sdk::PciAddress) override { config_ = {}; }
  void route_pirq(unsigned, std::optional<unsigned>) override {}
  void claim_reset_control(sdk::IoOps) override {}

  std::uint32_t read(std::uint16_t offset, unsigned size) {
    return static_cast<std::uint32_t>(config_.read(offset, size));
  }
  void write(std::uint16_t offset, unsigned size, std::uint32_t value) { config_.write(offset, size, value); }
  sdk::PciAddress address() const { return address_; }

 private:
  sdk::IoOps config_;
  sdk::PciAddress address_;
};

// A FakeMachine context with a PCI bus: forwards everything else.
class PciContext final : public sdk::DeviceContext {
 public:
  PciContext(sdk::DeviceContext& inner, sdk::PciBus& bus) : inner_(inner), bus_(bus) {}
  const std::string& id() const override { return inner_.id(); }
  const sdk::Properties& properties() const override { return inner_.properties(); }
  spdlog::logger& log() override { return inner_.log(); }
  void claim_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) override {
    inner_.claim_ports(base, count, std::move(ops));
  }
  void claim_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) override {
    inner_.claim_mmio(base, length, std::move(ops));
  }
  sdk::IrqLine& claim_irq(unsigned gsi) override { return inner_.claim_irq(gsi); }
  std::unique_ptr<sdk::IoRegion> map_ports(std::uint16_t base, std::uint16_t count, sdk::IoOps ops) override {
    return inner_.map_ports(base, count, std::move(ops));
  }
  std::unique_ptr<sdk::IoRegion> map_mmio(std::uint64_t base, std::uint64_t length, sdk::IoOps ops) override {
    return inner_.map_mmio(base, length, std::move(ops));
  }
  void signal_msi(std::uint64_t address, std::uint32_t data) override { inner_.signal_msi(address, data); }
  const sdk::MachineInfo& machine_info() const override { return inner_.machine_info(); }
  sdk::GuestMemory& memory() override { return inner_.memory(); }
  const sdk::Clock& clock() const override { return inner_.clock(); }
  std::unique_ptr<sdk::Timer> create_timer(std::function<void()> cb) override {
    return inner_.create_timer(std::move(cb));
  }
  std::unique_ptr<sdk::FdWatch> watch_fd(int fd, std::uint32_t events,
                                         std::function<void(std::uint32_t)> cb) override {
    return inner_.watch_fd(fd, events, std::move(cb));
  }
  sdk::MachineControl& machine() override { return inner_.machine(); }
  sdk::PciBus& pci_bus() override { return bus_; }
  int take_handed_over_fd(const std::string& name) override { return inner_.take_handed_over_fd(name); }

 private:
  sdk::DeviceContext& inner_;
  sdk::PciBus& bus_;
};

inline const sdk::DeviceType& ide_type() {
  return describe_ide_plugin()->device_types.at(0);
}

inline sdk::Properties ide_properties(const std::map<std::string, sdk::PropertyValue>& overrides) {
  sdk::Properties props;
  for (const sdk::PropertySpec& spec : ide_type().properties) props.set(spec.name, *spec.default_value);
  for (const auto& [name, value] : overrides) props.set(name, value);
  return props;
}

// A temporary directory removed with the fixture.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "molt-ide-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Byte `i` of sector `lba` in the images the tests create.
inline std::uint8_t pattern_byte(std::uint64_t lba, unsigned i) {
  return static_cast<std::uint8_t>(lba * 7 + i * 13 + (lba >> 8));
}

inline constexpr std::uint16_t kCmd = 0x1f0;
inline constexpr std::uint16_t kCtl = 0x3f6;
inline constexpr std::uint16_t kBm = 0xc000;
inline constexpr std::uint64_t kPrdAt = 0x10000;
inline constexpr std::uint64_t kBufferAt = 0x100000;

class IdeTest : public ::testing::Test {
 protected:
  // Creates an image of `sectors` sectors filled with pattern_byte (sparse
  // beyond the first `filled` sectors when given).
  std::string make_image(const std::string& name, std::uint64_t sectors, std::uint64_t filled = ~0ull) {
    const std::string path = dir_.file(name);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(sectors * kSectorSize)), 0);
    std::vector<std::uint8_t> sector(kSectorSize);
    for (std::uint64_t lba = 0; lba < std::min(sectors, filled); ++lba) {
      for (unsigned i = 0; i < kSectorSize; ++i) sector[i] = pattern_byte(lba, i);
      EXPECT_EQ(::pwrite(fd, sector.data(), kSectorSize, static_cast<off_t>(lba * kSectorSize)), 512);
    }
    ::close(fd);
    return path;
  }
  std::vector<std::uint8_t> image_sector(const std::string& path, std::uint64_t lba) {
    std::vector<std::uint8_t> out(kSectorSize);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(::pread(fd, out.data(), kSectorSize, static_cast<off_t>(lba * kSectorSize)), 512);
    ::close(fd);
    return out;
  }

  // The controller with these properties; BAR4 at kBm with I/O and bus
  // mastering enabled unless `enable_pci` is false.
  void make(const std::map<std::string, sdk::PropertyValue>& overrides, bool enable_pci = true) {
    auto& inner = machine_.add_context("ide0", ide_properties(overrides));
    context_ = std::make_unique<PciContext>(inner, pci_bus_);
    device_ = std::make_unique<PiixIdeDevice>(*context_);
    device_->realize();
    device_->reset();
    if (enable_pci) {
      pci_bus_.write(0x20, 4, kBm);
      pci_bus_.write(0x04, 2, sdk::pci_reg::kCommandIo | sdk::pci_reg::kCommandBusMaster);
    }
  }
  void make_disk(std::uint64_t sectors = 256) {
    image_ = make_image("disk.img", sectors);
    make({{"primary-master", image_}});
  }

  std::uint8_t in(unsigned reg) { return static_cast<std::uint8_t>(machine_.bus().io_read(kCmd + reg, 1)); }
  void out(unsigned reg, std::uint8_t v) { machine_.bus().io_write(kCmd + reg, 1, v); }
  std::uint8_t alt_status() { return static_cast<std::uint8_t>(machine_.bus().io_read(kCtl, 1)); }
  void control(std::uint8_t v) { machine_.bus().io_write(kCtl, 1, v); }
  bool irq() { return machine_.irq(14).level(); }

  // LBA28 taskfile on the selected (master unless `slave`) drive.
  void lba28(std::uint32_t lba, std::uint8_t count, bool slave = false) {
    out(kRegSectorCount, count);
    out(kRegLbaLow, static_cast<std::uint8_t>(lba));
    out(kRegLbaMid, static_cast<std::uint8_t>(lba >> 8));
    out(kRegLbaHigh, static_cast<std::uint8_t>(lba >> 16));
    out(kRegDevice, static_cast<std::uint8_t>(0xe0 | (slave ? kDeviceSelect : 0) | ((lba >> 24) & 0x0f)));
  }
  void lba48(std::uint64_t lba, std::uint16_t count) {
    out(kRegSectorCount, static_cast<std::uint8_t>(count >> 8));
    out(kRegLbaLow, static_cast<std::uint8_t>(lba >> 24));
    out(kRegLbaMid, static_cast<std::uint8_t>(lba >> 32));
    out(kRegLbaHigh, static_cast<std::uint8_t>(lba >> 40));
    out(kRegSectorCount, static_cast<std::uint8_t>(count));
    out(kRegLbaLow, static_cast<std::uint8_t>(lba));
    out(kRegLbaMid, static_cast<std::uint8_t>(lba >> 8));
    out(kRegLbaHigh, static_cast<std::uint8_t>(lba >> 16));
    out(kRegDevice, 0x40);
  }
  // Reads `words` 16-bit words (or dwords with `wide`) from the data port.
  std::vector<std::uint8_t> read_data(std::size_t bytes, bool wide = false) {
    std::vector<std::uint8_t> out;
    const unsigned size = wide ? 4 : 2;
    for (std::size_t i = 0; i < bytes; i += size) {
      const auto v = machine_.bus().io_read(kCmd, size);
      for (unsigned b = 0; b < size; ++b) out.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
    }
    return out;
  }
  void write_data(const std::vector<std::uint8_t>& bytes, bool wide = false) {
    const unsigned size = wide ? 4 : 2;
    for (std::size_t i = 0; i < bytes.size(); i += size) {
      std::uint32_t v = 0;
      for (unsigned b = 0; b < size; ++b) v |= std::uint32_t{bytes[i + b]} << (8 * b);
      machine_.bus().io_write(kCmd, size, v);
    }
  }
  std::vector<std::uint8_t> expected_sectors(std::uint64_t lba, unsigned count) {
    std::vector<std::uint8_t> out;
    for (unsigned s = 0; s < count; ++s)
      for (unsigned i = 0; i < kSectorSize; ++i) out.push_back(pattern_byte(lba + s, i));
    return out;
  }

  // ---- bus master ----
  void prd(unsigned index, std::uint32_t address, std::uint32_t bytes, bool end,
           std::uint64_t table = kPrdAt) {
    const std::uint32_t control = (bytes & 0xffff) | (end ? kPrdEndOfTable : 0);
    auto& mem = machine_.memory().bytes();
    for (unsigned b = 0; b < 4; ++b) {
      mem[table + index * 8 + b] = static_cast<std::uint8_t>(address >> (8 * b));
      mem[table + index * 8 + 4 + b] = static_cast<std::uint8_t>(control >> (8 * b));
    }
  }
  void bm_start(bool to_memory, std::uint32_t table = kPrdAt) {
    machine_.bus().io_write(kBm + kBmPrdTable, 4, table);
    machine_.bus().io_write(kBm + kBmCommand, 1, kBmCmdStart | (to_memory ? kBmCmdToMemory : 0));
  }
  std::uint8_t bm_status() { return static_cast<std::uint8_t>(machine_.bus().io_read(kBm + kBmStatus, 1)); }
  std::vector<std::uint8_t> ram(std::uint64_t at, std::size_t n) {
    auto& mem = machine_.memory().bytes();
    return {mem.begin() + static_cast<std::ptrdiff_t>(at), mem.begin() + static_cast<std::ptrdiff_t>(at + n)};
  }

  TempDir dir_;
  FakeMachine machine_{32 << 20};
  OneFunctionPciBus pci_bus_;
  std::unique_ptr<PciContext> context_;
  std::unique_ptr<PiixIdeDevice> device_;
  std::string image_;
};

}  // namespace molt::ide::test
