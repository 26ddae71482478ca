// `molt migration dump`: the JSON it prints for a stream built here, for a
// damaged one, and in --summary form.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <boost/json.hpp>

#include "core/app/dump_command.hpp"
#include "stream_samples.hpp"

namespace molt::core::app {
namespace {

namespace json = boost::json;
namespace samples = migration::samples;
using Bytes = std::vector<std::uint8_t>;

DumpResult dump(const Bytes& bytes, DumpOptions options = {}) {
  migration::SpanSource source(bytes);
  DumpResult result = dump_stream(source, options);
  // Whatever it holds must print as JSON that parses back to the same value.
  EXPECT_EQ(json::parse(pretty_json(result.json)), json::value(result.json));
  return result;
}

TEST(MigrationDump, ShowsEveryRecordOfAMigration) {
  const DumpResult result = dump(samples::sample_migration_stream());
  ASSERT_TRUE(result.ok) << json::serialize(result.json);
  const json::object& out = result.json;
  EXPECT_EQ(out.at("format_version"), 1);
  EXPECT_EQ(out.at("kind"), "migration");
  const json::array& records = out.at("records").as_array();
  ASSERT_EQ(records.size(), 9u);

  const json::object& fingerprint = records[0].as_object();
  EXPECT_EQ(fingerprint.at("tag"), "fingerprint");
  EXPECT_EQ(fingerprint.at("name"), "machine");
  EXPECT_EQ(fingerprint.at("offset"), 25);
  EXPECT_EQ(fingerprint.at("json").at("machine"), "pc");
  EXPECT_EQ(fingerprint.at("json").at("ram").at(0).at("size"), 16777216);

  const json::object& early = records[1].as_object();
  EXPECT_EQ(early.at("name"), "com1/fifo");
  EXPECT_EQ(early.at("length"), 3);
  EXPECT_EQ(early.at("head"), "010203");

  EXPECT_EQ(records[2].at("tag"), "phase");
  EXPECT_EQ(records[2].at("name"), "live");
  const json::object& ram = records[3].at("ram").as_object();
  EXPECT_EQ(ram.at("block"), "pc.ram");
  EXPECT_EQ(ram.at("pages"), 3);
  EXPECT_EQ(ram.at("zero_pages"), 2);
  EXPECT_EQ(ram.at("data_pages"), 1);
  EXPECT_EQ(ram.at("first_offset"), 0);
  EXPECT_EQ(ram.at("last_offset"), 0x5000);
  EXPECT_FALSE(ram.contains("offsets"));
  EXPECT_EQ(records[3].at("length"), 2 + 6 + 4 + 3 * 8 + 4096);
  EXPECT_EQ(records[5].at("name"), "stopped");

  for (std::size_t i : {6u, 7u, 8u}) {
    const json::object& state = records[i].at("state").as_object();
    EXPECT_EQ(state.at("descriptor"), "sample-dev");
    EXPECT_EQ(state.at("version"), 2);
    const json::object& fields = state.at("fields").as_object();
    EXPECT_EQ(fields.at("ctrl"), 0x81);
    EXPECT_EQ(fields.at("count"), 0x1234);
    EXPECT_EQ(fields.at("enabled"), true);
    EXPECT_EQ(fields.at("fifo"), "01020304");
    EXPECT_EQ(fields.at("label"), "com1");
    EXPECT_EQ(fields.at("regs"), (json::array{1, 2, 3}));
    EXPECT_EQ(fields.at("delta"), -5);
    EXPECT_EQ(fields.at("sample-timer").at("descriptor"), "sample-timer");
    EXPECT_EQ(fields.at("sample-timer").at("fields").at("deadline"), 0x0102030405060708ull);
  }
  EXPECT_EQ(records[6].at("tag"), "device-state");
  EXPECT_EQ(records[7].at("tag"), "cpu-state");
  EXPECT_EQ(records[8].at("tag"), "machine-state");

  const json::object& end = out.at("end").as_object();
  EXPECT_EQ(end.at("verified"), true);
  EXPECT_EQ(end.at("bytes").to_number<std::uint64_t>(), samples::sample_migration_stream().size() - 30);
  EXPECT_EQ(end.at("checksum").as_string().size(), 18u);  // "0x" and 16 hex digits
  EXPECT_FALSE(out.contains("error"));
}

TEST(MigrationDump, PagesListsEveryOffset) {
  DumpOptions options;
  options.pages = true;
  const DumpResult result = dump(samples::sample_migration_stream(), options);
  ASSERT_TRUE(result.ok);
  EXPECT_EQ(result.json.at("records").at(3).at("ram").at("offsets"), (json::array{0, 0x1000, 0x5000}));
  EXPECT_EQ(result.json.at("records").at(4).at("ram").at("offsets"), (json::array{0x2000}));
}

TEST(MigrationDump, ShowsTheReturnPath) {
  const DumpResult result = dump(samples::sample_return_path());
  ASSERT_TRUE(result.ok);
  EXPECT_EQ(result.json.at("kind"), "return-path");
  const json::array& records = result.json.at("records").as_array();
  EXPECT_EQ(records[0].at("tag"), "handshake");
  EXPECT_EQ(records[0].at("name"), "refuse");
  EXPECT_EQ(records[0].at("json").at("differences").at(0), "device disk0: present at source, absent here");
  EXPECT_EQ(records[1].at("tag"), "status");
  EXPECT_EQ(records[1].at("json").at("error"), "device com1: bad state");
}

TEST(MigrationDump, ADamagedStreamKeepsWhatWasReadAndSaysWhy) {
  Bytes bytes = samples::sample_migration_stream();
  bytes.resize(bytes.size() - 100);  // into the last state record
  const DumpResult result = dump(bytes);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.json.at("records").as_array().size(), 8u);
  const std::string error(result.json.at("error").as_string());
  EXPECT_NE(error.find("inside a record (tag 6 'pit',"), std::string::npos) << error;
  EXPECT_FALSE(result.json.contains("end"));

