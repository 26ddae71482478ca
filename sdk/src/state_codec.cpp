// The self-describing state record codec. The byte format is specified in
// docs/state-format.md; keep the two in step.
//
// Decoding runs in two passes. parse_record() checks the whole record's
// structure (magic, lengths, tags, names, per-type payload sizes, nesting) into
// a view of spans over the input, so nothing later reads a byte that was not
// bounds-checked. load_state() then matches that view against a descriptor,
// decoding into a scratch copy that replaces the live state only once every
// check and post_load hook has passed.
#include <molt/sdk/state.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace molt::sdk {

namespace {

constexpr std::array<std::uint8_t, 4> kMagic = {'M', 'S', 'T', 'R'};
constexpr std::uint8_t kFormat = 1;
constexpr std::uint8_t kEndMarker = 0;
// Subsections inside subsections: deeper nesting than this is refused on save
// and on load, which also bounds the parser's recursion.
constexpr unsigned kMaxDepth = 8;
constexpr std::size_t kMaxName = 255;

std::string plural_bytes(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

std::string stray(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " stray byte" : " stray bytes");
}

std::string hex_byte(std::uint8_t b) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", b);
  return text;
}

// Errors about a whole record read "path: why"; errors about one field carry
// the field's dotted path in StateError::field().
[[noreturn]] void fail_record(const std::string& path, const std::string& why) {
  throw StateError("", (path.empty() ? std::string("state record") : path) + ": " + why);
}
[[noreturn]] void fail_field(const std::string& path, const std::string& why) {
  throw StateError(path, why);
}

// The reason part of a StateError, without the "field 'x': " prefix its constructor adds.
std::string reason_of(const StateError& e) {
  std::string what = e.what();
  if (e.field().empty()) return what;
  const std::string prefix = e.field() + ": ";  // as StateError builds its message
  return what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what;
}

// Rethrows a StateError from a field decoder, which names no field, under the field's path.
[[noreturn]] void rethrow_for_field(const std::string& field_path, const StateError& e) {
  fail_field(e.field().empty() ? field_path : field_path + "." + e.field(), reason_of(e));
}

// Rethrows a StateError from a post_load hook, whose field is relative to the record.
[[noreturn]] void rethrow_for_record(const std::string& record_path, const StateError& e) {
  if (e.field().empty()) fail_record(record_path, reason_of(e));
  fail_field(record_path + "." + e.field(), reason_of(e));
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) return false;
  for (char c : name)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

// Fixed payload sizes per wire type; 0 for variable-length types.
std::size_t fixed_size(WireType type) {
  switch (type) {
    case WireType::Bool:
    case WireType::U8:
      return 1;
    case WireType::U16:
      return 2;
    case WireType::U32:
      return 4;
    case WireType::U64:
    case WireType::I64:
      return 8;
    default:
      return 0;
  }
}

std::size_t element_size(WireType type) {
  switch (type) {
    case WireType::U16Array:
      return 2;
    case WireType::U32Array:
      return 4;
    case WireType::U64Array:
      return 8;
    default:
      return 1;
  }
}

// ---- Parsing: structure only, no descriptor ----

struct RecordView;

struct EntryView {
  WireType type;
  std::string_view name;
  std::span<const std::uint8_t> payload;
  std::unique_ptr<RecordView> record;  // for WireType::Record
};

struct RecordView {
  std::string_view name;
  std::string path;
  std::uint32_t version = 0;
  std::vector<EntryView> entries;
};

