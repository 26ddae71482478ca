#include "core/migration/fingerprint.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <span>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

#include "core/machine/machine.hpp"

namespace molt::core::migration {

namespace {

enum class Reg { Eax, Ebx, Ecx, Edx };

struct NamedBit {
  unsigned bit;
  const char* name;
};

constexpr NamedBit kLeaf1Edx[] = {{0, "fpu"},   {1, "vme"},    {2, "de"},    {3, "pse"},      {4, "tsc"},
                                  {5, "msr"},   {6, "pae"},    {7, "mce"},   {8, "cx8"},      {9, "apic"},
                                  {11, "sep"},  {12, "mtrr"},  {13, "pge"},  {14, "mca"},     {15, "cmov"},
                                  {16, "pat"},  {17, "pse36"}, {18, "pn"},   {19, "clflush"}, {21, "dts"},
                                  {22, "acpi"}, {23, "mmx"},   {24, "fxsr"}, {25, "sse"},     {26, "sse2"},
                                  {27, "ss"},   {29, "tm"},    {30, "ia64"}, {31, "pbe"}};
constexpr NamedBit kLeaf1Ecx[] = {
    {0, "pni"},     {1, "pclmulqdq"}, {2, "dtes64"},  {3, "monitor"},
    {4, "ds_cpl"},  {5, "vmx"},       {6, "smx"},     {7, "est"},
    {8, "tm2"},     {9, "ssse3"},     {10, "cid"},    {11, "sdbg"},
    {12, "fma"},    {13, "cx16"},     {14, "xtpr"},   {15, "pdcm"},
    {17, "pcid"},   {18, "dca"},      {19, "sse4_1"}, {20, "sse4_2"},
    {21, "x2apic"}, {22, "movbe"},    {23, "popcnt"}, {24, "tsc_deadline_timer"},
    {25, "aes"},    {26, "xsave"},    {28, "avx"},    {29, "f16c"},
    {30, "rdrand"}};
constexpr NamedBit kLeaf7Ebx[] = {
    {0, "fsgsbase"},    {1, "tsc_adjust"}, {2, "sgx"},       {3, "bmi1"},      {4, "hle"},
    {5, "avx2"},        {7, "smep"},       {8, "bmi2"},      {9, "erms"},      {10, "invpcid"},
    {11, "rtm"},        {12, "cqm"},       {14, "mpx"},      {15, "rdt_a"},    {16, "avx512f"},
    {17, "avx512dq"},   {18, "rdseed"},    {19, "adx"},      {20, "smap"},     {21, "avx512ifma"},
    {23, "clflushopt"}, {24, "clwb"},      {25, "intel_pt"}, {26, "avx512pf"}, {27, "avx512er"},
    {28, "avx512cd"},   {29, "sha_ni"},    {30, "avx512bw"}, {31, "avx512vl"}};
constexpr NamedBit kLeaf7Ecx[] = {{1, "avx512vbmi"},     {2, "umip"},         {3, "pku"},
                                  {5, "waitpkg"},        {6, "avx512_vbmi2"}, {8, "gfni"},
                                  {9, "vaes"},           {10, "vpclmulqdq"},  {11, "avx512_vnni"},
                                  {12, "avx512_bitalg"}, {13, "tme"},         {14, "avx512_vpopcntdq"},
                                  {16, "la57"},          {22, "rdpid"},       {24, "bus_lock_detect"},
                                  {25, "cldemote"},      {27, "movdiri"},     {28, "movdir64b"},
                                  {29, "enqcmd"},        {30, "sgx_lc"}};
constexpr NamedBit kLeaf7Edx[] = {{2, "avx512_4vnniw"},
                                  {3, "avx512_4fmaps"},
                                  {4, "fsrm"},
                                  {8, "avx512_vp2intersect"},
                                  {10, "md_clear"},
                                  {14, "serialize"},
                                  {16, "tsxldtrk"},
                                  {18, "pconfig"},
                                  {19, "arch_lbr"},
                                  {20, "ibt"},
                                  {22, "amx_bf16"},
                                  {23, "avx512_fp16"},
                                  {24, "amx_tile"},
                                  {25, "amx_int8"},
                                  {26, "spec_ctrl"},
                                  {27, "intel_stibp"},
                                  {28, "flush_l1d"},
                                  {29, "arch_capabilities"},
                                  {30, "core_capabilities"},
                                  {31, "spec_ctrl_ssbd"}};
constexpr NamedBit kLeaf7Sub1Eax[] = {{4, "avx_vnni"}, {5, "avx512_bf16"}};
constexpr NamedBit kLeafD1Eax[] = {{0, "xsaveopt"}, {1, "xsavec"}, {2, "xgetbv1"}, {3, "xsaves"}};
constexpr NamedBit kLeafExt1Edx[] = {{11, "syscall"},  {19, "mp"},      {20, "nx"},     {22, "mmxext"},
                                     {25, "fxsr_opt"}, {26, "pdpe1gb"}, {27, "rdtscp"}, {29, "lm"},
                                     {30, "3dnowext"}, {31, "3dnow"}};
constexpr NamedBit kLeafExt1Ecx[] = {
    {0, "lahf_lm"},     {2, "svm"},         {3, "extapic"},       {4, "cr8_legacy"},   {5, "abm"},
    {6, "sse4a"},       {7, "misalignsse"}, {8, "3dnowprefetch"}, {9, "osvw"},         {10, "ibs"},
    {11, "xop"},        {12, "skinit"},     {13, "wdt"},          {15, "lwp"},         {16, "fma4"},
    {17, "tce"},        {19, "nodeid_msr"}, {21, "tbm"},          {22, "topoext"},     {23, "perfctr_core"},
    {24, "perfctr_nb"}, {26, "bpext"},      {27, "ptsc"},         {28, "perfctr_llc"}, {29, "mwaitx"}};

struct FeatureRegister {
  std::uint32_t leaf;
  std::uint32_t subleaf;
  Reg reg;
  std::span<const NamedBit> bits;
};

// CPUID feature bits by the names Linux shows in /proc/cpuinfo
// (arch/x86/include/asm/cpufeatures.h). Left out on purpose: bits molt or the
// guest set per vCPU or per topology rather than per host (leaf 1 ECX.27
// OSXSAVE and leaf 7 ECX.4 OSPKE follow the guest's CR4, ECX.31 is molt's
// hypervisor bit, EDX.28 HTT follows the vCPU count, 0x80000001 ECX.1
// cmp_legacy describes the topology), and the AMD copies of the leaf 1 EDX
// bits in 0x80000001 EDX, which Linux does not name twice either. The
// speculation-control bits of leaf 7 EDX (26, 27, 30, 31) are hidden from
// /proc/cpuinfo but name MSRs a guest kernel writes, so they are here under
// Linux's macro names in lower case.
constexpr FeatureRegister kFeatureRegisters[] = {
    {1, 0, Reg::Edx, kLeaf1Edx},
    {1, 0, Reg::Ecx, kLeaf1Ecx},
    {7, 0, Reg::Ebx, kLeaf7Ebx},
    {7, 0, Reg::Ecx, kLeaf7Ecx},
    {7, 0, Reg::Edx, kLeaf7Edx},
    {7, 1, Reg::Eax, kLeaf7Sub1Eax},
    {0xd, 1, Reg::Eax, kLeafD1Eax},
    {0x80000001, 0, Reg::Edx, kLeafExt1Edx},
    {0x80000001, 0, Reg::Ecx, kLeafExt1Ecx},
};

std::uint32_t register_of(const kvm_cpuid_entry2& entry, Reg reg) {
  switch (reg) {
    case Reg::Eax:
      return entry.eax;
    case Reg::Ebx:
      return entry.ebx;
    case Reg::Ecx:
      return entry.ecx;
    case Reg::Edx:
      return entry.edx;
  }
  return 0;
}

// CpuidTable::find is not const; the table is only read here.
const kvm_cpuid_entry2* find_entry(const kvm::CpuidTable& cpuid, std::uint32_t leaf, std::uint32_t subleaf) {
  for (const kvm_cpuid_entry2& e : cpuid.entries()) {
    if (e.function == leaf && e.index == subleaf) return &e;
  }
  return nullptr;
}

std::string vendor_of(const kvm_cpuid_entry2& leaf0) {
  std::string vendor;
  for (const std::uint32_t word : {leaf0.ebx, leaf0.edx, leaf0.ecx}) {
    for (unsigned i = 0; i < 4; ++i) vendor.push_back(static_cast<char>((word >> (8 * i)) & 0xff));
  }
  // A short vendor string is NUL-padded; the NULs are no part of its name.
  vendor.erase(std::find(vendor.begin(), vendor.end(), '\0'), vendor.end());
  return vendor;
}

// Intel SDM vol. 2A, CPUID leaf 1 EAX: the extended family adds to family
// 0xF only; the extended model extends families 6 and 0xF (AMD uses the
// extended model with family 0xF only, and no AMD part reports family 6 with
// one, so the one rule serves both).
void decode_signature(std::uint32_t eax, CpuFingerprint& cpu) {
  const std::uint32_t base_family = (eax >> 8) & 0xf;
  const std::uint32_t base_model = (eax >> 4) & 0xf;
  cpu.stepping = eax & 0xf;
  cpu.family = base_family == 0xf ? base_family + ((eax >> 20) & 0xff) : base_family;
  cpu.model = (base_family == 6 || base_family == 0xf) ? (((eax >> 16) & 0xf) << 4) + base_model : base_model;
}

std::string json_text(const sdk::PropertyValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const auto* u = std::get_if<std::uint64_t>(&value)) return std::to_string(*u);
  return boost::json::serialize(boost::json::value(std::get<std::string>(value)));
}

DeviceFingerprint fingerprint_of(machine::DeviceHost& host) {
  DeviceFingerprint d;
  d.id = host.id();
  d.type = host.type().name;
  d.plugin = host.plugin();
  d.plugin_version = host.plugin_version();
  const sdk::Properties values = host.properties_snapshot();
  for (const sdk::PropertySpec& spec : host.type().properties) {
    if (!spec.migration_relevant || !values.has(spec.name)) continue;
    d.properties[spec.name] = json_text(values.values().at(spec.name));
  }
  std::lock_guard<std::mutex> guard(host.lock());
  const sdk::StateBinding binding = host.device().state();
  if (!binding.migratable()) {
    d.unmigratable = binding.unmigratable_reason;
  } else if (binding.descriptor) {
    d.descriptor = binding.descriptor->name();
    d.descriptor_version = binding.descriptor->version();
    d.descriptor_minimum = binding.descriptor->minimum_version();
  }
  return d;
}

}  // namespace

