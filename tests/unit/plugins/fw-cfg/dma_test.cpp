// The DMA interface: FWCfgDmaAccess structures in fake guest RAM, triggered
// through the big-endian address register halves.
#include "fw_cfg_fixture.hpp"

namespace molt::fw_cfg::test {
namespace {

constexpr std::uint64_t kAccess = 0x1000;
constexpr std::uint64_t kBuffer = 0x2000;

class FwCfgDmaTest : public FwCfgTest {
 protected:
  void put_access(std::uint64_t at, std::uint32_t control, std::uint32_t length, std::uint64_t address) {
    std::vector<std::uint8_t>& ram = machine_.memory().bytes();
    for (int i = 0; i < 4; ++i) ram[at + i] = static_cast<std::uint8_t>(control >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) ram[at + 4 + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
    for (int i = 0; i < 8; ++i) ram[at + 8 + i] = static_cast<std::uint8_t>(address >> (56 - 8 * i));
  }
  // What firmware does: outl(cpu_to_be32(address)) to the low half.
  void trigger(std::uint64_t access_address) {
    if (access_address >> 32) machine_.bus().io_write(kDmaHigh, 4, __builtin_bswap32(access_address >> 32));
    machine_.bus().io_write(kDmaLow, 4, __builtin_bswap32(static_cast<std::uint32_t>(access_address)));
  }
  std::uint32_t control_at(std::uint64_t at) { return be32(machine_.memory().bytes().data() + at); }
  std::vector<std::uint8_t> ram(std::uint64_t at, std::size_t n) {
    const auto& bytes = machine_.memory().bytes();
    return {bytes.begin() + static_cast<std::ptrdiff_t>(at),
            bytes.begin() + static_cast<std::ptrdiff_t>(at + n)};
  }
};

TEST_F(FwCfgDmaTest, RegisterReadsTheSignature) {
  make();
  EXPECT_EQ(machine_.bus().io_read(kDmaHigh, 4), 0x554d4551u);  // "QEMU" in port byte order
  EXPECT_EQ(machine_.bus().io_read(kDmaLow, 4), 0x47464320u);   // " CFG"
}

TEST_F(FwCfgDmaTest, SelectAndReadTheDirectory) {
  make();
  put_access(kAccess, (kFileDir << 16) | kDmaSelect | kDmaRead, 4 + 4 * 64, kBuffer);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), 0u);
  EXPECT_EQ(be32(ram(kBuffer, 4).data()), 4u);
  const std::vector<std::uint8_t> first = ram(kBuffer + 4, 64);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(first.data() + 8)), "etc/boot-fail-wait");
  EXPECT_EQ(be32(first.data()), 4u);
  EXPECT_EQ((first[4] << 8) | first[5], kFileFirst);
  EXPECT_EQ(device_->current().selector, kFileDir);
  EXPECT_EQ(device_->current().offset, 4u + 4 * 64);
}

TEST_F(FwCfgDmaTest, DmaMarksWhatItWritesDirty) {
  make();
  put_access(kAccess, (kSignature << 16) | kDmaSelect | kDmaRead, 4, kBuffer);
  machine_.memory().bytes()[kBuffer + 4] = 0xaa;
  trigger(kAccess);
  EXPECT_EQ(ram(kBuffer, 5), (std::vector<std::uint8_t>{'Q', 'E', 'M', 'U', 0xaa}));
  bool buffer_dirty = false, status_dirty = false;
  for (const auto& [gpa, len] : machine_.memory().dirty()) {
    buffer_dirty |= gpa <= kBuffer && kBuffer + 4 <= gpa + len;
    status_dirty |= gpa <= kAccess && kAccess + 4 <= gpa + len;
  }
  EXPECT_TRUE(buffer_dirty);
  EXPECT_TRUE(status_dirty);
}

TEST_F(FwCfgDmaTest, SkipThenReadContinuesFromTheOffset) {
  make();
  select(kSignature);
  put_access(kAccess, kDmaSkip, 2, 0);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), 0u);
  put_access(kAccess, kDmaRead, 2, kBuffer);
  trigger(kAccess);
  EXPECT_EQ(ram(kBuffer, 2), (std::vector<std::uint8_t>{'M', 'U'}));
  // A skip past the end stops at the end.
  put_access(kAccess, kDmaSkip, 0xffffffffu, 0);
  trigger(kAccess);
  EXPECT_EQ(device_->current().offset, 4u);
}

TEST_F(FwCfgDmaTest, ReadPastTheEndFillsZeros) {
  make();
  std::fill_n(machine_.memory().bytes().begin() + kBuffer, 200000, 0xaa);
  put_access(kAccess, (kNbCpus << 16) | kDmaSelect | kDmaRead, 150000, kBuffer);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), 0u);
  EXPECT_EQ(ram(kBuffer, 3), (std::vector<std::uint8_t>{2, 0, 0}));
  EXPECT_EQ(machine_.memory().bytes()[kBuffer + 149999], 0);
  EXPECT_EQ(machine_.memory().bytes()[kBuffer + 150000], 0xaa);
}

TEST_F(FwCfgDmaTest, DestinationOutsideRamSetsTheErrorBit) {
  make();
  put_access(kAccess, (kSignature << 16) | kDmaSelect | kDmaRead, 4, (16u << 20) - 2);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), kDmaError);
  put_access(kAccess, (kSignature << 16) | kDmaSelect | kDmaRead, 0xffffffffu, 0xffff'ffff'ffff'f000ull);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), kDmaError);
}

TEST_F(FwCfgDmaTest, AccessStructureOutsideRamDoesNothing) {
  make();
  select(kSignature);
  read_data(1);
  trigger(0x1'0000'0000ull);  // above RAM, through both halves
  trigger((16u << 20) - 8);   // straddles the end of RAM
  EXPECT_EQ(device_->current().selector, kSignature);
  EXPECT_EQ(device_->current().offset, 1u);
  EXPECT_EQ(device_->current().dma_address_high, 0u);  // cleared by the transfer attempt
}

TEST_F(FwCfgDmaTest, HighHalfIsLatchedUntilTheLowHalf) {
  make();
  machine_.bus().io_write(kDmaHigh, 4, __builtin_bswap32(0x12));
  EXPECT_EQ(device_->current().dma_address_high, 0x12u);
  machine_.bus().io_write(kDmaHigh, 2, 0xffff);  // not a 32-bit half: ignored
  EXPECT_EQ(device_->current().dma_address_high, 0x12u);
}

TEST_F(FwCfgDmaTest, WritesAreRefused) {
  make();
  machine_.memory().bytes()[kBuffer] = 7;
  put_access(kAccess, (kNbCpus << 16) | kDmaSelect | kDmaWrite, 1, kBuffer);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), kDmaError);
  EXPECT_EQ(read_item(kNbCpus, 1)[0], 2);
}

TEST_F(FwCfgDmaTest, SelectOnlyAndUnknownKeys) {
  make();
  put_access(kAccess, (kRamSize << 16) | kDmaSelect, 0, 0);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), 0u);
  EXPECT_EQ(device_->current().selector, kRamSize);
  std::fill_n(machine_.memory().bytes().begin() + kBuffer, 8, 0xaa);
  put_access(kAccess, (0x3ff0u << 16) | kDmaSelect | kDmaRead, 8, kBuffer);
  trigger(kAccess);
  EXPECT_EQ(control_at(kAccess), 0u);
  EXPECT_EQ(ram(kBuffer, 8), std::vector<std::uint8_t>(8, 0));
}

}  // namespace
}  // namespace molt::fw_cfg::test
