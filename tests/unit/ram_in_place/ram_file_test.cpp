// RAM blocks in a named file: created 0600, locked against a second user,
// emptied on a fresh start and kept for an in-place restore, refused with a
// sentence naming memory.path when they can't be used.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>

#include "core/memory/guest_ram.hpp"
#include "core/migration/ram_layout.hpp"

namespace molt::core::memory {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t kSize = 4ull << 20;

class RamFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // /dev/shm when there is one: that is where RAM files usually live.
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (base / "molt-ramfile-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ / "vm.ram";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string error_of(const RamFile& file, std::uint64_t size = kSize) {
    try {
      RamBlock block("pc.ram", size, file);
    } catch (const sdk::Error& e) {
      return e.what();
    }
    return "no error";
  }

  fs::path dir_, path_;
};

TEST_F(RamFileTest, FreshRamIsCreatedPrivateAndHoldsNoPage) {
  RamBlock block("pc.ram", kSize, RamFile{path_, false});
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), kSize);
  EXPECT_EQ(block.backing(), RamBacking::File);
  EXPECT_EQ(block.path(), path_);
  EXPECT_FALSE(block.contents_kept());
  EXPECT_TRUE(block.data_extents().empty()) << "a fresh RAM file should be all holes";
  block.host()[5 * 4096 + 7] = 0x5a;
  const auto extents = block.data_extents();
  ASSERT_EQ(extents.size(), 1u);
  EXPECT_LE(extents[0].first, 5u * 4096);
  EXPECT_GT(extents[0].second, 5u * 4096 + 7);
  EXPECT_NO_THROW(block.sync());
}

TEST_F(RamFileTest, WritesLandInTheFileAndAFreshStartEmptiesIt) {
  {
    RamBlock block("pc.ram", kSize, RamFile{path_, false});
    std::memcpy(block.host() + 8192, "guest", 5);
  }
  std::ifstream in(path_, std::ios::binary);
  in.seekg(8192);
  char text[5] = {};
  in.read(text, 5);
  EXPECT_EQ(std::string(text, 5), "guest");
  // An existing file of another size, with data: a fresh start resizes it and drops every page.
  RamBlock again("pc.ram", 2 * kSize, RamFile{path_, false});
  EXPECT_EQ(fs::file_size(path_), 2 * kSize);
  EXPECT_TRUE(again.data_extents().empty());  // before reading: a read of a hole on tmpfs fills it
  EXPECT_EQ(again.host()[8192], 0);
}

TEST_F(RamFileTest, KeptContentsSurviveANewMapping) {
  {
    RamBlock block("pc.ram", kSize, RamFile{path_, false});
    std::memcpy(block.host() + kSize - 4096, "kept", 4);
  }
  RamBlock kept("pc.ram", kSize, RamFile{path_, true});
  EXPECT_TRUE(kept.contents_kept());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(kept.host() + kSize - 4096), 4), "kept");
}

TEST_F(RamFileTest, ASecondUserIsRefusedByTheLock) {
  RamBlock first("pc.ram", kSize, RamFile{path_, false});
  std::memcpy(first.host(), "mine", 4);
  EXPECT_EQ(
      error_of(RamFile{path_, false}),
      "memory.path " + path_.string() +
          ": in use by another process (it holds the lock); stop the molt that runs this guest, or give "
          "this machine a RAM file of its own");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(first.host()), 4), "mine")
      << "the refusal emptied the file";
}

TEST_F(RamFileTest, TheLockGoesWithTheOpenFileAndIsFreedWithIt) {
  kvm::Fd handed;
  {
    RamBlock first("pc.ram", kSize, RamFile{path_, false});
    handed = kvm::Fd(::dup(first.fd()));  // what cpr-transfer passes: the same open file
  }
  // The first mapping is gone, but the handed-over description keeps the lock.
  EXPECT_NE(error_of(RamFile{path_, true}).find("in use by another process"), std::string::npos);
  {
    RamBlock adopted("pc.ram", kSize, std::move(handed), path_);
    EXPECT_EQ(adopted.path(), path_);
    EXPECT_TRUE(adopted.contents_kept());
  }
  EXPECT_EQ(error_of(RamFile{path_, true}), "no error")
      << "the last holder closed the file, freeing the lock";
}

TEST_F(RamFileTest, HandedOverRamMustBeTheMachinesFile) {
  kvm::Fd other(::memfd_create("not-the-file", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(other.get(), kSize), 0);
  try {
    RamBlock adopted("pc.ram", kSize, std::move(other), path_);
    ADD_FAILURE() << "a memfd was taken as memory.path";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "RAM block pc.ram: the handed-over RAM is not memory.path " + path_.string() +
                  "; give the new molt the same memory backend and path as the source");
  }
}

TEST_F(RamFileTest, KeepingNeedsTheFileThereWithTheRightSize) {
  EXPECT_EQ(error_of(RamFile{path_, true}),
            "memory.path " + path_.string() + ": the RAM file does not exist, so there are no pages to keep");
  EXPECT_FALSE(fs::exists(path_)) << "keeping must not create the file";
  { RamBlock block("pc.ram", kSize, RamFile{path_, false}); }
  EXPECT_EQ(error_of(RamFile{path_, true}, 2 * kSize),
            "memory.path " + path_.string() +
                ": the RAM file holds 4194304 bytes, the machine's RAM is 8388608 " +
                "(8 MiB); its pages do not fit this machine");
}

TEST_F(RamFileTest, ADirectoryIsNotARamFile) {
  EXPECT_EQ(error_of(RamFile{dir_, false}),
            "memory.path " + dir_.string() + ": cannot open the RAM file: Is a directory");
  EXPECT_EQ(error_of(RamFile{dir_ / "missing" / "vm.ram", false}),
            "memory.path " + (dir_ / "missing" / "vm.ram").string() +
                ": cannot open the RAM file: No such file or directory");
}

TEST_F(RamFileTest, GuestRamLaysAFileOutLikeAMemfd) {
  GuestRam ram(kSize, RamFile{path_, false});
  ASSERT_EQ(ram.blocks().size(), 1u);
  EXPECT_EQ(ram.blocks()[0]->name(), "pc.ram");
  EXPECT_EQ(ram.regions().size(), 1u);
  const std::uint8_t byte = 0x42;
  ASSERT_TRUE(ram.write(0x1000, {&byte, 1}));
  EXPECT_EQ(ram.blocks()[0]->host()[0x1000], 0x42);
  const auto layout = migration::in_place_layout(ram);
  ASSERT_EQ(layout.size(), 1u);
  EXPECT_EQ(layout[0], (migration::RamLayoutBlock{"pc.ram", kSize, path_}));
}

TEST_F(RamFileTest, InPlaceNeedsANamedFile) {
  for (const auto& [backing, what] :
       {std::pair{RamBacking::Memfd, "a memfd"}, std::pair{RamBacking::Anonymous, "anonymous memory"}}) {
    GuestRam ram(kSize, backing);
    try {
      migration::in_place_layout(ram);
      ADD_FAILURE() << what << " was left in place";
    } catch (const sdk::Error& e) {
      EXPECT_EQ(
          std::string(e.what()),
          std::string("ram in-place needs the guest's RAM in a named file: set memory.backend to \"file\" "
                      "with a path, for example on /dev/shm; this machine's RAM is ") +
              what);
    }
  }
}

}  // namespace
}  // namespace molt::core::memory
