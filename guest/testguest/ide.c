/* `ide`: drives the primary master disk of a PCI IDE controller in
 * compatibility mode, written from ATA8-ACS and the PIIX3 datasheet (bus
 * master IDE, SFF-8038i).
 *
 *   ide [full] [SEED]  IDENTIFY; PIO-write pattern SEED^PIO_SALT to every
 *                      sector and verify it by DMA; DMA-write pattern SEED and
 *                      verify it by PIO. The disk is left holding SEED.
 *   ide verify SEED    DMA-read every sector and check pattern SEED.
 *   ide bench [SEED]   sequential DMA write, then read, of the whole disk;
 *                      throughput of the I/O alone (verification untimed).
 *
 * Interrupts are not used: completion is polled (ATA alternate status for
 * PIO, the bus master's interrupt bit for DMA). Every port access costs a
 * #GP round trip (~60-90 us here), so the driver keeps them few: 32-bit data
 * transfers (outl/inl, 128 per sector), READ/WRITE MULTIPLE with 16-sector
 * DRQ blocks and one status poll per block, and DMA commands of 4 MiB. */
#include "guest.h"

#define ATA_CMD 0x1f0
#define ATA_CTL 0x3f6
#define REG_DATA 0
#define REG_ERROR 1
#define REG_COUNT 2
#define REG_LBA_LOW 3
#define REG_LBA_MID 4
#define REG_LBA_HIGH 5
#define REG_DEVICE 6
#define REG_STATUS 7
#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DF 0x20
#define ST_BSY 0x80

#define CMD_READ_MULTIPLE_EXT 0x29
#define CMD_WRITE_MULTIPLE_EXT 0x39
#define CMD_READ_DMA_EXT 0x25
#define CMD_WRITE_DMA_EXT 0x35
#define CMD_SET_MULTIPLE 0xc6
#define CMD_IDENTIFY 0xec

#define BM_COMMAND 0
#define BM_STATUS 2
#define BM_PRD 4
#define BM_START 0x01
#define BM_TO_MEMORY 0x08
#define BM_ACTIVE 0x01
#define BM_ERROR 0x02
#define BM_IRQ 0x04
#define BM_CAPABLE 0x60

#define SECTOR 512
#define MULTIPLE 16
#define DMA_CHUNK_SECTORS 8192 /* 4 MiB per command */
#define PRD_BYTES 0x10000
#define PIO_SALT 0x5a5a5a5au
#define MAX_REPORTS 8
#define TIMEOUT_US 10000000ull

static uint16_t bm_base;
static uint64_t disk_sectors;
static uint32_t* prd_table; /* 64 KiB aligned: a table may not cross 64 KiB */
static uint8_t* dma_buffer;
static unsigned reports;

static inline uint16_t inw(uint16_t port) {
  uint16_t value;
  __asm__ volatile("inw %1, %0" : "=a"(value) : "d"(port) : "memory");
  return value;
}

/* ---- PCI configuration mechanism #1 ---- */
static uint32_t pci_address(unsigned dev, unsigned fn, unsigned reg) {
  return 0x80000000u | (dev << 11) | (fn << 8) | (reg & 0xfc);
}
static uint32_t pci_read32(unsigned dev, unsigned fn, unsigned reg) {
  outl(0xcf8, pci_address(dev, fn, reg));
  return inl(0xcfc);
}
static void pci_write32(unsigned dev, unsigned fn, unsigned reg, uint32_t value) {
  outl(0xcf8, pci_address(dev, fn, reg));
  outl(0xcfc, value);
}

/* Finds the IDE function (class 01.01) on bus 0 and makes its bus-master
 * block usable: BAR4 placed if firmware has not, I/O and bus master on. */
