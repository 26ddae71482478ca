#include "core/machine/description.hpp"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace molt::core::machine {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr const char* kOrigin = "machines/x.json";

json::object minimal() {
  return json::parse(R"({"memory": {"size": "256M"}, "kernel": {"path": "guest.elf"}})").as_object();
}

// The what() of the error the text raises, or "no error".
std::string error_of(std::string_view text, const HostLimits& limits = {}) {
  try {
    parse_machine(text, kOrigin, limits);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string error_of(const json::object& doc, const HostLimits& limits = {}) {
  return error_of(json::serialize(doc), limits);
}

// A copy of minimal() with one member set at a path of keys.
json::object with(std::initializer_list<std::string_view> keys, json::value value) {
  json::object doc = minimal();
  json::object* at = &doc;
  auto key = keys.begin();
  for (; std::next(key) != keys.end(); ++key) {
    at = &(*at)[*key].as_object();
  }
  (*at)[*key] = std::move(value);
  return doc;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "molt-machine-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(MachineDescription, GoodFileParsesToTheExpectedStruct) {
  const auto desc = parse_machine(R"({
    "$schema": "schema.json",
    "machine": "molt-pc-1.0",
    "vcpus": 2,
    "memory": {"size": "256M", "backend": "anonymous"},
    "kernel": {"path": "../build/guest/testguest.elf", "initrd": "/boot/initrd.img", "cmdline": "hello"},
    "plugin_dirs": ["plugins", "/opt/molt/plugins"],
    "api_socket": "run/molt.sock",
    "devices": [
      {"id": "com1", "type": "serial-16550a", "properties": {"backend": "stdio"}},
      {"id": "exit", "type": "debug-exit"}
    ]
  })",
                                  "/srv/vm/machines/x.json");
  EXPECT_EQ(desc.source, "/srv/vm/machines/x.json");
  EXPECT_EQ(desc.machine_type, "molt-pc-1.0");
  EXPECT_EQ(desc.vcpus, 2u);
  EXPECT_EQ(desc.memory_size, 256u << 20);
  EXPECT_EQ(desc.memory_backend, MemoryBackend::Anonymous);
  EXPECT_EQ(desc.kernel.path, "/srv/vm/build/guest/testguest.elf");
  EXPECT_EQ(desc.kernel.initrd, fs::path("/boot/initrd.img"));
  EXPECT_EQ(desc.kernel.cmdline, "hello");
  EXPECT_EQ(desc.plugin_dirs, (std::vector<fs::path>{"/srv/vm/machines/plugins", "/opt/molt/plugins"}));
  EXPECT_EQ(desc.api_socket, fs::path("/srv/vm/machines/run/molt.sock"));
  ASSERT_EQ(desc.devices.size(), 2u);
  EXPECT_EQ(desc.devices[0].id, "com1");
  EXPECT_EQ(desc.devices[0].type, "serial-16550a");
  EXPECT_EQ(desc.devices[0].json_path, "$.devices[0]");
  EXPECT_EQ(desc.devices[0].source, "/srv/vm/machines/x.json");
  EXPECT_EQ(json::value(desc.devices[0].properties), json::parse(R"({"backend": "stdio"})"));
  EXPECT_EQ(desc.devices[1].id, "exit");
  EXPECT_EQ(desc.devices[1].json_path, "$.devices[1]");
  EXPECT_TRUE(desc.devices[1].properties.empty());
}

TEST(MachineDescription, OmittedFieldsTakeTheirDefaults) {
  const auto desc = parse_machine(json::serialize(minimal()), "/m/x.json");
  EXPECT_EQ(desc.machine_type, "molt-pc");
  EXPECT_EQ(desc.vcpus, 1u);
  EXPECT_EQ(desc.memory_backend, MemoryBackend::Memfd);
  EXPECT_FALSE(desc.kernel.initrd);
  EXPECT_EQ(desc.kernel.cmdline, "");
  EXPECT_TRUE(desc.plugin_dirs.empty());
  EXPECT_FALSE(desc.api_socket);
  EXPECT_TRUE(desc.devices.empty());
}