CpuFingerprint cpu_fingerprint(const kvm::CpuidTable& cpuid) {
  CpuFingerprint cpu;
  if (const kvm_cpuid_entry2* leaf0 = find_entry(cpuid, 0, 0)) cpu.vendor = vendor_of(*leaf0);
  if (const kvm_cpuid_entry2* leaf1 = find_entry(cpuid, 1, 0)) decode_signature(leaf1->eax, cpu);
  for (const FeatureRegister& r : kFeatureRegisters) {
    const kvm_cpuid_entry2* entry = find_entry(cpuid, r.leaf, r.subleaf);
    if (!entry) continue;
    const std::uint32_t value = register_of(*entry, r.reg);
    for (const NamedBit& b : r.bits) {
      if ((value >> b.bit) & 1) cpu.features.emplace_back(b.name);
    }
  }
  std::sort(cpu.features.begin(), cpu.features.end());
  // ECX is the size for every component the CPU supports, EBX for those XCR0
  // enables now; KVM's table gives both for all it supports, so the larger is
  // what a guest that enables everything needs.
  if (const kvm_cpuid_entry2* xsave = find_entry(cpuid, 0xd, 0))
    cpu.xsave_size = std::max(xsave->ebx, xsave->ecx);
  return cpu;
}

MachineFingerprint fingerprint_of(machine::Machine& machine) {
  MachineFingerprint fp;
  fp.machine_type = machine.info().machine_type;
  fp.vcpus = machine.info().vcpus;
  fp.cpu = cpu_fingerprint(machine.guest_cpuid());
  for (const auto& block : machine.ram().blocks()) fp.ram.push_back({block->name(), block->size()});
  for (const auto& host : machine.devices()) fp.devices.push_back(fingerprint_of(*host));
  return fp;
}