static bool find_controller(void) {
  for (unsigned dev = 0; dev < 32; dev++) {
    for (unsigned fn = 0; fn < 8; fn++) {
      uint32_t id = pci_read32(dev, fn, 0x00);
      /* Every function is probed: a machine may place 01.1 without an 01.0. */
      if ((id & 0xffff) == 0xffff) continue;
      uint32_t class_rev = pci_read32(dev, fn, 0x08);
      if ((class_rev >> 16) != 0x0101) continue;
      uint32_t bar4 = pci_read32(dev, fn, 0x20);
      if ((bar4 & 0xfffc) == 0) {
        bar4 = 0xc000 | 1;
        pci_write32(dev, fn, 0x20, bar4);
      }
      bm_base = (uint16_t)(bar4 & 0xfffc);
      /* Command: I/O space and bus master; zeros in the status half clear nothing. */
      uint32_t command = pci_read32(dev, fn, 0x04) & 0xffff;
      pci_write32(dev, fn, 0x04, command | 0x5);
      printf("@ide controller bdf=00:%02x.%x id=%04x:%04x progif=0x%02x bm=0x%x\n", dev, fn, id & 0xffff,
             id >> 16, (class_rev >> 8) & 0xff, bm_base);
      return true;
    }
  }
  return false;
}

/* ---- ATA ---- */
static uint8_t wait_status(uint8_t want) {
  uint64_t deadline = rdtsc() + TIMEOUT_US * clock_init()->tsc_khz / 1000;
  for (;;) {
    uint8_t status = inb(ATA_CTL);
    if (!(status & ST_BSY) && ((status & want) == want || (status & (ST_ERR | ST_DF)))) return status;
    if (rdtsc() > deadline) fail("ide-timeout");
  }
}

static void taskfile_ext(uint64_t lba, uint32_t count) {
  outb(ATA_CMD + REG_COUNT, (uint8_t)(count >> 8));
  outb(ATA_CMD + REG_LBA_LOW, (uint8_t)(lba >> 24));
  outb(ATA_CMD + REG_LBA_MID, (uint8_t)(lba >> 32));
  outb(ATA_CMD + REG_LBA_HIGH, (uint8_t)(lba >> 40));
  outb(ATA_CMD + REG_COUNT, (uint8_t)count);
  outb(ATA_CMD + REG_LBA_LOW, (uint8_t)lba);
  outb(ATA_CMD + REG_LBA_MID, (uint8_t)(lba >> 8));
  outb(ATA_CMD + REG_LBA_HIGH, (uint8_t)(lba >> 16));
  outb(ATA_CMD + REG_DEVICE, 0x40); /* LBA, device 0 */
}

static void check_done(const char* what) {
  uint8_t status = inb(ATA_CMD + REG_STATUS); /* acknowledges the interrupt */
  if (status & (ST_ERR | ST_DF | ST_BSY | ST_DRQ)) {
    printf("@ide error op=%s status=0x%02x error=0x%02x\n", what, status, inb(ATA_CMD + REG_ERROR));
    fail("ide-error");
  }
}

static void ata_string(const uint16_t* words, unsigned first, unsigned count, char* out) {
  unsigned n = 0;
  for (unsigned i = 0; i < count; i++) {
    out[n++] = (char)(words[first + i] >> 8);
    out[n++] = (char)(words[first + i] & 0xff);
  }
  while (n > 0 && out[n - 1] == ' ') n--;
  out[n] = '\0';
  for (unsigned i = 0; i < n; i++)
    if (out[i] == ' ') out[i] = '_'; /* keep the line key=value */
}

static void identify(void) {
  uint32_t words[128];
  outb(ATA_CMD + REG_DEVICE, 0xa0);
  uint8_t status = inb(ATA_CTL);
  if (status == 0 || status == 0xff) fail("ide-no-disk"); /* nothing drives the bus */
  outb(ATA_CMD + REG_STATUS, CMD_IDENTIFY);
  if (wait_status(ST_DRQ) & ST_ERR) fail("ide-no-disk");
  for (unsigned i = 0; i < 128; i++) words[i] = inl(ATA_CMD + REG_DATA);
  check_done("identify");
  const uint16_t* w = (const uint16_t*)words;
  char model[41], serial[21];
  ata_string(w, 27, 20, model);
  ata_string(w, 10, 10, serial);
  bool lba48 = (w[83] & (1u << 10)) != 0;
  uint64_t lba28 = w[60] | (uint32_t)w[61] << 16;
  uint64_t ext = (uint64_t)w[100] | (uint64_t)w[101] << 16 | (uint64_t)w[102] << 32 | (uint64_t)w[103] << 48;
  disk_sectors = lba48 ? ext : lba28;
  printf("@ide identify sectors=%lu lba48=%d multiple=%u udma=0x%02x serial=%s model=%s\n", disk_sectors,
         lba48, w[47] & 0xff, w[88] & 0xff, serial, model);
  if (!lba48 || (w[47] & 0xff) < MULTIPLE || !(w[49] & (1u << 8))) fail("ide-missing-feature");
}