TEST(MachineDescription, NullMeansAbsentForOptionalFields) {
  auto doc = with({"kernel", "initrd"}, nullptr);
  doc["api_socket"] = nullptr;
  doc["devices"] = json::parse(R"([{"id": "a", "type": "t", "properties": null}])");
  const auto desc = parse_machine(json::serialize(doc), "/m/x.json");
  EXPECT_FALSE(desc.kernel.initrd);
  EXPECT_FALSE(desc.api_socket);
  EXPECT_TRUE(desc.devices.at(0).properties.empty());
}

TEST(MachineDescription, MemorySizeAcceptsIntegersAndSuffixes) {
  const auto size_of = [](json::value size) {
    return parse_machine(json::serialize(with({"memory", "size"}, std::move(size))), "/m/x.json").memory_size;
  };
  EXPECT_EQ(size_of(1048576), 1u << 20);
  EXPECT_EQ(size_of("2G"), 2ull << 30);
  EXPECT_EQ(size_of("64k"), 64u << 10);
  EXPECT_EQ(size_of("0x100000"), 1u << 20);
  EXPECT_EQ(size_of("1T"), 1ull << 40);
}

TEST(MachineDescription, RelativePathsResolveAgainstTheFilesDirectory) {
  auto doc = with({"kernel", "path"}, "../build/guest/testguest.elf");
  doc["kernel"].as_object()["initrd"] = "./initrd/../initrd.img";
  doc["plugin_dirs"] = json::array{"plugins", "../lib/molt", "/abs/dir/"};
  doc["api_socket"] = "molt.sock";
  const auto desc = parse_machine(json::serialize(doc), "/work/vm/machines/pc.json");
  EXPECT_EQ(desc.kernel.path, "/work/vm/build/guest/testguest.elf");
  EXPECT_EQ(desc.kernel.initrd, fs::path("/work/vm/machines/initrd.img"));
  EXPECT_EQ(desc.plugin_dirs,
            (std::vector<fs::path>{"/work/vm/machines/plugins", "/work/vm/lib/molt", "/abs/dir/"}));
  EXPECT_EQ(desc.api_socket, fs::path("/work/vm/machines/molt.sock"));
}

TEST(MachineDescription, RelativeOriginResolvesAgainstTheCurrentDirectory) {
  const auto desc = parse_machine(json::serialize(minimal()), "machines/x.json");
  EXPECT_EQ(desc.kernel.path, fs::current_path() / "machines/guest.elf");
  const auto from_text = parse_machine(json::serialize(minimal()), "");
  EXPECT_EQ(from_text.kernel.path, fs::current_path() / "guest.elf");
}

TEST(MachineDescriptionErrors, TopLevel) {
  EXPECT_EQ(error_of("[1, 2]"), "machines/x.json: $: expected an object (a machine description), got [1,2]");
  EXPECT_EQ(
      error_of(with({"vcpu"}, 2)),
      "machines/x.json: $.vcpu: unknown field \"vcpu\"; the fields of a machine description are: $schema, "
      "machine, vcpus, memory, kernel, firmware, plugin_dirs, api_socket, devices");
  EXPECT_EQ(error_of(json::parse(R"({"kernel": {"path": "k"}})").as_object()),
            "machines/x.json: $: missing required field \"memory\" (an object such as {\"size\": \"256M\"})");
  EXPECT_EQ(
      error_of(json::parse(R"({"memory": {"size": 4096}})").as_object()),
      "machines/x.json: $: missing required field \"kernel\" (an object such as {\"path\": \"vmlinux\"}; or give "
      "a \"firmware\" to boot instead)");
  EXPECT_EQ(error_of(with({"machine"}, 7)),
            "machines/x.json: $.machine: expected a machine type name such as \"molt-pc\" or \"molt-pc-1.0\" "
            "(lower-case letters, digits, '-' and '.'), got 7");
  EXPECT_EQ(error_of(with({"machine"}, "Molt PC")),
            "machines/x.json: $.machine: expected a machine type name such as \"molt-pc\" or \"molt-pc-1.0\" "
            "(lower-case letters, digits, '-' and '.'), got \"Molt PC\"");
  EXPECT_EQ(error_of(with({"$schema"}, 1)), "machines/x.json: $.$schema: expected a string, got 1");
}

