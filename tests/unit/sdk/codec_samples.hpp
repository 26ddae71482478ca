// Sample states, descriptors, frozen records and a byte mutator shared by the
// state codec's unit tests and its fuzz target (tests/fuzz), so the fuzzer and
// its replay driver start from the same records the unit tests pin down.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <molt/sdk/state.hpp>

namespace molt::sdk::samples {

// ---- "golden-dev": a small device whose version-1 record is frozen below ----

struct GoldenTimer {
  std::uint64_t deadline = 0;
  bool operator==(const GoldenTimer&) const = default;
};

struct GoldenState {
  std::uint8_t ctrl = 0;
  std::uint16_t count = 0;
  bool enabled = false;
  std::array<std::uint8_t, 4> fifo{};
  std::string label;
  std::uint32_t scratch = 0;  // version 2
  GoldenTimer timer;
  bool operator==(const GoldenState&) const = default;
};

inline const StateDescriptor& golden_timer_descriptor() {
  static const StateDescriptor d = StateDescriptorBuilder<GoldenTimer>("golden-timer", 1)
                                       .field("deadline", &GoldenTimer::deadline)
                                       .build();
  return d;
}

// Version 1 of the device as it was released; version 2 adds `scratch`.
inline const StateDescriptor& golden_descriptor(std::uint32_t version) {
  auto make = [](std::uint32_t v) {
    StateDescriptorBuilder<GoldenState> b("golden-dev", v, 1);
    b.field("ctrl", &GoldenState::ctrl)
        .field("count", &GoldenState::count)
        .field("enabled", &GoldenState::enabled)
        .field("fifo", &GoldenState::fifo)
        .field("label", &GoldenState::label);
    if (v >= 2) b.field("scratch", &GoldenState::scratch, 2);
    b.subsection(golden_timer_descriptor(), &GoldenState::timer,
                 [](const GoldenState& s) { return s.timer.deadline != 0; });
    return b.build();
  };
  static const StateDescriptor v1 = make(1);
  static const StateDescriptor v2 = make(2);
  return version == 1 ? v1 : v2;
}

inline GoldenState golden_state() {
  GoldenState s;
  s.ctrl = 0x81;
  s.count = 0x1234;
  s.enabled = true;
  s.fifo = {1, 2, 3, 4};
  s.label = "com1";
  s.timer.deadline = 0x0102030405060708;
  return s;
}

// golden_state() saved by version 1 of "golden-dev", written out by hand from
// docs/state-format.md. Never edit: a change here means old streams no longer load.
inline const std::vector<std::uint8_t> kGoldenV1 = {
    // record header: magic "MSTR", format 1, name "golden-dev", version 1, body length 135
    0x4d, 0x53, 0x54, 0x52, 0x01, 0x0a, 'g', 'o', 'l', 'd', 'e', 'n', '-', 'd', 'e', 'v',  //
    0x01, 0x00, 0x00, 0x00, 0x87, 0x00, 0x00, 0x00,                                        //
    // ctrl: u8 0x81
    0x02, 0x04, 'c', 't', 'r', 'l', 0x01, 0x00, 0x00, 0x00, 0x81,  //
    // count: u16 0x1234
    0x03, 0x05, 'c', 'o', 'u', 'n', 't', 0x02, 0x00, 0x00, 0x00, 0x34, 0x12,  //
    // enabled: bool true
    0x01, 0x07, 'e', 'n', 'a', 'b', 'l', 'e', 'd', 0x01, 0x00, 0x00, 0x00, 0x01,  //
    // fifo: bytes 01 02 03 04
    0x07, 0x04, 'f', 'i', 'f', 'o', 0x04, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04,  //
    // label: string "com1"
    0x08, 0x05, 'l', 'a', 'b', 'e', 'l', 0x04, 0x00, 0x00, 0x00, 'c', 'o', 'm', '1',  //
    // subsection entry "golden-timer", payload 49 bytes: a nested record
    0x0c, 0x0c, 'g', 'o', 'l', 'd', 'e', 'n', '-', 't', 'i', 'm', 'e', 'r', 0x31, 0x00, 0x00, 0x00,  //
    0x4d, 0x53, 0x54, 0x52, 0x01, 0x0c, 'g', 'o', 'l', 'd', 'e', 'n', '-', 't', 'i', 'm', 'e', 'r',  //
    0x01, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00,                                                  //
    // deadline: u64 0x0102030405060708, then the nested record's end marker
    0x05, 0x08, 'd', 'e', 'a', 'd', 'l', 'i', 'n', 'e', 0x08, 0x00, 0x00, 0x00,  //
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x00,                        //
    // end marker of "golden-dev"
    0x00};

// ---- "sample-dev": every wire type, signed and enum fields, nested subsections ----

enum class Mode : std::uint8_t { Off = 0, On = 1, Auto = 2 };
enum class Wide : std::uint32_t { Low = 1, High = 0x80000000u };

struct Queue {
  std::vector<std::uint16_t> ring;
  std::uint16_t head = 0;
  bool operator==(const Queue&) const = default;
};

struct Extra {
  std::uint32_t flags = 0;
  Queue queue;
  bool operator==(const Extra&) const = default;
};

struct SampleState {
  bool on = false;
  std::uint8_t u8 = 0;
  std::uint16_t u16 = 0;
  std::uint32_t u32 = 0;
  std::uint64_t u64 = 0;
  std::int8_t i8 = 0;
  std::int16_t i16 = 0;
  std::int32_t i32 = 0;
  std::int64_t i64 = 0;
  Mode mode = Mode::Off;
  Wide wide = Wide::Low;
  std::array<std::uint8_t, 5> a8{};
  std::array<std::uint16_t, 3> a16{};
  std::array<std::uint32_t, 2> a32{};
  std::array<std::uint64_t, 2> a64{};
  std::vector<std::uint8_t> v8;
  std::vector<std::uint16_t> v16;
  std::vector<std::uint32_t> v32;
  std::vector<std::uint64_t> v64;
  std::string text;
  Extra extra;
  bool operator==(const SampleState&) const = default;
};

inline const StateDescriptor& queue_descriptor() {
  static const StateDescriptor d = StateDescriptorBuilder<Queue>("sample-queue", 1)
                                       .field("ring", &Queue::ring)
                                       .field("head", &Queue::head)
                                       .post_load([](const Queue& q, std::uint32_t) {
                                         if (!q.ring.empty() && q.head >= q.ring.size())
                                           throw StateError("head", "is past the end of the ring");
                                       })
                                       .build();
  return d;
}

inline const StateDescriptor& extra_descriptor() {
  static const StateDescriptor d =
      StateDescriptorBuilder<Extra>("sample-extra", 1)
          .field("flags", &Extra::flags)
          .subsection(queue_descriptor(), &Extra::queue, [](const Extra& e) { return !e.queue.ring.empty(); })
          .build();
  return d;
}

inline const StateDescriptor& sample_descriptor() {
  static const StateDescriptor d = StateDescriptorBuilder<SampleState>("sample-dev", 3, 1)
                                       .field("on", &SampleState::on)
                                       .field("u8", &SampleState::u8)
                                       .field("u16", &SampleState::u16)
                                       .field("u32", &SampleState::u32)
                                       .field("u64", &SampleState::u64)
                                       .field("i8", &SampleState::i8)
                                       .field("i16", &SampleState::i16)
                                       .field("i32", &SampleState::i32)
                                       .field("i64", &SampleState::i64)
                                       .field("mode", &SampleState::mode)
                                       .field("wide", &SampleState::wide, 2)
                                       .field("a8", &SampleState::a8)
                                       .field("a16", &SampleState::a16)
                                       .field("a32", &SampleState::a32)
                                       .field("a64", &SampleState::a64)
                                       .field("v8", &SampleState::v8)
                                       .field("v16", &SampleState::v16)
                                       .field("v32", &SampleState::v32)
                                       .field("v64", &SampleState::v64)
                                       .field("text", &SampleState::text, 3)
                                       .subsection(extra_descriptor(), &SampleState::extra,
                                                   [](const SampleState& s) { return s.extra.flags != 0; })
                                       .post_load([](const SampleState& s, std::uint32_t) {
                                         if (static_cast<std::uint8_t>(s.mode) > 2)
                                           throw StateError("mode", "is not Off, On or Auto");
                                       })
                                       .build();
  return d;
}

// A state with every field away from its default and both subsections needed.
inline SampleState full_sample() {
  SampleState s;
  s.on = true;
  s.u8 = 0xfe;
  s.u16 = 0xbeef;
  s.u32 = 0xdeadbeef;
  s.u64 = 0xfedcba9876543210;
  s.i8 = -128;
  s.i16 = -2;
  s.i32 = -70000;
  s.i64 = -(std::int64_t{1} << 62);
  s.mode = Mode::Auto;
  s.wide = Wide::High;
  s.a8 = {9, 8, 7, 6, 5};
  s.a16 = {0xffff, 1, 0x8000};
  s.a32 = {0x80000001, 2};
  s.a64 = {~std::uint64_t{0}, 3};
  s.v8 = {1, 2, 3};
  s.v16 = {0x1111, 0x2222};
  s.v32 = {0x33333333};
  s.v64 = {0x4444444444444444, 5, 6};
  s.text = "hello, state";
  s.extra.flags = 0x10;
  s.extra.queue.ring = {10, 11, 12, 13};
  s.extra.queue.head = 2;
  return s;
}

// One deterministic mutation of `record`: byte flips, boundary values, inserted,
// deleted or duplicated ranges, truncation. Uses only raw mt19937 output, which
// the standard fixes, so every platform replays the same inputs.
inline std::vector<std::uint8_t> mutate(std::vector<std::uint8_t> record, std::mt19937& rng) {
  static constexpr std::array<std::uint8_t, 8> kInteresting = {0x00, 0x01, 0x07, 0x0c,
                                                               0x0d, 0x7f, 0x80, 0xff};
  const unsigned rounds = 1 + rng() % 3;
  for (unsigned r = 0; r < rounds && !record.empty(); ++r) {
    const std::size_t at = rng() % record.size();
    switch (rng() % 7) {
      case 0:
        record[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:
        record[at] = kInteresting[rng() % kInteresting.size()];
        break;
      case 2:
        record[at] = static_cast<std::uint8_t>(rng());
        break;
      case 3:
        record.insert(record.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
        break;
      case 4:
        record.erase(record.begin() + static_cast<std::ptrdiff_t>(at));
        break;
      case 5:
        record.resize(at);
        break;
      default: {
        // Duplicate a short range, as a repeated entry would look.
        const std::size_t length = std::min<std::size_t>(1 + rng() % 24, record.size() - at);
        std::vector<std::uint8_t> copy(record.begin() + static_cast<std::ptrdiff_t>(at),
                                       record.begin() + static_cast<std::ptrdiff_t>(at + length));
        record.insert(record.begin() + static_cast<std::ptrdiff_t>(rng() % record.size()), copy.begin(),
                      copy.end());
        break;
      }
    }
  }
  return record;
}

}  // namespace molt::sdk::samples
