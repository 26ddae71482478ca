#include <gtest/gtest.h>

#include <random>

#include <molt/sdk/pci.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

namespace molt::sdk {
namespace {

using testing::FakeMachine;
using namespace pci_reg;

constexpr PciIdentity kIdentity{.vendor_id = 0x1234,
                                .device_id = 0x5678,
                                .revision = 3,
                                .class_code = 0x020000,
                                .subsystem_vendor_id = 0xabcd,
                                .subsystem_id = 0xef01,
                                .interrupt_pin = 1};

struct Recorder {
  std::vector<std::pair<std::uint64_t, unsigned>> reads;
  std::vector<std::tuple<std::uint64_t, unsigned, std::uint64_t>> writes;
  IoOps ops() {
    return IoOps{[this](std::uint64_t o, unsigned s) -> std::uint64_t {
                   reads.emplace_back(o, s);
                   return 0x1000 + o;
                 },
                 [this](std::uint64_t o, unsigned s, std::uint64_t v) { writes.emplace_back(o, s, v); }};
  }
};

class PciFunctionTest : public ::testing::Test {
 protected:
  PciFunctionTest() : ctx_(m_.add_context("nic0")), fn_(std::make_unique<PciFunction>(ctx_, kIdentity)) {}
  void define_bars() {
    fn_->add_bar(0, {.kind = PciBarKind::Io, .size = 32, .ops = io_.ops()});
    fn_->add_bar(1, {.kind = PciBarKind::Memory32, .size = 4096, .prefetchable = true, .ops = mem_.ops()});
    fn_->add_bar(2, {.kind = PciBarKind::Memory64, .size = 1 << 20, .ops = mem64_.ops()});
  }
  void attach(unsigned slot = 3) {
    fn_->attach({.slot = slot});
    fn_->reset();
  }
  std::uint32_t rd(std::uint16_t off, unsigned size = 4) { return m_.pci().config_read(3, 0, off, size); }
  void wr(std::uint16_t off, unsigned size, std::uint32_t v) { m_.pci().config_write(3, 0, off, size, v); }

  FakeMachine m_;
  DeviceContext& ctx_;
  Recorder io_, mem_, mem64_;
  std::unique_ptr<PciFunction> fn_;
};

TEST_F(PciFunctionTest, IdentityIsReadOnly) {
  attach();
  EXPECT_EQ(rd(kVendorId), 0x56781234u);
  EXPECT_EQ(rd(kRevision), 0x02000003u);
  EXPECT_EQ(rd(kHeaderType, 1), 0u);
  EXPECT_EQ(rd(kSubsystemVendorId), 0xef01abcdu);
  EXPECT_EQ(rd(kInterruptPin, 1), 1u);
  wr(kVendorId, 4, 0);
  wr(kRevision, 4, 0);
  wr(kInterruptPin, 1, 3);
  EXPECT_EQ(rd(kVendorId), 0x56781234u);
  EXPECT_EQ(rd(kRevision), 0x02000003u);
  EXPECT_EQ(rd(kInterruptPin, 1), 1u);
  wr(kInterruptLine, 1, 11);
  EXPECT_EQ(rd(kInterruptLine, 1), 11u);
  EXPECT_EQ(m_.pci().config_read(3, 1, 0, 4), 0xffffffffu) << "no function 1";
}

TEST_F(PciFunctionTest, BarsAreSizedByWritingAllOnes) {
  define_bars();
  attach();
  EXPECT_EQ(rd(kBar0), 0x1u);
  EXPECT_EQ(rd(kBar0 + 4), 0x8u);
  EXPECT_EQ(rd(kBar0 + 8), 0x4u);
  for (unsigned i = 0; i < 6; ++i) wr(static_cast<std::uint16_t>(kBar0 + 4 * i), 4, 0xffffffff);
  // 32 bytes of I/O. All 32 address bits read back as PIIX and QEMU do, so
  // firmware that sizes by complementing the 32-bit value gets 32, not ~4 GiB.
  EXPECT_EQ(rd(kBar0), 0xffffffe1u) << "32 bytes of I/O";
  EXPECT_EQ(rd(kBar0 + 4), 0xfffff008u) << "4 KiB prefetchable";
  EXPECT_EQ(rd(kBar0 + 8), 0xfff00004u) << "1 MiB, 64-bit";
  EXPECT_EQ(rd(kBar0 + 12), 0xffffffffu) << "upper half of the 64-bit BAR";
  EXPECT_EQ(rd(kBar0 + 16), 0u) << "no BAR 4";
  EXPECT_EQ(rd(kBar0 + 20), 0u);
}

TEST_F(PciFunctionTest, BarsMapOnlyWhileDecodeIsEnabledAndFollowTheGuest) {
  define_bars();
  attach();
  wr(kBar0, 4, 0xc000);
  wr(kBar0 + 4, 4, 0xe0000000);
  wr(kBar0 + 8, 4, 0x00100000);
  wr(kBar0 + 12, 4, 0x1);  // 4 GiB + 1 MiB
  EXPECT_TRUE(m_.bus().port_ranges().empty());
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
  wr(kCommand, 2, kCommandIo);
  EXPECT_EQ(m_.bus().port_ranges(), (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0xc000, 32}}));
  EXPECT_EQ(m_.bus().io_read(0xc004, 2), 0x1004u);
  m_.bus().io_write(0xc01f, 1, 0x5a);
  ASSERT_EQ(io_.writes.size(), 1u);
  EXPECT_EQ(io_.writes[0], std::make_tuple(0x1fu, 1u, 0x5au));
  EXPECT_TRUE(m_.bus().mmio_ranges().empty()) << "memory decode still off";

