// Frozen streams: records written by released descriptor versions must load
// forever, and today's saver must still produce them byte for byte.
#include <gtest/gtest.h>

#include "codec_samples.hpp"

namespace molt::sdk {
namespace {

using samples::golden_descriptor;
using samples::golden_state;
using samples::GoldenState;
using samples::kGoldenV1;

TEST(StateGolden, VersionOneSaverStillWritesTheFrozenBytes) {
  GoldenState state = golden_state();
  EXPECT_EQ(save_state(golden_descriptor(1), &state), kGoldenV1);
}

TEST(StateGolden, FrozenRecordLoadsIntoVersionOne) {
  GoldenState live;
  load_state(golden_descriptor(1), &live, kGoldenV1);
  EXPECT_EQ(live, golden_state());
}

TEST(StateGolden, FrozenRecordLoadsIntoVersionTwoKeepingTheNewField) {
  GoldenState live;
  live.scratch = 0xabcd;
  load_state(golden_descriptor(2), &live, kGoldenV1);
  GoldenState expected = golden_state();
  expected.scratch = 0xabcd;
  EXPECT_EQ(live, expected);
}

TEST(StateGolden, FrozenRecordDecodesWithoutItsDescriptor) {
  const DecodedRecord record = decode_record(kGoldenV1);
  EXPECT_EQ(record.name, "golden-dev");
  EXPECT_EQ(record.version, 1u);
  ASSERT_EQ(record.fields.size(), 6u);
  EXPECT_EQ(record.fields[0].name, "ctrl");
  EXPECT_EQ(record.fields[0].type, WireType::U8);
  EXPECT_EQ(record.fields[0].payload, std::vector<std::uint8_t>{0x81});
  EXPECT_EQ(record.fields[1].type, WireType::U16);
  EXPECT_EQ(record.fields[2].type, WireType::Bool);
  EXPECT_EQ(record.fields[3].type, WireType::Bytes);
  EXPECT_EQ(record.fields[4].name, "label");
  EXPECT_EQ(record.fields[4].type, WireType::String);
  EXPECT_EQ(std::string(record.fields[4].payload.begin(), record.fields[4].payload.end()), "com1");
  const DecodedField& timer = record.fields[5];
  EXPECT_EQ(timer.type, WireType::Record);
  ASSERT_TRUE(timer.record);
  EXPECT_EQ(timer.record->name, "golden-timer");
  ASSERT_EQ(timer.record->fields.size(), 1u);
  EXPECT_EQ(timer.record->fields[0].payload,
            (std::vector<std::uint8_t>{0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}));
}

TEST(StateGolden, VersionTwoRecordIsRefusedByVersionOne) {
  GoldenState state = golden_state();
  const auto v2 = save_state(golden_descriptor(2), &state);
  GoldenState live;
  EXPECT_THROW(load_state(golden_descriptor(1), &live, v2), StateError);
  EXPECT_EQ(live, GoldenState{});
}

}  // namespace
}  // namespace molt::sdk