/* The 32-bit word `i` of sector `lba` in pattern `seed`: every word of the
 * disk differs, and every word changes with the seed. */
static inline uint32_t pattern(uint32_t seed, uint64_t lba, unsigned i) {
  uint32_t x = (uint32_t)(lba * 128 + i) * 0x9e3779b1u ^ seed;
  x ^= x >> 15;
  return x * 0x85ebca77u ^ (uint32_t)(lba >> 25);
}

static void fill(uint32_t seed, uint64_t lba, uint32_t sectors, uint32_t* out) {
  for (uint32_t s = 0; s < sectors; s++)
    for (unsigned i = 0; i < SECTOR / 4; i++) out[s * (SECTOR / 4) + i] = pattern(seed, lba + s, i);
}

static uint64_t check(uint32_t seed, uint64_t lba, uint32_t sectors, const uint32_t* data) {
  uint64_t errors = 0;
  for (uint32_t s = 0; s < sectors; s++) {
    for (unsigned i = 0; i < SECTOR / 4; i++) {
      uint32_t want = pattern(seed, lba + s, i), got = data[s * (SECTOR / 4) + i];
      if (want == got) continue;
      if (errors++ == 0 && reports++ < MAX_REPORTS)
        printf("@ide corrupt lba=%lu word=%u expected=0x%08x got=0x%08x\n", lba + s, i, want, got);
    }
  }
  return errors;
}

/* ---- PIO: READ/WRITE MULTIPLE EXT, 16 sectors per DRQ block ---- */
static void set_multiple(void) {
  outb(ATA_CMD + REG_COUNT, MULTIPLE);
  outb(ATA_CMD + REG_STATUS, CMD_SET_MULTIPLE);
  wait_status(0);
  check_done("set-multiple");
}

static void pio_write_all(uint32_t seed) {
  uint32_t block[MULTIPLE * SECTOR / 4];
  for (uint64_t lba = 0; lba < disk_sectors;) {
    uint32_t count = disk_sectors - lba > 65536 ? 65536 : (uint32_t)(disk_sectors - lba);
    taskfile_ext(lba, count == 65536 ? 0 : count);
    outb(ATA_CMD + REG_STATUS, CMD_WRITE_MULTIPLE_EXT);
    for (uint32_t done = 0; done < count;) {
      uint32_t n = count - done < MULTIPLE ? count - done : MULTIPLE;
      if (!(wait_status(ST_DRQ) & ST_DRQ)) check_done("pio-write");
      fill(seed, lba + done, n, block);
      for (unsigned i = 0; i < n * SECTOR / 4; i++) outl(ATA_CMD + REG_DATA, block[i]);
      done += n;
    }
    wait_status(0);
    check_done("pio-write");
    lba += count;
  }
}

static uint64_t pio_verify_all(uint32_t seed) {
  uint32_t block[MULTIPLE * SECTOR / 4];
  uint64_t errors = 0;
  for (uint64_t lba = 0; lba < disk_sectors;) {
    uint32_t count = disk_sectors - lba > 65536 ? 65536 : (uint32_t)(disk_sectors - lba);
    taskfile_ext(lba, count == 65536 ? 0 : count);
    outb(ATA_CMD + REG_STATUS, CMD_READ_MULTIPLE_EXT);
    for (uint32_t done = 0; done < count;) {
      uint32_t n = count - done < MULTIPLE ? count - done : MULTIPLE;
      if (!(wait_status(ST_DRQ) & ST_DRQ)) check_done("pio-read");
      for (unsigned i = 0; i < n * SECTOR / 4; i++) block[i] = inl(ATA_CMD + REG_DATA);
      errors += check(seed, lba + done, n, block);
      done += n;
    }
    check_done("pio-read");
    lba += count;
  }
  return errors;
}

