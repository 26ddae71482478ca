// Bad input stops molt before the guest starts: one clear line on stderr and
// exit status 2.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = fs::temp_directory_path() / ("molt-bad-input-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << content;
    return p.string();
  }
  // Runs molt and checks the shape of the refusal; returns the one line.
  std::string refused(std::vector<std::string> args) {
    const Finished f = run_molt(std::move(args), 30s);
    EXPECT_EQ(f.status, 2) << f.errors;
    EXPECT_EQ(f.console, "") << "the guest must not have run";
    EXPECT_EQ(std::count(f.errors.begin(), f.errors.end(), '\n'), 1) << "expected one line, got:\n" << f.errors;
    return f.errors;
  }
  std::string machine() const { return source_dir() + "/machines/default.json"; }
  fs::path dir_;
};

TEST_F(BadInput, MissingKernel) {
  const std::string line = refused({"run", machine(), "--kernel", "/nonexistent/kernel.elf"});
  EXPECT_NE(line.find("/nonexistent/kernel.elf"), std::string::npos) << line;
}

TEST_F(BadInput, KernelThatIsNeitherPvhElfNorBzImage) {
  const std::string kernel = write("kernel.txt", std::string(8192, 'x'));
  const std::string line = refused({"run", machine(), "--kernel", kernel});
  EXPECT_NE(line.find("kernel.txt"), std::string::npos) << line;
  EXPECT_NE(line.find("bzImage"), std::string::npos) << line;
}

TEST_F(BadInput, InitrdThatDoesNotFit) {
  const std::string initrd = (dir_ / "big.initrd").string();
  { std::ofstream(initrd) << ""; }
  fs::resize_file(initrd, 96ull << 20);  // sparse: costs nothing on disk
  const std::string line =
      refused({"run", machine(), "--kernel", testguest_elf(), "--initrd", initrd, "--memory", "64M"});
  EXPECT_NE(line.find("big.initrd"), std::string::npos) << line;
}

TEST_F(BadInput, PluginThatFailsToLoad) {
  const fs::path plugins = dir_ / "plugins";
  fs::create_directories(plugins);
  std::ofstream(plugins / "bogus.so") << "not an ELF";
  const std::string line = refused({"run", machine(), "--kernel", testguest_elf(), "--plugin-dir", plugins.string()});
  EXPECT_NE(line.find("bogus.so"), std::string::npos) << line;
  EXPECT_NE(line.find("not a molt plugin"), std::string::npos) << line;
}

TEST_F(BadInput, UnreadableMachineFile) {
  const std::string line = refused({"run", (dir_ / "missing.json").string()});
  EXPECT_NE(line.find("missing.json"), std::string::npos) << line;
}

TEST_F(BadInput, MachineFileWithABadValueNamesItsPath) {
  const std::string file = write("bad.json", R"({"vcpus": 1, "memory": {"size": "512X"}, "kernel": {"path": "k"},
    "devices": []})");
  const std::string line = refused({"run", file});
  EXPECT_NE(line.find("$.memory.size"), std::string::npos) << line;
}

TEST_F(BadInput, UnknownDeviceTypeListsTheKnownOnes) {
  const std::string file = write("unknown.json", R"({"memory": {"size": "64M"}, "kernel": {"path": ")" +
                                                     testguest_elf() + R"("},
    "devices": [{"id": "x", "type": "no-such-device"}]})");
  const std::string line = refused({"run", file});
  EXPECT_NE(line.find("$.devices[0].type"), std::string::npos) << line;
  EXPECT_NE(line.find("serial-16550a"), std::string::npos) << line;
}

TEST_F(BadInput, BadCommandLine) {
  const Finished f = run_molt({"run", machine(), "--vcpus", "zero"}, 30s);
  EXPECT_EQ(f.status, 2);
  EXPECT_EQ(f.console.find("@"), std::string::npos);
}

}  // namespace
}  // namespace molt::test
