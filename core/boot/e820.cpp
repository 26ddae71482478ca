// The guest's e820 memory map, derived from the core's RAM layout.
#include <algorithm>

#include "core/boot/detail.hpp"

namespace molt::core::boot {

using detail::hex;
using detail::kReservedEnd;
using detail::kReservedStart;

static void validate_regions(std::vector<MemoryRegion> ram) {
  if (ram.empty()) throw BootError("the RAM layout has no regions; the guest needs memory to boot");
  for (const MemoryRegion& r : ram) {
    if (r.size == 0) throw BootError("RAM region at " + hex(r.base) + " has size 0");
    if (r.base + r.size < r.base)
      throw BootError("RAM region at " + hex(r.base) + " of size " + hex(r.size) +
                      " wraps past the top of the address space");
  }
  std::sort(ram.begin(), ram.end(), [](const auto& a, const auto& b) { return a.base < b.base; });
  for (std::size_t i = 1; i < ram.size(); ++i) {
    if (ram[i - 1].base + ram[i - 1].size > ram[i].base)
      throw BootError("RAM regions at " + hex(ram[i - 1].base) + " and " + hex(ram[i].base) + " overlap");
  }
}

static void add(std::vector<E820Entry>& map, std::uint64_t begin, std::uint64_t end, E820Type type) {
  if (begin < end) map.push_back({begin, end - begin, static_cast<std::uint32_t>(type)});
}

std::vector<E820Entry> build_e820(const std::vector<MemoryRegion>& ram) {
  validate_regions(ram);
  std::vector<E820Entry> map;
  // The window below 1 MiB that a PC keeps for the EBDA, VGA memory and ROMs is
  // reported reserved whether or not RAM backs it; molt's MP table lives there.
  add(map, kReservedStart, kReservedEnd, E820Type::Reserved);
  for (const MemoryRegion& r : ram) {
    const std::uint64_t end = r.base + r.size;
    add(map, r.base, std::min(end, kReservedStart), E820Type::Ram);
    add(map, std::max(r.base, kReservedEnd), end, E820Type::Ram);
  }
  std::sort(map.begin(), map.end(), [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
  // Contiguous RAM regions (the core may split RAM into several blocks) become one entry.
  std::vector<E820Entry> merged;
  for (const E820Entry& e : map) {
    if (!merged.empty() && merged.back().type == e.type &&
        merged.back().addr + merged.back().size == e.addr) {
      merged.back().size += e.size;
    } else {
      merged.push_back(e);
    }
  }
  return merged;
}

}  // namespace molt::core::boot
