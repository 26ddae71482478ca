#include "core/app/dump_command.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <molt/sdk/state.hpp>

#include "core/migration/channel.hpp"

namespace molt::core::app {

namespace json = boost::json;
using migration::Record;
using migration::Tag;

namespace {

constexpr std::size_t kPageSize = 4096;
constexpr std::uint64_t kZeroPageFlag = 1;
constexpr std::uint64_t kPageFlagMask = kPageSize - 1;
constexpr std::size_t kHeadBytes = 32;  // shown of payloads the dump does not decode

std::string hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

// Length of the well-formed UTF-8 sequence at `s[i]` (RFC 3629: no overlong
// forms, surrogates or code points past U+10FFFF), or 0 if there is none.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > s.size() || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k)
    if ((byte(k) & 0xc0) != 0x80) return 0;
  return length;
}

// Bytes from the stream as a JSON string: valid UTF-8 stays; any other byte
// is taken as Latin-1, so the output is always valid JSON.
std::string text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t length = utf8_sequence(s, i);
    if (length > 0) {
      out.append(s.substr(i, length));
      i += length;
    } else {
      const auto byte = static_cast<unsigned char>(s[i++]);
      out += static_cast<char>(0xc0 | (byte >> 6));
      out += static_cast<char>(0x80 | (byte & 0x3f));
    }
  }
  return out;
}

std::uint64_t le(const std::uint8_t* p, unsigned bytes) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

json::array le_array(std::span<const std::uint8_t> payload, unsigned width) {
  json::array out;
  for (std::size_t i = 0; i + width <= payload.size(); i += width)
    out.emplace_back(le(payload.data() + i, width));
  return out;
}

json::value field_value(const sdk::DecodedField& field);

json::object record_json(const sdk::DecodedRecord& record) {
  json::object fields;
  for (const sdk::DecodedField& field : record.fields) fields[text(field.name)] = field_value(field);
  return {{"descriptor", text(record.name)}, {"version", record.version}, {"fields", std::move(fields)}};
}

json::value field_value(const sdk::DecodedField& field) {
  const auto& p = field.payload;
  switch (field.type) {
    case sdk::WireType::Bool:
      return !p.empty() && p[0] != 0;
    case sdk::WireType::U8:
      return le(p.data(), 1);
    case sdk::WireType::U16:
      return le(p.data(), 2);
    case sdk::WireType::U32:
      return le(p.data(), 4);
    case sdk::WireType::U64:
      return le(p.data(), 8);
    case sdk::WireType::I64:
      return static_cast<std::int64_t>(le(p.data(), 8));
    case sdk::WireType::Bytes:
      return json::string(hex(p));
    case sdk::WireType::String:
      return json::string(text({reinterpret_cast<const char*>(p.data()), p.size()}));
    case sdk::WireType::U16Array:
      return le_array(p, 2);
    case sdk::WireType::U32Array:
      return le_array(p, 4);
    case sdk::WireType::U64Array:
      return le_array(p, 8);
    case sdk::WireType::Record:
      if (field.record) return record_json(*field.record);
      return nullptr;
  }
  return nullptr;
}

}  // namespace

json::object describe_state_record(std::span<const std::uint8_t> record) {
  return record_json(sdk::decode_record(record));
}

json::object describe_ram_chunk(std::span<const std::uint8_t> payload, bool list_offsets) {
  auto need = [&](std::size_t at, std::size_t bytes, const char* what) {
    if (at > payload.size() || payload.size() - at < bytes)
      throw sdk::Error(fmt::format("the RAM chunk ends at byte {} inside {}", payload.size(), what));
  };
  need(0, 2, "the block name's length");
  const std::size_t name_length = le(payload.data(), 2);
  need(2, name_length + 4, "the block name and page count");
  const std::string block(reinterpret_cast<const char*>(payload.data() + 2), name_length);
  const std::uint64_t pages = le(payload.data() + 2 + name_length, 4);
  std::size_t at = 6 + name_length;
  std::uint64_t zero = 0;
  json::value first = nullptr, last = nullptr;
  json::array offsets;
  for (std::uint64_t i = 0; i < pages; ++i) {
    need(at, 8, "a page header");
    const std::uint64_t word = le(payload.data() + at, 8);
    if ((word & kPageFlagMask & ~kZeroPageFlag) != 0)
      throw sdk::Error(fmt::format("page {} of the RAM chunk (byte {}) has unknown flags {:#x}", i, at,
                                   word & kPageFlagMask));
    at += 8;
    const std::uint64_t offset = word & ~kPageFlagMask;
    if (word & kZeroPageFlag) {
      ++zero;
    } else {
      need(at, kPageSize, "a page's data");
      at += kPageSize;
    }
    if (i == 0) first = offset;
    last = offset;
    if (list_offsets) offsets.emplace_back(offset);
  }
  if (at != payload.size())
    throw sdk::Error(fmt::format("the RAM chunk has {} bytes after its last page (from byte {})",
                                 payload.size() - at, at));
  json::object out{{"block", text(block)},       {"pages", pages},        {"zero_pages", zero},
                   {"data_pages", pages - zero}, {"first_offset", first}, {"last_offset", last}};
  if (list_offsets) out["offsets"] = std::move(offsets);
  return out;
}

