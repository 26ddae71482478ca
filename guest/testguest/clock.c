/* TSC frequency: from kvmclock's pvclock scale when KVM offers it, otherwise
 * by timing 10 ms of PIT channel 2. */
#include "guest.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define PIT_HZ 1193182u
#define PIT_CALIBRATION_TICKS 11932u /* 10 ms */
#define PIT_POLL_LIMIT 10000000u

/* struct pvclock_vcpu_time_info (KVM ABI); must not cross a page. */
struct pvclock_time_info {
  uint32_t version;
  uint32_t pad0;
  uint64_t tsc_timestamp;
  uint64_t system_time;
  uint32_t tsc_to_system_mul;
  int8_t tsc_shift;
  uint8_t flags;
  uint8_t pad[2];
} __attribute__((packed, aligned(32)));

static struct pvclock_time_info kvmclock;
static struct clock_info info;

static bool kvm_has_clocksource2(void) {
  struct cpuid_regs sig = cpuid(0x40000000, 0);
  char name[13];
  memcpy(name, &sig.ebx, 4);
  memcpy(name + 4, &sig.ecx, 4);
  memcpy(name + 8, &sig.edx, 4);
  name[12] = '\0';
  if (strcmp(name, "KVMKVMKVM") != 0 || sig.eax < 0x40000001) return false;
  return (cpuid(0x40000001, 0).eax & KVM_FEATURE_CLOCKSOURCE2) != 0;
}

/* ns = ((ticks shifted by tsc_shift) * mul) >> 32, so the TSC runs at
 * 10^9 * 2^32 / (mul * 2^shift) Hz. */
static uint64_t kvmclock_tsc_khz(void) {
  wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&kvmclock | 1);
  for (unsigned attempt = 0; attempt < 1000; attempt++) {
    uint32_t version = __atomic_load_n(&kvmclock.version, __ATOMIC_ACQUIRE);
    uint32_t mul = kvmclock.tsc_to_system_mul;
    int shift = kvmclock.tsc_shift;
    if ((version & 1) != 0 || version != __atomic_load_n(&kvmclock.version, __ATOMIC_ACQUIRE)) continue;
    if (mul == 0) return 0;
    uint64_t khz = (1000000ull << 32) / mul;
    return shift < 0 ? khz << -shift : khz >> shift;
  }
  return 0;
}

static uint64_t pit_tsc_khz(void) {
  uint8_t speaker = inb(0x61);
  outb(0x61, (uint8_t)((speaker & ~0x02) | 0x01)); /* gate channel 2 on, speaker off */
  outb(0x43, 0xb0);                                /* channel 2, lo/hi byte, mode 0 */
  outb(0x42, PIT_CALIBRATION_TICKS & 0xff);
  outb(0x42, PIT_CALIBRATION_TICKS >> 8);
  uint64_t start = rdtsc();
  for (unsigned i = 0; i < PIT_POLL_LIMIT; i++) {
    if ((inb(0x61) & 0x20) != 0) {
      uint64_t ticks = rdtsc() - start;
      outb(0x61, speaker);
      return ticks * PIT_HZ / PIT_CALIBRATION_TICKS / 1000;
    }
  }
  outb(0x61, speaker);
  return 0;
}

const struct clock_info* clock_init(void) {
  if (info.tsc_khz != 0) return &info;
  if (kvm_has_clocksource2()) {
    info.tsc_khz = kvmclock_tsc_khz();
    info.source = "kvmclock";
  }
  if (info.tsc_khz == 0) {
    info.tsc_khz = pit_tsc_khz();
    info.source = "pit";
  }
  if (info.tsc_khz == 0) {
    info.tsc_khz = 1000000; /* no clock at all: assume 1 GHz so delays still end */
    info.source = "none";
  }
  return &info;
}

uint64_t tsc_to_us(uint64_t ticks) {
  uint64_t khz = info.tsc_khz != 0 ? info.tsc_khz : 1000000;
  return ticks / khz * 1000 + ticks % khz * 1000 / khz;
}

void delay_us(uint64_t us) {
  uint64_t khz = info.tsc_khz != 0 ? info.tsc_khz : 1000000;
  uint64_t end = rdtsc() + us * khz / 1000;
  while ((int64_t)(rdtsc() - end) < 0) cpu_relax();
}
