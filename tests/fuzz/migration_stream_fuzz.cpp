// libFuzzer entry for the migration stream: any byte string goes through
// StreamReader (as a stream of any kind) and through `molt migration dump`'s
// decoding, which also runs the RAM chunk and state record decoders on every
// record it reaches. The reader may refuse input only with StreamError, the
// dump never throws and always produces JSON that parses back; anything else
// (a crash, another exception, a sanitizer report) is a bug.
#include <cstdint>
#include <cstdlib>
#include <span>

#include <boost/json.hpp>

#include "core/app/dump_command.hpp"
#include "core/migration/stream.hpp"

namespace {

namespace migration = molt::core::migration;
namespace app = molt::core::app;

constexpr std::uint64_t kEndRecordBytes = 1 + 2 + 3 + 8 + 16;

// Reads the whole stream; returns whether it was complete and verified.
bool read_stream(std::span<const std::uint8_t> input) {
  migration::SpanSource source(input);
  try {
    migration::StreamReader reader(source, "");
    migration::Record record;
    std::uint64_t previous_end = reader.bytes_read();
    while (reader.next(record)) {
      if (record.offset != previous_end || record.payload.size() > migration::kMaxRecordPayload) std::abort();
      previous_end = reader.bytes_read();
    }
    if (reader.end_offset() != previous_end || reader.bytes_read() != previous_end + kEndRecordBytes) std::abort();
    reader.expect_end_of_input();
    if (reader.bytes_read() != input.size()) std::abort();
    return true;
  } catch (const migration::StreamError&) {
    return false;
  }
}

void dump(std::span<const std::uint8_t> input, bool summary, bool verified) {
  migration::SpanSource source(input);
  app::DumpOptions options;
  options.summary = summary;
  options.pages = true;
  const app::DumpResult result = app::dump_stream(source, options);
  if (result.ok != verified || result.ok == result.json.contains("error")) std::abort();
  if (boost::json::parse(app::pretty_json(result.json)) != boost::json::value(result.json)) std::abort();
}

// The payload decoders straight on the input, as a record's payload.
void decode_payloads(std::span<const std::uint8_t> input) {
  try {
    app::describe_ram_chunk(input, true);
  } catch (const molt::sdk::Error&) {
  }
  try {
    app::describe_state_record(input);
  } catch (const molt::sdk::StateError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const bool verified = read_stream(input);
  dump(input, false, verified);
  dump(input, true, verified);
  decode_payloads(input);
  return 0;
}
