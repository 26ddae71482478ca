// Guest boot preparation: what the core calls after mapping guest RAM and
// before starting vCPUs. load_kernel() places a PVH ELF (the test guest, Linux
// vmlinux) or a Linux bzImage (64-bit boot protocol) in guest RAM together with
// its command line, initrd, memory map and MP table, and returns the register
// state the boot vCPU must start in. docs/boot.md lists what goes where.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <molt/sdk/error.hpp>

namespace molt::sdk {
class GuestMemory;
}

namespace molt::core::boot {

// A kernel, initrd or layout that cannot be booted; the message is one sentence
// naming the file and what is wrong with it.
class BootError : public sdk::Error {
 public:
  using sdk::Error::Error;
};

// One block of guest RAM as the core lays it out (e.g. {0, 3 GiB} and {4 GiB, rest}).
struct MemoryRegion {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
};

enum class E820Type : std::uint32_t { Ram = 1, Reserved = 2 };

struct E820Entry {
  std::uint64_t addr = 0;
  std::uint64_t size = 0;
  std::uint32_t type = 0;  // E820Type values
  bool operator==(const E820Entry&) const = default;
};

// A PCI interrupt as the MP table describes it: INTx `pin` (1-4) of the
// functions in `slot` of bus 0 reaches IOAPIC input `gsi` (level, active low).
struct PciInterrupt {
  unsigned slot = 0;
  unsigned pin = 1;
  unsigned gsi = 16;
};
struct PciBusInfo {
  std::vector<PciInterrupt> interrupts;
};

struct BootConfig {
  std::filesystem::path kernel;
  std::optional<std::filesystem::path> initrd;
  std::string cmdline;
  std::vector<MemoryRegion> ram;
  unsigned vcpus = 1;  // processors listed in the MP table, APIC ids 0..vcpus-1
  std::optional<PciBusInfo> pci;  // PCI bus 0 and its interrupts, for the MP table
};

enum class EntryMode { Protected32, Long64 };

// A segment register with its hidden part, field for field as KVM's kvm_segment.
struct Segment {
  std::uint64_t base = 0;
  std::uint32_t limit = 0;
  std::uint16_t selector = 0;
  std::uint8_t type = 0;
  std::uint8_t present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0, avl = 0;
};

// Everything the core needs to set the boot vCPU's regs and sregs. Registers not
// named here are zero; `data` goes into DS, ES, FS, GS and SS.
struct CpuEntryState {
  EntryMode mode = EntryMode::Protected32;
  std::uint64_t rip = 0, rsp = 0, rsi = 0, rbx = 0;
  std::uint64_t rflags = 0x2;  // bit 1 is reserved and reads as one; IF clear
  std::uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
  Segment code, data, tr;
  std::uint64_t gdt_base = 0;
  std::uint16_t gdt_limit = 0;
  std::uint64_t idt_base = 0;
  std::uint16_t idt_limit = 0;
};

struct BootResult {
  CpuEntryState bsp;
  std::string kernel_kind;       // "pvh-elf" or "bzimage"
  std::uint64_t kernel_end = 0;  // first byte above what the kernel occupies (bzImage: load + init_size)
  std::vector<E820Entry> e820;   // the map handed to the guest
  std::uint64_t initrd_addr = 0, initrd_size = 0;  // 0, 0 without an initrd
  std::uint64_t mp_table_addr = 0;                 // the MP floating pointer structure
};

// The guest's memory map for `ram`: RAM entries for every region, minus the
// window 0x9fc00-0xfffff (EBDA, VGA, option and BIOS ROMs), which is always
// reported reserved. Sorted by address. Throws BootError on empty, overlapping or
// wrapping regions.
std::vector<E820Entry> build_e820(const std::vector<MemoryRegion>& ram);

// Writes an MP 1.4 floating pointer and configuration table (processors, ISA
// bus, IOAPIC with id `vcpus`, ISA IRQ routing, LINT0/LINT1) at 0x9fc00 when it
// fits in that 1 KiB, else at 0xf0000. Returns the floating pointer's address.
// With `pci`, PCI bus 0 is MP bus 0 (Linux matches MP bus ids to PCI bus
// numbers), ISA becomes bus 1, and each PCI interrupt gets an I/O interrupt
// entry. Throws BootError if vcpus is 0 or above 254, a PCI interrupt is out of
// range, or RAM does not hold the table.
std::uint64_t write_mp_table(sdk::GuestMemory& memory, unsigned vcpus,
                             const std::optional<PciBusInfo>& pci = std::nullopt);

// Loads config.kernel (PVH ELF or bzImage) and everything it needs.
BootResult load_kernel(sdk::GuestMemory& memory, const BootConfig& config);

}  // namespace molt::core::boot