namespace {

bool is_json_payload(Tag tag) {
  return tag == Tag::Fingerprint || tag == Tag::Handshake || tag == Tag::Status || tag == Tag::RamLayout;
}

bool is_state_payload(Tag tag) {
  return tag == Tag::DeviceState || tag == Tag::CpuState || tag == Tag::MachineState;
}

std::span<const std::uint8_t> head(const std::vector<std::uint8_t>& payload) {
  return std::span(payload).first(std::min(payload.size(), kHeadBytes));
}

// The decoded payload goes under one member ("json", "state" or "ram"); a
// payload that does not decode gets "decode_error" and its first bytes
// instead: the stream itself is intact, only that record's content is not.
void describe_payload(const Record& record, bool pages, json::object& out) {
  const std::span<const std::uint8_t> payload(record.payload);
  try {
    if (is_json_payload(record.tag)) {
      if (payload.empty()) {
        out["json"] = nullptr;
        return;
      }
      std::error_code error;
      json::value parsed =
          json::parse({reinterpret_cast<const char*>(payload.data()), payload.size()}, error);
      if (error) throw sdk::Error("the payload is not JSON: " + error.message());
      out["json"] = std::move(parsed);
    } else if (is_state_payload(record.tag)) {
      out["state"] = describe_state_record(payload);
    } else if (record.tag == Tag::Chunk && record.name == "ram") {
      out["ram"] = describe_ram_chunk(payload, pages);
    } else if (!payload.empty()) {
      out["head"] = hex(head(record.payload));
    }
  } catch (const sdk::Error& e) {
    out["decode_error"] = text(e.what());
    out["head"] = hex(head(record.payload));
  }
}

json::object record_entry(const Record& record, bool pages) {
  const char* tag = migration::to_string(record.tag);
  json::object out{{"tag", tag}};
  if (std::strcmp(tag, "unknown") == 0) out["tag_number"] = static_cast<unsigned>(record.tag);
  out["name"] = text(record.name);
  out["offset"] = record.offset;
  out["length"] = record.payload.size();
  describe_payload(record, pages, out);
  return out;
}

// --summary: records and payload bytes per tag and name, and RAM pages per block.
class Summary {
 public:
  void add(const Record& record) {
    ++records_;
    json::object& per_name = by_tag_[migration::to_string(record.tag)];
    json::value& slot = per_name[text(record.name)];
    if (!slot.is_object()) slot = json::object{{"records", 0}, {"payload_bytes", 0}};
    slot.as_object()["records"] = slot.as_object()["records"].to_number<std::uint64_t>() + 1;
    slot.as_object()["payload_bytes"] =
        slot.as_object()["payload_bytes"].to_number<std::uint64_t>() + record.payload.size();
    if (record.tag != Tag::Chunk || record.name != "ram") return;
    try {
      const json::object chunk = describe_ram_chunk(record.payload, false);
      Pages& block = ram_[std::string(chunk.at("block").as_string())];
      block.pages += chunk.at("pages").to_number<std::uint64_t>();
      block.zero += chunk.at("zero_pages").to_number<std::uint64_t>();
    } catch (const sdk::Error&) {
      ++bad_ram_chunks_;
    }
  }
  json::object to_json() const {
    json::object tags;
    for (const auto& [tag, names] : by_tag_) tags[tag] = names;
    json::object ram;
    for (const auto& [block, p] : ram_)
      ram[block] = json::object{{"pages", p.pages}, {"zero_pages", p.zero}, {"data_pages", p.pages - p.zero}};
    json::object out{{"records", records_}, {"by_tag", std::move(tags)}, {"ram", std::move(ram)}};
    if (bad_ram_chunks_ > 0) out["undecodable_ram_chunks"] = bad_ram_chunks_;
    return out;
  }