TEST(MachineDescriptionErrors, Vcpus) {
  EXPECT_EQ(error_of(with({"vcpus"}, 0)),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 255, got 0");
  EXPECT_EQ(error_of(with({"vcpus"}, 5), HostLimits{.max_vcpus = 4}),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 4, got 5");
  EXPECT_EQ(error_of(with({"vcpus"}, 4), HostLimits{.max_vcpus = 4}), "no error");
  EXPECT_EQ(error_of(with({"vcpus"}, "2")),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 255, got \"2\"");
  EXPECT_EQ(error_of(with({"vcpus"}, 1.5)),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 255, got 1.5");
  EXPECT_EQ(error_of(with({"vcpus"}, 2.0)),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 255, got 2.0");
  EXPECT_EQ(error_of(with({"vcpus"}, -1)),
            "machines/x.json: $.vcpus: expected an unsigned integer from 1 to 255, got -1");
}

TEST(MachineDescriptionErrors, MemorySizeForms) {
  const std::string forms =
      "an integer number of bytes or a string like \"512M\" or \"2G\" (suffixes K, M, G, T are powers of "
      "1024)";
  EXPECT_EQ(error_of(with({"memory", "size"}, "512X")),
            "machines/x.json: $.memory.size: expected a size (" + forms + "), got \"512X\"");
  EXPECT_EQ(error_of(with({"memory", "size"}, "")),
            "machines/x.json: $.memory.size: expected a size (" + forms + "), got \"\"");
  EXPECT_EQ(error_of(with({"memory", "size"}, "2 G")),
            "machines/x.json: $.memory.size: expected a size (" + forms + "), got \"2 G\"");
  EXPECT_EQ(error_of(with({"memory", "size"}, true)),
            "machines/x.json: $.memory.size: expected a size (" + forms + "), got true");
  EXPECT_EQ(error_of(with({"memory", "size"}, "99999999999T")),
            "machines/x.json: $.memory.size: \"99999999999T\" is too large: a size must be less than 16E "
            "(2^64 bytes)");
  EXPECT_EQ(
      error_of(with({"memory", "size"}, "0x10000000000000000")),
      "machines/x.json: $.memory.size: \"0x10000000000000000\" is too large: a size must be less than 16E "
      "(2^64 bytes)");
  // Beyond 2^64 JSON numbers arrive as doubles.
  EXPECT_EQ(error_of(R"({"memory": {"size": 18446744073709551616}, "kernel": {"path": "k"}})"),
            "machines/x.json: $.memory.size: expected a size (" + forms + "), got 1.8446744073709552e+19");
}

TEST(MachineDescriptionErrors, MemorySizeValues) {
  EXPECT_EQ(
      error_of(with({"memory", "size"}, 0)),
      "machines/x.json: $.memory.size: the memory size must not be 0; give the guest's RAM, e.g. \"256M\"");
  EXPECT_EQ(
      error_of(with({"memory", "size"}, "0K")),
      "machines/x.json: $.memory.size: the memory size must not be 0; give the guest's RAM, e.g. \"256M\"");
  EXPECT_EQ(error_of(with({"memory", "size"}, 1000)),
            "machines/x.json: $.memory.size: 1000 bytes is not a multiple of 4 KiB (the page size); use 4K "
            "instead");
  EXPECT_EQ(error_of(with({"memory", "size"}, (1u << 20) + 1)),
            "machines/x.json: $.memory.size: 1048577 bytes is not a multiple of 4 KiB (the page size); use "
            "1028K or "
            "1M instead");
  EXPECT_EQ(
      error_of(with({"memory", "size"}, "2G"), HostLimits{.host_memory_bytes = 1536ull << 20}),
      "machines/x.json: $.memory.size: 2G is more than this host's memory (1.5 GiB in total); give the guest "
      "less");
  EXPECT_EQ(error_of(with({"memory", "size"}, "1536M"), HostLimits{.host_memory_bytes = 1536ull << 20}),
            "no error");
}

TEST(MachineDescriptionErrors, MemoryObject) {
  EXPECT_EQ(error_of(with({"memory"}, "256M")),
            "machines/x.json: $.memory: expected an object (the memory settings), got \"256M\"");
  EXPECT_EQ(error_of(with({"memory"}, json::object{})),
            "machines/x.json: $.memory: missing required field \"size\" (the guest's RAM, e.g. \"256M\")");
  EXPECT_EQ(error_of(with({"memory", "backend"}, "hugetlb")),
            "machines/x.json: $.memory.backend: expected one of \"memfd\", \"anonymous\", \"file\", got "
            "\"hugetlb\"");
  EXPECT_EQ(error_of(with({"memory", "shared"}, true)),
            "machines/x.json: $.memory.shared: unknown field \"shared\"; the fields of the memory settings "
            "are: size, "
            "backend, path");
}

TEST(MachineDescription, FileBackendNamesItsRamFile) {
  json::object doc = minimal();
  doc["memory"] = json::object{{"size", "256M"}, {"backend", "file"}, {"path", "/dev/shm/vm0.ram"}};
  const MachineDescription desc = parse_machine(json::serialize(doc), "/m/x.json");
  EXPECT_EQ(desc.memory_backend, MemoryBackend::File);
  EXPECT_EQ(desc.memory_path, fs::path("/dev/shm/vm0.ram"));
  EXPECT_STREQ(to_string(desc.memory_backend), "file");
  // A relative path is the machine file's neighbour, like every path in it.
  doc["memory"].as_object()["path"] = "ram/../vm0.ram";
  EXPECT_EQ(parse_machine(json::serialize(doc), "/m/x.json").memory_path, fs::path("/m/vm0.ram"));
  // Without a file there is no path.
  EXPECT_FALSE(parse_machine(json::serialize(minimal()), "/m/x.json").memory_path);
}

TEST(MachineDescriptionErrors, FileBackendNeedsAPathAndOnlyItTakesOne) {
  json::object no_path = minimal();
  no_path["memory"] = json::object{{"size", "256M"}, {"backend", "file"}};
  EXPECT_EQ(error_of(no_path),
            "machines/x.json: $.memory: missing required field \"path\" (the file that holds the guest's RAM "
            "with \"backend\": \"file\", e.g. \"/dev/shm/vm0.ram\")");
  no_path["memory"].as_object()["path"] = nullptr;  // null is absent
  EXPECT_NE(error_of(no_path).find("missing required field \"path\""), std::string::npos);
  no_path["memory"].as_object()["path"] = "";
  EXPECT_EQ(error_of(no_path), "machines/x.json: $.memory.path: expected a non-empty path string, got \"\"");
  for (const char* backend : {"memfd", "anonymous"}) {
    json::object doc = minimal();
    doc["memory"] = json::object{{"size", "256M"}, {"backend", backend}, {"path", "/dev/shm/x"}};
    EXPECT_EQ(error_of(doc), std::string("machines/x.json: $.memory.path: a RAM file is only used with "
                                         "\"backend\": \"file\"; this memory's backend is ") +
                                 backend +
                                 ", which has no file: remove \"path\", or set \"backend\": \"file\"");
  }
  // The default backend (memfd) refuses a path too.
  EXPECT_NE(error_of(with({"memory", "path"}, "/dev/shm/x")).find("this memory's backend is memfd"),
            std::string::npos);
}

TEST(MachineDescriptionErrors, Kernel) {
  EXPECT_EQ(error_of(with({"kernel"}, json::object{})),
            "machines/x.json: $.kernel: missing required field \"path\" (the kernel image to boot)");
  EXPECT_EQ(error_of(with({"kernel", "path"}, "")),
            "machines/x.json: $.kernel.path: expected a non-empty path string, got \"\"");
  EXPECT_EQ(error_of(with({"kernel", "initrd"}, 3)),
            "machines/x.json: $.kernel.initrd: expected a non-empty path string, got 3");
  EXPECT_EQ(error_of(with({"kernel", "cmdline"}, json::array{"a"})),
            "machines/x.json: $.kernel.cmdline: expected a string, got [\"a\"]");
  EXPECT_EQ(error_of(with({"kernel", "path"}, json::string(json::string_view("a\0b", 3)))),
            "machines/x.json: $.kernel.path: a path cannot contain a NUL character");
  EXPECT_EQ(error_of(with({"kernel", "cmdline"}, json::string(json::string_view("a\0b", 3)))),
            "machines/x.json: $.kernel.cmdline: a kernel command line cannot contain a NUL character");
  EXPECT_EQ(error_of(with({"kernel", "append"}, "x")),
            "machines/x.json: $.kernel.append: unknown field \"append\"; the fields of the kernel settings "
            "are: path, "
            "initrd, cmdline");
}

TEST(MachineDescriptionErrors, PluginDirsAndApiSocket) {
  EXPECT_EQ(error_of(with({"plugin_dirs"}, "plugins")),
            "machines/x.json: $.plugin_dirs: expected an array of directory paths, got \"plugins\"");
  EXPECT_EQ(error_of(with({"plugin_dirs"}, json::array{"a", nullptr})),
            "machines/x.json: $.plugin_dirs[1]: expected a non-empty path string, got null");
  EXPECT_EQ(error_of(with({"api_socket"}, false)),
            "machines/x.json: $.api_socket: expected a non-empty path string, got false");
  const std::string long_name = "/" + std::string(110, 's');
  EXPECT_EQ(error_of(with({"api_socket"}, json::string(long_name))),
            "machines/x.json: $.api_socket: the socket path resolves to " + long_name +
                " (111 bytes); a UNIX socket path holds at most 107 bytes, so choose a shorter one");
}

TEST(MachineDescriptionErrors, Devices) {
  const auto devices = [](std::string_view text) { return with({"devices"}, json::parse(text)); };
  EXPECT_EQ(error_of(devices(R"({"id": "a"})")),
            "machines/x.json: $.devices: expected an array of devices, got {\"id\":\"a\"}");
  EXPECT_EQ(error_of(devices(R"([{"id": "a", "type": "t"}, "b"])")),
            "machines/x.json: $.devices[1]: expected an object (a device), got \"b\"");
  EXPECT_EQ(
      error_of(devices(R"([{"type": "t"}])")),
      "machines/x.json: $.devices[0]: missing required field \"id\" (a name for this device, e.g. \"com1\")");
  EXPECT_EQ(error_of(devices(R"([{"id": "a"}])")),
            "machines/x.json: $.devices[0]: missing required field \"type\" (the device type, e.g. "
            "\"serial-16550a\")");
  EXPECT_EQ(
      error_of(devices(R"([{"id": "a", "type": ""}])")),
      "machines/x.json: $.devices[0].type: expected a device type name such as \"serial-16550a\", got \"\"");
  EXPECT_EQ(
      error_of(devices(R"([{"id": "a", "type": "t", "props": {}}])")),
      "machines/x.json: $.devices[0].props: unknown field \"props\"; the fields of a device are: id, type, "
      "properties");
  EXPECT_EQ(
      error_of(devices(R"([{"id": "a", "type": "t", "properties": [1]}])")),
      "machines/x.json: $.devices[0].properties: expected an object (the device's properties), got [1]");
  EXPECT_EQ(error_of(devices(
                R"([{"id": "com1", "type": "t"}, {"id": "x", "type": "t"}, {"id": "com1", "type": "u"}])")),
            "machines/x.json: $.devices[2].id: device id \"com1\" is already used by $.devices[0]; each "
            "device needs "
            "its own id");
}

TEST(MachineDescriptionErrors, DeviceIdsAreSimpleIdentifiers) {
  const auto id_error = [](std::string id) {
    json::array devices{json::object{{"id", id}, {"type", "t"}}};
    return error_of(with({"devices"}, devices));
  };
  const std::string rule =
      " is not a simple identifier: a device id is a letter followed by up to 63 letters, "
      "digits, '-' or '_'";
  EXPECT_EQ(id_error("com 1"), "machines/x.json: $.devices[0].id: \"com 1\"" + rule);
  EXPECT_EQ(id_error("1com"), "machines/x.json: $.devices[0].id: \"1com\"" + rule);
  EXPECT_EQ(id_error(""), "machines/x.json: $.devices[0].id: \"\"" + rule);
  EXPECT_EQ(id_error("dev.0"), "machines/x.json: $.devices[0].id: \"dev.0\"" + rule);
  EXPECT_EQ(id_error("a" + std::string(64, 'b')),
            "machines/x.json: $.devices[0].id: \"a" + std::string(64, 'b') + "\"" + rule);
  EXPECT_EQ(id_error("a" + std::string(63, 'b')), "no error");
  EXPECT_EQ(id_error("net0_tap-1"), "no error");
}

TEST(MachineDescriptionErrors, InvalidJsonGivesLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"vcpus\": 1,\n  \"memory\" {}\n}"),
            "machines/x.json: invalid JSON at line 3, column 12: syntax error");
  EXPECT_EQ(error_of("{\n  \"vcpus\": 1,\n}"),
            "machines/x.json: invalid JSON at line 3, column 1: syntax error");
  EXPECT_EQ(error_of("{\"vcpus\": 1"),
            "machines/x.json: invalid JSON: the text ends at line 1, column 12 before the value is complete");
  EXPECT_EQ(error_of("{} {}"),
            "machines/x.json: invalid JSON at line 1, column 4: unexpected text after the end of the value");
  EXPECT_EQ(error_of("// comment\n{}"), "machines/x.json: invalid JSON at line 1, column 1: syntax error");
  EXPECT_EQ(error_of("  \n"), "machines/x.json: the text is empty; a machine description is a JSON object");
}

TEST(MachineDescriptionErrors, DuplicateKeysAreRejectedWithTheirPath) {
  EXPECT_EQ(
      error_of("{\"vcpus\": 1,\n \"vcpus\": 2}"),
      "machines/x.json: $.vcpus: this key appears more than once in its object (again at line 2, column 2); "
      "keep one");
  EXPECT_EQ(
      error_of(R"({"devices": [{"id": "a", "type": "t"}, {"id": "b", "properties": {"irq": 1, "irq": 2}}]})"),
      "machines/x.json: $.devices[1].properties.irq: this key appears more than once in its object (again at "
      "line 1, column 77); keep one");
  EXPECT_EQ(
      error_of(R"({"a": [[1, {"x": 1}], {"b c": {"k": 1, "k": 1}}]})"),
      "machines/x.json: $.a[1][\"b c\"].k: this key appears more than once in its object (again at line 1, "
      "column 40); keep one");
  EXPECT_EQ(error_of(R"({"a\"b": 1, "a\"b": 2})"),
            "machines/x.json: $[\"a\\\"b\"]: this key appears more than once in its object (again at line 1, "
            "column "
            "13); keep one");
}

TEST(MachineDescriptionErrors, ErrorCarriesPathAndMessageSeparately) {
  try {
    parse_machine(json::serialize(with({"vcpus"}, 0)), "m.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.origin(), "m.json");
    EXPECT_EQ(e.json_path(), "$.vcpus");
    EXPECT_EQ(e.message(), "expected an unsigned integer from 1 to 255, got 0");
  }
  // Text that came from no file has no file part.
  try {
    parse_machine("[]", "");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "$: expected an object (a machine description), got []");
  }
}

TEST(LoadMachineFile, ReadsAndResolvesAgainstTheFile) {
  TempDir dir;
  fs::create_directory(dir.path() / "machines");
  const fs::path file = dir.path() / "machines" / "pc.json";
  std::ofstream(file) << R"({"vcpus": 2, "memory": {"size": "64M"}, "kernel": {"path": "../guest.elf"}})";
  const auto desc = load_machine_file(file);
  EXPECT_EQ(desc.source, file);
  EXPECT_EQ(desc.vcpus, 2u);
  EXPECT_EQ(desc.memory_size, 64u << 20);
  EXPECT_EQ(desc.kernel.path, dir.path() / "guest.elf");
}

TEST(LoadMachineFile, UnreadableFilesNameTheSystemsReason) {
  TempDir dir;
  const fs::path missing = dir.path() / "missing.json";
  try {
    load_machine_file(missing);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              missing.string() + ": cannot open the machine description: No such file or directory");
    EXPECT_EQ(e.json_path(), "");
  }
  try {
    load_machine_file(dir.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir.path().string() + ": cannot read the machine description: Is a directory");
  }
}