// --- JSON -------------------------------------------------------------------

namespace {

namespace json = boost::json;

// Property values travel as JSON values; a text that is not JSON (only a
// hand-built fingerprint has one) travels as a string of that text.
json::value property_to_json(const std::string& text) {
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec) return json::value(text);
  return parsed;
}

json::value device_to_json(const DeviceFingerprint& d) {
  json::object properties;
  for (const auto& [name, text] : d.properties) properties[name] = property_to_json(text);
  return json::object{{"id", d.id},
                      {"type", d.type},
                      {"plugin", d.plugin},
                      {"plugin_version", d.plugin_version},
                      {"descriptor", d.descriptor},
                      {"descriptor_version", d.descriptor_version},
                      {"descriptor_minimum", d.descriptor_minimum},
                      {"unmigratable", d.unmigratable},
                      {"properties", std::move(properties)}};
}

// Reads one JSON object's fields, naming the path of whatever is wrong.
// Fields it does not know are ignored, so a newer source may add some.
class Reader {
 public:
  Reader(const json::value& value, std::string path) : path_(std::move(path)) {
    object_ = value.if_object();
    if (!object_) fail(path_, "expected an object");
  }

  const json::value& at(const char* key) const {
    const json::value* v = object_->if_contains(key);
    if (!v) fail(child(key), "missing");
    return *v;
  }
  std::string child(const char* key) const { return path_ + "." + key; }

