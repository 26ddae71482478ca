/* cpus: every vCPU reports in. CPUs come from the MP table; each AP is started
 * with INIT-SIPI-SIPI through the xAPIC (MMIO, so ring 3 can drive it), runs
 * the real-mode trampoline to long mode and irets to ap_user_entry on its own
 * stack, with its own TSS. APs start one at a time, so the two words the
 * trampoline reads (ap_tss_sel, ap_iret_frame_ptr) are never shared. */
#include "guest.h"

#define LAPIC_ID 0x020
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_INIT_ASSERT 0xc500   /* level, assert, INIT */
#define ICR_INIT_DEASSERT 0x8500 /* level, deassert, INIT */
#define ICR_STARTUP 0x0600
#define AP_TIMEOUT_US 1000000

struct iret_frame {
  uint64_t rip, cs, rflags, rsp, ss;
};

extern char ap_trampoline[], ap_trampoline_end[];
extern volatile uint16_t ap_tss_sel;
extern struct iret_frame* volatile ap_iret_frame_ptr;

static struct iret_frame ap_frames[MAX_CPUS];
static uint8_t ap_stacks[MAX_CPUS][USER_STACK_SIZE] __attribute__((aligned(16)));
static volatile unsigned online;

struct mp_cpu {
  uint8_t apic_id;
  bool bsp;
};

static bool checksum_ok(const uint8_t* p, size_t n) {
  uint8_t sum = 0;
  for (size_t i = 0; i < n; i++) sum = (uint8_t)(sum + p[i]);
  return sum == 0;
}

static const uint8_t* find_mp_floating(uint64_t start, uint64_t length) {
  for (uint64_t a = start; a + 16 <= start + length; a += 16) {
    const uint8_t* p = (const uint8_t*)a;
    if (memcmp(p, "_MP_", 4) == 0 && p[8] == 1 && checksum_ok(p, 16)) return p;
  }
  return NULL;
}

/* The floating pointer lives in the first KiB of the EBDA, the last KiB of
 * base memory, or the BIOS ROM area (MP spec 1.4, 4). */
static const uint8_t* locate_mp(void) {
  uint64_t ebda = (uint64_t)*(volatile uint16_t*)0x40e << 4;
  uint64_t base_kib = *(volatile uint16_t*)0x413;
  if (base_kib < 512 || base_kib > 640) base_kib = 640;
  const uint8_t* p = NULL;
  if (ebda >= 0x80000 && ebda < 0xa0000) p = find_mp_floating(ebda, 1024);
  if (p == NULL) p = find_mp_floating(base_kib * 1024 - 1024, 1024);
  if (p == NULL) p = find_mp_floating(0xf0000, 0x10000);
  return p;
}

/* Processor entries of the MP configuration table; -1 if there is none. */
static int read_mp_cpus(struct mp_cpu* cpus) {
  const uint8_t* floating = locate_mp();
  if (floating == NULL) return -1;
  uint32_t table_addr;
  memcpy(&table_addr, floating + 4, 4);
  const uint8_t* table = (const uint8_t*)(uintptr_t)table_addr;
  if (table_addr == 0 || memcmp(table, "PCMP", 4) != 0) return -1;
  uint16_t length, entries;
  memcpy(&length, table + 4, 2);
  memcpy(&entries, table + 34, 2);
  if (length < 44 || !checksum_ok(table, length)) return -1;
  int count = 0;
  uint32_t offset = 44;
  for (uint16_t i = 0; i < entries && offset < length; i++) {
    const uint8_t* e = table + offset;
    if (e[0] == 0) {
      if (offset + 20 > length) break;
      if ((e[3] & 1) != 0 && count < MAX_CPUS) cpus[count++] = (struct mp_cpu){e[1], (e[3] & 2) != 0};
      offset += 20;
    } else if (e[0] <= 4) {
      offset += 8;
    } else {
      break; /* unknown entry type: its length is unknown too */
    }
  }
  return count;
}

/* ACPI fallback: SeaBIOS lists only the CPUs its own AP wake-up found, which
 * under kvm_pvm is just the BSP, while QEMU's MADT names every vCPU. */
static const uint8_t* find_rsdp(void) {
  for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
    const uint8_t* p = (const uint8_t*)a;
    if (memcmp(p, "RSD PTR ", 8) == 0 && checksum_ok(p, 20)) return p;
  }
  return NULL;
}

