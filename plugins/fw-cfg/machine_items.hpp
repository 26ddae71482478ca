// What fw_cfg tells firmware about the machine, built from the core's
// MachineInfo: RAM size and the e820 map, CPU counts, boot order, the serial
// console SeaBIOS should use, and, when firmware boots a kernel, the kernel,
// initrd and command line. docs/devices/fw-cfg.md lists every item.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

#include "items.hpp"

namespace molt::fw_cfg {

struct ContentOptions {
  bool dma = true;                        // advertise the DMA interface in kId
  std::uint16_t sercon_port = 0x3f8;      // "etc/sercon-port"; 0 leaves the file out
  std::uint32_t boot_fail_wait_ms = ~0u;  // "etc/boot-fail-wait"; all ones: never retry
  bool show_boot_menu = false;
  // Firmware device paths, first choice first; empty: the machine's boot
  // order, of which only entries that are already paths ("/pci@...") are used.
  std::vector<std::string> boot_order;
};

// Throws sdk::Error when a kernel or initrd to carry cannot be read.
ItemTable build_machine_items(const sdk::MachineInfo& info, const ContentOptions& options);

// The "bootorder" file's text: paths separated by newlines, NUL-terminated;
// empty when there are none.
Bytes bootorder_file(const std::vector<std::string>& paths);

// "etc/e820": one 20-byte little-endian entry per range (u64 address, u64
// length, u32 type).
Bytes e820_file(const std::vector<sdk::MemoryRange>& map);

}  // namespace molt::fw_cfg
