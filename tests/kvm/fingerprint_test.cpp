// The migration handshake's fingerprint of real machines: built from a pc
// machine file with the real plugins, as `molt run` builds one, but never run.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/machine/description.hpp"
#include "core/machine/machine.hpp"
#include "core/machine/machine_types.hpp"
#include "core/migration/fingerprint.hpp"
#include "core/plugin/registry.hpp"
#include "molt_process.hpp"

namespace molt::core::migration {
namespace {

namespace fs = std::filesystem;

class FingerprintKvm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    registry_.load_directory(fs::path(test::molt_binary()).parent_path() / "plugins");
    machine_file_ = fs::temp_directory_path() / ("molt-fingerprint-" + std::to_string(::getpid()) + ".json");
    // COM1 on no backend: a test process has no console to give it.
    test::write_pc_machine(
        machine_file_.string(), "hello",
        R"({ "id": "rtc0", "type": "mc146818-rtc" }, { "id": "fwcfg", "type": "fw-cfg" })");
    std::string text;
    {
      std::ifstream in(machine_file_);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto stdio = text.find(R"("backend": "stdio")");
    ASSERT_NE(stdio, std::string::npos) << text;
    text.replace(stdio, 18, R"("backend": "none")");
    std::ofstream(machine_file_) << text;
  }
  void TearDown() override {
    if (!machine_file_.empty()) fs::remove(machine_file_);
  }

  // The file's machine, configured as `molt run` configures it.
  machine::MachineConfig config() const {
    const machine::MachineDescription d = machine::load_machine_file(machine_file_);
    const machine::MachineType& type = machine::resolve_machine_type(d.machine_type, d.source);
    machine::MachineConfig c;
    c.machine_type = type.name;
    c.vcpus = d.vcpus;
    c.memory_size = d.memory_size;
    c.kernel = d.kernel.path;
    c.cmdline = d.kernel.cmdline;
    for (machine::ResolvedDevice& r : machine::resolve_devices(d, registry_.types(), type.compat)) {
      const plugin::LoadedPlugin& from = *registry_.plugin_of(r.type->name);
      c.devices.push_back(
          machine::DeviceSpec{r.config->id, r.type, from.name, std::move(r.properties), from.version});
    }
    return c;
  }

  const DeviceFingerprint& device(const MachineFingerprint& fp, const std::string& id) {
    for (const DeviceFingerprint& d : fp.devices) {
      if (d.id == id) return d;
    }
    ADD_FAILURE() << "no device " << id << " in the fingerprint";
    static const DeviceFingerprint none;
    return none;
  }

  plugin::Registry registry_;
  fs::path machine_file_;
};

TEST_F(FingerprintKvm, DescribesTheMachinesDevicesCpuAndRam) {
  machine::Machine vm(config());
  const MachineFingerprint fp = fingerprint_of(vm);

  EXPECT_EQ(fp.machine_type, vm.info().machine_type);
  EXPECT_EQ(fp.machine_type.rfind("molt-pc-", 0), 0u) << fp.machine_type;
  EXPECT_EQ(fp.vcpus, 1u);
  ASSERT_FALSE(fp.ram.empty());
  std::uint64_t ram = 0;
  for (const RamBlockFingerprint& b : fp.ram) ram += b.size;
  EXPECT_EQ(ram, 128ull << 20);

  const char* const vendors[] = {"GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls"};
  EXPECT_NE(std::find(std::begin(vendors), std::end(vendors), fp.cpu.vendor), std::end(vendors))
      << fp.cpu.vendor;
  EXPECT_GE(fp.cpu.family, 6u);
  // Every x86-64 CPU has these; molt's own bits are not the host's features.
  for (const char* feature : {"fpu", "sse2", "lm", "cx8"}) {
    EXPECT_TRUE(std::binary_search(fp.cpu.features.begin(), fp.cpu.features.end(), std::string(feature)))
        << feature;
  }
  EXPECT_FALSE(std::binary_search(fp.cpu.features.begin(), fp.cpu.features.end(), std::string("hypervisor")));
  EXPECT_TRUE(std::is_sorted(fp.cpu.features.begin(), fp.cpu.features.end()));
  EXPECT_GE(fp.cpu.xsave_size, 576u);  // the legacy area and the header at least

  ASSERT_EQ(fp.devices.size(), vm.devices().size());
  for (const DeviceFingerprint& d : fp.devices) {
    const plugin::LoadedPlugin* from = registry_.plugin_of(d.type);
    ASSERT_NE(from, nullptr) << d.type;
    EXPECT_EQ(d.plugin, from->name) << d.id;
    EXPECT_EQ(d.plugin_version, from->version) << d.id;
    EXPECT_FALSE(d.plugin_version.empty()) << d.id;
    EXPECT_TRUE(d.unmigratable.empty()) << d.id << ": " << d.unmigratable;
  }
  const DeviceFingerprint& com1 = device(fp, "com1");
  EXPECT_EQ(com1.type, "serial-16550a");
  EXPECT_EQ(com1.descriptor, "serial-16550a");
  EXPECT_GE(com1.descriptor_version, com1.descriptor_minimum);
  EXPECT_GE(com1.descriptor_minimum, 1u);
  // The backend is not migration-relevant; the ports and IRQ are.
  EXPECT_EQ(com1.properties, (std::map<std::string, std::string>{{"iobase", "1016"}, {"irq", "4"}}));
  const DeviceFingerprint& rtc = device(fp, "rtc0");
  EXPECT_EQ(rtc.type, "mc146818-rtc");
  EXPECT_EQ(rtc.descriptor, "mc146818");
  EXPECT_EQ(rtc.properties, (std::map<std::string, std::string>{{"iobase", "112"}, {"irq", "8"}}));
  EXPECT_EQ(device(fp, "fwcfg").descriptor, "fw-cfg");
  EXPECT_EQ(device(fp, "isa").descriptor, "piix3-isa");

  // What the handshake sends reads back the same.
  EXPECT_EQ(fingerprint_from_json(to_json(fp)), fp);
}

TEST_F(FingerprintKvm, SameFileComparesEqualAndOtherMemoryDiffers) {
  const MachineFingerprint source = [&] {
    machine::Machine vm(config());
    return fingerprint_of(vm);
  }();
  {
    machine::Machine here(config());
    EXPECT_EQ(compare(source, fingerprint_of(here)), std::vector<std::string>{});
  }
  machine::MachineConfig smaller = config();
  smaller.memory_size = 64ull << 20;
  machine::Machine here(smaller);
  ASSERT_EQ(source.ram.size(), 1u);
  EXPECT_EQ(compare(source, fingerprint_of(here)),
            std::vector<std::string>{"ram block " + source.ram[0].name + ": 128 MiB at source, 64 MiB here"});
}

}  // namespace
}  // namespace molt::core::migration
