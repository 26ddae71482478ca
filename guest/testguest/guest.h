/* Shared declarations of the test guest's user-mode code. */
#ifndef TESTGUEST_GUEST_H
#define TESTGUEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define NORETURN __attribute__((noreturn))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* ---- ring-0 gates (boot.S) ----
 * User code pushes the iretq frame that will bring it back (native, cheap),
 * names the gate in %r8 and executes syscall; the gate runs its privileged
 * instruction and iretq, so a port access costs three emulated instructions
 * (jmp *%r8, the access, iretq). */
#define TG_STR(x) #x
#define TG_XSTR(x) TG_STR(x)
#define GATE_SYSCALL                                      \
  "mov %%rsp, %%r11\n\t"                                  \
  "pushq $" TG_XSTR(UDATA_SEL) "\n\t"                     \
  "pushq %%r11\n\t"                                       \
  "pushq $2\n\t"                                          \
  "pushq $" TG_XSTR(UCODE_SEL) "\n\t"                     \
  "lea 1f(%%rip), %%r11\n\t"                              \
  "pushq %%r11\n\t"                                       \
  "syscall\n"                                             \
  "1:"
extern char gate_outb[], gate_inb[], gate_null[];

#define GATE_REG(gate) register uint64_t r8_gate __asm__("r8") = (uint64_t)(uintptr_t)(gate)
#define GATE_CLOBBERS "rcx", "r11", "memory"

/* Port I/O, wrmsr and hlt are the plain instructions: each raises #GP in
 * ring 3 and boot.S's #GP handler performs it in ring 0. */
static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" ::"a"(value), "d"(port) : "memory"); }
static inline void outw(uint16_t port, uint16_t value) { __asm__ volatile("outw %0, %1" ::"a"(value), "d"(port) : "memory"); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" ::"a"(value), "d"(port) : "memory"); }
static inline uint8_t inb(uint16_t port) {
  uint8_t value;
  __asm__ volatile("inb %1, %0" : "=a"(value) : "d"(port) : "memory");
  return value;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t value;
  __asm__ volatile("inl %1, %0" : "=a"(value) : "d"(port) : "memory");
  return value;
}
static inline void wrmsr(uint32_t msr, uint64_t value) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}
static inline NORETURN void halt_forever(void) {
  for (;;) __asm__ volatile("hlt" ::: "memory");
}
/* The syscall gates, kept to compare costs (`portio`): outb and inb work
 * through them, wider accesses and wrmsr do not (see boot.S). */
static inline void gate_call_outb(uint16_t port, uint8_t value) {
  GATE_REG(gate_outb);
  __asm__ volatile(GATE_SYSCALL ::"r"(r8_gate), "a"(value), "d"(port) : GATE_CLOBBERS);
}
static inline uint8_t gate_call_inb(uint16_t port) {
  GATE_REG(gate_inb);
  uint8_t value;
  __asm__ volatile(GATE_SYSCALL : "=a"(value) : "r"(r8_gate), "d"(port) : GATE_CLOBBERS);
  return value;
}
static inline void null_gate(void) {
  GATE_REG(gate_null);
  __asm__ volatile(GATE_SYSCALL ::"r"(r8_gate) : GATE_CLOBBERS);
}
/* ---- ring-3 instructions ---- */
static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return ((uint64_t)hi << 32) | lo;
}
struct cpuid_regs {
  uint32_t eax, ebx, ecx, edx;
};
struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf);
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

static inline uint32_t mmio_read32(uint64_t address) { return *(volatile uint32_t*)address; }
static inline void mmio_write32(uint64_t address, uint32_t value) { *(volatile uint32_t*)address = value; }

/* ---- lib.c ---- */
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strcmp(const char* a, const char* b);
bool parse_u64(const char* s, uint64_t* out);

/* ---- console.c: 16550A on COM1 and printf ---- */
void console_init(void);
void console_write(const char* s, size_t n);
void console_flush(void);
void console_break_lock(void);
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
int snprintf(char* buf, size_t size, const char* fmt, ...) PRINTF_LIKE(3, 4);
int printf(const char* fmt, ...) PRINTF_LIKE(1, 2);

/* ---- clock.c: TSC frequency from kvmclock or the PIT ---- */
struct clock_info {
  uint64_t tsc_khz;
  const char* source; /* "kvmclock" or "pit" */
};
const struct clock_info* clock_init(void);
uint64_t tsc_to_us(uint64_t ticks);
void delay_us(uint64_t us);

/* ---- main.c ---- */
/* Exits through the debug-exit port with value (0 pass, 1 fail); halts if no
 * such device ends the VM. */
NORETURN void guest_exit(uint32_t value);
NORETURN void fail(const char* reason);

struct ram_range {
  uint64_t start, end;
};
#define MAX_RAM_RANGES 32
extern struct ram_range ram_ranges[MAX_RAM_RANGES];
extern unsigned ram_range_count;
extern char image_start[], image_end[];

/* ---- memtest.c, shared with soak ---- */
#define MEMTEST_MAX_SEGMENTS MAX_RAM_RANGES
struct memtest_segment {
  uint64_t* start;
  uint64_t* end;
};
uint64_t memtest_choose_segments(uint64_t mib, struct memtest_segment* out, unsigned* count);
uint64_t memtest_round_seed(uint64_t round);
void memtest_write(const struct memtest_segment* segs, unsigned count, uint64_t seed);
uint64_t memtest_verify(const struct memtest_segment* segs, unsigned count, uint64_t seed, uint64_t* printed);

/* ---- ide.c, shared with soak ---- */
uint64_t ide_attach(uint16_t* bus_master_base);

/* ---- rtc.c, shared with soak ---- */
struct rtc_time {
  unsigned year, month, day, hour, minute, second;
};
uint8_t rtc_data_mode(void);
bool rtc_read_time(struct rtc_time* t, uint8_t reg_b);

/* ---- scenarios ---- */
int scenario_memtest(int argc, char** argv);
int scenario_cpus(int argc, char** argv);
int scenario_ide(int argc, char** argv);
int scenario_pci(int argc, char** argv);
int scenario_rtc(int argc, char** argv);
int scenario_counter(int argc, char** argv);
NORETURN void scenario_soak(int argc, char** argv);

#endif