TEST(LoadMachineFile, LimitsApply) {
  TempDir dir;
  const fs::path file = dir.path() / "pc.json";
  std::ofstream(file) << R"({"vcpus": 8, "memory": {"size": "64M"}, "kernel": {"path": "k"}})";
  try {
    load_machine_file(file, HostLimits{.max_vcpus = 4});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() + ": $.vcpus: expected an unsigned integer from 1 to 4, got 8");
  }
}

TEST(HostMemory, ReadsMemTotalFromAMeminfoFile) {
  TempDir dir;
  const fs::path meminfo = dir.path() / "meminfo";
  std::ofstream(meminfo) << "MemTotal:        2048000 kB\nMemFree:          100000 kB\n";
  EXPECT_EQ(host_memory_bytes(meminfo), 2048000ull * 1024);
  std::ofstream(meminfo) << "MemFree:          100000 kB\n";
  EXPECT_EQ(host_memory_bytes(meminfo), std::nullopt);
  EXPECT_EQ(host_memory_bytes(dir.path() / "absent"), std::nullopt);
  // This host has some memory, and /proc/meminfo says how much.
  const auto host = host_memory_bytes();
  ASSERT_TRUE(host);
  EXPECT_GT(*host, 16u << 20);
}

TEST(HostMemory, CheckMemoryFits) {
  EXPECT_NO_THROW(check_memory_fits(1u << 30, 1u << 30, "$.memory.size"));
  try {
    check_memory_fits(3ull << 30, 2ull << 30, "$.memory.size", "vm.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "vm.json: $.memory.size: 3G is more than this host's memory (2.0 GiB in total); give the "
                 "guest less");
  }
}