  wr(kCommand, 2, kCommandIo | kCommandMemory);
  EXPECT_EQ(m_.bus().mmio_ranges().size(), 2u);
  EXPECT_EQ(fn_->bar_address(2), 0x100100000u);
  EXPECT_EQ(m_.bus().mmio_read(0x100100010, 4), 0x1010u);
  EXPECT_EQ(m_.bus().mmio_read(0xe0000ffc, 4), 0x1ffcu);

  wr(kBar0, 4, 0xd000);  // moved while enabled
  EXPECT_EQ(m_.bus().io_read(0xc004, 2), 0xffffu) << "old place unmapped";
  EXPECT_EQ(m_.bus().io_read(0xd004, 2), 0x1004u);
  wr(kCommand, 2, kCommandMemory);
  EXPECT_TRUE(m_.bus().port_ranges().empty());
  EXPECT_FALSE(fn_->bar_mapped(0));
  EXPECT_TRUE(fn_->bar_mapped(1));
  wr(kBar0 + 4, 4, 0);  // address 0: unassigned
  EXPECT_FALSE(fn_->bar_mapped(1));
  fn_->reset();
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
  EXPECT_EQ(rd(kCommand, 2), 0u);
}

TEST_F(PciFunctionTest, OverlappingBarIsLeftUnmappedAndTheDeviceCarriesOn) {
  define_bars();
  attach();
  m_.bus().add_ports(0xc010, 4, {});
  wr(kBar0, 4, 0xc000);
  wr(kCommand, 2, kCommandIo);
  EXPECT_FALSE(fn_->bar_mapped(0));
  wr(kBar0, 4, 0xc100);
  EXPECT_TRUE(fn_->bar_mapped(0));
}

TEST_F(PciFunctionTest, CommandStatusAndIntx) {
  attach();
  auto& line = m_.irq(16 + ((3 + 1 - 1) & 3));
  fn_->set_intx(true);
  EXPECT_TRUE(line.level());
  EXPECT_EQ(rd(kStatus, 2) & kStatusInterrupt, kStatusInterrupt);
  wr(kCommand, 2, kCommandInterruptDisable);
  EXPECT_FALSE(line.level()) << "interrupt disable masks the pin";
  EXPECT_EQ(rd(kStatus, 2) & kStatusInterrupt, kStatusInterrupt) << "status still shows the device's request";
  wr(kCommand, 2, 0);
  EXPECT_TRUE(line.level());
  fn_->set_intx(false);
  EXPECT_FALSE(line.level());
  EXPECT_EQ(rd(kStatus, 2) & kStatusInterrupt, 0u);
  wr(kCommand, 2, 0xffff);
  EXPECT_EQ(rd(kCommand, 2), 0x0547u) << "only implemented command bits stick";
  EXPECT_TRUE(fn_->bus_master_enabled());
}

TEST_F(PciFunctionTest, StatusErrorBitsAreWriteOneToClear) {
  attach();
  fn_->set_config(kStatus, 2, 0x8000 | 0x2000);
  wr(kStatus, 2, 0x8000);
  EXPECT_EQ(rd(kStatus, 2), 0x2000u);
  wr(kCommand, 4, 0x20000000);  // a dword write covering command and status
  EXPECT_EQ(rd(kStatus, 2), 0u);
}

