// libFuzzer entry for the state codec: any byte string goes through
// decode_record and through load_state into two sample devices. The codec may
// refuse the input only with StateError; anything else (a crash, another
// exception, a sanitizer report) is a bug. A refused load must leave the live
// state as it was, and a load that succeeds implies a structurally valid record.
#include <cstdint>
#include <cstdlib>
#include <span>

#include <molt/sdk/state.hpp>

#include "codec_samples.hpp"

namespace {

using molt::sdk::StateError;
namespace samples = molt::sdk::samples;

// Touches every decoded byte, so sanitizers see any that were never written.
std::uint64_t walk(const molt::sdk::DecodedRecord& record, unsigned depth) {
  if (depth > 16) std::abort();  // the codec promised a much smaller bound
  std::uint64_t sum = record.version + record.name.size();
  for (const auto& field : record.fields) {
    sum += static_cast<std::uint64_t>(field.type) + field.name.size();
    for (std::uint8_t b : field.payload) sum += b;
    if (field.type == molt::sdk::WireType::Record) {
      if (!field.record) std::abort();
      sum += walk(*field.record, depth + 1);
    }
  }
  return sum;
}

template <class State>
void load_into(const molt::sdk::StateDescriptor& descriptor, const State& initial,
               std::span<const std::uint8_t> input, bool structurally_valid) {
  State live = initial;
  try {
    molt::sdk::load_state(descriptor, &live, input);
  } catch (const StateError&) {
    if (!(live == initial)) std::abort();  // a refused load changed the live state
    return;
  }
  if (!structurally_valid) std::abort();  // loaded what decode_record refused
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  bool structurally_valid = false;
  try {
    volatile std::uint64_t sink = walk(molt::sdk::decode_record(input), 0);
    (void)sink;
    structurally_valid = true;
  } catch (const StateError&) {
  }
  load_into(samples::sample_descriptor(), samples::full_sample(), input, structurally_valid);
  load_into(samples::golden_descriptor(2), samples::golden_state(), input, structurally_valid);
  return 0;
}
