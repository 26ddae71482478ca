/* soak MIB [DISK_SECTORS]: keeps the guest busy in every way a migration
 * must preserve, forever (until the VM is stopped), and prints one
 * `@soak round=` line per round. Each round on the BSP:
 *   - memtest over its slice of MIB MiB (memtest.c's pattern: address XOR a
 *     per-round seed), in ring 3 at native speed, so RAM is dirtied fast;
 *   - reads back and checks the disk sector the previous round wrote, then
 *     writes this round's sector (round % DISK_SECTORS) on the primary master
 *     by DMA, with a pattern a host can check in the image file;
 *   - reads the RTC (two identical readings, as the rtc scenario does);
 *   - polls the console's line status once and echoes each received line
 *     as `@echo <line>`.
 * With more vCPUs, each AP runs its own memtest loop over its own slice and
 * publishes its round and error counts, which the BSP sums into its line.
 *
 * Port accesses cost ~50-80 us each (the #GP gate), so the round keeps them
 * few: 11 per DMA command, 1 LSR poll, ~32 for the RTC and ~9 per 8 bytes
 * of the line printed (17 per 16 bytes); the RAM work is free of them. */
#include "guest.h"

#define SECTOR 512
#define DEFAULT_DISK_SECTORS 64
#define MAX_DISK_REPORTS 16
#define DMA_TIMEOUT_US 1000000ull

/* ATA taskfile and bus master (see ide.c for the sources). */
#define ATA_CMD 0x1f0
#define REG_COUNT 2
#define REG_LBA_LOW 3
#define REG_LBA_MID 4
#define REG_LBA_HIGH 5
#define REG_DEVICE 6
#define REG_STATUS 7
#define REG_ERROR 1
#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DF 0x20
#define ST_BSY 0x80
#define CMD_READ_DMA 0xc8
#define CMD_WRITE_DMA 0xca
#define BM_COMMAND 0
#define BM_STATUS 2
#define BM_PRD 4
#define BM_START 0x01
#define BM_TO_MEMORY 0x08
#define BM_ERROR 0x02
#define BM_IRQ 0x04
#define BM_CAPABLE 0x60

/* COM1 receive side. */
#define UART_RBR 0
#define UART_LSR 5
#define LSR_DR 0x01
#define UART_FIFO_DEPTH 16
#define ECHO_MAX 120

/* xAPIC and AP start (the same sequence as smp.c's `cpus`). */
#define LAPIC_ID 0x020
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_INIT_ASSERT 0xc500
#define ICR_INIT_DEASSERT 0x8500
#define ICR_STARTUP 0x0600
#define AP_PROBE_US 300000
#define SOAK_MAX_CPUS 16
#define AP_STACK_SIZE 8192

/* ---- the disk pattern ----
 * Little-endian sector: "SOAK", u32 round, u32 sector, u32 CRC-32 (IEEE,
 * as zlib's crc32) of bytes 16-511, then words 4-127 = soak_word(). */
