// The `ide` test-guest scenario on the piix3-ide plugin: a PIO and a DMA
// pattern over every sector of a small disk, checked by the guest and, on
// the host, in the image file; a second molt process reads the pattern back.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <vector>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;

// 512 sectors: every sector by PIO costs ~5 s each way at ~80 us per port access.
constexpr std::uint64_t kDiskSectors = 512;

// The guest's pattern (guest/testguest/ide.c): word `i` of sector `lba`.
std::uint32_t pattern(std::uint32_t seed, std::uint64_t lba, unsigned i) {
  std::uint32_t x = static_cast<std::uint32_t>(lba * 128 + i) * 0x9e3779b1u ^ seed;
  x ^= x >> 15;
  return x * 0x85ebca77u ^ static_cast<std::uint32_t>(lba >> 25);
}

class IdeScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = std::filesystem::temp_directory_path() / ("molt-ide-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    image_ = (dir_ / "disk.img").string();
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void make_image(std::uint64_t sectors) {
    std::ofstream(image_, std::ios::binary | std::ios::trunc).close();
    std::filesystem::resize_file(image_, sectors * 512);
  }
  // A pc machine (i440FX, PIIX3) with the disk as primary master.
  std::string machine_file(bool read_only = false) {
    return write_pc_machine((dir_ / "machine.json").string(), "ide",
                            R"({ "id": "ide0", "type": "piix3-ide", "properties": { "primary-master": ")" + image_ +
                                R"(", "primary-master-read-only": )" + (read_only ? "true" : "false") + " } }");
  }
  Finished run(const std::string& cmdline, bool read_only = false) {
    return run_molt({"run", machine_file(read_only), "--cmdline", cmdline}, 120s);
  }
  std::vector<std::uint32_t> image_words() {
    std::ifstream in(image_, std::ios::binary);
    std::vector<std::uint32_t> words(kDiskSectors * 128);
    in.read(reinterpret_cast<char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
    return words;
  }

  std::filesystem::path dir_;
  std::string image_;
};

TEST_F(IdeScenario, PioAndDmaOverEverySectorThenASecondProcessReadsThePattern) {
  make_image(kDiskSectors);
  const std::uint32_t seed = 0x1000u + static_cast<std::uint32_t>(::getpid() % 50000);
  const Finished first = run("ide full " + std::to_string(seed));
  ASSERT_EQ(first.status, 1) << first.console << first.errors;
  EXPECT_NE(first.console.find("@ide controller bdf=00:01.1 id=8086:7010 progif=0x80"), std::string::npos)
      << first.console;
  EXPECT_NE(first.console.find("@ide identify sectors=512 lba48=1 multiple=16 udma=0x3f"), std::string::npos)
      << first.console;
  EXPECT_NE(first.console.find("model=MOLT_HARDDISK"), std::string::npos);
  for (const char* line : {"@ide pio write sectors=512 ", "@ide dma verify sectors=512 ",
                           "@ide dma write sectors=512 ", "@ide pio verify sectors=512 "}) {
    const auto at = first.console.find(line);
    ASSERT_NE(at, std::string::npos) << line << "\n" << first.console;
    const std::string rest = first.console.substr(at, first.console.find('\n', at) - at);
    EXPECT_TRUE(rest.ends_with(" ok")) << rest;
  }
  EXPECT_NE(first.console.find("@ide pattern seed=" + std::to_string(seed)), std::string::npos);

  // The writes reached the image file: every word holds the DMA pattern.
  const std::vector<std::uint32_t> words = image_words();
  std::size_t wrong = 0;
  for (std::uint64_t lba = 0; lba < kDiskSectors; ++lba)
    for (unsigned i = 0; i < 128; ++i) wrong += words[lba * 128 + i] != pattern(seed, lba, i);
  EXPECT_EQ(wrong, 0u);

  // A new molt process on the same image reads the same pattern...
  const Finished second = run("ide verify " + std::to_string(seed));
  EXPECT_EQ(second.status, 1) << second.console << second.errors;
  EXPECT_NE(second.console.find("@ide verify seed=" + std::to_string(seed) + " sectors=512 errors=0 ok"),
            std::string::npos)
      << second.console;
  // ...and notices when it is not the one it expects.
  const Finished wrong_seed = run("ide verify " + std::to_string(seed + 1));
  EXPECT_EQ(wrong_seed.status, 3) << wrong_seed.console;
  EXPECT_NE(wrong_seed.console.find("@ide corrupt lba=0 word=0"), std::string::npos) << wrong_seed.console;
}

TEST_F(IdeScenario, ReadOnlyDiskFailsGuestWritesAndKeepsTheImage) {
  make_image(kDiskSectors);
  {
    std::fstream f(image_, std::ios::binary | std::ios::in | std::ios::out);
    std::vector<std::uint32_t> words(kDiskSectors * 128);
    for (std::uint64_t lba = 0; lba < kDiskSectors; ++lba)
      for (unsigned i = 0; i < 128; ++i) words[lba * 128 + i] = pattern(42, lba, i);
    f.write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
  }
  const Finished verify = run("ide verify 42", true);
  EXPECT_EQ(verify.status, 1) << verify.console << verify.errors;
  const Finished write = run("ide full 43", true);
  EXPECT_EQ(write.status, 3) << write.console;
  EXPECT_NE(write.console.find("@ide error op=pio-write status=0x51 error=0x04"), std::string::npos)
      << write.console;
  EXPECT_NE(write.errors.find("read-only"), std::string::npos) << write.errors;
  const std::vector<std::uint32_t> words = image_words();
  EXPECT_EQ(words[0], pattern(42, 0, 0));
  EXPECT_EQ(words.back(), pattern(42, kDiskSectors - 1, 127));
}

TEST_F(IdeScenario, MissingImageIsRefusedAtStartNamingTheFile) {
  const Finished f = run("ide");
  EXPECT_EQ(f.status, 2) << f.console << f.errors;
  EXPECT_NE(f.errors.find(image_), std::string::npos) << f.errors;
  EXPECT_NE(f.errors.find("No such file"), std::string::npos) << f.errors;
  EXPECT_EQ(f.console.find("testguest"), std::string::npos);  // the guest never ran
}

}  // namespace
}  // namespace molt::test
