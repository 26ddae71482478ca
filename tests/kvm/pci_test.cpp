// The `pci` test-guest scenario enumerates bus 0 through 0xCF8/0xCFC; the
// functions it lists must be exactly the chipset the machine file names.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;

// The chipset alone, written by the test so it does not depend on machines/*.json.
std::string write_machine_file() {
  return write_pc_machine(
      (std::filesystem::temp_directory_path() / ("molt-pci-test-" + std::to_string(::getpid()) + ".json")).string(),
      "pci");
}

TEST(PciScenario, ListsTheHostBridgeAndIsaBridgeOfTheMachine) {
  if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
  const std::string machine = write_machine_file();
  const Finished run = run_molt({"run", machine}, 60s);
  std::filesystem::remove(machine);
  ASSERT_EQ(run.status, 1) << run.console << run.errors;

  std::vector<std::string> listed;
  const std::regex pci_line(R"(^@pci dev=.*$)");
  std::istringstream lines(run.console);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (std::regex_match(line, pci_line)) listed.push_back(line);
  }
  const std::vector<std::string> expected = {
      "@pci dev=00:00.0 id=8086:1237 rev=0x02 class=0x060000 header=0x00 irq_pin=0 irq_line=0",
      "@pci dev=00:01.0 id=8086:7000 rev=0x00 class=0x060100 header=0x80 irq_pin=0 irq_line=0",
  };
  EXPECT_EQ(listed, expected) << run.console;
  EXPECT_NE(run.console.find("@pci-done count=2"), std::string::npos) << run.console;
}

}  // namespace
}  // namespace molt::test