static uint32_t crc32_ieee(const uint8_t* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

static uint32_t soak_word(uint32_t round, uint32_t sector, unsigned i) {
  uint32_t x = round * 0x9e3779b1u ^ sector * 0x85ebca77u ^ i * 0xc2b2ae3du;
  x ^= x >> 16;
  x *= 0x7feb352du;
  return x ^ (x >> 15);
}

static void fill_sector(uint32_t round, uint32_t sector, uint32_t* words) {
  memcpy(words, "SOAK", 4);
  words[1] = round;
  words[2] = sector;
  for (unsigned i = 4; i < SECTOR / 4; i++) words[i] = soak_word(round, sector, i);
  words[3] = crc32_ieee((const uint8_t*)&words[4], SECTOR - 16);
}

/* ---- one-sector DMA on the primary master ---- */
static uint16_t bm_base;
static uint32_t prd[2] __attribute__((aligned(16)));
static uint32_t sector_buffer[SECTOR / 4] __attribute__((aligned(SECTOR)));
static unsigned disk_reports;

static void disk_report(const char* op, uint32_t lba, uint8_t bm, uint8_t status) {
  if (disk_reports++ >= MAX_DISK_REPORTS) return;
  printf("@soak disk-error op=%s sector=%u bm_status=0x%02x status=0x%02x error=0x%02x\n", op, lba, bm,
         status, inb(ATA_CMD + REG_ERROR));
}

/* READ DMA / WRITE DMA (28-bit: 5 taskfile writes) of sector `lba` through
 * sector_buffer: 11 port accesses when the first status poll finds it done.
 * The PRD table address was loaded once at start; it is device state a
 * migration must carry. */
static bool dma_sector(uint32_t lba, bool write) {
  uint8_t direction = write ? 0 : BM_TO_MEMORY;
  outb(bm_base + BM_STATUS, BM_CAPABLE | BM_ERROR | BM_IRQ); /* clear interrupt and error */
  outb(ATA_CMD + REG_COUNT, 1);
  outb(ATA_CMD + REG_LBA_LOW, (uint8_t)lba);
  outb(ATA_CMD + REG_LBA_MID, (uint8_t)(lba >> 8));
  outb(ATA_CMD + REG_LBA_HIGH, (uint8_t)(lba >> 16));
  outb(ATA_CMD + REG_DEVICE, (uint8_t)(0x40 | ((lba >> 24) & 0x0f)));
  outb(ATA_CMD + REG_STATUS, write ? CMD_WRITE_DMA : CMD_READ_DMA);
  outb(bm_base + BM_COMMAND, direction | BM_START);
  uint64_t deadline = rdtsc() + DMA_TIMEOUT_US * clock_init()->tsc_khz / 1000;
  uint8_t bm;
  bool timed_out = false;
  while (!((bm = inb(bm_base + BM_STATUS)) & (BM_IRQ | BM_ERROR))) {
    if (rdtsc() > deadline) {
      timed_out = true;
      break;
    }
  }
  outb(bm_base + BM_COMMAND, direction); /* stop the engine */
  uint8_t status = inb(ATA_CMD + REG_STATUS);
  bool ok = !timed_out && !(bm & BM_ERROR) && !(status & (ST_ERR | ST_DF | ST_BSY | ST_DRQ));
  if (!ok)
    disk_report(timed_out ? (write ? "write-timeout" : "read-timeout") : (write ? "write" : "read"), lba, bm,
                status);
  return ok;
}

/* Checks the sector read back against round `round`'s pattern and names the
 * first differing word. */
static bool check_sector(uint32_t round, uint32_t sector) {
  uint32_t expected[SECTOR / 4];
  fill_sector(round, sector, expected);
  for (unsigned i = 0; i < SECTOR / 4; i++) {
    if (sector_buffer[i] == expected[i]) continue;
    if (disk_reports++ < MAX_DISK_REPORTS)
      printf("@soak disk-corrupt sector=%u round=%u word=%u expected=0x%08x got=0x%08x got_round=%u\n",
             sector, round, i, expected[i], sector_buffer[i], sector_buffer[1]);
    return false;
  }
  return true;
}

/* Verifies what round-1 wrote (if any), then writes this round's sector. */
static bool disk_round(uint64_t round, uint32_t disk_sectors) {
  bool ok = true;
  if (round > 1) {
    uint32_t previous = (uint32_t)((round - 1) % disk_sectors);
    memset(sector_buffer, 0, sizeof sector_buffer);
    ok = dma_sector(previous, false) && check_sector((uint32_t)(round - 1), previous);
  }
  uint32_t sector = (uint32_t)(round % disk_sectors);
  fill_sector((uint32_t)round, sector, sector_buffer);
  return dma_sector(sector, true) && ok;
}

static uint32_t attach_disk(uint64_t want_sectors) {
  uint64_t sectors = ide_attach(&bm_base);
  if (sectors < want_sectors || want_sectors > 0x0fffffffu) {
    printf("@soak disk-too-small sectors=%lu wanted=%lu\n", sectors, want_sectors);
    fail("soak-disk-too-small");
  }
  prd[0] = (uint32_t)(uintptr_t)sector_buffer;
  prd[1] = SECTOR | 0x80000000u; /* one region, end of table */
  outl(bm_base + BM_PRD, (uint32_t)(uintptr_t)prd);
  return (uint32_t)want_sectors;
}

/* ---- console input: one LSR poll per round, `@echo` per line ---- */
static char echo_line[ECHO_MAX + 1];
static unsigned echo_length;

static void poll_console(void) {
  for (unsigned i = 0; i < UART_FIFO_DEPTH && (inb(COM1_PORT + UART_LSR) & LSR_DR); i++) {
    char c = (char)inb(COM1_PORT + UART_RBR);
    if (c == '\r' || c == '\n') {
      if (echo_length == 0) continue; /* the \n of a \r\n, or an empty line */
      echo_line[echo_length] = '\0';
      printf("@echo %s\n", echo_line);
      echo_length = 0;
    } else if (c >= 0x20 && c < 0x7f && echo_length < ECHO_MAX) {
      echo_line[echo_length++] = c;
    }
  }
}

/* ---- APs: each loops memtest over its own slice ---- */
struct iret_frame {
  uint64_t rip, cs, rflags, rsp, ss;
};
extern char ap_trampoline[], ap_trampoline_end[];
extern volatile uint16_t ap_tss_sel;
extern struct iret_frame* volatile ap_iret_frame_ptr;

enum { AP_WAIT, AP_RUN, AP_HALT };
struct ap_worker {
  int online, command;     /* AP sets online; BSP sets command */
  uint64_t rounds, errors; /* published by the AP after each round */
  struct memtest_segment segs[MEMTEST_MAX_SEGMENTS];
  unsigned seg_count;
};

static struct ap_worker workers[SOAK_MAX_CPUS];
static struct iret_frame soak_ap_frames[SOAK_MAX_CPUS];
static uint8_t soak_ap_stacks[SOAK_MAX_CPUS][AP_STACK_SIZE] __attribute__((aligned(16)));
static volatile unsigned starting_slot;

static uint32_t lapic_read(uint32_t reg) {
  return mmio_read32(LAPIC_BASE + reg);
}
static void lapic_write(uint32_t reg, uint32_t value) {
  mmio_write32(LAPIC_BASE + reg, value);
}

static void send_ipi(uint8_t apic_id, uint32_t command) {
  lapic_write(LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
  lapic_write(LAPIC_ICR_LOW, command);
  for (unsigned i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING) != 0; i++)
    cpu_relax();
}

NORETURN void soak_ap_entry(void);
NORETURN void soak_ap_entry(void) {
  struct ap_worker* w = &workers[starting_slot];
  __atomic_store_n(&w->online, 1, __ATOMIC_RELEASE);
  int command;
  while ((command = __atomic_load_n(&w->command, __ATOMIC_ACQUIRE)) == AP_WAIT) cpu_relax();
  if (command != AP_RUN) halt_forever();
  uint64_t printed = 0, errors = 0;
  for (uint64_t round = 1;; round++) {
    uint64_t seed = memtest_round_seed(round);
    memtest_write(w->segs, w->seg_count, seed);
    errors += memtest_verify(w->segs, w->seg_count, seed, &printed);
    __atomic_store_n(&w->errors, errors, __ATOMIC_RELAXED);
    __atomic_store_n(&w->rounds, round, __ATOMIC_RELEASE);
  }
}

static bool wait_ap_online(unsigned slot, uint64_t timeout_us) {
  uint64_t start = rdtsc();
  while (!__atomic_load_n(&workers[slot].online, __ATOMIC_ACQUIRE)) {
    if (tsc_to_us(rdtsc() - start) > timeout_us) return false;
    cpu_relax();
  }
  return true;
}

/* INIT, 10 ms, SIPI, and a second SIPI if the AP has not shown up. */
static bool start_ap(unsigned slot, uint8_t apic_id) {
  soak_ap_frames[slot] =
      (struct iret_frame){(uint64_t)(uintptr_t)soak_ap_entry, UCODE_SEL, 0x2,
                          (uint64_t)(uintptr_t)(soak_ap_stacks[slot] + AP_STACK_SIZE) - 8, UDATA_SEL};
  ap_tss_sel = (uint16_t)(TSS0_SEL + 16 * slot);
  ap_iret_frame_ptr = &soak_ap_frames[slot];
  starting_slot = slot;
  send_ipi(apic_id, ICR_INIT_ASSERT);
  send_ipi(apic_id, ICR_INIT_DEASSERT);
  delay_us(10000);
  send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
  if (wait_ap_online(slot, 200)) return true;
  send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
  return wait_ap_online(slot, AP_PROBE_US);
}

/* Starts APs by probing APIC ids upwards from 0 (molt and QEMU number them
 * 0..n-1) until one stays silent; returns how many came online. A late AP
 * finds AP_HALT in its slot and halts. */
static unsigned start_aps(void) {
  memcpy((void*)TRAMPOLINE_ADDR, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
  lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | 0x100); /* software-enable the APIC */
  uint8_t bsp_id = (uint8_t)(lapic_read(LAPIC_ID) >> 24);
  unsigned aps = 0;
  for (unsigned id = 0; id < 255 && aps + 1 < SOAK_MAX_CPUS; id++) {
    if (id == bsp_id) continue;
    unsigned slot = aps + 1;
    if (!start_ap(slot, (uint8_t)id)) {
      __atomic_store_n(&workers[slot].command, AP_HALT, __ATOMIC_RELEASE);
      break;
    }
    aps++;
  }
  return aps;
}

/* Bytes [from, from + length) of the concatenated segments `all`. */
static unsigned take_slice(const struct memtest_segment* all, unsigned count, uint64_t from, uint64_t length,
                           struct memtest_segment* out) {
  unsigned n = 0;
  uint64_t at = 0; /* offset of segment s in the concatenation */
  for (unsigned s = 0; s < count && length > 0; s++) {
    uint64_t size = (uint64_t)((char*)all[s].end - (char*)all[s].start);
    if (from < at + size) {
      uint64_t skip = from - at;
      uint64_t take = size - skip < length ? size - skip : length;
      out[n].start = (uint64_t*)((char*)all[s].start + skip);
      out[n].end = (uint64_t*)((char*)out[n].start + take);
      n++;
      from += take;
      length -= take;
    }
    at += size;
  }
  return n;
}

/* Splits the region into 1 + aps page-aligned slices: the BSP keeps slice 0
 * in `bsp`, AP i gets slice i and is told to run. */
static unsigned share_memory(const struct memtest_segment* all, unsigned count, unsigned aps,
                             struct memtest_segment* bsp) {
  uint64_t total = 0;
  for (unsigned s = 0; s < count; s++) total += (uint64_t)((char*)all[s].end - (char*)all[s].start);
  uint64_t slice = total / (aps + 1) & ~4095ull;
  unsigned bsp_count = take_slice(all, count, 0, slice, bsp);
  for (unsigned i = 1; i <= aps; i++) {
    uint64_t length = i == aps ? total - slice * i : slice;
    workers[i].seg_count = take_slice(all, count, slice * i, length, workers[i].segs);
    __atomic_store_n(&workers[i].command, AP_RUN, __ATOMIC_RELEASE);
  }
  return bsp_count;
}

/* ---- the scenario ---- */
struct soak_totals {
  uint64_t errors, disk_failures, ap_rounds, ap_errors;
};

static void sum_aps(unsigned aps, struct soak_totals* t) {
  t->ap_rounds = t->ap_errors = 0;
  for (unsigned i = 1; i <= aps; i++) {
    t->ap_rounds += __atomic_load_n(&workers[i].rounds, __ATOMIC_ACQUIRE);
    t->ap_errors += __atomic_load_n(&workers[i].errors, __ATOMIC_RELAXED);
  }
}

NORETURN void scenario_soak(int argc, char** argv) {
  uint64_t mib = 0, want_sectors = DEFAULT_DISK_SECTORS;
  if (argc < 2 || !parse_u64(argv[1], &mib) || mib == 0 ||
      (argc > 2 && (!parse_u64(argv[2], &want_sectors) || want_sectors == 0))) {
    fail("bad-arguments");
  }
  clock_init();
  static struct memtest_segment region[MEMTEST_MAX_SEGMENTS], bsp[MEMTEST_MAX_SEGMENTS];
  unsigned region_count = 0;
  uint64_t available = memtest_choose_segments(mib, region, &region_count);
  if (available < mib) {
    printf("@memtest too-large mib=%lu available=%lu\n", mib, available);
    fail("memtest-too-large");
  }
  uint32_t disk_sectors = attach_disk(want_sectors);
  uint8_t rtc_mode = rtc_data_mode();
  unsigned aps = start_aps();
  unsigned bsp_count = share_memory(region, region_count, aps, bsp);
  printf("@soak start mib=%lu disk_sectors=%u aps=%u\n", mib, disk_sectors, aps);

  struct soak_totals totals = {0, 0, 0, 0};
  struct rtc_time now = {0, 0, 0, 0, 0, 0};
  uint64_t printed = 0;
  for (uint64_t round = 1;; round++) {
    uint64_t start = rdtsc();
    uint64_t seed = memtest_round_seed(round);
    memtest_write(bsp, bsp_count, seed);
    totals.errors += memtest_verify(bsp, bsp_count, seed, &printed);
    bool disk_ok = disk_round(round, disk_sectors);
    totals.disk_failures += disk_ok ? 0 : 1;
    (void)rtc_read_time(&now, rtc_mode); /* on an unstable clock: the last reading */
    poll_console();
    sum_aps(aps, &totals);
    printf(
        "@soak round=%lu mib=%lu errors=%lu disk=%s sector=%lu rtc=%04u-%02u-%02uT%02u:%02u:%02u aps=%u "
        "ap_rounds=%lu ap_errors=%lu disk_errors=%lu us=%lu\n",
        round, mib, totals.errors, disk_ok ? "ok" : "fail", round % disk_sectors, now.year, now.month,
        now.day, now.hour, now.minute, now.second, aps, totals.ap_rounds, totals.ap_errors,
        totals.disk_failures, tsc_to_us(rdtsc() - start));
  }
}
