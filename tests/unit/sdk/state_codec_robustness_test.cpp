// Loaded state is untrusted input: truncated, corrupted and hand-crafted
// malformed records must all end in StateError, leaving the live state alone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "codec_samples.hpp"

namespace molt::sdk {
namespace {

using Bytes = std::vector<std::uint8_t>;
using samples::full_sample;
using samples::sample_descriptor;
using samples::SampleState;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Matches a message naming `path` and giving `reason`, however StateError joins the two.
auto names(const std::string& path, const std::string& reason) {
  return AllOf(HasSubstr(path), HasSubstr(reason));
}

// Hand-built records, written straight from docs/state-format.md.
void append_u32(Bytes& out, std::uint32_t v) {
  detail::put_le(out, v, 4);
}

Bytes entry(std::uint8_t tag, const std::string& name, const Bytes& payload) {
  Bytes out{tag, static_cast<std::uint8_t>(name.size())};
  out.insert(out.end(), name.begin(), name.end());
  append_u32(out, static_cast<std::uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Bytes record(const std::string& name, std::uint32_t version, const Bytes& entries) {
  Bytes out{'M', 'S', 'T', 'R', 1, static_cast<std::uint8_t>(name.size())};
  out.insert(out.end(), name.begin(), name.end());
  append_u32(out, version);
  append_u32(out, static_cast<std::uint32_t>(entries.size() + 1));
  out.insert(out.end(), entries.begin(), entries.end());
  out.push_back(0);  // end marker
  return out;
}

std::string decode_error(const Bytes& bytes) {
  try {
    decode_record(bytes);
  } catch (const StateError& e) {
    return e.what();
  }
  return "(decoded)";
}

std::vector<Bytes> valid_records() {
  SampleState full = full_sample();
  SampleState plain;
  samples::GoldenState golden = samples::golden_state();
  return {samples::kGoldenV1, save_state(sample_descriptor(), &full), save_state(sample_descriptor(), &plain),
          save_state(samples::golden_descriptor(2), &golden)};
}

TEST(StateCodecRobustness, HandBuiltRecordDecodes) {
  const DecodedRecord r = decode_record(record("dev", 1, entry(2, "x", {7})));
  EXPECT_EQ(r.name, "dev");
  ASSERT_EQ(r.fields.size(), 1u);
  EXPECT_EQ(r.fields[0].payload, Bytes{7});
}

TEST(StateCodecRobustness, TruncationAtEveryOffsetIsRefused) {
  for (const Bytes& valid : valid_records()) {
    for (std::size_t length = 0; length < valid.size(); ++length) {
      const std::span<const std::uint8_t> prefix(valid.data(), length);
      EXPECT_THROW(decode_record(prefix), StateError) << "length " << length;
      SampleState live = full_sample();
      EXPECT_THROW(load_state(sample_descriptor(), &live, prefix), StateError) << "length " << length;
      EXPECT_EQ(live, full_sample());
    }
  }
}

TEST(StateCodecRobustness, TrailingBytesAreRefused) {
  Bytes padded = samples::kGoldenV1;
  padded.push_back(0);
  EXPECT_THAT(decode_error(padded), HasSubstr("golden-dev: the record is followed by 1 stray byte"));
}

TEST(StateCodecRobustness, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(20240611);
  const std::vector<Bytes> seeds = valid_records();
  unsigned refused = 0;
  constexpr unsigned kMutations = 4000;
  for (unsigned i = 0; i < kMutations; ++i) {
    const Bytes input = samples::mutate(seeds[i % seeds.size()], rng);
    try {
      decode_record(input);
    } catch (const StateError&) {
      ++refused;
    }
    SampleState live = full_sample();
    try {
      load_state(sample_descriptor(), &live, input);
    } catch (const StateError&) {
      EXPECT_EQ(live, full_sample()) << "mutation " << i << " changed the live state on a failed load";
    }
  }
  // Almost every mutation breaks the structure; a few only change a value.
  EXPECT_GT(refused, kMutations / 2);
  EXPECT_LT(refused, kMutations);
}

TEST(StateCodecRobustness, HeaderDamageIsNamed) {
  Bytes bad_magic = record("dev", 1, {});
  bad_magic[0] = 'X';
  EXPECT_THAT(decode_error(bad_magic), HasSubstr("magic"));
  Bytes bad_format = record("dev", 1, {});
  bad_format[4] = 2;
  EXPECT_THAT(decode_error(bad_format), HasSubstr("record format 2 is not supported"));
  EXPECT_THAT(decode_error(record("", 1, {})), HasSubstr("record name"));
  EXPECT_THAT(decode_error(record("de\nv", 1, {})), HasSubstr("visible ASCII"));
  EXPECT_THAT(decode_error(record("dev", 0, {})), HasSubstr("dev: version 0"));
  Bytes long_body = record("dev", 1, {});
  long_body[13] = 0xff;  // body length's low byte
  EXPECT_THAT(decode_error(long_body), HasSubstr("dev: body length 255 runs past the end"));
}

TEST(StateCodecRobustness, HugeLengthsAreRefusedBeforeAnyRead) {
  Bytes huge = record("dev", 1, entry(7, "blob", {}));
  // The blob's payload length sits after tag, name length and "blob".
  const std::size_t length_at = 17 + 1 + 1 + 4;
  for (unsigned i = 0; i < 4; ++i) huge[length_at + i] = 0xff;
  EXPECT_THAT(decode_error(huge), names("dev.blob", "payload length 4294967295 runs past the end"));
  Bytes huge_body = record("dev", 1, {});
  for (unsigned i = 13; i < 17; ++i) huge_body[i] = 0xff;
  EXPECT_THAT(decode_error(huge_body), HasSubstr("body length 4294967295"));
}

TEST(StateCodecRobustness, BadEntriesAreNamed) {
  EXPECT_THAT(decode_error(record("dev", 1, {13, 1, 'x', 0, 0, 0, 0})), HasSubstr("unknown type tag 0x0d"));
  EXPECT_THAT(decode_error(record("dev", 1, {0xff})), HasSubstr("unknown type tag 0xff at body offset 0"));
  EXPECT_THAT(decode_error(record("dev", 1, entry(4, "", {1, 2, 3, 4}))), HasSubstr("entry name"));
  EXPECT_THAT(decode_error(record("dev", 1, entry(4, "x", {1, 2, 3}))),
              names("dev.x", "payload is 3 bytes, expected 4 for u32"));
  EXPECT_THAT(decode_error(record("dev", 1, entry(1, "on", {2}))), names("dev.on", "a bool holds 2"));
  EXPECT_THAT(decode_error(record("dev", 1, entry(10, "v", {1, 2, 3, 4, 5, 6}))),
              HasSubstr("not a whole number of 4-byte elements"));
  Bytes twice = entry(2, "x", {1});
  const Bytes again = entry(2, "x", {2});
  twice.insert(twice.end(), again.begin(), again.end());
  EXPECT_THAT(decode_error(record("dev", 1, twice)), names("dev.x", "appears twice"));
}

TEST(StateCodecRobustness, EndMarkerMustEndTheBody) {
  Bytes missing = record("dev", 1, entry(2, "x", {1}));
  missing.pop_back();
  missing[13] -= 1;  // body length without the end marker
  EXPECT_THAT(decode_error(missing), HasSubstr("without an end marker"));
  Bytes early = record("dev", 1, {0, 0});
  EXPECT_THAT(decode_error(early), HasSubstr("dev: the end marker is followed by 2 stray bytes"));
}

TEST(StateCodecRobustness, SubsectionNameMustMatchItsRecord) {
  const Bytes inner = record("inner", 1, entry(2, "x", {1}));
  EXPECT_THAT(decode_error(record("dev", 1, entry(12, "other", inner))),
              names("dev.other", "the subsection entry holds a record named 'inner'"));
  EXPECT_THAT(decode_error(record("dev", 1, entry(12, "inner", {1, 2, 3}))), names("dev.inner", "truncated"));
}

// A chain of records nested `depth` levels below the top one.
Bytes nested(unsigned depth) {
  Bytes inner = record("level" + std::to_string(depth), 1, entry(2, "v", {1}));
  for (unsigned level = depth; level > 0; --level)
    inner = record("level" + std::to_string(level - 1), 1, entry(12, "level" + std::to_string(level), inner));
  return inner;
}

TEST(StateCodecRobustness, NestingIsBoundedAtEightLevels) {
  const DecodedRecord deepest_allowed = decode_record(nested(8));
  const DecodedRecord* r = &deepest_allowed;
  for (unsigned level = 0; level < 8; ++level) {
    ASSERT_EQ(r->fields.size(), 1u);
    r = r->fields[0].record.get();
    ASSERT_NE(r, nullptr);
  }
  EXPECT_EQ(r->name, "level8");
  EXPECT_THAT(decode_error(nested(9)), HasSubstr("nest deeper than 8 levels"));
  EXPECT_THAT(decode_error(nested(200)), HasSubstr("nest deeper than 8 levels"));
}

// Descriptors nested as deep as the format allows, and one level more.
template <int N>
struct Level {
  std::uint8_t value = N;
  Level<N - 1> inner;
};
template <>
struct Level<0> {
  std::uint8_t value = 0;
};

template <int N>
const StateDescriptor& level_descriptor() {
  static const StateDescriptor d = [] {
    StateDescriptorBuilder<Level<N>> b("level-" + std::to_string(N), 1);
    b.field("value", &Level<N>::value);
    if constexpr (N > 0)
      b.subsection(level_descriptor<N - 1>(), &Level<N>::inner, [](const Level<N>&) { return true; });
    return b.build();
  }();
  return d;
}

TEST(StateCodecRobustness, SaverRefusesNestingTheLoaderWouldRefuse) {
  Level<8> eight;
  const auto bytes = save_state(level_descriptor<8>(), &eight);
  Level<8> loaded;
  loaded.inner.inner.value = 0;
  load_state(level_descriptor<8>(), &loaded, bytes);
  EXPECT_EQ(loaded.inner.inner.value, 6);
  Level<9> nine;
  EXPECT_THROW(save_state(level_descriptor<9>(), &nine), StateError);
}

}  // namespace
}  // namespace molt::sdk
