#include "core/machine/description.hpp"

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <boost/json/value.hpp>

#include "core/machine/description_json.hpp"

namespace molt::core::machine {
namespace {

namespace json = boost::json;
using json_read::Location;
using json_read::ObjectReader;
using json_read::quote_json;

constexpr std::uint64_t kPageSize = 4096;
constexpr std::size_t kMaxDeviceIdLength = 64;
// Far beyond any hand-written description; bounds what a stray path can make us read.
constexpr std::size_t kMaxFileBytes = 16u << 20;
// sun_path holds the path and its terminating NUL.
constexpr std::size_t kMaxSocketPathBytes = sizeof(sockaddr_un::sun_path) - 1;

std::string render(const std::filesystem::path& origin, const std::string& json_path,
                   const std::string& message) {
  std::string text;
  if (!origin.empty()) text += origin.string() + ": ";
  if (!json_path.empty()) text += json_path + ": ";
  return text + message;
}

std::filesystem::path base_directory(const std::filesystem::path& origin) {
  if (origin.empty()) return std::filesystem::current_path();
  return std::filesystem::absolute(origin).lexically_normal().parent_path();
}

std::string approximate_size(std::uint64_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f GiB",
                static_cast<double>(bytes) / static_cast<double>(1ull << 30));
  return buffer;
}

std::string read_machine_type(const json::value& value, const Location& where) {
  const bool ok = value.is_string() && !value.get_string().empty() &&
                  std::all_of(value.get_string().begin(), value.get_string().end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
                  });
  if (!ok) {
    where.fail(
        "expected a machine type name such as \"molt-pc\" or \"molt-pc-1.0\" (lower-case letters, "
        "digits, '-' and '.'), got " +
        json_read::describe(value));
  }
  return std::string(value.get_string());
}

void check_memory_size(std::uint64_t size, const Location& where) {
  if (size == 0) where.fail("the memory size must not be 0; give the guest's RAM, e.g. \"256M\"");
  if (size % kPageSize != 0) {
    const std::uint64_t down = size - size % kPageSize;
    const std::uint64_t up = size > UINT64_MAX - kPageSize ? down : down + kPageSize;
    where.fail(std::to_string(size) + " bytes is not a multiple of 4 KiB (the page size); use " +
               format_size(up) + (down != 0 && down != up ? " or " + format_size(down) : "") + " instead");
  }
}

void read_memory(const json::value& value, const Location& where, const HostLimits& limits,
                 const std::filesystem::path& base, MachineDescription& desc) {
  const ObjectReader memory(value, where, "the memory settings", {"size", "backend", "path"});
  const Location size_at = memory.at("size");
  desc.memory_size =
      json_read::read_size(memory.required("size", "the guest's RAM, e.g. \"256M\""), size_at, 0, UINT64_MAX);
  check_memory_size(desc.memory_size, size_at);
  if (limits.host_memory_bytes) {
    check_memory_fits(desc.memory_size, *limits.host_memory_bytes, size_at.path, size_at.origin);
  }
  if (const auto* backend = memory.optional("backend")) {
    const std::string name =
        json_read::read_choice(*backend, memory.at("backend"), {"memfd", "anonymous", "file"});
    desc.memory_backend = name == "memfd"       ? MemoryBackend::Memfd
                          : name == "anonymous" ? MemoryBackend::Anonymous
                                                : MemoryBackend::File;
  }
  const auto* path = memory.optional("path");
  if (desc.memory_backend == MemoryBackend::File) {
    desc.memory_path = json_read::read_path(
        memory.required("path",
                        "the file that holds the guest's RAM with \"backend\": \"file\", e.g. "
                        "\"/dev/shm/vm0.ram\""),
        memory.at("path"), base);
  } else if (path) {
    memory.at("path").fail(
        std::string("a RAM file is only used with \"backend\": \"file\"; this memory's backend "
                    "is ") +
        to_string(desc.memory_backend) +
        ", which has no file: remove \"path\", or set \"backend\": \"file\"");
  }
}