TEST_F(PciFunctionTest, CapabilityListIsLinked) {
  const auto first = fn_->add_capability(kCapabilityVendor, 8);
  fn_->define_register(static_cast<std::uint16_t>(first + 4), 4, 0x11223344, 0xffff0000);
  const auto second = fn_->add_capability(kCapabilityMsi, 10, 0x80);
  attach();
  EXPECT_EQ(first, 0x40u);
  EXPECT_EQ(second, 0x80u);
  EXPECT_EQ(rd(kStatus, 2) & kStatusCapabilities, kStatusCapabilities);
  EXPECT_EQ(rd(kCapabilitiesPointer, 1), 0x40u);
  EXPECT_EQ(rd(0x40, 2), 0x8009u) << "id 09, next 0x80";
  EXPECT_EQ(rd(0x80, 2), 0x0005u) << "id 05, end of list";
  wr(0x44, 4, 0xaaaaaaaa);
  EXPECT_EQ(rd(0x44), 0xaaaa3344u);
  wr(0x40, 2, 0);
  EXPECT_EQ(rd(0x40, 2), 0x8009u) << "capability headers are read-only";
  EXPECT_THROW(fn_->add_capability(0x01, 4), Error) << "after attach";
}

TEST_F(PciFunctionTest, ExpansionRomIsServedReadOnlyWhileEnabled) {
  std::vector<std::uint8_t> rom(3000);
  for (std::size_t i = 0; i < rom.size(); ++i) rom[i] = static_cast<std::uint8_t>(i * 7);
  rom[0] = 0x55;
  rom[1] = 0xaa;
  fn_->set_rom(rom);
  attach();
  wr(kRomAddress, 4, 0xffffffff);
  EXPECT_EQ(rd(kRomAddress), 0xfffff001u) << "4 KiB, enable bit writable";
  wr(kRomAddress, 4, 0xfeb00000 | kRomEnable);
  EXPECT_TRUE(m_.bus().mmio_ranges().empty()) << "memory space disabled";
  wr(kCommand, 2, kCommandMemory);
  EXPECT_EQ(m_.bus().mmio_read(0xfeb00000, 2), 0xaa55u);
  EXPECT_EQ(m_.bus().mmio_read(0xfeb00000 + 100, 1), std::uint64_t{static_cast<std::uint8_t>(700)});
  EXPECT_EQ(m_.bus().mmio_read(0xfeb00000 + 3000, 4), 0xffffffffu) << "beyond the image";
  m_.bus().mmio_write(0xfeb00000, 1, 0);
  EXPECT_EQ(m_.bus().mmio_read(0xfeb00000, 1), 0x55u);
  wr(kRomAddress, 4, 0xfeb00000);
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
}

TEST_F(PciFunctionTest, BadAccessesReadAllOnesAndChangeNothing) {
  define_bars();
  attach();
  EXPECT_EQ(fn_->config_read(1, 2), 0xffffu);
  EXPECT_EQ(fn_->config_read(0xfe, 4), 0xffffffffu);
  EXPECT_EQ(fn_->config_read(0x100, 1), 0xffu);
  EXPECT_EQ(fn_->config_read(0, 3), 0xffffffu);
  const PciFunctionState before = fn_->state();
  fn_->config_write(0x05, 2, 0xffff);
  fn_->config_write(0xff, 4, 0xffffffff);
  fn_->config_write(0x300, 1, 1);
  EXPECT_EQ(fn_->state(), before);
}

TEST_F(PciFunctionTest, DefinitionErrorsAreRefused) {
  EXPECT_THROW(fn_->add_bar(6, {.kind = PciBarKind::Io, .size = 16}), Error);
  EXPECT_THROW(fn_->add_bar(5, {.kind = PciBarKind::Memory64, .size = 4096}), Error);
  EXPECT_THROW(fn_->add_bar(0, {.kind = PciBarKind::Io, .size = 24}), Error);
  EXPECT_THROW(fn_->add_bar(0, {.kind = PciBarKind::Io, .size = 512}), Error);
  EXPECT_THROW(fn_->add_bar(0, {.kind = PciBarKind::Memory32, .size = 8}), Error);
  EXPECT_THROW(fn_->add_bar(0, {.kind = PciBarKind::Io, .size = 16, .prefetchable = true}), Error);
  fn_->add_bar(0, {.kind = PciBarKind::Memory64, .size = 4096});
  EXPECT_THROW(fn_->add_bar(1, {.kind = PciBarKind::Io, .size = 16}), Error) << "upper half of BAR 0";
  EXPECT_THROW(fn_->define_register(0x3c, 1, 0, 0xff), Error);
  EXPECT_THROW(fn_->define_register(0xfe, 4, 0, 0), Error);
  EXPECT_THROW(fn_->add_capability(0x05, 8, 0x42), Error);
  attach();
  EXPECT_THROW(fn_->add_bar(3, {.kind = PciBarKind::Io, .size = 16}), Error) << "after attach";
}

TEST_F(PciFunctionTest, TakenSlotIsAnErrorAndNextFreeSlotIsFound) {
  attach(0);
  auto& ctx2 = m_.add_context("b");
  PciFunction clash(ctx2, kIdentity);
  EXPECT_THROW(clash.attach({.slot = 0}), Error);
  PciFunction next(ctx2, kIdentity);
  next.attach();
  EXPECT_EQ(next.address(), (PciAddress{1, 0}));
}

