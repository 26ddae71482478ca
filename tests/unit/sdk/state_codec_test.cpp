// The state codec's semantics: round trips, versions, subsections, hooks, and
// the messages a failed load gives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "codec_samples.hpp"

namespace molt::sdk {
namespace {

using samples::full_sample;
using samples::sample_descriptor;
using samples::SampleState;
using ::testing::HasSubstr;

// Runs `load` and returns the StateError it throws; fails the test if it does not throw one.
StateError load_error(const std::function<void()>& load) {
  try {
    load();
  } catch (const StateError& e) {
    return e;
  }
  ADD_FAILURE() << "the load did not throw StateError";
  return StateError("", "");
}

TEST(StateCodec, RoundTripsEveryWireType) {
  SampleState saved = full_sample();
  const auto record = save_state(sample_descriptor(), &saved);
  SampleState loaded;
  load_state(sample_descriptor(), &loaded, record);
  EXPECT_EQ(loaded, full_sample());
}

TEST(StateCodec, RoundTripsDefaultsAndEmptyContainers) {
  SampleState saved;
  const auto record = save_state(sample_descriptor(), &saved);
  SampleState loaded = full_sample();
  loaded.extra = {};  // the subsection is not needed for defaults, so it is not sent
  load_state(sample_descriptor(), &loaded, record);
  EXPECT_EQ(loaded, SampleState{});
}

TEST(StateCodec, RecordsNameTheWireTypeOfEachFieldKind) {
  SampleState saved = full_sample();
  const DecodedRecord record = decode_record(save_state(sample_descriptor(), &saved));
  EXPECT_EQ(record.name, "sample-dev");
  EXPECT_EQ(record.version, 3u);
  std::map<std::string, WireType> types;
  for (const DecodedField& f : record.fields) types[f.name] = f.type;
  const std::map<std::string, WireType> expected = {
      {"on", WireType::Bool},      {"u8", WireType::U8},        {"u16", WireType::U16},
      {"u32", WireType::U32},      {"u64", WireType::U64},      {"i8", WireType::I64},
      {"i16", WireType::I64},      {"i32", WireType::I64},      {"i64", WireType::I64},
      {"mode", WireType::U8},      {"wide", WireType::U32},     {"a8", WireType::Bytes},
      {"a16", WireType::U16Array}, {"a32", WireType::U32Array}, {"a64", WireType::U64Array},
      {"v8", WireType::Bytes},     {"v16", WireType::U16Array}, {"v32", WireType::U32Array},
      {"v64", WireType::U64Array}, {"text", WireType::String},  {"sample-extra", WireType::Record}};
  EXPECT_EQ(types, expected);
  // Fields come in declaration order, subsections last.
  EXPECT_EQ(record.fields.front().name, "on");
  EXPECT_EQ(record.fields.back().name, "sample-extra");
  const DecodedField& i8 = record.fields[5];
  EXPECT_EQ(i8.payload, (std::vector<std::uint8_t>{0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}));
}

TEST(StateCodec, NeededSubsectionsNestAsRecords) {
  SampleState saved = full_sample();
  const DecodedRecord record = decode_record(save_state(sample_descriptor(), &saved));
  const DecodedField& extra = record.fields.back();
  ASSERT_TRUE(extra.record);
  EXPECT_TRUE(extra.payload.empty());
  EXPECT_EQ(extra.record->name, "sample-extra");
  EXPECT_EQ(extra.record->version, 1u);
  ASSERT_EQ(extra.record->fields.size(), 2u);
  const DecodedField& queue = extra.record->fields[1];
  ASSERT_TRUE(queue.record);
  EXPECT_EQ(queue.record->name, "sample-queue");
  EXPECT_EQ(queue.record->fields[0].payload, (std::vector<std::uint8_t>{10, 0, 11, 0, 12, 0, 13, 0}));
}

TEST(StateCodec, SubsectionNotNeededIsNotSentAndKeepsLiveValues) {
  SampleState saved = full_sample();
  saved.extra.flags = 0;  // makes sample-extra not needed
  const auto record = save_state(sample_descriptor(), &saved);
  for (const DecodedField& f : decode_record(record).fields) EXPECT_NE(f.name, "sample-extra");

  SampleState live;
  live.extra.flags = 7;
  live.extra.queue.ring = {1, 2};
  load_state(sample_descriptor(), &live, record);
  EXPECT_EQ(live.u64, saved.u64);
  EXPECT_EQ(live.extra.flags, 7u);
  EXPECT_EQ(live.extra.queue.ring, (std::vector<std::uint16_t>{1, 2}));
}

TEST(StateCodec, InnerSubsectionNotNeededKeepsItsLiveValues) {
  SampleState saved = full_sample();
  saved.extra.queue = {};
  const auto record = save_state(sample_descriptor(), &saved);
  SampleState live;
  live.extra.queue.ring = {5};
  load_state(sample_descriptor(), &live, record);
  EXPECT_EQ(live.extra.flags, 0x10u);
  EXPECT_EQ(live.extra.queue.ring, (std::vector<std::uint16_t>{5}));
}

TEST(StateCodec, PreSaveRunsBeforeFieldsAndNeededAreRead) {
  struct Counter {
    std::uint32_t value = 0;
    std::uint32_t saves = 0;
  };
  static const StateDescriptor d = StateDescriptorBuilder<Counter>("counter", 1)
                                       .field("value", &Counter::value)
                                       .pre_save([](Counter& c) {
                                         ++c.saves;
                                         c.value = 0xabcd;
                                       })
                                       .build();
  Counter live;
  const DecodedRecord record = decode_record(save_state(d, &live));
  EXPECT_EQ(live.saves, 1u);
  ASSERT_EQ(record.fields.size(), 1u);
  EXPECT_EQ(record.fields[0].payload, (std::vector<std::uint8_t>{0xcd, 0xab, 0, 0}));
}

// ---- A UART-like device and writers that disagree with it in one way each ----

struct UartFifo {
  std::uint8_t count = 0;
};
struct Uart {
  std::uint8_t ier = 0;
  std::uint8_t lcr = 0;
  std::array<std::uint8_t, 16> rx_fifo{};
  std::uint8_t scr = 0;
  std::uint8_t rx_count = 0;
  UartFifo fifo;
  bool operator==(const Uart& o) const {
    return ier == o.ier && lcr == o.lcr && rx_fifo == o.rx_fifo && scr == o.scr && rx_count == o.rx_count &&
           fifo.count == o.fifo.count;
  }
};

const StateDescriptor& uart_fifo_descriptor(std::uint32_t version) {
  static const StateDescriptor v1 = StateDescriptorBuilder<UartFifo>("uart-fifo", 1)
                                        .field("count", &UartFifo::count)
                                        .post_load([](const UartFifo& f, std::uint32_t) {
                                          if (f.count > 16) throw StateError("count", "exceeds 16");
                                        })
                                        .build();
  static const StateDescriptor v2 =
      StateDescriptorBuilder<UartFifo>("uart-fifo", 2).field("count", &UartFifo::count).build();
  return version == 1 ? v1 : v2;
}

// The device as this build knows it: version 2, loads 1 and 2.
const StateDescriptor& uart_descriptor() {
  static const StateDescriptor d =
      StateDescriptorBuilder<Uart>("uart-16550a", 2, 1)
          .field("ier", &Uart::ier)
          .field("lcr", &Uart::lcr)
          .field("rx_fifo", &Uart::rx_fifo)
          .field("rx_count", &Uart::rx_count)
          .field("scr", &Uart::scr, 2)
          .subsection(uart_fifo_descriptor(1), &Uart::fifo, [](const Uart& u) { return u.fifo.count != 0; })
          .post_load([](const Uart& u, std::uint32_t) {
            if (u.rx_count > 16) throw StateError("rx_count", "exceeds the FIFO size 16");
          })
          .build();
  return d;
}

// What other builds (older, newer, or buggy) might have written.
struct Writer {
  std::uint8_t ier = 0x0f;
  std::uint16_t ier16 = 0x0f;
  std::uint8_t lcr = 0x03;
  std::array<std::uint8_t, 16> rx_fifo{};
  std::array<std::uint8_t, 15> rx_fifo15{};
  std::uint8_t rx_count = 0;
  std::uint8_t scr = 0x5a;
  std::uint8_t stray = 0;
  UartFifo fifo{3};
};

StateDescriptorBuilder<Writer> uart_writer(std::uint32_t version) {
  return StateDescriptorBuilder<Writer>("uart-16550a", version, 1);
}
StateDescriptorBuilder<Writer>& standard_fields(StateDescriptorBuilder<Writer>& b) {
  return b.field("ier", &Writer::ier)
      .field("lcr", &Writer::lcr)
      .field("rx_fifo", &Writer::rx_fifo)
      .field("rx_count", &Writer::rx_count);
}
std::vector<std::uint8_t> save(StateDescriptorBuilder<Writer>& b, Writer w = {}) {
  const StateDescriptor d = b.build();
  return save_state(d, &w);
}

Uart live_uart() {
  Uart u;
  u.ier = 0xaa;
  u.lcr = 0xbb;
  u.scr = 0xcc;
  u.fifo.count = 9;
  return u;
}

TEST(StateCodecVersions, OlderStreamKeepsFieldsIntroducedLater) {
  auto b = uart_writer(1);
  standard_fields(b);
  Uart live = live_uart();
  load_state(uart_descriptor(), &live, save(b));
  EXPECT_EQ(live.ier, 0x0f);
  EXPECT_EQ(live.lcr, 0x03);
  EXPECT_EQ(live.scr, 0xcc);      // since 2: not in a version-1 stream
  EXPECT_EQ(live.fifo.count, 9);  // subsection absent
}

TEST(StateCodecVersions, CurrentStreamLoadsEveryField) {
  auto b = uart_writer(2);
  standard_fields(b)
      .field("scr", &Writer::scr, 2)
      .subsection(uart_fifo_descriptor(1), &Writer::fifo, [](const Writer&) { return true; });
  Uart live = live_uart();
  load_state(uart_descriptor(), &live, save(b));
  EXPECT_EQ(live.scr, 0x5a);
  EXPECT_EQ(live.fifo.count, 3);
}

TEST(StateCodecVersions, NewerStreamIsRefusedNamingBothVersions) {
  auto b = uart_writer(3);
  standard_fields(b);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_STREQ(e.what(), "uart-16550a: stream has version 3, this device loads versions 1 to 2");
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecVersions, StreamBelowMinimumIsRefused) {
  static const StateDescriptor strict =
      StateDescriptorBuilder<Uart>("uart-16550a", 4, 3).field("ier", &Uart::ier).build();
  auto b = uart_writer(2);
  standard_fields(b);
  Uart live;
  const auto e = load_error([&] { load_state(strict, &live, save(b)); });
  EXPECT_STREQ(e.what(), "uart-16550a: stream has version 2, this device loads versions 3 to 4");
}

TEST(StateCodecVersions, SubsectionVersionIsCheckedOnItsOwn) {
  auto b = uart_writer(2);
  standard_fields(b)
      .field("scr", &Writer::scr, 2)
      .subsection(uart_fifo_descriptor(2), &Writer::fifo, [](const Writer&) { return true; });
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_STREQ(e.what(), "uart-16550a.uart-fifo: stream has version 2, this device loads only version 1");
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, RecordForAnotherDeviceIsRefused) {
  samples::GoldenState golden = samples::golden_state();
  const auto record = save_state(samples::golden_descriptor(1), &golden);
  Uart live;
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, record); });
  EXPECT_THAT(e.what(), HasSubstr("uart-16550a"));
  EXPECT_THAT(e.what(), HasSubstr("'golden-dev'"));
}