// Random byte edits of a good file either parse or raise a ConfigError; no
// other exception escapes and nothing crashes (a cheap, deterministic fuzz).
TEST(MachineDescription, MutatedInputOnlyEverRaisesConfigError) {
  const std::string good =
      R"({"machine": "molt-pc", "vcpus": 2, "memory": {"size": "256M", "backend": "memfd"},
    "kernel": {"path": "k.elf", "initrd": null, "cmdline": "x"}, "plugin_dirs": ["p"], "api_socket": "s",
    "devices": [{"id": "com1", "type": "t", "properties": {"a": 1}}, {"id": "e", "type": "u"}]})";
  const std::string alphabet = "{}[]\":,0123456789.-eE xK\\nultrfa";
  std::uint64_t seed = 0x9e3779b97f4a7c15;
  const auto next = [&seed](std::size_t bound) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return static_cast<std::size_t>(seed % bound);
  };
  std::size_t parsed = 0, rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text = good;
    for (std::size_t edits = 1 + next(3); edits > 0; --edits) {
      const std::size_t at = next(text.size());
      switch (next(3)) {
        case 0:
          text[at] = alphabet[next(alphabet.size())];
          break;
        case 1:
          text.erase(at, 1 + next(4));
          break;
        default:
          text.insert(at, 1, alphabet[next(alphabet.size())]);
      }
    }
    try {
      parse_machine(text, "/m/x.json");
      ++parsed;
    } catch (const ConfigError& e) {
      ++rejected;
      EXPECT_EQ(std::string(e.what()).rfind("/m/x.json: ", 0), 0u) << e.what();
    }
  }
  // Both outcomes occur, so the edits exercise the checks and not only the JSON syntax.
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(rejected, 0u);
}

