// `molt migration dump FILE`: a migration stream or snapshot file, any kind,
// as JSON on stdout (format in docs/migration-stream.md).
#pragma once

#include <span>
#include <string>

#include <boost/json.hpp>

#include "core/migration/stream.hpp"

namespace CLI {
class App;
}

namespace molt::core::app {

struct DumpOptions {
  std::string file;      // "-" reads stdin
  bool summary = false;  // counts per tag and name instead of every record
  bool pages = false;    // RAM chunks also list every page offset
};

void add_dump_options(CLI::App& cmd, DumpOptions& options);

struct DumpResult {
  boost::json::object json;
  bool ok = true;  // false: the stream is damaged and json["error"] says how
};

// Reads the whole stream from `source`. Never throws for damaged input: what
// was read is kept and the reader's message becomes the "error" member.
DumpResult dump_stream(migration::ByteSource& source, const DumpOptions& options);

// The payload of a RAM chunk (Tag::Chunk named "ram"):
//   {"block", "pages", "zero_pages", "data_pages", "first_offset", "last_offset"[, "offsets"]}
// Throws sdk::Error naming the chunk byte where it is malformed.
boost::json::object describe_ram_chunk(std::span<const std::uint8_t> payload, bool list_offsets);

// An SDK state record as {"descriptor", "version", "fields": {name: value}}.
// Throws sdk::StateError when the record is malformed.
boost::json::object describe_state_record(std::span<const std::uint8_t> record);

// Indented JSON, arrays of scalars on one line.
std::string pretty_json(const boost::json::value& value);

// The subcommand: prints the JSON; returns 0, or 1 for a damaged stream.
// Throws sdk::Error when FILE can't be opened.
int run_dump(const DumpOptions& options);

}  // namespace molt::core::app