 private:
  struct Pages {
    std::uint64_t pages = 0, zero = 0;
  };
  std::uint64_t records_ = 0;
  std::uint64_t bad_ram_chunks_ = 0;
  std::map<std::string, json::object> by_tag_;
  std::map<std::string, Pages> ram_;
};

// A snapshot that left RAM in place: which files hold the pages, as the
// top-level "ram_in_place" (beside the record itself, so --summary shows it
// too). Read straight from the JSON so the dump stays free of the engine.
void note_ram_in_place(const Record& record, json::object& out) {
  if (record.tag != Tag::RamLayout) return;
  std::error_code error;
  const json::value layout =
      json::parse({reinterpret_cast<const char*>(record.payload.data()), record.payload.size()}, error);
  if (error || !layout.is_array()) return;  // the record's own entry says why it does not decode
  json::array blocks;
  for (const json::value& b : layout.as_array()) {
    const json::object* block = b.if_object();
    const json::value* in_place = block ? block->if_contains("in_place") : nullptr;
    if (!in_place || !in_place->is_bool() || !in_place->as_bool()) continue;
    json::object entry;
    for (const char* key : {"name", "path", "size"})
      if (const json::value* v = block->if_contains(key))
        entry[key == std::string_view("name") ? "block" : key] = *v;
    blocks.push_back(std::move(entry));
  }
  if (!blocks.empty()) out["ram_in_place"] = std::move(blocks);
}

}  // namespace

DumpResult dump_stream(migration::ByteSource& source, const DumpOptions& options) {
  DumpResult result;
  json::array records;
  Summary summary;
  try {
    migration::StreamReader reader(source, "");
    result.json["format_version"] = reader.version();
    result.json["kind"] = text(reader.kind());
    Record record;
    try {
      while (reader.next(record)) {
        note_ram_in_place(record, result.json);
        if (options.summary)
          summary.add(record);
        else
          records.emplace_back(record_entry(record, options.pages));
      }
      reader.expect_end_of_input();
    } catch (...) {
      if (options.summary)
        result.json["summary"] = summary.to_json();
      else
        result.json["records"] = std::move(records);
      throw;
    }
    if (options.summary)
      result.json["summary"] = summary.to_json();
    else
      result.json["records"] = std::move(records);
    result.json["end"] = json::object{{"checksum", fmt::format("{:#018x}", reader.checksum())},
                                      {"bytes", reader.end_offset()},
                                      {"verified", true}};
  } catch (const sdk::Error& e) {
    result.ok = false;
    result.json["error"] = text(e.what());
  }
  return result;
}

namespace {

bool is_scalar_array(const json::array& array) {
  for (const json::value& v : array)
    if (v.is_object() || v.is_array()) return false;
  return true;
}

void pretty(const json::value& value, std::string& out, int depth) {
  const std::string indent(2 * (depth + 1), ' ');
  if (value.is_object() && !value.as_object().empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& [key, member] : value.as_object()) {
      out += first ? "" : ",\n";
      first = false;
      out += indent + json::serialize(json::string(key)) + ": ";
      pretty(member, out, depth + 1);
    }
    out += "\n" + std::string(2 * depth, ' ') + "}";
  } else if (value.is_array() && !value.as_array().empty() && !is_scalar_array(value.as_array())) {
    out += "[\n";
    bool first = true;
    for (const json::value& element : value.as_array()) {
      out += first ? "" : ",\n";
      first = false;
      out += indent;
      pretty(element, out, depth + 1);
    }
    out += "\n" + std::string(2 * depth, ' ') + "]";
  } else {
    out += json::serialize(value);
  }
}

}  // namespace

std::string pretty_json(const json::value& value) {
  std::string out;
  pretty(value, out, 0);
  out += "\n";
  return out;
}

void add_dump_options(CLI::App& cmd, DumpOptions& options) {
  cmd.add_option("FILE", options.file, "The stream: a snapshot file, a saved stream, or - for stdin")
      ->required();
  cmd.add_flag("--summary", options.summary, "Counts per tag and name instead of every record");
  cmd.add_flag("--pages", options.pages, "List every page offset of each RAM chunk");
}

int run_dump(const DumpOptions& options) {
  kvm::Fd fd(options.file == "-" ? ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0)
                                 : ::open(options.file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw sdk::Error(fmt::format("{}: cannot open: {}", options.file, std::strerror(errno)));
  migration::Channel channel(std::move(fd), options.file == "-" ? "stdin" : options.file);
  const DumpResult result = dump_stream(channel, options);
  const std::string out = pretty_json(result.json);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return result.ok ? 0 : 1;
}

}  // namespace molt::core::app
