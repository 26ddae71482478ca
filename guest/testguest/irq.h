/* Device interrupts for test-guest scenarios: route an IOAPIC input to one of
 * the IRQ_VECTOR_COUNT vectors whose ring-0 stub (boot.S) only counts it and
 * sends the LAPIC EOI; user code waits on the count and services the device
 * itself (reads its status register), so kernel mode stays three instructions
 * per interrupt.
 *
 * kvm_pvm does not deliver interrupts to ring 3 even with RFLAGS.IF set there
 * (the vector stays in the LAPIC's IRR), so interrupts are taken only inside
 * irq_wait: the #GP gate performs a user-mode sti as sti; hlt; cli in ring 0,
 * and a one-shot LAPIC timer bounds the halt.
 *
 *   int slot = irq_route(8, IRQ_EDGE_HIGH);      // ISA IRQ 8, the RTC
 *   uint64_t seen = irq_count(slot);
 *   ...start the device...
 *   if (irq_wait(slot, seen, 3000000)) ...       // count moved on within 3 s
 */
#ifndef TESTGUEST_IRQ_H
#define TESTGUEST_IRQ_H

#include <stdbool.h>
#include <stdint.h>

enum irq_trigger {
  IRQ_EDGE_HIGH = 0, /* ISA devices */
  IRQ_LEVEL_LOW = 1, /* PCI INTx */
};

/* Software-enables the BSP's LAPIC (spurious vector SPURIOUS_VECTOR) and
 * masks both 8259 PICs, so interrupts come only through the IOAPIC.
 * Idempotent; two port accesses the first time. */
void irq_init(void);
/* Routes IOAPIC input `gsi` (0-23) to the BSP on a free vector, unmasked.
 * Returns the slot (0..IRQ_WAKE_SLOT-1) whose count that vector bumps, or
 * -1 if no slot is free or the GSI is out of range. Routing a GSI again
 * returns its slot. */
int irq_route(unsigned gsi, enum irq_trigger trigger);
/* Masks the IOAPIC input again; the slot stays allocated. */
void irq_mask(unsigned gsi);
/* Interrupts counted on `slot` since boot or the last irq_reset. */
uint64_t irq_count(int slot);
void irq_reset(int slot);
/* Waits until the count of `slot` differs from `seen`, halting in ring 0
 * with interrupts enabled; at most about `timeout_us` (the LAPIC timer is
 * assumed to count at 1 GHz, as KVM's does). Returns false on timeout. */
bool irq_wait(int slot, uint64_t seen, uint64_t timeout_us);

#endif