  const DumpResult garbage = dump({'n', 'o', 'p', 'e'});
  EXPECT_FALSE(garbage.ok);
  EXPECT_EQ(garbage.json.at("error"), "not a molt migration stream (bad magic at byte 0)");
}

TEST(MigrationDump, UndecodablePayloadsAreShownNotFatal) {
  migration::VectorSink sink;
  migration::StreamWriter writer(sink, migration::kKindMigration);
  writer.record(migration::Tag::Fingerprint, "machine", "{not json");
  writer.record(migration::Tag::DeviceState, "com1", "MSTR");
  Bytes chunk = samples::ram_chunk("pc.ram", {{0x1000, false, 1}});
  chunk.resize(chunk.size() - 1);
  writer.record(migration::Tag::Chunk, "ram", chunk);
  writer.record(migration::Tag::Chunk, "ram",
                std::string_view("\x02\x00pc\x01\x00\x00\x00\x02\x10\x00\x00\x00\x00\x00\x00", 16));
  writer.record(migration::Tag::Chunk, std::string_view("\xff\xfe", 2), "");
  writer.record(migration::Tag::Chunk, "\xf4\xb5 \xed\xa0\x80 \xc3\xa9",
                "");  // past U+10FFFF, a surrogate, é
  writer.finish();
  const DumpResult result = dump(sink.data);
  ASSERT_TRUE(result.ok);
  const json::array& records = result.json.at("records").as_array();
  EXPECT_TRUE(records[0].as_object().contains("decode_error"));
  EXPECT_EQ(records[0].at("head"), "7b6e6f74206a736f6e");
  EXPECT_TRUE(records[1].as_object().contains("decode_error"));
  EXPECT_EQ(records[2].at("decode_error"), "the RAM chunk ends at byte 4115 inside a page's data");
  EXPECT_EQ(records[3].at("decode_error"), "page 0 of the RAM chunk (byte 8) has unknown flags 0x2");
  EXPECT_EQ(records[4].at("name"), "\u00ff\u00fe");  // bytes that are not UTF-8 read as Latin-1
  EXPECT_EQ(records[5].at("name"), "\u00f4\u00b5 \u00ed\u00a0\u0080 \u00e9");
}

TEST(MigrationDump, SummaryCountsPerTagAndName) {
  DumpOptions options;
  options.summary = true;
  const DumpResult result = dump(samples::sample_migration_stream(), options);
  ASSERT_TRUE(result.ok);
  EXPECT_FALSE(result.json.contains("records"));
  const json::object& summary = result.json.at("summary").as_object();
  EXPECT_EQ(summary.at("records"), 9);
  EXPECT_EQ(summary.at("by_tag").at("chunk").at("ram").at("records"), 2);
  EXPECT_EQ(summary.at("by_tag").at("chunk").at("ram").at("payload_bytes"),
            (12 + 3 * 8 + 4096) + (12 + 8 + 4096));
  EXPECT_EQ(summary.at("by_tag").at("phase").at("live").at("records"), 1);
  EXPECT_EQ(summary.at("by_tag").at("device-state").at("com1").at("records"), 1);
  EXPECT_EQ(summary.at("ram").at("pc.ram"),
            (json::object{{"pages", 4}, {"zero_pages", 2}, {"data_pages", 2}}));
  EXPECT_EQ(result.json.at("end").at("verified"), true);
}

// What `molt migration dump FILE` runs: the file, the printed JSON, the exit status.
TEST(MigrationDump, RunDumpReadsAFileAndExitsOneWhenDamaged) {
  char path[] = "/tmp/molt-dump-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const Bytes bytes = samples::sample_migration_stream();
  auto write_file = [&](std::size_t length) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(length));
  };
  DumpOptions options;
  options.file = path;
  write_file(bytes.size());
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_dump(options), 0);
  const json::value good = json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(good.at("records").as_array().size(), 9u);
  EXPECT_EQ(good.at("end").at("verified"), true);

  write_file(bytes.size() - 1);
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_dump(options), 1);
  const json::value damaged = json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(damaged.at("records").as_array().size(), 9u);
  EXPECT_EQ(std::string(damaged.at("error").as_string()),
            "the stream ends at byte " + std::to_string(bytes.size() - 1) +
                " inside a record (tag 127 'end', 15 of 16 payload bytes)");
  ::unlink(path);
  options.file = path;
  EXPECT_THROW(run_dump(options), sdk::Error);
}

TEST(MigrationDump, PrettyJsonIndentsContainersAndKeepsScalarArraysOnOneLine) {
  const json::value value = json::parse(R"({"a":[1,2],"b":{"c":"x"},"d":[{"e":null}],"f":{}})");
  EXPECT_EQ(pretty_json(value),
            "{\n  \"a\": [1,2],\n  \"b\": {\n    \"c\": \"x\"\n  },\n  \"d\": [\n    {\n      \"e\": null\n  "
            "  }\n  ],\n"
            "  \"f\": {}\n}\n");
}

}  // namespace
}  // namespace molt::core::app