TEST(StateCodecErrors, MissingFieldIsNamed) {
  auto b = uart_writer(2);
  b.field("ier", &Writer::ier).field("rx_fifo", &Writer::rx_fifo).field("rx_count", &Writer::rx_count);
  b.field("scr", &Writer::scr, 2);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.lcr");
  EXPECT_THAT(e.what(), HasSubstr("missing"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, MissingFieldIntroducedLaterIsStillRequiredAtItsVersion) {
  auto b = uart_writer(2);
  standard_fields(b);  // a version-2 stream without "scr"
  Uart live;
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.scr");
  EXPECT_THAT(e.what(), HasSubstr("missing from the stream (version 2)"));
}

TEST(StateCodecErrors, UnknownFieldIsRefused) {
  auto b = uart_writer(2);
  standard_fields(b).field("scr", &Writer::scr, 2).field("stray", &Writer::stray);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.stray");
  EXPECT_THAT(e.what(), HasSubstr("not a field"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, FieldNewerThanTheStreamVersionIsRefused) {
  auto b = uart_writer(1);
  standard_fields(b).field("scr", &Writer::scr);
  Uart live;
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.scr");
  EXPECT_THAT(e.what(), HasSubstr("introduced in version 2 but the stream has version 1"));
}

TEST(StateCodecErrors, MistypedFieldNamesBothTypes) {
  auto b = uart_writer(2);
  b.field("ier", &Writer::ier16).field("lcr", &Writer::lcr).field("rx_fifo", &Writer::rx_fifo);
  b.field("rx_count", &Writer::rx_count).field("scr", &Writer::scr, 2);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.ier");
  EXPECT_THAT(e.what(), HasSubstr("expected u8, found u16"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, WrongArrayLengthNamesTheField) {
  auto b = uart_writer(2);
  b.field("ier", &Writer::ier).field("lcr", &Writer::lcr).field("rx_fifo", &Writer::rx_fifo15);
  b.field("rx_count", &Writer::rx_count).field("scr", &Writer::scr, 2);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.rx_fifo");
  EXPECT_THAT(e.what(), HasSubstr("uart-16550a.rx_fifo"));
  EXPECT_THAT(e.what(), HasSubstr("payload is 15 bytes, expected 16"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, FieldWhereASubsectionIsExpected) {
  struct Flat {
    std::uint8_t ier = 0, lcr = 0, rx_count = 0, fifo = 0;
    std::array<std::uint8_t, 16> rx_fifo{};
  };
  static const StateDescriptor flat = StateDescriptorBuilder<Flat>("uart-16550a", 1)
                                          .field("ier", &Flat::ier)
                                          .field("lcr", &Flat::lcr)
                                          .field("rx_fifo", &Flat::rx_fifo)
                                          .field("rx_count", &Flat::rx_count)
                                          .field("uart-fifo", &Flat::fifo)
                                          .build();
  Flat f;
  Uart live;
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save_state(flat, &f)); });
  EXPECT_EQ(e.field(), "uart-16550a.uart-fifo");
  EXPECT_THAT(e.what(), HasSubstr("expected record, found u8"));
}

TEST(StateCodecErrors, UnknownSubsectionIsNamed) {
  static const StateDescriptor other =
      StateDescriptorBuilder<UartFifo>("uart-dma", 1).field("count", &UartFifo::count).build();
  auto b = uart_writer(1);
  standard_fields(b).subsection(other, &Writer::fifo, [](const Writer&) { return true; });
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b)); });
  EXPECT_EQ(e.field(), "uart-16550a.uart-dma");
  EXPECT_THAT(e.what(), HasSubstr("subsection this device does not know"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecErrors, SignedValueOutOfRangeIsRefused) {
  struct Big {
    std::int64_t delta = 300;
  };
  struct Small {
    std::int8_t delta = 0;
  };
  static const StateDescriptor big =
      StateDescriptorBuilder<Big>("dev", 1).field("delta", &Big::delta).build();
  static const StateDescriptor small =
      StateDescriptorBuilder<Small>("dev", 1).field("delta", &Small::delta).build();
  Big b;
  Small s;
  const auto e = load_error([&] { load_state(small, &s, save_state(big, &b)); });
  EXPECT_EQ(e.field(), "dev.delta");
  EXPECT_THAT(e.what(), HasSubstr("value 300 does not fit"));
}

TEST(StateCodecPostLoad, RejectionLeavesLiveStateUnchanged) {
  auto b = uart_writer(2);
  Writer w;
  w.rx_count = 17;
  standard_fields(b).field("scr", &Writer::scr, 2);
  Uart live = live_uart();
  const auto e = load_error([&] { load_state(uart_descriptor(), &live, save(b, w)); });
  EXPECT_EQ(e.field(), "uart-16550a.rx_count");
  EXPECT_THAT(e.what(), HasSubstr("exceeds the FIFO size 16"));
  EXPECT_EQ(live, live_uart());
}

TEST(StateCodecPostLoad, SubsectionRejectionNamesItsPathAndLeavesStateUnchanged) {
  SampleState saved = full_sample();
  saved.extra.queue.head = 4;  // past the end of a 4-entry ring
  const auto record = save_state(sample_descriptor(), &saved);
  SampleState live;
  live.u32 = 99;
  const auto e = load_error([&] { load_state(sample_descriptor(), &live, record); });
  EXPECT_EQ(e.field(), "sample-dev.sample-extra.sample-queue.head");
  EXPECT_THAT(e.what(), HasSubstr("past the end of the ring"));
  SampleState expected;
  expected.u32 = 99;
  EXPECT_EQ(live, expected);
}

TEST(StateCodecPostLoad, ReceivesTheRecordVersion) {
  std::uint32_t seen = 0;
  const StateDescriptor d = StateDescriptorBuilder<Uart>("uart-16550a", 2, 1)
                                .field("ier", &Uart::ier)
                                .post_load([&seen](const Uart&, std::uint32_t v) { seen = v; })
                                .build();
  struct Old {
    std::uint8_t ier = 1;
  } old;
  static const StateDescriptor v1 =
      StateDescriptorBuilder<Old>("uart-16550a", 1).field("ier", &Old::ier).build();
  Uart live;
  load_state(d, &live, save_state(v1, &old));
  EXPECT_EQ(seen, 1u);
  EXPECT_EQ(live.ier, 1);
}

TEST(StateCodecSave, RefusesNamesTheFormatCannotCarry) {
  struct S {
    std::uint8_t v = 0;
  } s;
  const StateDescriptor spaced = StateDescriptorBuilder<S>("dev", 1).field("two words", &S::v).build();
  EXPECT_THROW(save_state(spaced, &s), StateError);
  const StateDescriptor empty = StateDescriptorBuilder<S>("", 1).field("v", &S::v).build();
  EXPECT_THROW(save_state(empty, &s), StateError);
  const StateDescriptor twice =
      StateDescriptorBuilder<S>("dev", 1).field("v", &S::v).field("v", &S::v).build();
  EXPECT_THROW(save_state(twice, &s), StateError);
}

TEST(StateCodecSave, RefusesInconsistentVersions) {
  struct S {
    std::uint8_t v = 0;
  } s;
  const StateDescriptor future = StateDescriptorBuilder<S>("dev", 1).field("v", &S::v, 2).build();
  EXPECT_THROW(save_state(future, &s), StateError);
  const StateDescriptor inverted = StateDescriptorBuilder<S>("dev", 1, 2).field("v", &S::v).build();
  EXPECT_THROW(save_state(inverted, &s), StateError);
}

TEST(StateCodecNames, WireTypesHaveStableNames) {
  EXPECT_STREQ(to_string(WireType::Bool), "bool");
  EXPECT_STREQ(to_string(WireType::U8), "u8");
  EXPECT_STREQ(to_string(WireType::U16), "u16");
  EXPECT_STREQ(to_string(WireType::U32), "u32");
  EXPECT_STREQ(to_string(WireType::U64), "u64");
  EXPECT_STREQ(to_string(WireType::I64), "i64");
  EXPECT_STREQ(to_string(WireType::Bytes), "bytes");
  EXPECT_STREQ(to_string(WireType::String), "string");
  EXPECT_STREQ(to_string(WireType::U16Array), "u16 array");
  EXPECT_STREQ(to_string(WireType::U32Array), "u32 array");
  EXPECT_STREQ(to_string(WireType::U64Array), "u64 array");
  EXPECT_STREQ(to_string(WireType::Record), "record");
  EXPECT_STREQ(to_string(static_cast<WireType>(99)), "unknown type");
}

TEST(StateCodecNames, ThrowLengthSaysBothSizes) {
  try {
    detail::throw_length(1, 8);
    FAIL() << "throw_length returned";
  } catch (const StateError& e) {
    EXPECT_STREQ(e.what(), "payload is 1 byte, expected 8");
    EXPECT_TRUE(e.field().empty());
  }
}

}  // namespace
}  // namespace molt::sdk