  std::string string(const char* key) const {
    const json::value& v = at(key);
    if (!v.is_string()) fail(child(key), "expected a string");
    return std::string(v.get_string());
  }
  std::uint64_t uint(const char* key, std::uint64_t max) const { return read_uint(at(key), child(key), max); }
  const json::array& array(const char* key) const {
    const json::value& v = at(key);
    if (!v.is_array()) fail(child(key), "expected an array");
    return v.get_array();
  }
  const json::object& object(const char* key) const {
    const json::value& v = at(key);
    if (!v.is_object()) fail(child(key), "expected an object");
    return v.get_object();
  }

  [[noreturn]] static void fail(const std::string& path, const std::string& why) {
    throw sdk::Error(path + ": " + why);
  }
  static std::uint64_t read_uint(const json::value& v, const std::string& path, std::uint64_t max) {
    std::uint64_t n = 0;
    if (v.is_uint64()) {
      n = v.get_uint64();
    } else if (v.is_int64() && v.get_int64() >= 0) {
      n = static_cast<std::uint64_t>(v.get_int64());
    } else {
      fail(path, "expected a non-negative integer");
    }
    if (n > max) fail(path, fmt::format("expected an integer no larger than {}", max));
    return n;
  }

 private:
  const json::object* object_ = nullptr;
  std::string path_;
};

constexpr std::uint64_t kU32Max = 0xffffffffu;

CpuFingerprint cpu_from_json(const Reader& r) {
  CpuFingerprint cpu;
  cpu.vendor = r.string("vendor");
  cpu.family = static_cast<std::uint32_t>(r.uint("family", kU32Max));
  cpu.model = static_cast<std::uint32_t>(r.uint("model", kU32Max));
  cpu.stepping = static_cast<std::uint32_t>(r.uint("stepping", kU32Max));
  const json::array& features = r.array("features");
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (!features[i].is_string())
      Reader::fail(fmt::format("{}[{}]", r.child("features"), i), "expected a string");
    cpu.features.emplace_back(features[i].get_string());
  }
  cpu.xsave_size = static_cast<std::uint32_t>(r.uint("xsave_size", kU32Max));
  return cpu;
}

DeviceFingerprint device_from_json(const Reader& r) {
  DeviceFingerprint d;
  d.id = r.string("id");
  d.type = r.string("type");
  d.plugin = r.string("plugin");
  d.plugin_version = r.string("plugin_version");
  d.descriptor = r.string("descriptor");
  d.descriptor_version = static_cast<std::uint32_t>(r.uint("descriptor_version", kU32Max));
  d.descriptor_minimum = static_cast<std::uint32_t>(r.uint("descriptor_minimum", kU32Max));
  d.unmigratable = r.string("unmigratable");
  for (const auto& [name, value] : r.object("properties")) {
    d.properties[std::string(name)] = json::serialize(value);
  }
  return d;
}

}  // namespace

