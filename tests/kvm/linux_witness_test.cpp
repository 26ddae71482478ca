// Linux as an outside witness: Debian's own kernel, booted by molt, prints
// what it found. On this project's kvm_pvm hosts guest kernel mode is
// emulated, so Linux gets through early boot and no further; on hosts with
// hardware virtualization the same tests also check that it boots on.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include <gtest/gtest.h>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

fs::path kernel_cache() { return fs::path(source_dir()) / "guest/linux/cache"; }

// kvm_pvm runs guest kernel mode through KVM's instruction emulator.
bool host_emulates_guest_kernel_mode() { return fs::exists("/sys/module/kvm_pvm"); }

void say_once_how_far_linux_gets() {
  static bool said = false;
  if (said) return;
  said = true;
  if (host_emulates_guest_kernel_mode()) {
    std::cout << "NOTE: this host's KVM is kvm_pvm, which emulates guest kernel mode; Linux stops after its early "
                 "boot here, so these tests check early boot only. On hosts with hardware virtualization they "
                 "also check that Linux boots on to mounting its root.\n";
  }
}

class LinuxWitness : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available()) GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    say_once_how_far_linux_gets();
  }
  static std::string need(const char* name) {
    const fs::path p = kernel_cache() / name;
    if (!fs::exists(p)) ADD_FAILURE() << p << " is missing: run guest/linux/fetch-kernel.sh (scripts/test.sh does)";
    return p.string();
  }
  std::vector<std::string> args(const std::string& kernel, const std::string& cmdline, const std::string& memory,
                                unsigned vcpus = 1) {
    return {"run",     source_dir() + "/machines/default.json", "--kernel", kernel, "--cmdline", cmdline,
            "--memory", memory, "--vcpus", std::to_string(vcpus)};
  }
};

// Linux prints the firmware map as "BIOS-e820: [mem 0x...-0x...] usable".
std::vector<std::string> e820_lines(const std::string& console) {
  std::vector<std::string> out;
  const std::regex re(R"(BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+))");
  for (auto it = std::sregex_iterator(console.begin(), console.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1].str() + "-" + (*it)[2].str() + " " + (*it)[3].str());
  }
  return out;
}

TEST_F(LinuxWitness, VmlinuxThroughPvhReportsWhatMoltGaveIt) {
  const std::string vmlinux = need("vmlinux");
  const std::string cmdline = "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 molt.witness=pvh-512m";
  MoltProcess linux_guest(args(vmlinux, cmdline, "512M", 2));

  ASSERT_TRUE(linux_guest.wait_for_line("Linux version 6\\.", 150s)) << linux_guest.console() << linux_guest.errors();
  EXPECT_TRUE(linux_guest.wait_for_line("Command line: " + std::regex_replace(cmdline, std::regex(R"([.])"), "\\.") + "$", 60s))
      << linux_guest.console();
  ASSERT_TRUE(linux_guest.wait_for_line("Hypervisor detected: KVM", 90s)) << linux_guest.console();
  ASSERT_TRUE(linux_guest.wait_for_line("MP-table|MultiProcessor Specification", 120s)) << linux_guest.console();

  // 512 MiB: usable below the EBDA, the reserved 0x9fc00-0xfffff window, usable up to 512 MiB.
  const std::vector<std::string> expected = {
      "0x0000000000000000-0x000000000009fbff usable",
      "0x000000000009fc00-0x00000000000fffff reserved",
      "0x0000000000100000-0x000000001fffffff usable",
  };
  EXPECT_EQ(e820_lines(linux_guest.console()), expected) << linux_guest.console();

  if (!host_emulates_guest_kernel_mode()) {
    // With hardware virtualization Linux runs on until it looks for a root.
    EXPECT_TRUE(linux_guest.wait_for_line("VFS: Unable to mount root|Run /init|Freeing unused kernel", 120s))
        << linux_guest.console();
  }
}

TEST_F(LinuxWitness, BzImageThroughTheBootProtocolStartsItsDecompressor) {
  const std::string bzimage = need("bzImage");
  // Debian builds without CONFIG_X86_VERBOSE_BOOTUP, so the decompressor's
  // progress lines are compiled out; its KASLR warning is printed always.
  MoltProcess linux_guest(args(bzimage, "console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr panic=-1", "512M"));
  EXPECT_TRUE(linux_guest.wait_for_line("KASLR disabled: 'nokaslr' on cmdline", 90s))
      << linux_guest.console() << linux_guest.errors();
  if (!host_emulates_guest_kernel_mode()) {
    EXPECT_TRUE(linux_guest.wait_for_line("Linux version 6\\.", 120s)) << linux_guest.console();
  }
}

}  // namespace
}  // namespace molt::test
