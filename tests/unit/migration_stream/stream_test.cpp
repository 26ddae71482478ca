// The stream's framing: what a writer produces, a reader gives back exactly,
// and a reader refuses every kind of damage with a message naming the byte.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/migration/stream.hpp"
#include "stream_samples.hpp"

namespace molt::core::migration {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put_le(Bytes& out, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

Bytes header(std::uint32_t version, const std::string& kind) {
  Bytes out(kStreamMagic, kStreamMagic + sizeof(kStreamMagic));
  put_le(out, version, 4);
  put_le(out, kind.size(), 4);
  out.insert(out.end(), kind.begin(), kind.end());
  return out;
}

std::vector<Record> read_all(const Bytes& bytes, std::string_view kind = "") {
  SpanSource source(bytes);
  StreamReader reader(source, kind);
  std::vector<Record> records;
  Record record;
  while (reader.next(record)) records.push_back(record);
  reader.expect_end_of_input();
  return records;
}

// The StreamError reading `bytes` ends in, or "" when it reads cleanly.
std::string error_of(const Bytes& bytes, std::string_view kind = "") {
  try {
    read_all(bytes, kind);
  } catch (const StreamError& e) {
    return e.what();
  }
  return "";
}

Bytes pattern(std::size_t size, std::uint8_t seed) {
  Bytes out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::uint8_t>(seed + i * 7);
  return out;
}

TEST(MigrationStream, RecordsRoundTripWithOffsetsAndChecksum) {
  VectorSink sink;
  StreamWriter writer(sink, kKindMigration);
  EXPECT_EQ(writer.bytes_written(), 16u + kKindMigration.size());
  writer.record(Tag::Fingerprint, "machine", R"({"vcpus":2})");
  writer.record(Tag::Phase, "live", "");
  const Bytes page = pattern(4096, 3);
  writer.begin_record(Tag::Chunk, "ram", 3 * 4096);
  for (int i = 0; i < 3; ++i) writer.payload(page);
  writer.record(Tag::DeviceState, std::string(300, 'd'), pattern(10, 9));
  writer.finish();
  const std::uint64_t end_offset = writer.bytes_written() - (1 + 2 + 3 + 8 + 16);

  SpanSource source(sink.data);
  StreamReader reader(source, kKindMigration);
  EXPECT_EQ(reader.kind(), "migration");
  EXPECT_EQ(reader.version(), kStreamVersion);
  Record r;
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.tag, Tag::Fingerprint);
  EXPECT_EQ(r.name, "machine");
  EXPECT_EQ(std::string(r.payload.begin(), r.payload.end()), R"({"vcpus":2})");
  EXPECT_EQ(r.offset, 25u);  // the header: 8 magic + 4 version + 4 length + "migration"
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.tag, Tag::Phase);
  EXPECT_EQ(r.name, "live");
  EXPECT_TRUE(r.payload.empty());
  EXPECT_EQ(r.offset, 25u + 11 + 7 + 11);
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.tag, Tag::Chunk);
  ASSERT_EQ(r.payload.size(), 3u * 4096);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::equal(page.begin(), page.end(), r.payload.begin() + i * 4096));
  ASSERT_TRUE(reader.next(r));
  EXPECT_EQ(r.name, std::string(300, 'd'));
  EXPECT_EQ(r.payload, pattern(10, 9));
  EXPECT_FALSE(reader.next(r));
  EXPECT_FALSE(reader.next(r));  // stays ended, reads nothing more
  EXPECT_TRUE(reader.ended());
  EXPECT_EQ(reader.end_offset(), end_offset);
  EXPECT_NE(reader.checksum(), 0u);
  EXPECT_EQ(reader.bytes_read(), sink.data.size());
  reader.expect_end_of_input();
}

