/* IOAPIC routing and the user-mode side of the interrupt stubs (irq.h). The
 * IOAPIC (82093AA datasheet): IOREGSEL at +0x00 selects a register, IOWIN at
 * +0x10 reads or writes it; redirection entry n is registers 0x10+2n (low:
 * vector, polarity bit 13, trigger bit 15, mask bit 16) and 0x11+2n (high:
 * destination APIC id in bits 24-31). */
#include "irq.h"

#include "guest.h"

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WINDOW 0x10
#define IOAPIC_REDIRECTION 0x10
#define IOAPIC_ACTIVE_LOW (1u << 13)
#define IOAPIC_LEVEL (1u << 15)
#define IOAPIC_MASKED (1u << 16)
#define IOAPIC_INPUTS 24

#define LAPIC_ID 0x020
#define LAPIC_SVR 0x0f0
#define LAPIC_SOFTWARE_ENABLE 0x100
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0
#define LAPIC_DIVIDE_BY_1 0x0b

#define PIC_MASTER_DATA 0x21
#define PIC_SLAVE_DATA 0xa1

extern volatile uint64_t irq_counts[IRQ_VECTOR_COUNT];

static bool initialised;
static int slot_of_gsi[IOAPIC_INPUTS];
static unsigned slots_used;

static void ioapic_write(uint32_t reg, uint32_t value) {
  mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
  mmio_write32(IOAPIC_BASE + IOAPIC_WINDOW, value);
}

static uint32_t ioapic_read(uint32_t reg) {
  mmio_write32(IOAPIC_BASE + IOAPIC_REGSEL, reg);
  return mmio_read32(IOAPIC_BASE + IOAPIC_WINDOW);
}

void irq_init(void) {
  if (initialised) return;
  outb(PIC_MASTER_DATA, 0xff);
  outb(PIC_SLAVE_DATA, 0xff);
  uint32_t svr = mmio_read32(LAPIC_BASE + LAPIC_SVR);
  mmio_write32(LAPIC_BASE + LAPIC_SVR, (svr & ~0xffu) | LAPIC_SOFTWARE_ENABLE | SPURIOUS_VECTOR);
  for (unsigned i = 0; i < IOAPIC_INPUTS; i++) slot_of_gsi[i] = -1;
  initialised = true;
}

int irq_route(unsigned gsi, enum irq_trigger trigger) {
  if (gsi >= IOAPIC_INPUTS) return -1;
  irq_init();
  int slot = slot_of_gsi[gsi];
  if (slot < 0) {
    if (slots_used == IRQ_WAKE_SLOT) return -1;
    slot = (int)slots_used++;
    slot_of_gsi[gsi] = slot;
  }
  uint32_t apic_id = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
  uint32_t low = (uint32_t)(IRQ_VECTOR_BASE + slot);
  if (trigger == IRQ_LEVEL_LOW) low |= IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW;
  ioapic_write(IOAPIC_REDIRECTION + 2 * gsi + 1, apic_id << 24);
  ioapic_write(IOAPIC_REDIRECTION + 2 * gsi, low);
  return slot;
}

void irq_mask(unsigned gsi) {
  if (gsi >= IOAPIC_INPUTS) return;
  uint32_t low = ioapic_read(IOAPIC_REDIRECTION + 2 * gsi);
  ioapic_write(IOAPIC_REDIRECTION + 2 * gsi, low | IOAPIC_MASKED);
}

uint64_t irq_count(int slot) {
  if (slot < 0 || slot >= IRQ_VECTOR_COUNT) return 0;
  return __atomic_load_n(&irq_counts[slot], __ATOMIC_ACQUIRE);
}

void irq_reset(int slot) {
  if (slot < 0 || slot >= IRQ_VECTOR_COUNT) return;
  __atomic_store_n(&irq_counts[slot], 0, __ATOMIC_RELEASE);
}

/* One halt in ring 0 with IF=1, ended by any interrupt: the #GP gate
 * performs a user-mode sti as sti; hlt; cli (boot.S gp_wait_irq). */
static void wait_for_interrupt(void) {
  __asm__ volatile("sti" ::: "memory");
}

bool irq_wait(int slot, uint64_t seen, uint64_t timeout_us) {
  uint64_t khz = clock_init()->tsc_khz;
  uint64_t start = rdtsc();
  uint64_t limit = timeout_us * khz / 1000;
  uint64_t wake_ns = timeout_us * 1000 > 0xffffffffull ? 0xffffffffull : timeout_us * 1000;
  mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_BY_1);
  mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, IRQ_VECTOR_BASE + IRQ_WAKE_SLOT); /* one-shot */
  mmio_write32(LAPIC_BASE + LAPIC_TIMER_INITIAL, (uint32_t)(wake_ns == 0 ? 1 : wake_ns));
  bool arrived = false;
  while (!(arrived = irq_count(slot) != seen) && rdtsc() - start <= limit) wait_for_interrupt();
  mmio_write32(LAPIC_BASE + LAPIC_TIMER_INITIAL, 0);
  return arrived;
}