static int read_madt_cpus(struct mp_cpu* cpus) {
  const uint8_t* rsdp = find_rsdp();
  if (rsdp == NULL) return -1;
  uint32_t rsdt_addr, rsdt_length;
  memcpy(&rsdt_addr, rsdp + 16, 4);
  const uint8_t* rsdt = (const uint8_t*)(uintptr_t)rsdt_addr;
  memcpy(&rsdt_length, rsdt + 4, 4);
  if (memcmp(rsdt, "RSDT", 4) != 0 || rsdt_length < 36 || rsdt_length > 4096) return -1;
  for (uint32_t off = 36; off + 4 <= rsdt_length; off += 4) {
    uint32_t table_addr, length;
    memcpy(&table_addr, rsdt + off, 4);
    const uint8_t* madt = (const uint8_t*)(uintptr_t)table_addr;
    memcpy(&length, madt + 4, 4);
    if (memcmp(madt, "APIC", 4) != 0 || length < 44 || length > 65536) continue;
    int count = 0;
    for (uint32_t e = 44; e + 2 <= length && madt[e + 1] >= 2; e += madt[e + 1]) {
      uint32_t flags;
      if (madt[e] != 0 || madt[e + 1] < 8 || e + 8 > length) continue;
      memcpy(&flags, madt + e + 4, 4);
      if ((flags & 1) != 0 && count < MAX_CPUS) cpus[count++] = (struct mp_cpu){madt[e + 3], false};
    }
    return count;
  }
  return -1;
}

static uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
static void lapic_write(uint32_t reg, uint32_t value) { mmio_write32(LAPIC_BASE + reg, value); }
static uint8_t my_apic_id(void) { return (uint8_t)(lapic_read(LAPIC_ID) >> 24); }

static void send_ipi(uint8_t apic_id, uint32_t command) {
  lapic_write(LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
  lapic_write(LAPIC_ICR_LOW, command);
  for (unsigned i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING) != 0; i++) cpu_relax();
}

NORETURN void ap_user_entry(void);
NORETURN void ap_user_entry(void) {
  printf("@cpu apic=%u role=ap\n", my_apic_id());
  __atomic_add_fetch(&online, 1, __ATOMIC_RELEASE);
  halt_forever();
}

static bool wait_online(unsigned target, uint64_t timeout_us) {
  uint64_t start = rdtsc();
  while (__atomic_load_n(&online, __ATOMIC_ACQUIRE) < target) {
    if (tsc_to_us(rdtsc() - start) > timeout_us) return false;
    cpu_relax();
  }
  return true;
}

/* INIT, 10 ms, SIPI, and a second SIPI only if the AP has not shown up. */
static bool start_ap(unsigned slot, uint8_t apic_id) {
  ap_frames[slot] = (struct iret_frame){(uint64_t)(uintptr_t)ap_user_entry, UCODE_SEL, 0x2,
                                        (uint64_t)(uintptr_t)(ap_stacks[slot] + USER_STACK_SIZE) - 8, UDATA_SEL};
  ap_tss_sel = (uint16_t)(TSS0_SEL + 16 * slot);
  ap_iret_frame_ptr = &ap_frames[slot];
  unsigned target = online + 1;
  send_ipi(apic_id, ICR_INIT_ASSERT);
  send_ipi(apic_id, ICR_INIT_DEASSERT);
  delay_us(10000);
  send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
  if (wait_online(target, 200)) return true;
  send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_ADDR >> 12));
  return wait_online(target, AP_TIMEOUT_US);
}

int scenario_cpus(int argc, char** argv) {
  (void)argc;
  (void)argv;
  struct mp_cpu cpus[MAX_CPUS], madt_cpus[MAX_CPUS];
  int expected = read_mp_cpus(cpus);
  if (expected <= 0) fail("no-mp-table");
  int madt_count = read_madt_cpus(madt_cpus);
  const char* source = "mptable";
  if (madt_count > expected) {
    memcpy(cpus, madt_cpus, sizeof cpus);
    expected = madt_count;
    source = "madt";
  }
  printf("@cpulist source=%s expected=%d mptable=%d madt=%d\n", source, expected, read_mp_cpus(madt_cpus),
         madt_count);
  clock_init();
  memcpy((void*)TRAMPOLINE_ADDR, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
  lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | 0x100); /* software-enable the APIC */
  uint8_t bsp_id = my_apic_id();
  printf("@cpu apic=%u role=bsp\n", bsp_id);
  online = 1;
  unsigned slot = 1;
  for (int i = 0; i < expected; i++) {
    if (cpus[i].apic_id == bsp_id) continue;
    uint64_t t0 = rdtsc();
    bool started = start_ap(slot++, cpus[i].apic_id);
    printf("testguest: AP apic %u %s after %lu us\n", cpus[i].apic_id, started ? "online" : "silent",
           tsc_to_us(rdtsc() - t0));
    if (!started) break; /* it may still read the shared slot words: start no other */
  }
  printf("@cpus expected=%d online=%u\n", expected, online);
  if ((int)online != expected) fail("cpus-missing");
  return 0;
}
