#include "machine_items.hpp"

#include <cstring>
#include <fstream>

#include <molt/sdk/error.hpp>

namespace molt::fw_cfg {

namespace {

// Where QEMU's linuxboot expects the parts of a bzImage (boot protocol 2.02+).
constexpr std::uint32_t kLinuxSetupAddr = 0x10000;
constexpr std::uint32_t kLinuxCmdlineAddr = 0x20000;
constexpr std::uint32_t kLinuxKernelAddr = 0x100000;
constexpr std::uint64_t kInitrdCeiling = 0x3800'0000;  // initrd_addr_max of older kernels, +1

Bytes read_file(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw sdk::Error("fw_cfg: cannot read the " + what + " " + path + " to hand to the firmware");
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (size > kMaxItemSize) throw sdk::Error("fw_cfg: the " + what + " " + path + " is larger than 1 GiB");
  Bytes bytes(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in) throw sdk::Error("fw_cfg: reading the " + what + " " + path + " failed");
  return bytes;
}

bool is_bzimage(const Bytes& kernel) {
  return kernel.size() > 0x206 && std::memcmp(kernel.data() + 0x202, "HdrS", 4) == 0;
}

std::uint64_t low_ram_end(const sdk::MachineInfo& info) {
  std::uint64_t end = 0;
  for (const sdk::MemoryRange& r : info.ram)
    if (r.base == 0) end = r.size;
  return end;
}

// Kernel, initrd and command line for firmware that boots Linux itself (QEMU's
// linuxboot option ROM reads these). A bzImage is split as QEMU splits it: the
// real-mode setup sectors, then the protected-mode kernel.
void add_kernel_items(ItemTable& items, const sdk::MachineInfo& info) {
  Bytes kernel = read_file("kernel", info.kernel_path);
  Bytes setup;
  if (is_bzimage(kernel)) {
    const unsigned sects = kernel[0x1f1] == 0 ? 4 : kernel[0x1f1];
    const std::size_t setup_size = std::min<std::size_t>((sects + 1) * 512, kernel.size());
    setup.assign(kernel.begin(), kernel.begin() + static_cast<std::ptrdiff_t>(setup_size));
    kernel.erase(kernel.begin(), kernel.begin() + static_cast<std::ptrdiff_t>(setup_size));
  }
  items.set(kKernelAddr, le_bytes(kLinuxKernelAddr, 4));
  items.set(kKernelSize, le_bytes(kernel.size(), 4));
  items.set(kKernelData, std::move(kernel));
  items.set(kSetupAddr, le_bytes(setup.empty() ? 0 : kLinuxSetupAddr, 4));
  items.set(kSetupSize, le_bytes(setup.size(), 4));
  items.set(kSetupData, std::move(setup));

  Bytes cmdline(info.cmdline.begin(), info.cmdline.end());
  cmdline.push_back(0);
  items.set(kCmdlineAddr, le_bytes(kLinuxCmdlineAddr, 4));
  items.set(kCmdlineSize, le_bytes(cmdline.size(), 4));
  items.set(kCmdlineData, std::move(cmdline));

  Bytes initrd;
  std::uint64_t initrd_addr = 0;
  if (!info.initrd_path.empty()) {
    initrd = read_file("initrd", info.initrd_path);
    const std::uint64_t ceiling = std::min(low_ram_end(info), kInitrdCeiling);
    if (initrd.size() + kLinuxKernelAddr > ceiling)
      throw sdk::Error("fw_cfg: the initrd " + info.initrd_path + " does not fit below " +
                       std::to_string(ceiling));
    initrd_addr = (ceiling - initrd.size()) & ~std::uint64_t{0xfff};
  }
  items.set(kInitrdAddr, le_bytes(initrd_addr, 4));
  items.set(kInitrdSize, le_bytes(initrd.size(), 4));
  items.set(kInitrdData, std::move(initrd));
}

std::vector<std::string> firmware_paths(const sdk::MachineInfo& info, const ContentOptions& options) {
  if (!options.boot_order.empty()) return options.boot_order;
  std::vector<std::string> paths;
  for (const std::string& entry : info.boot_order)
    if (!entry.empty() && entry[0] == '/') paths.push_back(entry);
  return paths;
}

}  // namespace

Bytes bootorder_file(const std::vector<std::string>& paths) {
  Bytes out;
  for (const std::string& path : paths) {
    if (!out.empty()) out.push_back('\n');
    out.insert(out.end(), path.begin(), path.end());
  }
  if (!out.empty()) out.push_back(0);
  return out;
}

Bytes e820_file(const std::vector<sdk::MemoryRange>& map) {
  Bytes out;
  for (const sdk::MemoryRange& r : map) {
    const Bytes addr = le_bytes(r.base, 8), len = le_bytes(r.size, 8), type = le_bytes(r.e820_type, 4);
    out.insert(out.end(), addr.begin(), addr.end());
    out.insert(out.end(), len.begin(), len.end());
    out.insert(out.end(), type.begin(), type.end());
  }
  return out;
}

ItemTable build_machine_items(const sdk::MachineInfo& info, const ContentOptions& options) {
  ItemTable items;
  items.set(kSignature, Bytes{'Q', 'E', 'M', 'U'});
  items.set(kId, le_bytes(kFeatureTraditional | (options.dma ? kFeatureDma : 0), 4));
  items.set(kUuid, Bytes(16, 0));
  items.set(kRamSize, le_bytes(info.ram_size, 8));
  items.set(kNoGraphic, le_bytes(1, 2));  // molt has no display
  items.set(kNbCpus, le_bytes(info.vcpus, 2));
  items.set(kMaxCpus, le_bytes(info.vcpus, 2));
  items.set(kBootMenu, le_bytes(options.show_boot_menu ? 1 : 0, 2));

  items.add_file("etc/e820", e820_file(info.e820));
  items.add_file("etc/show-boot-menu", le_bytes(options.show_boot_menu ? 1 : 0, 2));
  items.add_file("etc/boot-fail-wait", le_bytes(options.boot_fail_wait_ms, 4));
  if (options.sercon_port != 0) items.add_file("etc/sercon-port", le_bytes(options.sercon_port, 2));
  const Bytes bootorder = bootorder_file(firmware_paths(info, options));
  if (!bootorder.empty()) items.add_file("bootorder", bootorder);

  if (!info.firmware_path.empty() && !info.kernel_path.empty()) add_kernel_items(items, info);
  items.seal();
  return items;
}

}  // namespace molt::fw_cfg