TEST(MigrationStream, PayloadsLargerThanOneReadPieceAndUnknownTags) {
  VectorSink sink;
  StreamWriter writer(sink, kKindRamChannel);
  const Bytes big = pattern((3 << 20) + 123, 1);
  writer.record(Tag::Chunk, "ram", big);
  writer.record(static_cast<Tag>(42), "future", "skip me");
  writer.finish();
  const auto records = read_all(sink.data, kKindRamChannel);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].payload, big);
  EXPECT_EQ(static_cast<int>(records[1].tag), 42);
  EXPECT_STREQ(to_string(records[1].tag), "unknown");
  EXPECT_STREQ(to_string(Tag::MachineState), "machine-state");
  EXPECT_STREQ(to_string(Tag::End), "end");
}

TEST(MigrationStream, WriterEnforcesDeclaredPayloadLengths) {
  VectorSink sink;
  StreamWriter writer(sink, kKindMigration);
  writer.begin_record(Tag::Chunk, "ram", 10);
  writer.payload(pattern(6, 0));
  EXPECT_THROW(writer.payload(pattern(5, 0)), sdk::Error);  // 6 + 5 > 10
  EXPECT_THROW(writer.begin_record(Tag::Phase, "live", 0), sdk::Error);
  EXPECT_THROW(writer.record(Tag::Phase, "live", ""), sdk::Error);
  EXPECT_THROW(writer.finish(), sdk::Error);
  writer.payload(pattern(4, 0));
  EXPECT_THROW(writer.record(Tag::End, "end", ""), sdk::Error);
  EXPECT_THROW(writer.begin_record(Tag::Chunk, "ram", kMaxRecordPayload + 1), sdk::Error);
  EXPECT_THROW(writer.record(Tag::Chunk, std::string(70000, 'n'), ""), sdk::Error);
  writer.finish();
  EXPECT_THROW(writer.record(Tag::Phase, "live", ""), sdk::Error);
  EXPECT_THROW(writer.finish(), sdk::Error);
  EXPECT_EQ(read_all(sink.data).size(), 1u);
  EXPECT_THROW(StreamWriter(sink, ""), StreamError);
}

TEST(MigrationStream, RefusesInputThatIsNotAStream) {
  EXPECT_EQ(error_of({}), "not a molt migration stream (it is empty)");
  EXPECT_EQ(error_of({'h', 'e', 'l', 'l', 'o'}), "not a molt migration stream (bad magic at byte 0)");
  Bytes elf = header(1, "migration");
  elf[0] = 0x7f;
  EXPECT_EQ(error_of(elf), "not a molt migration stream (bad magic at byte 0)");
  EXPECT_EQ(error_of(Bytes(kStreamMagic, kStreamMagic + 5)), "the stream ends at byte 5 inside the header");
}

TEST(MigrationStream, RefusesOtherVersionsAndKinds) {
  EXPECT_EQ(error_of(header(7, "migration")), "stream format version 7; this molt reads version 1");
  VectorSink sink;
  StreamWriter(sink, kKindRamChannel).finish();
  EXPECT_EQ(error_of(sink.data, kKindMigration), "stream kind 'ram-channel'; expected 'migration'");
  EXPECT_EQ(error_of(sink.data, kKindRamChannel), "");
  Bytes huge_kind = header(1, "");
  huge_kind[12] = 0xff;
  huge_kind[13] = 0xff;
  EXPECT_EQ(error_of(huge_kind),
            "the header at byte 12 declares a stream kind of 65535 bytes; it must be 1 to 64");
  EXPECT_EQ(error_of(header(1, "migr")),
            "the stream ends at byte 20 without an end record (after 0 records)");
  Bytes short_kind = header(1, "migration");
  short_kind.resize(short_kind.size() - 2);
  EXPECT_EQ(error_of(short_kind), "the stream ends at byte 23 inside the header");
}

