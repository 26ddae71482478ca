// The example out-of-tree plugin (examples/pci-counter), loaded by its own
// machine file and driven by the test guest's `counter` scenario. The plugin
// is built against the installed SDK by scripts/test-example-plugin.sh (what
// CI runs), into <build>/example-pci-counter; this test runs the build tree's
// molt on it when that build exists.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

fs::path example_build_dir() {
  return fs::path(MOLT_BUILD_DIR) / "example-pci-counter";
}

// examples/pci-counter/machine.json with its ../../build/ paths pointed at the
// build tree this test runs in (the file assumes <source>/build).
std::string write_machine_file() {
  std::ifstream in(fs::path(source_dir()) / "examples/pci-counter/machine.json");
  std::stringstream text;
  text << in.rdbuf();
  std::string machine = text.str();
  const std::string from = "../../build/";
  const std::string to = std::string(MOLT_BUILD_DIR) + "/";
  for (std::size_t at = machine.find(from); at != std::string::npos; at = machine.find(from, at + to.size()))
    machine.replace(at, from.size(), to);
  const fs::path path =
      fs::temp_directory_path() / ("molt-example-plugin-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << machine;
  return path.string();
}

TEST(ExamplePlugin, CounterScenarioDrivesTheOutOfTreePciCounter) {
  if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
  if (!fs::exists(example_build_dir() / "molt-pci-counter.so")) {
    GTEST_FAIL() << "the example plugin is not built in " << example_build_dir().string()
                 << "; scripts/test-example-plugin.sh builds it against the installed SDK (scripts/test.sh runs it)";
  }
  const std::string machine = write_machine_file();
  const Finished run = run_molt({"run", machine}, 60s);
  fs::remove(machine);
  ASSERT_EQ(run.status, 1) << "exit status 1 is the guest's pass\n" << run.console << run.errors;
  for (const char* line :
       {"@counter found dev=00:03.0 pin=1 gsi=19", "@counter bar0=0xc0000000 size=4096",
        "@counter counting ok", "@counter threshold=100 count=100 irq=ok",
        "@counter doorbell irq=ok masked=ok", "@counter done interrupts=3", "@result pass"}) {
    EXPECT_NE(run.console.find(line), std::string::npos) << "missing: " << line << "\n" << run.console;
  }
}

}  // namespace
}  // namespace molt::test