KernelConfig read_kernel(const json::value& value, const Location& where, const std::filesystem::path& base) {
  const ObjectReader kernel(value, where, "the kernel settings", {"path", "initrd", "cmdline"});
  KernelConfig config;
  config.path =
      json_read::read_path(kernel.required("path", "the kernel image to boot"), kernel.at("path"), base);
  if (const auto* initrd = kernel.optional("initrd")) {
    config.initrd = json_read::read_path(*initrd, kernel.at("initrd"), base);
  }
  if (const auto* cmdline = kernel.optional("cmdline")) {
    config.cmdline = json_read::read_string(*cmdline, kernel.at("cmdline"));
    if (config.cmdline.find('\0') != std::string::npos) {
      kernel.at("cmdline").fail("a kernel command line cannot contain a NUL character");
    }
  }
  return config;
}

FirmwareConfig read_firmware(const json::value& value, const Location& where,
                             const std::filesystem::path& base) {
  const ObjectReader firmware(value, where, "the firmware settings", {"path"});
  return FirmwareConfig{json_read::read_path(
      firmware.required("path", "the BIOS image to boot, e.g. \"/usr/share/seabios/bios.bin\""),
      firmware.at("path"), base)};
}

std::vector<std::filesystem::path> read_plugin_dirs(const json::value& value, const Location& where,
                                                    const std::filesystem::path& base) {
  if (!value.is_array())
    where.fail("expected an array of directory paths, got " + json_read::describe(value));
  std::vector<std::filesystem::path> dirs;
  const auto& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i)
    dirs.push_back(json_read::read_path(array[i], where.element(i), base));
  return dirs;
}

std::filesystem::path read_api_socket(const json::value& value, const Location& where,
                                      const std::filesystem::path& base) {
  std::filesystem::path socket = json_read::read_path(value, where, base);
  if (socket.native().size() > kMaxSocketPathBytes) {
    where.fail("the socket path resolves to " + socket.string() + " (" +
               std::to_string(socket.native().size()) + " bytes); a UNIX socket path holds at most " +
               std::to_string(kMaxSocketPathBytes) + " bytes, so choose a shorter one");
  }
  return socket;
}

bool is_simple_identifier(const std::string& id) {
  if (id.empty() || id.size() > kMaxDeviceIdLength) return false;
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!letter(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9') || c == '-' || c == '_'; });
}

DeviceConfig read_device(const json::value& value, const Location& where) {
  const ObjectReader device(value, where, "a device", {"id", "type", "properties"});
  DeviceConfig config;
  config.json_path = where.path;
  config.source = where.origin;
  config.id =
      json_read::read_string(device.required("id", "a name for this device, e.g. \"com1\""), device.at("id"));
  if (!is_simple_identifier(config.id)) {
    device.at("id").fail(quote_json(config.id) +
                         " is not a simple identifier: a device id is a letter followed by up to " +
                         std::to_string(kMaxDeviceIdLength - 1) + " letters, digits, '-' or '_'");
  }
  const auto& type = device.required("type", "the device type, e.g. \"serial-16550a\"");
  if (!type.is_string() || type.get_string().empty()) {
    device.at("type").fail("expected a device type name such as \"serial-16550a\", got " +
                           json_read::describe(type));
  }
  config.type = std::string(type.get_string());
  if (const auto* properties = device.optional("properties")) {
    if (!properties->is_object()) {
      device.at("properties")
          .fail("expected an object (the device's properties), got " + json_read::describe(*properties));
    }
    config.properties = properties->get_object();
  }
  return config;
}

std::vector<DeviceConfig> read_devices(const json::value& value, const Location& where) {
  if (!value.is_array()) where.fail("expected an array of devices, got " + json_read::describe(value));
  std::vector<DeviceConfig> devices;
  std::map<std::string, std::string> path_by_id;
  const auto& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    DeviceConfig device = read_device(array[i], where.element(i));
    const auto [existing, inserted] = path_by_id.emplace(device.id, device.json_path);
    if (!inserted) {
      where.element(i).member("id").fail("device id " + quote_json(device.id) + " is already used by " +
                                         existing->second + "; each device needs its own id");
    }
    devices.push_back(std::move(device));
  }
  return devices;
}

}  // namespace

ConfigError::ConfigError(std::filesystem::path origin, std::string json_path, std::string message)
    : molt::sdk::Error(render(origin, json_path, message)),
      origin_(std::move(origin)),
      json_path_(std::move(json_path)),
      message_(std::move(message)) {}

