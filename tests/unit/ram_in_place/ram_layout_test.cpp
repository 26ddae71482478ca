// The ram-layout record: its JSON both ways, the refusals of a damaged one,
// reading it from the head of a snapshot file, and the checks a restore
// makes before it maps a RAM file the snapshot left in place.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>

#include "core/migration/ram_layout.hpp"
#include "core/migration/stream.hpp"

namespace molt::core::migration {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t k256M = 256ull << 20;

std::string parse_error(std::string_view text) {
  try {
    parse_ram_layout(text);
  } catch (const sdk::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(RamLayout, RoundTripsInPlaceAndInFileBlocks) {
  const std::vector<RamLayoutBlock> blocks{{"pc.ram", k256M, "/dev/shm/vm0.ram"}, {"other", 4096, {}}};
  const std::string text = ram_layout_json(blocks);
  EXPECT_EQ(text, R"([{"name":"pc.ram","size":268435456,"in_place":true,"path":"/dev/shm/vm0.ram"},)"
                  R"({"name":"other","size":4096}])");
  EXPECT_EQ(parse_ram_layout(text), blocks);
  EXPECT_TRUE(any_in_place(blocks));
  EXPECT_FALSE(any_in_place({blocks[1]}));
  // The form without in_place (every block's pages in the stream) reads too.
  EXPECT_EQ(parse_ram_layout(R"([{"name":"pc.ram","size":4096,"in_place":false}])"),
            (std::vector<RamLayoutBlock>{{"pc.ram", 4096, {}}}));
}

TEST(RamLayout, DamagedRecordsAreRefusedWithTheirPlace) {
  EXPECT_EQ(parse_error("{"), "the ram-layout record is not JSON: incomplete JSON");
  EXPECT_EQ(parse_error(R"({"name":"pc.ram"})"), "the ram-layout record is not a JSON array of blocks");
  EXPECT_EQ(parse_error(R"([1])"), R"(the ram-layout record: block 0: expected an object {"name", "size"})");
  EXPECT_EQ(parse_error(R"([{"size":1}])"),
            R"(the ram-layout record: block 0: "name" is missing or not a string)");
  EXPECT_EQ(parse_error(R"([{"name":"a","size":1},{"name":"b"}])"),
            R"(the ram-layout record: block 1: "size" is missing or not a number)");
  EXPECT_EQ(parse_error(R"([{"name":"a","size":-1}])"),
            R"(the ram-layout record: block 0: "size" is not a byte count)");
  EXPECT_EQ(parse_error(R"([{"name":"a","size":1,"in_place":1}])"),
            R"(the ram-layout record: block 0: "in_place" is not true or false)");
  EXPECT_EQ(parse_error(R"([{"name":"a","size":1,"in_place":true}])"),
            R"(the ram-layout record: block 0: a block left in place needs the "path" of its file)");
}

class RamLayoutFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "molt-ramlayout-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    ram_ = dir_ / "vm.ram";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A snapshot's first records, as the engine writes them, then a device state.
  fs::path snapshot(const std::vector<RamLayoutBlock>* layout) {
    VectorSink sink;
    StreamWriter out(sink, kKindMigration);
    out.record(Tag::Fingerprint, "machine", std::string_view("{}"));
    out.record(Tag::Phase, "setup", std::string_view(R"({"channels":1,"mode":"precopy"})"));
    if (layout) out.record(Tag::RamLayout, kRamLayoutName, ram_layout_json(*layout));
    out.record(Tag::DeviceState, "com1", std::string_view("x"));
    out.finish();
    const fs::path file = dir_ / "guest.snap";
    std::ofstream(file, std::ios::binary)
        .write(reinterpret_cast<const char*>(sink.data.data()),
               static_cast<std::streamsize>(sink.data.size()));
    return file;
  }
  std::string restore_error(const MachineRam& machine, std::uint64_t snapshot_size = k256M) {
    try {
      check_in_place_restore({{"pc.ram", snapshot_size, ram_}}, machine);
    } catch (const sdk::Error& e) {
      return e.what();
    }
    return "no error";
  }
  void make_ram_file(std::uint64_t size) {
    std::ofstream(ram_).close();
    fs::resize_file(ram_, size);
  }

  fs::path dir_, ram_;
};

TEST_F(RamLayoutFiles, PeekFindsTheLayoutAtTheHeadOfASnapshot) {
  const std::vector<RamLayoutBlock> layout{{"pc.ram", k256M, ram_}};
  EXPECT_EQ(peek_ram_layout(snapshot(&layout)), layout);
  EXPECT_EQ(peek_ram_layout(snapshot(nullptr)), std::nullopt) << "a snapshot with its RAM inside";
  EXPECT_EQ(peek_ram_layout(dir_ / "missing.snap"), std::nullopt);
  std::ofstream(dir_ / "garbage.snap") << "not a snapshot";
  EXPECT_EQ(peek_ram_layout(dir_ / "garbage.snap"), std::nullopt);
}

TEST_F(RamLayoutFiles, RestoreNeedsTheSameFileAndSize) {
  make_ram_file(k256M);
  EXPECT_EQ(restore_error({"file", ram_, k256M}), "no error");
  EXPECT_EQ(restore_error({"file", dir_ / "." / "vm.ram", k256M}), "no error")
      << "the same file, spelt otherwise";
  const std::string left = "the snapshot left RAM in place in " + ram_.string();
  EXPECT_EQ(
      restore_error({"memfd", {}, k256M}),
      left +
          "; this machine's memory.backend is memfd: set \"memory\": {\"backend\": \"file\", \"path\": \"" +
          ram_.string() + "\"} in its machine file");
  EXPECT_EQ(
      restore_error({"file", dir_ / "other.ram", k256M}),
      left + "; this machine's memory.path is " + (dir_ / "other.ram").string() + ": give it the same path");
  EXPECT_EQ(restore_error({"file", ram_, 128ull << 20}),
            left + " (256 MiB); this machine's memory.size is 128 MiB: give it the same size");
}

TEST_F(RamLayoutFiles, RestoreNeedsTheFileAsTheSnapshotLeftIt) {
  const std::string left = "the snapshot left RAM in place in " + ram_.string();
  EXPECT_EQ(
      restore_error({"file", ram_, k256M}),
      left +
          ", which does not exist any more (files on /dev/shm do not survive a host reboot): the guest's "
          "RAM is gone, so this snapshot can't be restored");
  make_ram_file(4096);
  EXPECT_EQ(restore_error({"file", ram_, k256M}), left +
                                                      " (256 MiB); the file now holds 4096 bytes: it changed "
                                                      "since the snapshot, so it can't be restored");
  // A layout with every page in the stream asks nothing of the machine.
  EXPECT_NO_THROW(check_in_place_restore({{"pc.ram", k256M, {}}}, MachineRam{"memfd", {}, 4096}));
}

}  // namespace
}  // namespace molt::core::migration
