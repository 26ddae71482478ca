#include <gtest/gtest.h>

#include <molt/sdk/pci.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

namespace molt::sdk {
namespace {

using testing::FakeMachine;
using Msis = std::vector<std::pair<std::uint64_t, std::uint32_t>>;

constexpr PciIdentity kIdentity{.vendor_id = 0x1af4, .device_id = 0x1041, .class_code = 0x020000};

class MsiTest : public ::testing::Test {
 protected:
  std::uint32_t rd(std::uint16_t off, unsigned size) { return m_.pci().config_read(2, 0, off, size); }
  void wr(std::uint16_t off, unsigned size, std::uint32_t v) { m_.pci().config_write(2, 0, off, size, v); }
  FakeMachine m_;
  DeviceContext& ctx_ = m_.add_context("net0");
  PciFunction fn_{ctx_, kIdentity};
};

TEST_F(MsiTest, SixtyFourBitWithMultipleMessagesAndMasking) {
  PciMsi msi(fn_, {.vectors = 4, .address64 = true, .per_vector_mask = true});
  fn_.attach({.slot = 2});
  fn_.reset();
  const std::uint16_t cap = msi.offset();
  EXPECT_EQ(rd(0x34, 1), cap);
  EXPECT_EQ(rd(cap, 1), 0x05u);
  EXPECT_EQ(rd(cap + 2, 2), 0x0184u) << "per-vector mask, 64-bit, 4 vectors capable";
  EXPECT_FALSE(msi.notify(0)) << "disabled";
  wr(cap + 4, 4, 0xfee01003);
  wr(cap + 8, 4, 0x1);
  wr(cap + 12, 2, 0x4060);
  wr(cap + 2, 2, 0x0021);  // enable, 4 vectors
  EXPECT_EQ(rd(cap + 4, 4), 0xfee01000u) << "address bits 1:0 are zero";
  EXPECT_TRUE(msi.enabled());
  EXPECT_EQ(msi.enabled_vectors(), 4u);
  EXPECT_TRUE(msi.notify(2));
  EXPECT_FALSE(msi.notify(4)) << "beyond the enabled vectors";
  EXPECT_EQ(m_.msis(), (Msis{{0x1fee01000ull, 0x4062}}));
  wr(cap + 0x10, 4, 0xffffffff);
  EXPECT_EQ(rd(cap + 0x10, 4), 0xfu) << "one mask bit per capable vector";
  EXPECT_FALSE(msi.notify(1));
  EXPECT_EQ(rd(cap + 0x14, 4), 0x2u) << "pending while masked";
  wr(cap + 0x14, 4, 0);
  EXPECT_EQ(rd(cap + 0x14, 4), 0x2u) << "pending bits are read-only";
  wr(cap + 0x10, 4, 0xd);
  EXPECT_EQ(m_.msis().back(), std::make_pair(std::uint64_t{0x1fee01000}, 0x4061u));
  EXPECT_EQ(rd(cap + 0x14, 4), 0u);
}

TEST_F(MsiTest, ThirtyTwoBitSingleVector) {
  PciMsi msi(fn_, {.vectors = 1, .address64 = false});
  fn_.attach({.slot = 2});
  fn_.reset();
  const std::uint16_t cap = msi.offset();
  wr(cap + 4, 4, 0xfee00000);
  wr(cap + 8, 2, 0x31);
  wr(cap + 2, 2, 0x0071);  // asks for 128 vectors: only 1 exists
  EXPECT_EQ(msi.enabled_vectors(), 1u);
  EXPECT_TRUE(msi.notify(0));
  EXPECT_EQ(m_.msis(), (Msis{{0xfee00000ull, 0x31}}));
  EXPECT_THROW(PciMsi(fn_, {.vectors = 3}), Error);
}

class MsixTest : public ::testing::Test {
 protected:
  MsixTest() {
    fn_.add_bar(1, {.kind = PciBarKind::Memory32, .size = 4096, .ops = msix_.bar_ops()});
    fn_.attach({.slot = 2});
    fn_.reset();
    msix_.reset();
    wr(0x14, 4, 0xfe000000);
    wr(0x04, 2, pci_reg::kCommandMemory);
  }
  std::uint32_t rd(std::uint16_t off, unsigned size) { return m_.pci().config_read(2, 0, off, size); }
  void wr(std::uint16_t off, unsigned size, std::uint32_t v) { m_.pci().config_write(2, 0, off, size, v); }
  void program(unsigned v, std::uint64_t address, std::uint32_t data) {
    const std::uint64_t entry = 0xfe000000 + v * 16;
    m_.bus().mmio_write(entry, 8, address);
    m_.bus().mmio_write(entry + 8, 4, data);
  }
  void unmask(unsigned v) { m_.bus().mmio_write(0xfe000000 + v * 16 + 12, 4, 0); }

