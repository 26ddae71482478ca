/* User-mode entry of the test guest: reads hvm_start_info, brings up the
 * console and runs the scenario the command line names. */
#include "guest.h"

#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1
#define MAX_CMDLINE 512
#define MAX_ARGS 16

/* struct hvm_start_info / hvm_memmap_table_entry (Xen public ABI). */
struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr; /* version >= 1 */
  uint32_t memmap_entries;
  uint32_t reserved;
};
struct hvm_memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

struct ram_range ram_ranges[MAX_RAM_RANGES];
unsigned ram_range_count;
static char cmdline[MAX_CMDLINE];
static uint64_t entry_tsc;

NORETURN void user_entry(uint64_t start_info_paddr, uint32_t tsc_lo, uint32_t tsc_hi);
NORETURN void user_fault_entry(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cr2);

NORETURN void guest_exit(uint32_t value) {
  console_flush();
  outl(DEBUG_EXIT_PORT, value);
  halt_forever(); /* no debug-exit device: stop here */
}

NORETURN void fail(const char* reason) {
  printf("@result fail reason=%s\n", reason);
  guest_exit(1);
}

NORETURN void user_fault_entry(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cr2) {
  console_break_lock();
  printf("@fault vector=%lu error=%#lx rip=%#lx cr2=%#lx\n", vector, error, rip, cr2);
  fail("exception");
}

/* Copies what we need out of the start info before anything can overwrite it. */
static const char* read_start_info(uint64_t paddr) {
  const struct hvm_start_info* si = (const struct hvm_start_info*)paddr;
  if (paddr == 0 || si->magic != HVM_START_MAGIC) return "bad-start-info";
  if (si->cmdline_paddr != 0) {
    const char* src = (const char*)si->cmdline_paddr;
    size_t n = 0;
    while (n + 1 < MAX_CMDLINE && src[n] != '\0') n++;
    memcpy(cmdline, src, n);
    cmdline[n] = '\0';
  }
  if (si->version < 1 || si->memmap_paddr == 0) return "no-memmap";
  const struct hvm_memmap_entry* map = (const struct hvm_memmap_entry*)si->memmap_paddr;
  for (uint32_t i = 0; i < si->memmap_entries && i < 128; i++) {
    if (map[i].type != E820_RAM || map[i].size == 0 || ram_range_count == MAX_RAM_RANGES) continue;
    ram_ranges[ram_range_count].start = map[i].addr;
    ram_ranges[ram_range_count].end = map[i].addr + map[i].size;
    ram_range_count++;
  }
  return NULL;
}

/* Splits the command line in place; tokens with '=' (console=ttyS0) are the
 * VMM's or the kernel's business, not ours. */
static int split_args(char* s, char** argv) {
  int argc = 0;
  while (*s != '\0' && argc < MAX_ARGS) {
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '\0') break;
    char* token = s;
    bool has_equals = false;
    while (*s != '\0' && *s != ' ' && *s != '\t') has_equals |= *s++ == '=';
    if (*s != '\0') *s++ = '\0';
    if (!has_equals) argv[argc++] = token;
  }
  return argc;
}

static int scenario_hello(void) {
  const struct clock_info* clock = clock_init();
  uint64_t us = tsc_to_us(rdtsc() - entry_tsc);
  printf("testguest: hello, TSC at %lu kHz from %s\n", clock->tsc_khz, clock->source);
  printf("@ready us=%lu tsc_khz=%lu clock=%s\n", us, clock->tsc_khz, clock->source);
  return 0;
}

/* Average cycles of one port access through each ring-0 path. Port 0x80 is a
 * write-only sink on PCs; port 0x21 (PIC mask) reads without side effects. */
#define PORTIO_ROUNDS 2000
static void report_cost(const char* path, const char* op, uint64_t start, uint64_t tsc_khz) {
  uint64_t cycles = (rdtsc() - start) / PORTIO_ROUNDS;
  printf("@portio path=%s op=%s cycles=%lu ns=%lu\n", path, op, cycles, cycles * 1000000 / tsc_khz);
}

static int scenario_portio(void) {
  uint64_t khz = clock_init()->tsc_khz;
  uint64_t t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) null_gate();
  report_cost("syscall", "null", t, khz);
  t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) gate_call_outb(0x80, 0);
  report_cost("syscall", "outb", t, khz);
  t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) (void)gate_call_inb(0x21);
  report_cost("syscall", "inb", t, khz);
  t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) outb(0x80, 0);
  report_cost("gp", "outb", t, khz);
  t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) (void)inb(0x21);
  report_cost("gp", "inb", t, khz);
  t = rdtsc();
  for (int i = 0; i < PORTIO_ROUNDS; i++) outl(0x80, 0);
  report_cost("gp", "outl", t, khz);
  return 0;
}

NORETURN void user_entry(uint64_t start_info_paddr, uint32_t tsc_lo, uint32_t tsc_hi) {
  entry_tsc = ((uint64_t)tsc_hi << 32) | tsc_lo;
  const char* start_info_error = read_start_info(start_info_paddr & 0xffffffffu);
  console_init();
  printf("testguest: command line \"%s\"\n", cmdline);
  if (start_info_error != NULL) fail(start_info_error);

  char* argv[MAX_ARGS];
  int argc = split_args(cmdline, argv);
  int status;
  if (argc == 0) {
    fail("no-scenario");
  } else if (strcmp(argv[0], "hello") == 0) {
    status = scenario_hello();
  } else if (strcmp(argv[0], "memtest") == 0) {
    status = scenario_memtest(argc, argv);
  } else if (strcmp(argv[0], "cpus") == 0) {
    status = scenario_cpus(argc, argv);
  } else if (strcmp(argv[0], "pci") == 0) {
    status = scenario_pci(argc, argv);
  } else if (strcmp(argv[0], "ide") == 0) {
    status = scenario_ide(argc, argv);
  } else if (strcmp(argv[0], "portio") == 0) {
    status = scenario_portio();
  } else if (strcmp(argv[0], "rtc") == 0) {
    status = scenario_rtc(argc, argv);
  } else if (strcmp(argv[0], "counter") == 0) {
    status = scenario_counter(argc, argv);
  } else if (strcmp(argv[0], "soak") == 0) {
    scenario_soak(argc, argv);
  } else {
    fail("unknown-scenario");
  }
  if (status != 0) guest_exit(1);
  printf("@result pass\n");
  guest_exit(0);
}