TEST_F(PciFunctionTest, StateRoundTripRebuildsMappingsAndImposesReadOnlyBits) {
  define_bars();
  attach();
  wr(kBar0, 4, 0xc000);
  wr(kBar0 + 4, 4, 0xe0000000);
  wr(kCommand, 2, kCommandIo | kCommandMemory | kCommandBusMaster);
  fn_->set_intx(true);
  PciFunctionState saved = fn_->state();
  auto stream = save_state(pci_function_descriptor(), &saved);

  FakeMachine m2;
  auto& ctx2 = m2.add_context("nic0");
  Recorder io2, mem2, mem642;
  PciFunction restored(ctx2, kIdentity);
  restored.add_bar(0, {.kind = PciBarKind::Io, .size = 32, .ops = io2.ops()});
  restored.add_bar(1, {.kind = PciBarKind::Memory32, .size = 4096, .prefetchable = true, .ops = mem2.ops()});
  restored.add_bar(2, {.kind = PciBarKind::Memory64, .size = 1 << 20, .ops = mem642.ops()});
  restored.attach({.slot = 3});
  restored.reset();
  load_state(pci_function_descriptor(), &restored.state(), stream);
  restored.post_load();
  EXPECT_EQ(restored.state(), fn_->state());
  EXPECT_EQ(m2.bus().io_read(0xc002, 2), 0x1002u);
  EXPECT_EQ(m2.bus().mmio_read(0xe0000000, 4), 0x1000u);
  EXPECT_TRUE(m2.irq(19).level()) << "INTx level restored";

  // A stream whose read-only bytes disagree with the definition is corrected.
  saved.config[kVendorId] = 0x99;
  saved.config[kBar0] = 0xff;  // I/O BAR low bits: size bits and the type bit
  saved.config[kStatus] |= kStatusCapabilities;
  stream = save_state(pci_function_descriptor(), &saved);
  load_state(pci_function_descriptor(), &restored.state(), stream);
  restored.post_load();
  EXPECT_EQ(restored.config(kVendorId, 2), 0x1234u);
  EXPECT_EQ(restored.config(kBar0, 4), 0xc0e1u) << "bits 7:5 are address bits; 4:0 come from the definition";
  EXPECT_EQ(restored.config(kStatus, 2) & kStatusCapabilities, 0u);
}

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

TEST_F(PciFunctionTest, GoldenStreamOfVersionOneStillLoads) {
  // pci-function v1, frozen: config 34 12 78 56 07 then zeros, INTx high.
  std::vector<std::uint8_t> stream =
      from_hex("4d535452010c7063692d66756e6374696f6e010000001e0100000706636f6e66696700010000");
  const std::uint8_t config_head[] = {0x34, 0x12, 0x78, 0x56, 0x07};
  std::vector<std::uint8_t> config(256, 0);
  std::copy(std::begin(config_head), std::end(config_head), config.begin());
  stream.insert(stream.end(), config.begin(), config.end());
  const auto tail = from_hex("010a696e74785f6c6576656c010000000100");
  stream.insert(stream.end(), tail.begin(), tail.end());

  PciFunctionState loaded;
  load_state(pci_function_descriptor(), &loaded, stream);
  EXPECT_EQ(loaded.config[0], 0x34);
  EXPECT_EQ(loaded.config[4], 0x07);
  EXPECT_EQ(loaded.config[5], 0x00);
  EXPECT_TRUE(loaded.intx_level);
  EXPECT_EQ(save_state(pci_function_descriptor(), &loaded), stream) << "version 1 encodes the same today";
}

TEST_F(PciFunctionTest, RandomConfigWritesNeverBreakTheHeader) {
  define_bars();
  fn_->add_capability(kCapabilityVendor, 8);
  attach();
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const unsigned size = 1u << (rng() % 3);
    const auto offset = static_cast<std::uint16_t>(rng() % 260);
    if (rng() % 2)
      fn_->config_write(offset, size, static_cast<std::uint32_t>(rng()));
    else
      (void)fn_->config_read(offset, size);
  }
  EXPECT_EQ(rd(kVendorId), 0x56781234u);
  EXPECT_EQ(rd(kBar0) & 0x1u, 0x1u);
  EXPECT_EQ(rd(kBar0) & 0x1fu, 0x1u) << "size bits stay zero, the I/O bit stays set";
  EXPECT_EQ(rd(kCapabilitiesPointer, 1), 0x40u);
  fn_->reset();
  EXPECT_TRUE(m_.bus().port_ranges().empty());
  EXPECT_TRUE(m_.bus().mmio_ranges().empty());
}

}  // namespace
}  // namespace molt::sdk
