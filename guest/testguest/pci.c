/* `pci`: enumerates PCI bus 0 through configuration mechanism #1 (address
 * 0xCF8, data 0xCFC), written from the PCI Local Bus Specification 3.0. Each
 * config dword costs two port accesses through the #GP gate, so the walk
 * reads only what it prints: vendor/device, class, header type, BARs (sized
 * by writing all ones with decoding off, then restored) and interrupt
 * line/pin. One `@pci` line per function, then `@pci-done count=N`. */
#include "guest.h"

#define PCI_ADDRESS 0xcf8
#define PCI_DATA 0xcfc
#define PCI_COMMAND_DECODE 0x3u /* I/O and memory space */

static uint32_t config_read(unsigned slot, unsigned function, unsigned reg) {
  outl(PCI_ADDRESS, 0x80000000u | (slot << 11) | (function << 8) | (reg & 0xfc));
  return inl(PCI_DATA);
}

static void config_write(unsigned slot, unsigned function, unsigned reg, uint32_t value) {
  outl(PCI_ADDRESS, 0x80000000u | (slot << 11) | (function << 8) | (reg & 0xfc));
  outl(PCI_DATA, value);
}

/* Writes all ones to the BAR at `reg`, reads the mask back, restores it. */
static uint32_t size_mask(unsigned slot, unsigned function, unsigned reg, uint32_t original) {
  config_write(slot, function, reg, 0xffffffffu);
  const uint32_t mask = config_read(slot, function, reg);
  config_write(slot, function, reg, original);
  return mask;
}

/* Appends " barN=kind:0xaddr/size" for each implemented BAR; returns chars written. */
static int describe_bars(unsigned slot, unsigned function, char* out, size_t room) {
  int used = 0;
  const uint32_t command = config_read(slot, function, 0x04) & 0xffff;
  if (command & PCI_COMMAND_DECODE) config_write(slot, function, 0x04, command & ~PCI_COMMAND_DECODE);
  for (unsigned bar = 0; bar < 6; ++bar) {
    const unsigned reg = 0x10 + 4 * bar;
    const uint32_t original = config_read(slot, function, reg);
    const uint32_t mask = size_mask(slot, function, reg, original);
    if (mask == 0) continue;
    const char* kind;
    uint64_t address, size;
    if (mask & 1) {
      kind = "io";
      address = original & 0xfffcu;
      size = (uint64_t)(~(mask & 0xfffcu) & 0xffffu) + 1;
    } else if ((mask & 0x6) == 0x4 && bar < 5) {
      kind = (mask & 0x8) ? "mem64p" : "mem64";
      const uint32_t original_high = config_read(slot, function, reg + 4);
      const uint32_t mask_high = size_mask(slot, function, reg + 4, original_high);
      const uint64_t full = ((uint64_t)mask_high << 32) | (mask & 0xfffffff0u);
      address = ((uint64_t)original_high << 32) | (original & 0xfffffff0u);
      size = ~full + 1;
      used += snprintf(out + used, room - (size_t)used, " bar%u=%s:0x%llx/%llu", bar, kind,
                       (unsigned long long)address, (unsigned long long)size);
      ++bar; /* the upper half */
      continue;
    } else {
      kind = (mask & 0x8) ? "mem32p" : "mem32";
      address = original & 0xfffffff0u;
      size = (uint64_t)(~(mask & 0xfffffff0u)) + 1;
      size &= 0xffffffffu;
      if (size == 0) size = 1ull << 32;
    }
    used += snprintf(out + used, room - (size_t)used, " bar%u=%s:0x%llx/%llu", bar, kind,
                     (unsigned long long)address, (unsigned long long)size);
  }
  if (command & PCI_COMMAND_DECODE) config_write(slot, function, 0x04, command);
  return used;
}

static void print_function(unsigned slot, unsigned function, uint32_t id, uint32_t header_dword) {
  const uint32_t class_rev = config_read(slot, function, 0x08);
  const uint32_t header = (header_dword >> 16) & 0xff;
  char bars[256] = "";
  if ((header & 0x7f) == 0) describe_bars(slot, function, bars, sizeof bars);
  const uint32_t interrupt = config_read(slot, function, 0x3c);
  printf("@pci dev=00:%02x.%u id=%04x:%04x rev=0x%02x class=0x%06x header=0x%02x irq_pin=%u irq_line=%u%s\n", slot,
         function, id & 0xffff, id >> 16, class_rev & 0xff, class_rev >> 8, header, (interrupt >> 8) & 0xff,
         interrupt & 0xff, bars);
}

int scenario_pci(int argc, char** argv) {
  (void)argc;
  (void)argv;
  unsigned count = 0;
  for (unsigned slot = 0; slot < 32; ++slot) {
    const uint32_t id0 = config_read(slot, 0, 0);
    if ((id0 & 0xffff) == 0xffff) continue;
    const uint32_t header0 = config_read(slot, 0, 0x0c);
    const unsigned functions = (header0 & 0x00800000u) ? 8 : 1;
    for (unsigned function = 0; function < functions; ++function) {
      const uint32_t id = function == 0 ? id0 : config_read(slot, function, 0);
      if ((id & 0xffff) == 0xffff) continue;
      const uint32_t header = function == 0 ? header0 : config_read(slot, function, 0x0c);
      print_function(slot, function, id, header);
      ++count;
    }
  }
  printf("@pci-done count=%u\n", count);
  if (count == 0) fail("no-pci");
  return 0;
}