// Reads forward through a span; every read is checked against the end.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  std::size_t remaining() const { return bytes_.size() - pos_; }
  std::size_t offset() const { return pos_; }
  bool read(std::size_t n, std::span<const std::uint8_t>& out) {
    if (n > remaining()) return false;
    out = bytes_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool read_le(unsigned n, std::uint64_t& value) {
    std::span<const std::uint8_t> raw;
    if (!read(n, raw)) return false;
    value = detail::get_le(raw.data(), n);
    return true;
  }
  bool read_name(std::string_view& name) {
    std::uint64_t length = 0;
    std::span<const std::uint8_t> raw;
    if (!read_le(1, length) || !read(length, raw)) return false;
    name = std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size());
    return true;
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

// `parent` is the enclosing record's path ("" at the top); `where` names the
// record in errors raised before its own name is read.
void parse_record(std::span<const std::uint8_t> bytes, unsigned depth, const std::string& parent,
                  const std::string& where, RecordView& out);

void check_payload(const EntryView& entry, const std::string& path) {
  const std::size_t size = entry.payload.size();
  if (const std::size_t want = fixed_size(entry.type); want != 0 && size != want)
    fail_field(path, "payload is " + plural_bytes(size) + ", expected " + std::to_string(want) + " for " +
                         to_string(entry.type));
  if (const std::size_t unit = element_size(entry.type); size % unit != 0)
    fail_field(path, "payload is " + plural_bytes(size) + ", not a whole number of " + std::to_string(unit) +
                         "-byte elements");
  if (entry.type == WireType::Bool && entry.payload[0] > 1)
    fail_field(path, "a bool holds " + std::to_string(entry.payload[0]));
}

// Parses one entry at the reader's position; returns false at the end marker.
bool parse_entry(Reader& body, unsigned depth, const RecordView& record, EntryView& entry) {
  std::uint64_t tag = 0;
  if (!body.read_le(1, tag)) fail_record(record.path, "the body ends without an end marker");
  if (tag == kEndMarker) {
    if (body.remaining() != 0)
      fail_record(record.path, "the end marker is followed by " + stray(body.remaining()));
    return false;
  }
  if (tag > static_cast<std::uint8_t>(WireType::Record))
    fail_record(record.path, "unknown type tag " + hex_byte(static_cast<std::uint8_t>(tag)) +
                                 " at body offset " + std::to_string(body.offset() - 1));
  entry.type = static_cast<WireType>(tag);
  if (!body.read_name(entry.name)) fail_record(record.path, "an entry name runs past the end of the body");
  if (!valid_name(entry.name))
    fail_record(record.path, "an entry name is empty or holds bytes outside visible ASCII");
  const std::string path = record.path + "." + std::string(entry.name);
  std::uint64_t length = 0;
  if (!body.read_le(4, length)) fail_field(path, "the payload length runs past the end of the body");
  if (!body.read(length, entry.payload))
    fail_field(path, "payload length " + std::to_string(length) + " runs past the end of the body (" +
                         plural_bytes(body.remaining()) + " left)");
  if (entry.type != WireType::Record) {
    check_payload(entry, path);
    return true;
  }
  if (depth + 1 > kMaxDepth)
    fail_field(path, "subsections nest deeper than " + std::to_string(kMaxDepth) + " levels");
  entry.record = std::make_unique<RecordView>();
  parse_record(entry.payload, depth + 1, record.path, path, *entry.record);
  if (entry.record->name != entry.name)
    fail_field(path, "the subsection entry holds a record named '" + std::string(entry.record->name) + "'");
  return true;
}

void parse_header(Reader& in, const std::string& parent, const std::string& where, RecordView& out) {
  std::span<const std::uint8_t> magic;
  if (!in.read(kMagic.size(), magic))
    fail_record(where, "truncated: " + plural_bytes(in.remaining()) + " cannot hold a record header");
  if (!std::equal(magic.begin(), magic.end(), kMagic.begin()))
    fail_record(where, "does not start with the state record magic \"MSTR\"");
  std::uint64_t format = 0;
  if (!in.read_le(1, format)) fail_record(where, "truncated before the format byte");
  if (format != kFormat)
    fail_record(where, "record format " + std::to_string(format) +
                           " is not supported (this build reads format " + std::to_string(kFormat) + ")");
  if (!in.read_name(out.name)) fail_record(where, "the record name runs past the end");
  if (!valid_name(out.name))
    fail_record(where, "the record name is empty or holds bytes outside visible ASCII");
  out.path = parent.empty() ? std::string(out.name) : parent + "." + std::string(out.name);
  std::uint64_t version = 0;
  std::uint64_t body_length = 0;
  if (!in.read_le(4, version) || !in.read_le(4, body_length))
    fail_record(out.path, "truncated inside the record header");
  if (version == 0) fail_record(out.path, "version 0 is not a valid descriptor version");
  out.version = static_cast<std::uint32_t>(version);
  if (body_length > in.remaining())
    fail_record(out.path, "body length " + std::to_string(body_length) + " runs past the end (" +
                              plural_bytes(in.remaining()) + " left)");
  if (body_length < in.remaining())
    fail_record(out.path, "the record is followed by " + stray(in.remaining() - body_length));
}

// `bytes` must hold exactly one record.
void parse_record(std::span<const std::uint8_t> bytes, unsigned depth, const std::string& parent,
                  const std::string& where, RecordView& out) {
  Reader in(bytes);
  parse_header(in, parent, where, out);
  std::span<const std::uint8_t> body;
  in.read(in.remaining(), body);
  Reader body_reader(body);
  std::unordered_set<std::string_view> seen;
  // Every entry consumes at least 7 bytes, so this loop ends within body.size() / 7 rounds.
  for (;;) {
    EntryView entry;
    if (!parse_entry(body_reader, depth, out, entry)) break;
    if (!seen.insert(entry.name).second)
      fail_field(out.path + "." + std::string(entry.name), "appears twice in the record");
    out.entries.push_back(std::move(entry));
  }
}

DecodedRecord to_decoded(const RecordView& view) {
  DecodedRecord record;
  record.name = std::string(view.name);
  record.version = view.version;
  record.fields.reserve(view.entries.size());
  for (const EntryView& entry : view.entries) {
    DecodedField field{std::string(entry.name), entry.type, {}, nullptr};
    if (entry.record)
      field.record = std::make_shared<DecodedRecord>(to_decoded(*entry.record));
    else
      field.payload.assign(entry.payload.begin(), entry.payload.end());
    record.fields.push_back(std::move(field));
  }
  return record;
}

// ---- Saving ----

void put_name(std::vector<std::uint8_t>& out, const std::string& name, const std::string& path) {
  if (!valid_name(name))
    fail_field(path, "the name must be 1 to 255 visible ASCII characters (no spaces) to be saved");
  out.push_back(static_cast<std::uint8_t>(name.size()));
  out.insert(out.end(), name.begin(), name.end());
}

// Writes a u32 length into the 4 bytes at `at`, the size of everything after them.
void patch_length(std::vector<std::uint8_t>& out, std::size_t at, const std::string& path) {
  const std::size_t length = out.size() - at - 4;
  if (length > std::numeric_limits<std::uint32_t>::max())
    fail_field(path, "is " + std::to_string(length) + " bytes; the format's limit is 4 GiB");
  for (unsigned i = 0; i < 4; ++i) out[at + i] = static_cast<std::uint8_t>(length >> (8 * i));
}

void check_descriptor(const StateDescriptor& d, const std::string& path) {
  if (d.version() == 0 || d.minimum_version() == 0 || d.minimum_version() > d.version())
    fail_record(path, "descriptor versions are inconsistent (version " + std::to_string(d.version()) +
                          ", minimum " + std::to_string(d.minimum_version()) + ")");
  std::unordered_set<std::string_view> names;
  for (const FieldSpec& f : d.fields()) {
    if (f.since_version == 0 || f.since_version > d.version())
      fail_field(path + "." + f.name, "declared since version " + std::to_string(f.since_version) +
                                          " but the descriptor is version " + std::to_string(d.version()));
    if (!names.insert(f.name).second) fail_field(path + "." + f.name, "is declared twice");
  }
  for (const SubsectionSpec& s : d.subsections())
    if (!names.insert(s.descriptor->name()).second)
      fail_field(path + "." + s.descriptor->name(), "names two entries of the descriptor");
}

void write_record(const StateDescriptor& d, void* state, unsigned depth, const std::string& parent,
                  std::vector<std::uint8_t>& out) {
  const std::string path = parent.empty() ? d.name() : parent + "." + d.name();
  if (depth > kMaxDepth)
    fail_record(path, "subsections nest deeper than " + std::to_string(kMaxDepth) + " levels");
  check_descriptor(d, path);
  if (d.pre_save) d.pre_save(state);
  out.insert(out.end(), kMagic.begin(), kMagic.end());
  out.push_back(kFormat);
  put_name(out, d.name(), path);
  detail::put_le(out, d.version(), 4);
  const std::size_t body_length_at = out.size();
  detail::put_le(out, 0, 4);
  for (const FieldSpec& f : d.fields()) {
    out.push_back(static_cast<std::uint8_t>(f.type));
    put_name(out, f.name, path + "." + f.name);
    const std::size_t length_at = out.size();
    detail::put_le(out, 0, 4);
    f.encode(state, out);
    patch_length(out, length_at, path + "." + f.name);
  }
  for (const SubsectionSpec& s : d.subsections()) {
    if (s.needed && !s.needed(state)) continue;
    out.push_back(static_cast<std::uint8_t>(WireType::Record));
    put_name(out, s.descriptor->name(), path + "." + s.descriptor->name());
    const std::size_t length_at = out.size();
    detail::put_le(out, 0, 4);
    write_record(*s.descriptor, s.mutable_member(state), depth + 1, path, out);
    patch_length(out, length_at, path + "." + s.descriptor->name());
  }
  out.push_back(kEndMarker);
  patch_length(out, body_length_at, path);
}

// ---- Loading against a descriptor ----

void check_version(const StateDescriptor& d, const RecordView& view) {
  if (view.version >= d.minimum_version() && view.version <= d.version()) return;
  const std::string accepted =
      d.minimum_version() == d.version()
          ? "only version " + std::to_string(d.version())
          : "versions " + std::to_string(d.minimum_version()) + " to " + std::to_string(d.version());
  fail_record(view.path,
              "stream has version " + std::to_string(view.version) + ", this device loads " + accepted);
}

void check_type(const EntryView& entry, WireType expected, const std::string& path) {
  if (entry.type != expected)
    fail_field(path, std::string("expected ") + to_string(expected) + ", found " + to_string(entry.type));
}

void load_into(const StateDescriptor& d, void* scratch, const RecordView& view);

void load_entry(const StateDescriptor& d, void* scratch, const RecordView& view, const EntryView& entry) {
  const std::string path = view.path + "." + std::string(entry.name);
  for (const FieldSpec& f : d.fields()) {
    if (f.name != entry.name) continue;
    if (f.since_version > view.version)
      fail_field(path, "was introduced in version " + std::to_string(f.since_version) +
                           " but the stream has version " + std::to_string(view.version));
    check_type(entry, f.type, path);
    try {
      f.decode(entry.payload, scratch);
    } catch (const StateError& e) {
      rethrow_for_field(path, e);
    }
    return;
  }
  for (const SubsectionSpec& s : d.subsections()) {
    if (s.descriptor->name() != entry.name) continue;
    check_type(entry, WireType::Record, path);
    load_into(*s.descriptor, s.mutable_member(scratch), *entry.record);
    return;
  }
  if (entry.type == WireType::Record) fail_field(path, "is a subsection this device does not know");
  fail_field(path, "is not a field of this device (version " + std::to_string(d.version()) + ")");
}

// Decodes `view` into `scratch` (already a copy of the live state), then runs post_load.
void load_into(const StateDescriptor& d, void* scratch, const RecordView& view) {
  check_version(d, view);
  std::unordered_set<std::string_view> present;
  for (const EntryView& entry : view.entries) present.insert(entry.name);
  for (const FieldSpec& f : d.fields())
    if (f.since_version <= view.version && present.count(f.name) == 0)
      fail_field(view.path + "." + f.name,
                 "is missing from the stream (version " + std::to_string(view.version) + ")");
  for (const EntryView& entry : view.entries) load_entry(d, scratch, view, entry);
  if (!d.post_load) return;
  try {
    d.post_load(scratch, view.version);
  } catch (const StateError& e) {
    rethrow_for_record(view.path, e);
  }
}

}  // namespace