TEST(FormatSize, PicksTheLargestExactUnit) {
  EXPECT_EQ(format_size(0), "0");
  EXPECT_EQ(format_size(1000), "1000");
  EXPECT_EQ(format_size(4096), "4K");
  EXPECT_EQ(format_size(256u << 20), "256M");
  EXPECT_EQ(format_size(3ull << 30), "3G");
  EXPECT_EQ(format_size(1536ull << 20), "1536M");
  EXPECT_EQ(format_size(1ull << 40), "1T");
}

TEST(MachineDescriptionFirmware, FirmwareMakesTheKernelOptional) {
  const auto desc = parse_machine(R"({"memory": {"size": "64M"}, "firmware": {"path": "../bios/bios.bin"}})",
                                  "/srv/vm/machines/pc.json");
  ASSERT_TRUE(desc.firmware);
  EXPECT_EQ(desc.firmware->path, "/srv/vm/bios/bios.bin");
  EXPECT_TRUE(desc.kernel.path.empty());
}

TEST(MachineDescriptionFirmware, FirmwareAndKernelTogether) {
  auto doc = minimal();
  doc["firmware"] = json::object{{"path", "/usr/share/seabios/bios.bin"}};
  const auto desc = parse_machine(json::serialize(doc), kOrigin);
  ASSERT_TRUE(desc.firmware);
  EXPECT_EQ(desc.firmware->path, "/usr/share/seabios/bios.bin");
  EXPECT_EQ(desc.kernel.path, fs::current_path() / "machines/guest.elf");
}

