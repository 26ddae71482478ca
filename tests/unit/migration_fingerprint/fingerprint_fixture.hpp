// A hand-built fingerprint of a small pc machine, shared by the tests.
#pragma once

#include "core/migration/fingerprint.hpp"

namespace molt::core::migration::testing {

inline DeviceFingerprint device(std::string id, std::string type, std::string descriptor,
                                std::uint32_t version, std::uint32_t minimum) {
  DeviceFingerprint d;
  d.id = std::move(id);
  d.type = std::move(type);
  d.plugin = "molt-" + d.type;
  d.plugin_version = "0.1.0";
  d.descriptor = std::move(descriptor);
  d.descriptor_version = version;
  d.descriptor_minimum = minimum;
  return d;
}

inline MachineFingerprint pc_machine() {
  MachineFingerprint m;
  m.machine_type = "molt-pc-1.1";
  m.vcpus = 2;
  m.cpu.vendor = "GenuineIntel";
  m.cpu.family = 6;
  m.cpu.model = 158;
  m.cpu.stepping = 10;
  m.cpu.features = {"avx", "avx2", "fpu", "sse4_2", "x2apic"};
  m.cpu.xsave_size = 2696;
  m.ram = {{"pc.ram", 1024ull << 20}, {"pc.high", 2048ull << 20}};
  DeviceFingerprint com1 = device("com1", "serial-16550a", "uart-16550a", 2, 1);
  com1.properties = {{"backend", "\"stdio\""}, {"fifo", "true"}};
  DeviceFingerprint rtc0 = device("rtc0", "mc146818-rtc", "mc146818", 3, 1);
  rtc0.properties = {{"base-year", "2000"}};
  DeviceFingerprint exit = device("exit", "debug-exit", "", 0, 0);
  DeviceFingerprint disk0 = device("disk0", "piix3-ide", "piix3-ide", 1, 1);
  m.devices = {com1, exit, rtc0, disk0};
  return m;
}

inline DeviceFingerprint& find_device(MachineFingerprint& m, const std::string& id) {
  for (auto& d : m.devices) {
    if (d.id == id) return d;
  }
  throw std::logic_error("no device " + id + " in the test fingerprint");
}

}  // namespace molt::core::migration::testing