TEST(MigrationStream, TruncationNamesTheRecordAndHowMuchOfItArrived) {
  VectorSink sink;
  StreamWriter writer(sink, kKindMigration);
  writer.record(Tag::Chunk, "ram", pattern(8192, 5));
  writer.finish();
  const std::size_t payload_start = 25 + 1 + 2 + 3 + 8;
  Bytes cut(sink.data.begin(), sink.data.begin() + payload_start + 4096);
  EXPECT_EQ(error_of(cut), "the stream ends at byte " + std::to_string(payload_start + 4096) +
                               " inside a record (tag 3 'ram', 4096 of 8192 payload bytes)");
  cut.resize(25 + 5);
  EXPECT_EQ(error_of(cut), "the stream ends at byte 30 inside a record header");
  cut.assign(sink.data.begin(), sink.data.begin() + payload_start + 8192);
  EXPECT_EQ(error_of(cut), "the stream ends at byte " + std::to_string(payload_start + 8192) +
                               " without an end record (after 1 records)");
}

TEST(MigrationStream, RefusesOversizedRecords) {
  Bytes bytes = header(1, "migration");
  bytes.push_back(static_cast<std::uint8_t>(Tag::Chunk));
  put_le(bytes, 3, 2);
  bytes.insert(bytes.end(), {'r', 'a', 'm'});
  put_le(bytes, kMaxRecordPayload + 1, 8);
  EXPECT_EQ(error_of(bytes),
            "the record at byte 25 (tag 3 'ram') declares 67108865 payload bytes; the limit is 67108864");
}

TEST(MigrationStream, ChecksumMismatchAndMalformedEnd) {
  const Bytes good = samples::sample_migration_stream();
  SpanSource source(good);
  StreamReader reader(source, "");
  Record r;
  while (reader.next(r)) {
  }
  const std::uint64_t end = reader.end_offset();
  EXPECT_EQ(end, good.size() - 30);

  Bytes flipped = good;
  flipped[200] ^= 0x01;  // inside the first RAM chunk's payload: the framing stays intact
  EXPECT_EQ(error_of(flipped),
            "checksum mismatch at the end (byte " + std::to_string(end) + "): the stream was corrupted");
  Bytes recount = good;
  recount[good.size() - 1] ^= 0x01;  // the end record's byte count
  EXPECT_EQ(error_of(recount), "the end record at byte " + std::to_string(end) + " counts " +
                                   std::to_string(end | (std::uint64_t{1} << 56)) +
                                   " bytes before it: the stream was corrupted");
  Bytes renamed = good;
  renamed[end + 3] = 'E';
  EXPECT_EQ(error_of(renamed), "the end record at byte " + std::to_string(end) +
                                   " is malformed (name 'End', 16 payload bytes; expected 'end' with 16)");
}

TEST(MigrationStream, RefusesBytesAfterTheEnd) {
  Bytes bytes = samples::sample_migration_stream();
  const std::size_t size = bytes.size();
  bytes.push_back(static_cast<std::uint8_t>(Tag::Phase));
  EXPECT_EQ(error_of(bytes),
            "the stream has more bytes after its end record (at byte " + std::to_string(size) + ")");
}

TEST(MigrationStream, AFlippedByteAnywhereIsCaught) {
  const Bytes good = samples::sample_migration_stream();
  ASSERT_EQ(error_of(good), "");
  for (std::size_t i = 0; i < good.size(); ++i) {
    Bytes bad = good;
    bad[i] ^= 0x20;
    EXPECT_NE(error_of(bad), "") << "flipping byte " << i << " went unnoticed";
  }
}

TEST(MigrationStream, EveryTruncationThrowsAStreamError) {
  for (const Bytes& good : {samples::sample_migration_stream(), samples::sample_return_path()}) {
    for (std::size_t length = 0; length < good.size(); ++length) {
      const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(length));
      EXPECT_NE(error_of(cut), "") << "a prefix of " << length << " bytes read cleanly";
    }
  }
}

TEST(MigrationStream, SpanSourceReportsPartialReads) {
  const Bytes data{1, 2, 3};
  SpanSource source(data);
  std::uint8_t out[2];
  EXPECT_TRUE(source.read(out));
  try {
    source.read(out);
    FAIL() << "a read past the end succeeded";
  } catch (const TruncatedInput& e) {
    EXPECT_EQ(e.delivered(), 1u);
    EXPECT_EQ(out[0], 3);
  }
  EXPECT_FALSE(source.read(out));
}

}  // namespace
}  // namespace molt::core::migration
