// A machine's fingerprint: what must match between a migration's source and
// destination, sent first in every stream. The destination compares it with
// its own and answers accept, or refuses with every difference as a sentence
// that names the thing and both sides:
//   "device disk0: present at source, absent here"
//   "ram block pc.ram: 1024 MiB at source, 512 MiB here"
//   "device rtc0: descriptor mc146818 v3 at source, this plugin loads v1..v2"
//   "device com1: property 'fifo' is true at source, false here"
//   "cpu: feature avx2 used by the source's guest, not offered here"
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "core/kvm/kvm.hpp"

namespace molt::core::machine {
class Machine;
}

namespace molt::core::migration {

struct CpuFingerprint {
  std::string vendor;                  // "GenuineIntel"
  std::uint32_t family = 0, model = 0, stepping = 0;
  std::vector<std::string> features;   // named CPUID feature bits the guest sees, sorted
  std::uint32_t xsave_size = 0;        // CPUID.0xD.0:EBX with every supported component on

  bool operator==(const CpuFingerprint&) const = default;
};

struct RamBlockFingerprint {
  std::string name;
  std::uint64_t size = 0;

  bool operator==(const RamBlockFingerprint&) const = default;
};

struct DeviceFingerprint {
  std::string id;
  std::string type;
  std::string plugin;
  std::string plugin_version;
  std::string descriptor;              // empty: stateless or unmigratable
  std::uint32_t descriptor_version = 0;
  std::uint32_t descriptor_minimum = 0;  // the oldest version this device loads
  std::string unmigratable;            // the device's reason, if it can't migrate
  std::map<std::string, std::string> properties;  // migration-relevant ones, as JSON text

  bool operator==(const DeviceFingerprint&) const = default;
};

struct MachineFingerprint {
  std::string machine_type;
  unsigned vcpus = 0;
  CpuFingerprint cpu;
  std::vector<RamBlockFingerprint> ram;
  std::vector<DeviceFingerprint> devices;

  bool operator==(const MachineFingerprint&) const = default;
};

// Reads the machine (device bindings under each device's lock).
MachineFingerprint fingerprint_of(machine::Machine& machine);
// The CPU part, from the CPUID table the guest was given.
CpuFingerprint cpu_fingerprint(const kvm::CpuidTable& cpuid);

boost::json::value to_json(const MachineFingerprint& fingerprint);
// Throws sdk::Error naming the JSON path of what is missing or malformed.
MachineFingerprint fingerprint_from_json(const boost::json::value& value);

// Every difference that stops `source`'s state from loading into `here`, in a
// stable order (machine, cpu, ram, devices by id); empty means accept. A newer
// plugin whose descriptor still loads the source's version is not a difference.
std::vector<std::string> compare(const MachineFingerprint& source, const MachineFingerprint& here);

}  // namespace molt::core::migration
