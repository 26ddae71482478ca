// The machine description: a JSON file (machines/*.json, docs/machine-format.md)
// that names the machine type, vCPUs, RAM, kernel, plugin directories and
// devices. Loading it is a pure function: the whole file is parsed and checked
// before anything is created, so a bad file changes nothing and its first
// problem is reported with the file name, the JSON path and what was expected.
//
// Device properties are checked in a second step, once the plugins named by the
// file are loaded and their device types are known:
//
//   auto desc = load_machine_file(path, {.max_vcpus = kvm_max, .host_memory_bytes = host_memory_bytes()});
//   ... load plugins from desc.plugin_dirs ...
//   auto devices = resolve_devices(desc, registered_types);   // still creates nothing
//   ... create the VM, RAM and devices ...
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include <molt/sdk/error.hpp>
#include <molt/sdk/plugin.hpp>
#include <molt/sdk/properties.hpp>

namespace molt::core::machine {

// A problem in a machine description. what() reads
//   "machines/x.json: $.devices[1].properties.irq: expected an unsigned integer from 0 to 23, got 99"
// (without the file part when the text did not come from a file).
class ConfigError : public molt::sdk::Error {
 public:
  ConfigError(std::filesystem::path origin, std::string json_path, std::string message);

  const std::filesystem::path& origin() const { return origin_; }
  // "$" for the whole document, "$.memory.size", "$.devices[2].id"; empty when
  // the problem is not inside the document (an unreadable file).
  const std::string& json_path() const { return json_path_; }
  // The sentence alone, without file and path.
  const std::string& message() const { return message_; }

 private:
  std::filesystem::path origin_;
  std::string json_path_;
  std::string message_;
};

enum class MemoryBackend {
  Memfd,      // MAP_SHARED memfd: can be handed to a new process (cpr-transfer)
  Anonymous,  // MAP_PRIVATE anonymous memory: lives and dies with this process
  File,       // MAP_SHARED on memory_path (e.g. on /dev/shm): outlives the process, so a
              // snapshot can leave the RAM in place there (docs/cpr.md, "Snapshots")
};
const char* to_string(MemoryBackend backend);

struct KernelConfig {
  std::filesystem::path path;  // absolute, lexically normal
  std::optional<std::filesystem::path> initrd;
  std::string cmdline;
};

// A BIOS image booted from the reset vector (docs/firmware.md).
struct FirmwareConfig {
  std::filesystem::path path;  // absolute, lexically normal
};

struct DeviceConfig {
  std::string id;
  std::string type;
  // The device's "properties" object as written; checked by resolve_properties().
  boost::json::object properties;
  std::string json_path;         // "$.devices[1]"
  std::filesystem::path source;  // the machine file, for messages
};

struct MachineDescription {
  std::filesystem::path source;  // as given to the loader; empty for text
  std::string machine_type = "molt-pc";
  unsigned vcpus = 1;
  std::uint64_t memory_size = 0;  // bytes, a non-zero multiple of 4 KiB
  MemoryBackend memory_backend = MemoryBackend::Memfd;
  // The RAM file of MemoryBackend::File (absolute, lexically normal); unset otherwise.
  std::optional<std::filesystem::path> memory_path;
  KernelConfig kernel;  // path empty when only firmware is given
  std::optional<FirmwareConfig> firmware;
  std::vector<std::filesystem::path> plugin_dirs;  // absolute, in file order
  std::optional<std::filesystem::path> api_socket;
  std::vector<DeviceConfig> devices;  // in file order; ids unique
};

// The most vCPUs a pc machine can describe: xAPIC ids are 8 bits and 0xff is
// the broadcast id, so ids 0..254 are usable.
inline constexpr unsigned kMaxVcpusXapic = 255;

// What the host can give; the caller fills these in (KVM_CAP_MAX_VCPUS,
// host_memory_bytes()) so the loader itself stays pure and testable.
struct HostLimits {
  unsigned max_vcpus = kMaxVcpusXapic;
  // Unset: memory size is not compared with the host.
  std::optional<std::uint64_t> host_memory_bytes;
};

// Reads and parses a machine file. An unreadable file is a ConfigError naming
// the file and the system's reason; invalid JSON names line and column.
MachineDescription load_machine_file(const std::filesystem::path& file, const HostLimits& limits = {});

// Parses a description held in memory. `origin` is the file it came from (used
// in messages and to resolve relative paths); empty means "not from a file":
// relative paths then resolve against the current directory.
MachineDescription parse_machine(std::string_view json_text, const std::filesystem::path& origin,
                                 const HostLimits& limits = {});

// Finds a device's type among the registered ones. Unknown types are a
// ConfigError at "$.devices[i].type" that lists the known types.
const molt::sdk::DeviceType& find_device_type(
    const std::map<std::string, const molt::sdk::DeviceType*>& known, const DeviceConfig& device);

// Property defaults that replace a type's own ones (a machine-type compat
// table, e.g. molt-pc-1.0 keeping an older behaviour): property name -> value.
using DefaultOverrides = std::map<std::string, molt::sdk::PropertyValue>;

// Checks a device's JSON properties against its type's PropertySpecs and fills
// in defaults: unknown names, wrong types, values out of range or not among
// the choices, and missing required properties are ConfigErrors at
// "$.devices[i].properties[.name]".
molt::sdk::Properties resolve_properties(const molt::sdk::DeviceType& type, const DeviceConfig& device,
                                         const DefaultOverrides& overrides = {});

// Points into the MachineDescription and the registered types it was resolved
// from; keep both alive while this is used.
struct ResolvedDevice {
  const DeviceConfig* config = nullptr;
  const molt::sdk::DeviceType* type = nullptr;
  molt::sdk::Properties properties;
};

// find_device_type() and resolve_properties() for every device, in file
// order; throws on the first problem. `overrides_by_type` maps a device type
// name to its compat defaults.
std::vector<ResolvedDevice> resolve_devices(
    const MachineDescription& description, const std::map<std::string, const molt::sdk::DeviceType*>& known,
    const std::map<std::string, DefaultOverrides>& overrides_by_type = {});

// MemTotal of /proc/meminfo (or another file in that format), in bytes;
// nullopt when it cannot be read.
std::optional<std::uint64_t> host_memory_bytes(const std::filesystem::path& meminfo = "/proc/meminfo");

// Throws a ConfigError at `json_path` when `size` is more than `host_bytes`.
void check_memory_fits(std::uint64_t size, std::uint64_t host_bytes, std::string_view json_path,
                       const std::filesystem::path& origin = {});

// "512M", "2G", "4K" when `bytes` is an exact multiple of a binary unit;
// otherwise the plain number of bytes ("1000").
std::string format_size(std::uint64_t bytes);

}  // namespace molt::core::machine