boost::json::value to_json(const MachineFingerprint& fp) {
  json::array features;
  for (const std::string& f : fp.cpu.features) features.emplace_back(f);
  json::array ram;
  for (const RamBlockFingerprint& b : fp.ram) ram.push_back(json::object{{"name", b.name}, {"size", b.size}});
  json::array devices;
  for (const DeviceFingerprint& d : fp.devices) devices.push_back(device_to_json(d));
  return json::object{{"machine_type", fp.machine_type},
                      {"vcpus", fp.vcpus},
                      {"cpu", json::object{{"vendor", fp.cpu.vendor},
                                           {"family", fp.cpu.family},
                                           {"model", fp.cpu.model},
                                           {"stepping", fp.cpu.stepping},
                                           {"features", std::move(features)},
                                           {"xsave_size", fp.cpu.xsave_size}}},
                      {"ram", std::move(ram)},
                      {"devices", std::move(devices)}};
}

MachineFingerprint fingerprint_from_json(const boost::json::value& value) {
  const Reader r(value, "fingerprint");
  MachineFingerprint fp;
  fp.machine_type = r.string("machine_type");
  fp.vcpus = static_cast<unsigned>(r.uint("vcpus", kU32Max));
  fp.cpu = cpu_from_json(Reader(r.at("cpu"), r.child("cpu")));
  const json::array& ram = r.array("ram");
  for (std::size_t i = 0; i < ram.size(); ++i) {
    const Reader block(ram[i], fmt::format("{}[{}]", r.child("ram"), i));
    fp.ram.push_back({block.string("name"), block.uint("size", UINT64_MAX)});
  }
  const json::array& devices = r.array("devices");
  for (std::size_t i = 0; i < devices.size(); ++i) {
    fp.devices.push_back(device_from_json(Reader(devices[i], fmt::format("{}[{}]", r.child("devices"), i))));
  }
  return fp;
}

// --- compare ----------------------------------------------------------------

