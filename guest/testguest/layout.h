/* Fixed layout of the test guest, shared by the assembly stub, the C code and
 * (by value, checked with ASSERTs) the linker script. Only #defines: this file
 * is included from both .S and .c files. */
#ifndef TESTGUEST_LAYOUT_H
#define TESTGUEST_LAYOUT_H

/* The image is linked and loaded at 1 MiB; the .boot section sits exactly here
 * so the assembler can split absolute addresses into descriptor fields. */
#define KERNEL_BASE 0x100000

/* GDT selectors. */
#define KCODE_SEL 0x08
#define KDATA_SEL 0x10
#define UDATA_SEL 0x1b /* 0x18 | RPL 3 */
#define UCODE_SEL 0x23 /* 0x20 | RPL 3 */
#define TSS0_SEL 0x28  /* TSS of CPU i is TSS0_SEL + 16 * i */

#define MAX_CPUS 32
#define TSS_STRIDE 128
#define KSTACK_SIZE 1024
#define USER_STACK_SIZE 16384

/* Identity-mapped with 2 MiB pages: 64 page directories cover 0..64 GiB. */
#define MAPPED_GIB 64

/* Real-mode AP trampoline: copied here by user code, started with SIPI vector
 * TRAMPOLINE_ADDR >> 12. */
#define TRAMPOLINE_ADDR 0x8000

#define DEBUG_EXIT_PORT 0xf4
#define COM1_PORT 0x3f8
#define LAPIC_BASE 0xfee00000
#define LAPIC_EOI 0xb0
#define IOAPIC_BASE 0xfec00000

/* Device interrupt vectors (boot.S stubs, irq.c routing). */
#define IRQ_VECTOR_BASE 0x30
#define IRQ_VECTOR_COUNT 16
#define IRQ_STUB_SIZE 32
/* The last vector of the range: the LAPIC timer that bounds irq_wait. */
#define IRQ_WAKE_SLOT (IRQ_VECTOR_COUNT - 1)
#define SPURIOUS_VECTOR 0xff

#endif