/* ---- DMA: READ/WRITE DMA EXT through one PRD table of 64 KiB regions ---- */
static bool place_dma_memory(void) {
  uint64_t need = 2 * 1024 * 1024 + (uint64_t)DMA_CHUNK_SECTORS * SECTOR;
  uint64_t floor = ((uint64_t)(uintptr_t)image_end + 0x1fffff) & ~0x1fffffull;
  for (unsigned i = 0; i < ram_range_count; i++) {
    uint64_t start = ram_ranges[i].start < floor ? floor : (ram_ranges[i].start + 0xffff) & ~0xffffull;
    if (start + need <= ram_ranges[i].end && start + need <= 0xffffffffull) {
      prd_table = (uint32_t*)(uintptr_t)start;
      dma_buffer = (uint8_t*)(uintptr_t)(start + 1024 * 1024);
      return true;
    }
  }
  return false;
}

static void build_prd_table(uint32_t bytes) {
  unsigned n = 0;
  for (uint32_t at = 0; at < bytes; at += PRD_BYTES, n++) {
    uint32_t len = bytes - at < PRD_BYTES ? bytes - at : PRD_BYTES;
    prd_table[2 * n] = (uint32_t)(uintptr_t)(dma_buffer + at);
    prd_table[2 * n + 1] = (len & 0xffff) | (at + len >= bytes ? 0x80000000u : 0); /* 0 = 64 KiB */
  }
}

/* One DMA command; returns the TSC ticks from command to completion. */
static uint64_t dma_command(uint64_t lba, uint32_t count, bool write) {
  build_prd_table(count * SECTOR);
  uint8_t direction = write ? 0 : BM_TO_MEMORY;
  outb(bm_base + BM_COMMAND, direction);
  outl(bm_base + BM_PRD, (uint32_t)(uintptr_t)prd_table);
  outb(bm_base + BM_STATUS, BM_CAPABLE | BM_ERROR | BM_IRQ); /* clear interrupt and error */
  uint64_t start = rdtsc();
  taskfile_ext(lba, count);
  outb(ATA_CMD + REG_STATUS, write ? CMD_WRITE_DMA_EXT : CMD_READ_DMA_EXT);
  outb(bm_base + BM_COMMAND, direction | BM_START);
  uint64_t deadline = start + TIMEOUT_US * clock_init()->tsc_khz / 1000;
  uint8_t bm;
  while (!((bm = inb(bm_base + BM_STATUS)) & (BM_IRQ | BM_ERROR))) {
    if (rdtsc() > deadline) fail("ide-timeout");
  }
  uint64_t ticks = rdtsc() - start;
  outb(bm_base + BM_COMMAND, direction); /* stop */
  if (bm & BM_ERROR) {
    printf("@ide error op=dma bm_status=0x%02x\n", bm);
    fail("ide-error");
  }
  check_done(write ? "dma-write" : "dma-read");
  return ticks;
}

static uint64_t dma_write_all(uint32_t seed) {
  uint64_t ticks = 0;
  for (uint64_t lba = 0; lba < disk_sectors; lba += DMA_CHUNK_SECTORS) {
    uint32_t n = disk_sectors - lba < DMA_CHUNK_SECTORS ? (uint32_t)(disk_sectors - lba) : DMA_CHUNK_SECTORS;
    fill(seed, lba, n, (uint32_t*)dma_buffer);
    ticks += dma_command(lba, n, true);
  }
  return ticks;
}