const char* to_string(MemoryBackend backend) {
  switch (backend) {
    case MemoryBackend::Memfd:
      return "memfd";
    case MemoryBackend::Anonymous:
      return "anonymous";
    case MemoryBackend::File:
      return "file";
  }
  return "?";
}

std::string format_size(std::uint64_t bytes) {
  static constexpr struct {
    unsigned shift;
    char suffix;
  } kUnits[] = {{60, 'E'}, {50, 'P'}, {40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  if (bytes == 0) return "0";
  for (const auto& unit : kUnits) {
    if (bytes % (1ull << unit.shift) == 0) return std::to_string(bytes >> unit.shift) + unit.suffix;
  }
  return std::to_string(bytes);
}

MachineDescription parse_machine(std::string_view json_text, const std::filesystem::path& origin,
                                 const HostLimits& limits) {
  const json::value root = json_read::parse_strict(json_text, origin);
  const ObjectReader top(root, Location{origin, "$"}, "a machine description",
                         {"$schema", "machine", "vcpus", "memory", "kernel", "firmware", "plugin_dirs",
                          "api_socket", "devices"});
  const std::filesystem::path base = base_directory(origin);
  MachineDescription desc;
  desc.source = origin;
  if (const auto* schema = top.optional("$schema")) json_read::read_string(*schema, top.at("$schema"));
  if (const auto* type = top.optional("machine"))
    desc.machine_type = read_machine_type(*type, top.at("machine"));
  if (const auto* vcpus = top.optional("vcpus")) {
    desc.vcpus = static_cast<unsigned>(json_read::read_uint(*vcpus, top.at("vcpus"), 1, limits.max_vcpus));
  }
  read_memory(top.required("memory", "an object such as {\"size\": \"256M\"}"), top.at("memory"), limits,
              base, desc);
  if (const auto* firmware = top.optional("firmware"))
    desc.firmware = read_firmware(*firmware, top.at("firmware"), base);
  // With firmware the kernel is optional: the firmware boots from a disk, or
  // loads the kernel it is given through fw_cfg.
  if (const auto* kernel = top.optional("kernel")) {
    desc.kernel = read_kernel(*kernel, top.at("kernel"), base);
  } else if (!desc.firmware) {
    top.required("kernel",
                 "an object such as {\"path\": \"vmlinux\"}; or give a \"firmware\" to boot instead");
  }
  if (const auto* dirs = top.optional("plugin_dirs"))
    desc.plugin_dirs = read_plugin_dirs(*dirs, top.at("plugin_dirs"), base);
  if (const auto* socket = top.optional("api_socket"))
    desc.api_socket = read_api_socket(*socket, top.at("api_socket"), base);
  if (const auto* devices = top.optional("devices")) desc.devices = read_devices(*devices, top.at("devices"));
  return desc;
}

MachineDescription load_machine_file(const std::filesystem::path& file, const HostLimits& limits) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw ConfigError(file, "", std::string("cannot open the machine description: ") + std::strerror(errno));
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw ConfigError(file, "",
                        std::string("cannot read the machine description: ") + std::strerror(error));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      throw ConfigError(file, "", "the file is larger than 16 MiB; is it really a machine description?");
    }
  }
  ::close(fd);
  return parse_machine(text, file, limits);
}

std::optional<std::uint64_t> host_memory_bytes(const std::filesystem::path& meminfo) {
  std::ifstream in(meminfo);
  std::string line;
  // /proc/meminfo has a few dozen lines; MemTotal is the first.
  for (int lines = 0; lines < 1000 && std::getline(in, line); ++lines) {
    std::istringstream fields(line);
    std::string name, unit;
    std::uint64_t value = 0;
    if (!(fields >> name >> value) || name != "MemTotal:") continue;
    fields >> unit;
    if (unit != "kB" || value > (UINT64_MAX >> 10)) return std::nullopt;
    return value << 10;
  }
  return std::nullopt;
}

void check_memory_fits(std::uint64_t size, std::uint64_t host_bytes, std::string_view json_path,
                       const std::filesystem::path& origin) {
  if (size <= host_bytes) return;
  throw ConfigError(origin, std::string(json_path),
                    format_size(size) + " is more than this host's memory (" + approximate_size(host_bytes) +
                        " in total); give the guest less");
}

}  // namespace molt::core::machine