namespace {

// "1024 MiB", "68 KiB", "4097 bytes": the largest unit the size is a whole multiple of.
std::string size_text(std::uint64_t bytes) {
  if (bytes % (1u << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes % (1u << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

// What a guest can and cannot carry across hosts. Refused: a different
// vendor (the guest kernel chose vendor-specific paths at boot: SYSCALL vs
// SYSENTER in compat mode, VMCALL vs VMMCALL hypercalls, vendor MSRs), any
// feature the source offered that is missing here (the guest may already
// execute its instructions or rely on its state), and an XSAVE area here
// smaller than the source's (the vCPUs' saved extended state would not fit).
// Accepted: a different family, model or stepping. The guest reads them at
// boot to pick errata workarounds and tuning, not to decide which
// instructions exist; the feature bits decide that, so a newer (or older)
// model offering every feature runs the guest correctly. KVM and QEMU's
// migration treat them the same way: only the feature set must be a superset.
void compare_cpu(const CpuFingerprint& source, const CpuFingerprint& here, std::vector<std::string>& out) {
  if (source.vendor != here.vendor) {
    out.push_back(fmt::format("cpu vendor: {} at source, {} here", source.vendor, here.vendor));
  }
  for (const std::string& feature : source.features) {
    if (std::find(here.features.begin(), here.features.end(), feature) == here.features.end()) {
      out.push_back(fmt::format("cpu: feature {} used by the source's guest, not offered here", feature));
    }
  }
  if (source.xsave_size > here.xsave_size) {
    out.push_back(
        fmt::format("cpu: xsave area {} bytes at source, {} here", source.xsave_size, here.xsave_size));
  }
}

void compare_ram(const std::vector<RamBlockFingerprint>& source, const std::vector<RamBlockFingerprint>& here,
                 std::vector<std::string>& out) {
  std::map<std::string, std::pair<const RamBlockFingerprint*, const RamBlockFingerprint*>> blocks;
  for (const auto& b : source) blocks[b.name].first = &b;
  for (const auto& b : here) blocks[b.name].second = &b;
  for (const auto& [name, sides] : blocks) {
    const auto [src, dst] = sides;
    if (!dst) {
      out.push_back(fmt::format("ram block {}: present at source, absent here", name));
    } else if (!src) {
      out.push_back(fmt::format("ram block {}: absent at source, present here", name));
    } else if (src->size != dst->size) {
      out.push_back(fmt::format("ram block {}: {} at source, {} here", name, size_text(src->size),
                                size_text(dst->size)));
    }
  }
}

std::string state_text(const DeviceFingerprint& d) {
  if (!d.unmigratable.empty()) return "unmigratable (" + d.unmigratable + ")";
  if (d.descriptor.empty()) return "stateless";
  return "descriptor " + d.descriptor;
}

// The device's state descriptor: the destination loads the source's version v
// when its own minimum <= v <= its own version.
void compare_descriptor(const DeviceFingerprint& src, const DeviceFingerprint& dst,
                        std::vector<std::string>& out) {
  const std::string& id = src.id;
  if (!src.unmigratable.empty()) {
    out.push_back(fmt::format("device {}: cannot migrate: {}", id, src.unmigratable));
    return;
  }
  if (src.descriptor.empty() && dst.descriptor.empty() && dst.unmigratable.empty()) return;
  if (src.descriptor.empty() || dst.descriptor.empty()) {
    out.push_back(fmt::format("device {}: {} at source, {} here", id, state_text(src), state_text(dst)));
  } else if (src.descriptor != dst.descriptor) {
    out.push_back(
        fmt::format("device {}: descriptor {} at source, {} here", id, src.descriptor, dst.descriptor));
  } else if (src.descriptor_version < dst.descriptor_minimum ||
             src.descriptor_version > dst.descriptor_version) {
    out.push_back(fmt::format("device {}: descriptor {} v{} at source, this plugin loads v{}..v{}", id,
                              src.descriptor, src.descriptor_version, dst.descriptor_minimum,
                              dst.descriptor_version));
  }
}

void compare_properties(const DeviceFingerprint& src, const DeviceFingerprint& dst,
                        std::vector<std::string>& out) {
  std::map<std::string, std::pair<const std::string*, const std::string*>> names;
  for (const auto& [name, value] : src.properties) names[name].first = &value;
  for (const auto& [name, value] : dst.properties) names[name].second = &value;
  for (const auto& [name, sides] : names) {
    const auto [at_source, at_here] = sides;
    if (at_source && at_here && *at_source == *at_here) continue;
    out.push_back(fmt::format("device {}: property '{}' is {} at source, {} here", src.id, name,
                              at_source ? *at_source : "not set", at_here ? *at_here : "not set"));
  }
}

void compare_device(const DeviceFingerprint& src, const DeviceFingerprint& dst,
                    std::vector<std::string>& out) {
  if (src.type != dst.type) {
    // A different device type: its descriptor and properties say nothing more.
    out.push_back(fmt::format("device {}: type {} at source, {} here", src.id, src.type, dst.type));
    return;
  }
  compare_descriptor(src, dst, out);
  compare_properties(src, dst, out);
}

}  // namespace

std::vector<std::string> compare(const MachineFingerprint& source, const MachineFingerprint& here) {
  std::vector<std::string> out;
  if (source.machine_type != here.machine_type) {
    out.push_back(fmt::format("machine type: {} at source, {} here", source.machine_type, here.machine_type));
  }
  if (source.vcpus != here.vcpus)
    out.push_back(fmt::format("vcpus: {} at source, {} here", source.vcpus, here.vcpus));
  compare_cpu(source.cpu, here.cpu, out);
  compare_ram(source.ram, here.ram, out);
  std::map<std::string, std::pair<const DeviceFingerprint*, const DeviceFingerprint*>> devices;
  for (const auto& d : source.devices) devices[d.id].first = &d;
  for (const auto& d : here.devices) devices[d.id].second = &d;
  for (const auto& [id, sides] : devices) {
    const auto [src, dst] = sides;
    if (!dst) {
      out.push_back(fmt::format("device {}: present at source, absent here", id));
    } else if (!src) {
      out.push_back(fmt::format("device {}: absent at source, present here", id));
    } else {
      compare_device(*src, *dst, out);
    }
  }
  return out;
}

}  // namespace molt::core::migration