TEST(MachineDescriptionFirmware, NullFirmwareIsAbsent) {
  EXPECT_FALSE(parse_machine(json::serialize(with({"firmware"}, nullptr)), kOrigin).firmware);
  EXPECT_EQ(
      error_of(R"({"memory": {"size": 4096}, "firmware": null})"),
      "machines/x.json: $: missing required field \"kernel\" (an object such as {\"path\": \"vmlinux\"}; or "
      "give a \"firmware\" to boot instead)");
}

TEST(MachineDescriptionFirmware, Errors) {
  EXPECT_EQ(error_of(with({"firmware"}, "bios.bin")),
            "machines/x.json: $.firmware: expected an object (the firmware settings), got \"bios.bin\"");
  EXPECT_EQ(error_of(with({"firmware"}, json::object{})),
            "machines/x.json: $.firmware: missing required field \"path\" (the BIOS image to boot, e.g. "
            "\"/usr/share/seabios/bios.bin\")");
  EXPECT_EQ(error_of(with({"firmware"}, json::object{{"path", ""}})),
            "machines/x.json: $.firmware.path: expected a non-empty path string, got \"\"");
  EXPECT_EQ(error_of(with({"firmware"}, json::object{{"path", "b"}, {"size", 1}})),
            "machines/x.json: $.firmware.size: unknown field \"size\"; the fields of the firmware settings are: path");
  // A firmware does not excuse a broken kernel section.
  auto doc = with({"firmware"}, json::object{{"path", "b"}});
  doc["kernel"] = json::object{};
  EXPECT_EQ(error_of(doc),
            "machines/x.json: $.kernel: missing required field \"path\" (the kernel image to boot)");
}

}  // namespace
}  // namespace molt::core::machine
