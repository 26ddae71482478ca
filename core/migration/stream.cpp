#include "core/migration/stream.hpp"

// The implementation is compiled in (XXH_INLINE_ALL) rather than called in
// Debian's libxxhash, whose generic build hashes at a fraction of the speed: the
// checksum covers every byte of guest RAM a migration sends.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <molt/sdk/state.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>

#include <fmt/format.h>

namespace molt::core::migration {

namespace {

// A kind is a short word ("migration"); anything longer is damage, and the
// bound keeps a reader from allocating what a corrupted header claims.
constexpr std::uint32_t kMaxKindLength = 64;
constexpr std::size_t kHeaderFixedBytes = sizeof(kStreamMagic) + 4 + 4;
constexpr std::size_t kRecordHeaderBytes = 1 + 2 + 8;  // tag, name length, payload length (plus the name)
constexpr std::uint64_t kEndPayloadBytes = 16;
constexpr std::string_view kEndName = "end";
// Payloads are read in pieces of this size, so a damaged length can't make
// the reader allocate more than the bytes that really arrive (plus one piece).
constexpr std::size_t kReadPiece = 1 << 20;

void put_le(std::uint8_t* out, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out[i] = static_cast<std::uint8_t>(value >> (8 * i));
}

using sdk::detail::get_le;  // the SDK codec's reader of little-endian fields

std::string describe(std::uint8_t tag, std::string_view name) {
  return fmt::format("tag {} '{}'", tag, name);
}

std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// XXH3-64 streaming state, owned.
class Xxh3 {
 public:
  Xxh3() : state_(XXH3_createState()) {
    if (state_ == nullptr) throw sdk::Error("cannot allocate the stream's XXH3 checksum state");
    XXH3_64bits_reset(state_);
  }
  ~Xxh3() { XXH3_freeState(state_); }
  Xxh3(const Xxh3&) = delete;
  Xxh3& operator=(const Xxh3&) = delete;
  void update(std::span<const std::uint8_t> bytes) { XXH3_64bits_update(state_, bytes.data(), bytes.size()); }
  std::uint64_t digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

}  // namespace

struct StreamWriter::Hasher : Xxh3 {};
struct StreamReader::Hasher : Xxh3 {};

const char* to_string(Tag tag) {
  switch (tag) {
    case Tag::Fingerprint:
      return "fingerprint";
    case Tag::Handshake:
      return "handshake";
    case Tag::Chunk:
      return "chunk";
    case Tag::DeviceState:
      return "device-state";
    case Tag::CpuState:
      return "cpu-state";
    case Tag::MachineState:
      return "machine-state";
    case Tag::Phase:
      return "phase";
    case Tag::Status:
      return "status";
    case Tag::RamLayout:
      return "ram-layout";
    case Tag::End:
      return "end";
  }
  return "unknown";
}

bool SpanSource::read(std::span<std::uint8_t> out) {
  if (out.empty()) return true;
  const std::size_t left = data_.size() - pos_;
  if (left == 0) return false;
  const std::size_t n = std::min(left, out.size());
  std::memcpy(out.data(), data_.data() + pos_, n);
  pos_ += n;
  if (n < out.size())
    throw TruncatedInput(
        fmt::format("the input ends after {} bytes, in the middle of a {}-byte read", pos_, out.size()), n);
  return true;
}

// ---- StreamWriter ----

StreamWriter::StreamWriter(ByteSink& sink, std::string_view kind)
    : sink_(sink), hash_(std::make_shared<Hasher>()) {
  if (kind.empty() || kind.size() > kMaxKindLength)
    throw StreamError(
        fmt::format("a stream kind must be 1 to {} bytes, not {}", kMaxKindLength, kind.size()));
  std::vector<std::uint8_t> header(kHeaderFixedBytes + kind.size());
  std::memcpy(header.data(), kStreamMagic, sizeof(kStreamMagic));
  put_le(header.data() + 8, kStreamVersion, 4);
  put_le(header.data() + 12, kind.size(), 4);
  std::memcpy(header.data() + kHeaderFixedBytes, kind.data(), kind.size());
  put(header);
}

void StreamWriter::put(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return;
  sink_.write(bytes);
  hash_->update(bytes);
  bytes_ += bytes.size();
}

void StreamWriter::check_open(const char* what) const {
  if (finished_) throw sdk::Error(fmt::format("cannot {}: the stream was already finished", what));
}

void StreamWriter::record(Tag tag, std::string_view name, std::span<const std::uint8_t> payload_bytes) {
  begin_record(tag, name, payload_bytes.size());
  payload(payload_bytes);
}

void StreamWriter::record(Tag tag, std::string_view name, std::string_view payload_text) {
  record(tag, name, as_bytes(payload_text));
}

void StreamWriter::begin_record(Tag tag, std::string_view name, std::uint64_t payload_length) {
  check_open("begin a record");
  const auto tag_number = static_cast<std::uint8_t>(tag);
  if (payload_left_ != 0)
    throw sdk::Error(fmt::format("cannot begin record {}: the previous record's payload still lacks {} bytes",
                                 describe(tag_number, name), payload_left_));
  if (tag == Tag::End)
    throw sdk::Error("the end record is written by StreamWriter::finish(), not as a record");
  if (name.size() > 0xffff)
    throw sdk::Error(fmt::format("record name of {} bytes is too long; at most 65535", name.size()));
  if (payload_length > kMaxRecordPayload)
    throw sdk::Error(fmt::format("record {} of {} payload bytes exceeds the stream's limit of {}",
                                 describe(tag_number, name), payload_length, kMaxRecordPayload));
  std::vector<std::uint8_t> header(kRecordHeaderBytes + name.size());
  header[0] = tag_number;
  put_le(header.data() + 1, name.size(), 2);
  std::memcpy(header.data() + 3, name.data(), name.size());
  put_le(header.data() + 3 + name.size(), payload_length, 8);
  put(header);
  payload_left_ = payload_length;
}

void StreamWriter::payload(std::span<const std::uint8_t> bytes) {
  check_open("write a payload");
  if (bytes.size() > payload_left_)
    throw sdk::Error(
        fmt::format("a payload piece of {} bytes overruns the record: only {} bytes remain of its "
                    "declared length",
                    bytes.size(), payload_left_));
  put(bytes);
  payload_left_ -= bytes.size();
}

void StreamWriter::finish() {
  check_open("finish");
  if (payload_left_ != 0)
    throw sdk::Error(fmt::format("cannot finish the stream: the last record's payload still lacks {} bytes",
                                 payload_left_));
  std::array<std::uint8_t, kRecordHeaderBytes + kEndName.size() + kEndPayloadBytes> end{};
  end[0] = static_cast<std::uint8_t>(Tag::End);
  put_le(end.data() + 1, kEndName.size(), 2);
  std::memcpy(end.data() + 3, kEndName.data(), kEndName.size());
  put_le(end.data() + 3 + kEndName.size(), kEndPayloadBytes, 8);
  put_le(end.data() + kRecordHeaderBytes + kEndName.size(), hash_->digest(), 8);
  put_le(end.data() + kRecordHeaderBytes + kEndName.size() + 8, bytes_, 8);
  // The end record is outside the checksum it carries.
  sink_.write(end);
  bytes_ += end.size();
  finished_ = true;
  sink_.flush();
}

// ---- StreamReader ----

StreamReader::StreamReader(ByteSource& source, std::string_view expected_kind)
    : source_(source), hash_(std::make_shared<Hasher>()) {
  read_header(expected_kind);
}

namespace {

bool starts_like_magic(std::span<const std::uint8_t> bytes) {
  return std::memcmp(bytes.data(), kStreamMagic, std::min(bytes.size(), sizeof(kStreamMagic))) == 0;
}

}  // namespace

void StreamReader::read_header(std::string_view expected_kind) {
  std::array<std::uint8_t, kHeaderFixedBytes> fixed{};
  try {
    if (!source_.read(fixed)) throw StreamError("not a molt migration stream (it is empty)");
  } catch (const TruncatedInput& e) {
    if (!starts_like_magic(std::span(fixed).first(std::min(e.delivered(), fixed.size()))))
      throw StreamError("not a molt migration stream (bad magic at byte 0)");
    throw StreamError(fmt::format("the stream ends at byte {} inside the header", e.delivered()));
  }
  bytes_ = fixed.size();
  if (!starts_like_magic(fixed)) throw StreamError("not a molt migration stream (bad magic at byte 0)");
  version_ = static_cast<std::uint32_t>(get_le(fixed.data() + 8, 4));
  if (version_ != kStreamVersion)
    throw StreamError(
        fmt::format("stream format version {}; this molt reads version {}", version_, kStreamVersion));
  const auto kind_length = static_cast<std::uint32_t>(get_le(fixed.data() + 12, 4));
  if (kind_length == 0 || kind_length > kMaxKindLength)
    throw StreamError(
        fmt::format("the header at byte 12 declares a stream kind of {} bytes; it must be 1 to {}",
                    kind_length, kMaxKindLength));
  kind_.resize(kind_length);
  std::span<std::uint8_t> kind_bytes(reinterpret_cast<std::uint8_t*>(kind_.data()), kind_.size());
  try {
    if (!source_.read(kind_bytes))
      throw StreamError(fmt::format("the stream ends at byte {} inside the header", bytes_));
  } catch (const TruncatedInput& e) {
    throw StreamError(fmt::format("the stream ends at byte {} inside the header", bytes_ + e.delivered()));
  }
  bytes_ += kind_length;
  if (!expected_kind.empty() && kind_ != expected_kind)
    throw StreamError(fmt::format("stream kind '{}'; expected '{}'", kind_, expected_kind));
  hash_->update(fixed);
  hash_->update(kind_bytes);
}

// Fills `out` and counts it, or throws TruncatedInput (also for an end of
// input right at the start, which inside a record is no cleaner).
void StreamReader::get(std::span<std::uint8_t> out) {
  if (out.empty()) return;
  if (!source_.read(out)) throw TruncatedInput("the input ended", 0);
  bytes_ += out.size();
}

namespace {

// Runs `read`; if the input stops inside it, throws StreamError with the
// message built from the offset where it stopped (`position` is the reader's
// count of bytes read, which covers every read that completed).
template <class Message>
void read_or_explain(const std::uint64_t& position, Message&& message, const std::function<void()>& read) {
  try {
    read();
  } catch (const TruncatedInput& e) {
    throw StreamError(message(position + e.delivered()));
  }
}

}  // namespace

bool StreamReader::next(Record& record) {
  if (ended_) return false;
  const std::uint64_t offset = bytes_;
  std::array<std::uint8_t, 3> head{};
  bool clean_end = false;
  read_or_explain(
      bytes_,
      [](std::uint64_t at) { return fmt::format("the stream ends at byte {} inside a record header", at); },
      [&] { clean_end = !source_.read(head); });
  if (clean_end)
    throw StreamError(
        fmt::format("the stream ends at byte {} without an end record (after {} records)", offset, records_));
  bytes_ += head.size();
  const std::uint8_t tag = head[0];
  std::string name(get_le(head.data() + 1, 2), '\0');
  std::array<std::uint8_t, 8> length_bytes{};
  auto header_message = [](std::uint64_t at) {
    return fmt::format("the stream ends at byte {} inside a record header", at);
  };
  read_or_explain(bytes_, header_message, [&] {
    get({reinterpret_cast<std::uint8_t*>(name.data()), name.size()});
    get(length_bytes);
  });
  const std::uint64_t length = get_le(length_bytes.data(), 8);
  if (length > kMaxRecordPayload)
    throw StreamError(fmt::format("the record at byte {} ({}) declares {} payload bytes; the limit is {}",
                                  offset, describe(tag, name), length, kMaxRecordPayload));
  const bool is_end = tag == static_cast<std::uint8_t>(Tag::End);
  if (!is_end) {
    hash_->update(head);
    hash_->update(as_bytes(name));
    hash_->update(length_bytes);
  }
  record.tag = static_cast<Tag>(tag);
  record.name = std::move(name);
  record.offset = offset;
  read_payload(record, length);
  if (is_end) {
    verify_end(record);
    return false;
  }
  ++records_;
  return true;
}

void StreamReader::read_payload(Record& record, std::uint64_t length) {
  const bool hashed = record.tag != Tag::End;
  const std::uint64_t start = bytes_;
  record.payload.clear();
  auto message = [&](std::uint64_t at) {
    return fmt::format("the stream ends at byte {} inside a record ({}, {} of {} payload bytes)", at,
                       describe(static_cast<std::uint8_t>(record.tag), record.name), at - start, length);
  };
  while (record.payload.size() < length) {
    const std::size_t got = record.payload.size();
    const std::size_t piece = static_cast<std::size_t>(std::min<std::uint64_t>(kReadPiece, length - got));
    record.payload.resize(got + piece);
    const std::span<std::uint8_t> out(record.payload.data() + got, piece);
    read_or_explain(bytes_, message, [&] { get(out); });
    if (hashed) hash_->update(out);
  }
}

void StreamReader::verify_end(const Record& end) {
  if (end.name != kEndName || end.payload.size() != kEndPayloadBytes)
    throw StreamError(fmt::format(
        "the end record at byte {} is malformed (name '{}', {} payload bytes; expected '{}' with {})",
        end.offset, end.name, end.payload.size(), kEndName, kEndPayloadBytes));
  const std::uint64_t stored_checksum = get_le(end.payload.data(), 8);
  const std::uint64_t stored_count = get_le(end.payload.data() + 8, 8);
  if (stored_checksum != hash_->digest())
    throw StreamError(
        fmt::format("checksum mismatch at the end (byte {}): the stream was corrupted", end.offset));
  if (stored_count != end.offset)
    throw StreamError(
        fmt::format("the end record at byte {} counts {} bytes before it: the stream was corrupted",
                    end.offset, stored_count));
  checksum_ = stored_checksum;
  end_offset_ = end.offset;
  ended_ = true;
}

void StreamReader::expect_end_of_input() {
  if (!ended_) throw sdk::Error("expect_end_of_input() called before the stream's end record was read");
  std::array<std::uint8_t, 1> probe{};
  bool more = false;
  try {
    more = source_.read(probe);
  } catch (const TruncatedInput&) {
    more = true;
  }
  if (more)
    throw StreamError(fmt::format("the stream has more bytes after its end record (at byte {})", bytes_));
}

}  // namespace molt::core::migration