static uint64_t dma_verify_all(uint32_t seed, uint64_t* ticks) {
  uint64_t errors = 0;
  *ticks = 0;
  for (uint64_t lba = 0; lba < disk_sectors; lba += DMA_CHUNK_SECTORS) {
    uint32_t n = disk_sectors - lba < DMA_CHUNK_SECTORS ? (uint32_t)(disk_sectors - lba) : DMA_CHUNK_SECTORS;
    memset(dma_buffer, 0, (size_t)n * SECTOR);
    *ticks += dma_command(lba, n, false);
    errors += check(seed, lba, n, (const uint32_t*)dma_buffer);
  }
  return errors;
}

/* ---- reporting ---- */
static void report(const char* path, const char* op, uint64_t ticks, int64_t errors) {
  uint64_t us = tsc_to_us(ticks);
  uint64_t bytes = disk_sectors * SECTOR;
  uint64_t kib_s = us ? bytes * 1000000 / 1024 / us : 0;
  printf("@ide %s %s sectors=%lu us=%lu kib_s=%lu mib_s=%lu", path, op, disk_sectors, us, kib_s,
         kib_s / 1024);
  if (errors >= 0)
    printf(" errors=%ld %s\n", errors, errors == 0 ? "ok" : "fail");
  else
    printf(" ok\n");
}

static int run_full(uint32_t seed) {
  uint64_t t = rdtsc();
  set_multiple();
  pio_write_all(seed ^ PIO_SALT);
  report("pio", "write", rdtsc() - t, -1);
  uint64_t ticks;
  uint64_t errors = dma_verify_all(seed ^ PIO_SALT, &ticks);
  report("dma", "verify", ticks, (int64_t)errors);
  if (errors) return 1;
  report("dma", "write", dma_write_all(seed), -1);
  t = rdtsc();
  errors = pio_verify_all(seed);
  report("pio", "verify", rdtsc() - t, (int64_t)errors);
  if (errors) return 1;
  printf("@ide pattern seed=%u\n", seed);
  return 0;
}

/* For `soak`: the controller found and placed, the primary master identified
 * (the same `@ide controller` and `@ide identify` lines, failing the same
 * way). Returns the disk's sector count and the bus-master base. */
uint64_t ide_attach(uint16_t* bus_master_base) {
  clock_init();
  if (!find_controller()) fail("ide-no-controller");
  identify();
  *bus_master_base = bm_base;
  return disk_sectors;
}

int scenario_ide(int argc, char** argv) {
  const char* mode = "full";
  const char* seed_arg = NULL;
  if (argc > 1 &&
      (strcmp(argv[1], "full") == 0 || strcmp(argv[1], "verify") == 0 || strcmp(argv[1], "bench") == 0)) {
    mode = argv[1];
    seed_arg = argc > 2 ? argv[2] : NULL;
  } else if (argc > 1) {
    seed_arg = argv[1];
  }
  uint64_t seed = 1;
  if (seed_arg && (!parse_u64(seed_arg, &seed) || seed > 0xffffffffull)) fail("bad-arguments");
  if (strcmp(mode, "verify") == 0 && seed_arg == NULL) fail("bad-arguments");
  clock_init();
  if (!find_controller()) fail("ide-no-controller");
  if (!place_dma_memory()) fail("ide-no-memory");
  identify();
  if (strcmp(mode, "full") == 0) return run_full((uint32_t)seed);
  uint64_t ticks;
  if (strcmp(mode, "verify") == 0) {
    uint64_t errors = dma_verify_all((uint32_t)seed, &ticks);
    printf("@ide verify seed=%lu sectors=%lu errors=%lu %s\n", seed, disk_sectors, errors,
           errors ? "fail" : "ok");
    return errors ? 1 : 0;
  }
  if (strcmp(mode, "bench") == 0) {
    report("dma", "write", dma_write_all((uint32_t)seed), -1);
    uint64_t errors = dma_verify_all((uint32_t)seed, &ticks);
    report("dma", "read", ticks, (int64_t)errors);
    return errors ? 1 : 0;
  }
  fail("bad-arguments");
}
