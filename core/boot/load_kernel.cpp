// Picks the boot path from what the kernel file is.
#include "core/boot/detail.hpp"

namespace molt::core::boot {

BootResult load_kernel(sdk::GuestMemory& memory, const BootConfig& config) {
  const detail::ImageFile kernel = detail::read_image("kernel", config.kernel);
  if (kernel.bytes.size() < 64)
    kernel.fail("file is too small to be a kernel (" + std::to_string(kernel.bytes.size()) + " bytes)");
  // Validate the layout first so that a bad layout is reported as such, not as a
  // kernel that doesn't fit.
  build_e820(config.ram);

  std::string elf_problem = "not an ELF file";
  if (detail::is_elf(kernel)) {
    if (const auto entry = detail::find_pvh_entry(kernel))
      return detail::load_pvh(memory, config, kernel, *entry);
    elf_problem = "not a PVH ELF (no XEN_ELFNOTE_PHYS32_ENTRY note)";
  }
  if (detail::has_hdrs_magic(kernel)) return detail::load_bzimage(memory, config, kernel);
  kernel.fail(elf_problem + " and not a Linux bzImage (no HdrS magic)");
}

}  // namespace molt::core::boot