const char* to_string(WireType type) {
  switch (type) {
    case WireType::Bool:
      return "bool";
    case WireType::U8:
      return "u8";
    case WireType::U16:
      return "u16";
    case WireType::U32:
      return "u32";
    case WireType::U64:
      return "u64";
    case WireType::I64:
      return "i64";
    case WireType::Bytes:
      return "bytes";
    case WireType::String:
      return "string";
    case WireType::U16Array:
      return "u16 array";
    case WireType::U32Array:
      return "u32 array";
    case WireType::U64Array:
      return "u64 array";
    case WireType::Record:
      return "record";
  }
  return "unknown type";
}

namespace detail {

void throw_length(std::size_t got, std::size_t want) {
  throw StateError("", "payload is " + plural_bytes(got) + ", expected " + std::to_string(want));
}

}  // namespace detail

std::vector<std::uint8_t> save_state(const StateDescriptor& descriptor, void* state) {
  std::vector<std::uint8_t> out;
  write_record(descriptor, state, 0, "", out);
  return out;
}

void load_state(const StateDescriptor& descriptor, void* state, std::span<const std::uint8_t> record) {
  RecordView view;
  parse_record(record, 0, "", "", view);
  if (view.name != descriptor.name())
    fail_record(descriptor.name(), "the state record is for '" + std::string(view.name) + "'");
  std::shared_ptr<void> scratch = descriptor.clone(state);
  load_into(descriptor, scratch.get(), view);
  descriptor.assign(state, scratch.get());
}

DecodedRecord decode_record(std::span<const std::uint8_t> record) {
  RecordView view;
  parse_record(record, 0, "", "", view);
  return to_decoded(view);
}

}  // namespace molt::sdk
