// compare(): every difference as one sentence, in a stable order.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/migration/fingerprint.hpp"
#include "fingerprint_fixture.hpp"

namespace molt::core::migration {
namespace {

using testing::device;
using testing::find_device;
using testing::pc_machine;
using Messages = std::vector<std::string>;

TEST(FingerprintCompare, IdenticalMachinesAccept) {
  EXPECT_EQ(compare(pc_machine(), pc_machine()), Messages{});
}

TEST(FingerprintCompare, MachineTypeAndVcpus) {
  MachineFingerprint here = pc_machine();
  here.machine_type = "molt-pc-1.0";
  here.vcpus = 1;
  EXPECT_EQ(compare(pc_machine(), here), (Messages{"machine type: molt-pc-1.1 at source, molt-pc-1.0 here",
                                                   "vcpus: 2 at source, 1 here"}));
}

TEST(FingerprintCompare, CpuVendorMissingFeaturesAndXsaveArea) {
  MachineFingerprint here = pc_machine();
  here.cpu.vendor = "AuthenticAMD";
  here.cpu.features = {"avx", "fpu", "sse4_2"};
  here.cpu.xsave_size = 832;
  EXPECT_EQ(compare(pc_machine(), here),
            (Messages{
                "cpu vendor: GenuineIntel at source, AuthenticAMD here",
                "cpu: feature avx2 used by the source's guest, not offered here",
                "cpu: feature x2apic used by the source's guest, not offered here",
                "cpu: xsave area 2696 bytes at source, 832 here",
            }));
}

TEST(FingerprintCompare, ExtraFeaturesNewerModelAndLargerXsaveHereAreAccepted) {
  MachineFingerprint here = pc_machine();
  here.cpu.features.push_back("avx512f");
  here.cpu.family = 0x19;
  here.cpu.model = 0x21;
  here.cpu.stepping = 2;
  here.cpu.xsave_size = 2704;
  EXPECT_EQ(compare(pc_machine(), here), Messages{});
}

TEST(FingerprintCompare, RamBlocksBySizeAndPresence) {
  MachineFingerprint source = pc_machine();
  source.ram.push_back({"vga.vram", 16ull << 20});
  source.ram.push_back({"odd", 4097});
  MachineFingerprint here = pc_machine();
  here.ram = {{"pc.ram", 512ull << 20},
              {"pc.high", (2048ull << 20) + (68 << 10)},
              {"pc.rom", 128 << 10},
              {"odd", 4096}};
  EXPECT_EQ(compare(source, here), (Messages{
                                       "ram block odd: 4097 bytes at source, 4 KiB here",
                                       "ram block pc.high: 2048 MiB at source, 2097220 KiB here",
                                       "ram block pc.ram: 1024 MiB at source, 512 MiB here",
                                       "ram block pc.rom: absent at source, present here",
                                       "ram block vga.vram: present at source, absent here",
                                   }));
}

TEST(FingerprintCompare, DevicesPresentOnOneSideOnlyOrOfAnotherType) {
  MachineFingerprint source = pc_machine();
  MachineFingerprint here = pc_machine();
  find_device(here, "disk0") = device("disk1", "piix3-ide", "piix3-ide", 1, 1);
  find_device(here, "com1").type = "virtio-console";
  EXPECT_EQ(compare(source, here), (Messages{
                                       "device com1: type serial-16550a at source, virtio-console here",
                                       "device disk0: present at source, absent here",
                                       "device disk1: absent at source, present here",
                                   }));
  // The same type under another id is still a different device.
  source = pc_machine();
  here = pc_machine();
  find_device(here, "disk0").type = "serial-16550a";
  EXPECT_EQ(compare(source, here), Messages{"device disk0: type piix3-ide at source, serial-16550a here"});
}

TEST(FingerprintCompare, DescriptorVersionOutsideWhatThisPluginLoads) {
  const MachineFingerprint source = pc_machine();  // rtc0: mc146818 v3
  MachineFingerprint here = pc_machine();
  DeviceFingerprint& rtc = find_device(here, "rtc0");
  rtc.descriptor_version = 2;
  rtc.descriptor_minimum = 1;
  EXPECT_EQ(compare(source, here),
            Messages{"device rtc0: descriptor mc146818 v3 at source, this plugin loads v1..v2"});

  // Too old for a plugin that dropped support for v3.
  rtc.descriptor_version = 5;
  rtc.descriptor_minimum = 4;
  EXPECT_EQ(compare(source, here),
            Messages{"device rtc0: descriptor mc146818 v3 at source, this plugin loads v4..v5"});

  // A newer plugin that still loads v3 is no difference, whatever its version.
  rtc.descriptor_minimum = 3;
  rtc.plugin_version = "0.2.0";
  EXPECT_EQ(compare(source, here), Messages{});
  rtc.descriptor_minimum = 2;
  rtc.descriptor_version = 3;
  EXPECT_EQ(compare(source, here), Messages{});
}

TEST(FingerprintCompare, DescriptorNameAndStatefulness) {
  const MachineFingerprint source = pc_machine();
  MachineFingerprint here = pc_machine();
  find_device(here, "rtc0").descriptor = "cmos";
  find_device(here, "disk0").descriptor.clear();
  DeviceFingerprint& exit = find_device(here, "exit");
  exit.descriptor = "debug-exit";
  exit.descriptor_version = 1;
  exit.descriptor_minimum = 1;
  EXPECT_EQ(compare(source, here), (Messages{
                                       "device disk0: descriptor piix3-ide at source, stateless here",
                                       "device exit: stateless at source, descriptor debug-exit here",
                                       "device rtc0: descriptor mc146818 at source, cmos here",
                                   }));
}

TEST(FingerprintCompare, UnmigratableDevices) {
  MachineFingerprint source = pc_machine();
  MachineFingerprint here = pc_machine();
  DeviceFingerprint usb0 = device("usb0", "usb-host", "", 0, 0);
  usb0.unmigratable = "it passes a host USB device through";
  source.devices.push_back(usb0);
  here.devices.push_back(usb0);
  DeviceFingerprint& disk = find_device(here, "disk0");
  disk.descriptor.clear();
  disk.unmigratable = "its backend is a host block device";
  EXPECT_EQ(compare(source, here), (Messages{
                                       "device disk0: descriptor piix3-ide at source, unmigratable (its "
                                       "backend is a host block device) here",
                                       "device usb0: cannot migrate: it passes a host USB device through",
                                   }));
}

TEST(FingerprintCompare, MigrationRelevantProperties) {
  const MachineFingerprint source = pc_machine();
  MachineFingerprint here = pc_machine();
  DeviceFingerprint& com1 = find_device(here, "com1");
  com1.properties["fifo"] = "false";
  com1.properties["backend"] = "\"pty\"";
  com1.properties["x"] = "3";
  find_device(here, "rtc0").properties.erase("base-year");
  EXPECT_EQ(compare(source, here), (Messages{
                                       "device com1: property 'backend' is \"stdio\" at source, \"pty\" here",
                                       "device com1: property 'fifo' is true at source, false here",
                                       "device com1: property 'x' is not set at source, 3 here",
                                       "device rtc0: property 'base-year' is 2000 at source, not set here",
                                   }));
}

TEST(FingerprintCompare, EveryDifferenceInMachineCpuRamDeviceOrder) {
  MachineFingerprint source = pc_machine();
  source.devices.insert(source.devices.begin(), device("zz", "debug-exit", "", 0, 0));
  MachineFingerprint here = pc_machine();
  here.vcpus = 4;
  here.ram[0].size = 512ull << 20;
  here.cpu.features.erase(here.cpu.features.begin());  // avx
  find_device(here, "com1").properties["fifo"] = "false";
  here.devices.insert(here.devices.begin(), device("aa", "debug-exit", "", 0, 0));
  EXPECT_EQ(compare(source, here), (Messages{
                                       "vcpus: 2 at source, 4 here",
                                       "cpu: feature avx used by the source's guest, not offered here",
                                       "ram block pc.ram: 1024 MiB at source, 512 MiB here",
                                       "device aa: absent at source, present here",
                                       "device com1: property 'fifo' is true at source, false here",
                                       "device zz: present at source, absent here",
                                   }));
}

}  // namespace
}  // namespace molt::core::migration