  FakeMachine m_;
  DeviceContext& ctx_ = m_.add_context("net0");
  PciFunction fn_{ctx_, kIdentity};
  PciMsixState state_;
  PciMsix msix_{
      fn_, {.vectors = 70, .table_bar = 1, .table_offset = 0, .pba_bar = 1, .pba_offset = 0x800}, state_};
};

TEST_F(MsixTest, CapabilityDescribesTableAndPba) {
  const std::uint16_t cap = msix_.offset();
  EXPECT_EQ(rd(cap, 1), 0x11u);
  EXPECT_EQ(rd(cap + 2, 2), 69u) << "table size - 1";
  EXPECT_EQ(rd(cap + 4, 4), 0x1u) << "offset 0 in BAR 1";
  EXPECT_EQ(rd(cap + 8, 4), 0x801u);
  EXPECT_EQ(m_.bus().mmio_read(0xfe000000 + 12, 4), 1u) << "vectors start masked";
  EXPECT_EQ(m_.bus().mmio_read(0xfe000000 + 70 * 16, 4), 0xffffffffu) << "past the table";
}

TEST_F(MsixTest, DeliveryMaskingAndPendingBits) {
  const std::uint16_t cap = msix_.offset();
  program(65, 0xfee00000, 0x41);
  EXPECT_FALSE(msix_.notify(65)) << "MSI-X disabled";
  EXPECT_FALSE(msix_.pending(65));
  wr(cap + 2, 2, 0x8000);
  EXPECT_FALSE(msix_.notify(65)) << "vector masked";
  EXPECT_TRUE(msix_.pending(65));
  EXPECT_EQ(m_.bus().mmio_read(0xfe000800 + 8, 8), 2u) << "PBA bit 65";
  unmask(65);
  EXPECT_EQ(m_.msis(), (Msis{{0xfee00000, 0x41}})) << "delivered on unmask";
  EXPECT_FALSE(msix_.pending(65));
  wr(cap + 2, 2, 0xc000);  // function mask
  EXPECT_FALSE(msix_.notify(65));
  EXPECT_TRUE(msix_.pending(65));
  wr(cap + 2, 2, 0x8000);
  EXPECT_EQ(m_.msis().size(), 2u);
  EXPECT_TRUE(msix_.notify(65));
  EXPECT_EQ(m_.msis().size(), 3u);
  EXPECT_FALSE(msix_.notify(70)) << "no such vector";
  m_.bus().mmio_write(0xfe000800, 8, ~0ull);
  EXPECT_EQ(m_.bus().mmio_read(0xfe000800, 8), 0u) << "the PBA is read-only";
  m_.bus().mmio_write(0xfe000000 + 12, 4, 0xfffffffe);
  EXPECT_EQ(m_.bus().mmio_read(0xfe000000 + 12, 4), 0u) << "only the mask bit of vector control exists";
}

TEST_F(MsixTest, StateRoundTripAndValidation) {
  program(3, 0xfee00000, 0x33);
  wr(msix_.offset() + 2, 2, 0x8000);
  msix_.notify(3);
  PciMsixState copy = state_;
  const auto stream = save_state(pci_msix_descriptor(), &copy);
  PciMsixState loaded;
  load_state(pci_msix_descriptor(), &loaded, stream);
  EXPECT_EQ(loaded, state_);

  PciMsixState bad = state_;
  bad.table.resize(bad.table.size() - 1);
  const auto bad_stream = save_state(pci_msix_descriptor(), &bad);
  EXPECT_THROW(load_state(pci_msix_descriptor(), &loaded, bad_stream), StateError);
  bad = state_;
  bad.pending.push_back(0);
  EXPECT_THROW(load_state(pci_msix_descriptor(), &loaded, save_state(pci_msix_descriptor(), &bad)),
               StateError);

  // A well-formed record for another vector count is refused by the function.
  PciMsixState other;
  other.table.assign(4 * 8, 0);
  other.pending.assign(1, 0);
  state_ = other;
  EXPECT_THROW(msix_.post_load(), StateError);
}

}  // namespace
}  // namespace molt::sdk
