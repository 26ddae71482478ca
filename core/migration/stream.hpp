// molt's migration stream: the bytes that move a guest, on a socket or in a
// snapshot file. Self-describing and versioned (docs/migration-stream.md):
//
//   stream  := header record* end
//   header  := "MOLTSTRM" | u32 format version | u32 kind-length | kind
//   record  := u8 tag | u16 name-length | name | u64 payload-length | payload
//   end     := a record with tag End, name "end", payload u64 XXH3-64 of every
//              byte before the end record | u64 that byte count
//
// Integers are little-endian. A reader that does not know a tag can skip the
// record by its length. Every channel of a migration (main, each RAM channel,
// the return path) is one such stream of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <molt/sdk/error.hpp>

namespace molt::core::migration {

inline constexpr char kStreamMagic[8] = {'M', 'O', 'L', 'T', 'S', 'T', 'R', 'M'};
inline constexpr std::uint32_t kStreamVersion = 1;
inline constexpr std::uint64_t kMaxRecordPayload = 64ull << 20;  // a reader refuses larger records

// What a stream carries (the header's kind).
inline constexpr std::string_view kKindMigration = "migration";      // main channel (or a snapshot file)
inline constexpr std::string_view kKindRamChannel = "ram-channel";   // an extra RAM channel
inline constexpr std::string_view kKindReturnPath = "return-path";   // destination -> source

// Record tags. Part of the format: never renumber.
enum class Tag : std::uint8_t {
  Fingerprint = 1,   // name "machine"; payload JSON (fingerprint.hpp)
  Handshake = 2,     // return path; name "accept" or "refuse"; payload JSON {"differences": [...]}
  Chunk = 3,         // an iterative section's chunk; name = section ("ram", "<device>/<section>")
  DeviceState = 4,   // name = device id; payload = an SDK state record (docs/state-format.md)
  CpuState = 5,      // name = "cpu<N>"; payload = an SDK state record
  MachineState = 6,  // name = "irqchip", "pit", "clock", "pci-host"; payload = an SDK state record
  Phase = 7,         // name = "live" (early state done), "stopped" (guest paused at source); payload empty
  Status = 8,        // return path; name "loaded", "resumed" or "failed"; payload JSON
  RamLayout = 9,     // name "blocks"; payload JSON [{"name","size"}] (cpr and snapshot files)
  End = 0x7f,
};
const char* to_string(Tag tag);

// Thrown for anything wrong with the bytes: truncated, bad magic, a version
// this molt can't read, a checksum mismatch, an oversized record. The message
// says what and at which byte offset.
class StreamError : public sdk::Error {
 public:
  using sdk::Error::Error;
};

// Thrown by a ByteSource whose input ends in the middle of a read, after
// filling the first `delivered()` bytes; lets a StreamReader say exactly
// where the stream stopped.
class TruncatedInput : public StreamError {
 public:
  TruncatedInput(const std::string& what, std::size_t delivered) : StreamError(what), delivered_(delivered) {}
  std::size_t delivered() const { return delivered_; }

 private:
  std::size_t delivered_;
};

// Where a StreamWriter's bytes go (a socket, a file, a memory buffer).
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Writes all of `bytes` or throws sdk::Error.
  virtual void write(std::span<const std::uint8_t> bytes) = 0;
  virtual void flush() {}
};

// Where a StreamReader's bytes come from.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Fills all of `out`, or returns false at a clean end of input before the
  // first byte; throws sdk::Error on an error or an end in the middle.
  virtual bool read(std::span<std::uint8_t> out) = 0;
};

class VectorSink final : public ByteSink {
 public:
  void write(std::span<const std::uint8_t> bytes) override { data.insert(data.end(), bytes.begin(), bytes.end()); }
  std::vector<std::uint8_t> data;
};

class SpanSource final : public ByteSource {
 public:
  explicit SpanSource(std::span<const std::uint8_t> data) : data_(data) {}
  bool read(std::span<std::uint8_t> out) override;

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

class StreamWriter {
 public:
  // Writes the header at once.
  StreamWriter(ByteSink& sink, std::string_view kind);
  void record(Tag tag, std::string_view name, std::span<const std::uint8_t> payload);
  void record(Tag tag, std::string_view name, std::string_view payload);
  // A record whose payload is written in pieces: begin(tag, name, total length),
  // then payload bytes adding up to exactly that length. For RAM pages, so
  // they go from guest memory to the sink without a copy.
  void begin_record(Tag tag, std::string_view name, std::uint64_t payload_length);
  void payload(std::span<const std::uint8_t> bytes);
  // Writes the end record with the checksum, and flushes. Nothing may be
  // written after it.
  void finish();
  std::uint64_t bytes_written() const { return bytes_; }

 private:
  void put(std::span<const std::uint8_t> bytes);
  void check_open(const char* what) const;
  ByteSink& sink_;
  struct Hasher;
  std::shared_ptr<Hasher> hash_;
  std::uint64_t bytes_ = 0;
  std::uint64_t payload_left_ = 0;
  bool finished_ = false;
};

struct Record {
  Tag tag;
  std::string name;
  std::vector<std::uint8_t> payload;
  std::uint64_t offset = 0;  // of the record's first byte in the stream
};

class StreamReader {
 public:
  // Reads and checks the header; throws StreamError if it is not a molt
  // stream, not of `expected_kind` (empty: any kind), or a version this molt
  // does not read.
  StreamReader(ByteSource& source, std::string_view expected_kind);
  const std::string& kind() const { return kind_; }
  std::uint32_t version() const { return version_; }
  // The next record; after the end record (checksum verified, else
  // StreamError) returns false. Throws StreamError on a stream that ends
  // early or a record beyond kMaxRecordPayload.
  // Once it has returned false, next() keeps returning false without
  // reading: on a two-way socket the peer keeps the connection open.
  bool next(Record& record);
  std::uint64_t bytes_read() const { return bytes_; }
  // After the end record: the verified checksum, and the offset of the end
  // record (the byte count it carries).
  bool ended() const { return ended_; }
  std::uint64_t checksum() const { return checksum_; }
  std::uint64_t end_offset() const { return end_offset_; }
  // For a file: throws StreamError if anything follows the end record.
  // Blocks on a socket whose peer keeps it open, so never call it there.
  void expect_end_of_input();

 private:
  void read_header(std::string_view expected_kind);
  void get(std::span<std::uint8_t> out);
  void read_payload(Record& record, std::uint64_t length);
  void verify_end(const Record& end);
  ByteSource& source_;
  struct Hasher;
  std::shared_ptr<Hasher> hash_;
  std::string kind_;
  std::uint32_t version_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t checksum_ = 0;
  std::uint64_t end_offset_ = 0;
  bool ended_ = false;
};

}  // namespace molt::core::migration
