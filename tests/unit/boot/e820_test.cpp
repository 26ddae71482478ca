#include <gtest/gtest.h>

#include "core/boot/boot.hpp"

namespace molt::core::boot {
namespace {

constexpr std::uint32_t kRam = 1, kReserved = 2;
constexpr std::uint64_t GiB = 1ULL << 30, MiB = 1ULL << 20;

TEST(BuildE820, SmallGuestHasLowRamReservedWindowAndHighRam) {
  const auto map = build_e820({{0, 512 * MiB}});
  const std::vector<E820Entry> expected{
      {0, 0x9fc00, kRam}, {0x9fc00, 0x100000 - 0x9fc00, kReserved}, {0x100000, 512 * MiB - 0x100000, kRam}};
  EXPECT_EQ(map, expected);
}

TEST(BuildE820, PcLayoutWithHoleBelowFourGiB) {
  const auto map = build_e820({{0, 3 * GiB}, {4 * GiB, 2 * GiB}});
  const std::vector<E820Entry> expected{{0, 0x9fc00, kRam},
                                        {0x9fc00, 0x60400, kReserved},
                                        {0x100000, 3 * GiB - 0x100000, kRam},
                                        {4 * GiB, 2 * GiB, kRam}};
  EXPECT_EQ(map, expected);
}

TEST(BuildE820, RegionsGivenOutOfOrderComeOutSorted) {
  const auto map = build_e820({{4 * GiB, GiB}, {0, GiB}});
  ASSERT_EQ(map.size(), 4u);
  EXPECT_EQ(map[0].addr, 0u);
  EXPECT_EQ(map[3].addr, 4 * GiB);
  for (std::size_t i = 1; i < map.size(); ++i) EXPECT_LT(map[i - 1].addr, map[i].addr);
}

TEST(BuildE820, AdjacentRegionsMergeIntoOneEntry) {
  const auto map = build_e820({{0, 256 * MiB}, {256 * MiB, 256 * MiB}});
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map[2], (E820Entry{0x100000, 512 * MiB - 0x100000, kRam}));
}

TEST(BuildE820, TinyGuestBelowTheReservedWindowStillReportsIt) {
  const auto map = build_e820({{0, 0x80000}});
  const std::vector<E820Entry> expected{{0, 0x80000, kRam}, {0x9fc00, 0x60400, kReserved}};
  EXPECT_EQ(map, expected);
}

TEST(BuildE820, RegionInsideTheReservedWindowAddsNoRam) {
  const auto map = build_e820({{0, 0x9fc00}, {0xa0000, 0x20000}, {0x100000, MiB}});
  const std::vector<E820Entry> expected{
      {0, 0x9fc00, kRam}, {0x9fc00, 0x60400, kReserved}, {0x100000, MiB, kRam}};
  EXPECT_EQ(map, expected);
}

TEST(BuildE820, RefusesEmptyOverlappingZeroSizedAndWrappingLayouts) {
  EXPECT_THROW(build_e820({}), BootError);
  EXPECT_THROW(build_e820({{0, GiB}, {GiB / 2, GiB}}), BootError);
  EXPECT_THROW(build_e820({{0, 0}}), BootError);
  EXPECT_THROW(build_e820({{~0ULL - 10, 100}}), BootError);
  try {
    build_e820({{0, GiB}, {GiB / 2, GiB}});
  } catch (const BootError& e) {
    EXPECT_STREQ(e.what(), "RAM regions at 0 and 0x20000000 overlap");
  }
}

}  // namespace
}  // namespace molt::core::boot
