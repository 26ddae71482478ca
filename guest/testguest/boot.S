/* Kernel-mode stub of the test guest: PVH entry, long mode, ring-3 drop, the
 * ring-0 gates user code calls for port I/O, exception reflection and the AP
 * trampoline.
 *
 * Kernel mode is emulated one instruction at a time on our hosts, so every
 * table (GDT, TSS, IDT, page tables, the first iretq frame) is built by the
 * assembler and linker; the boot path only loads registers. Everything lives in
 * the single section .boot, which the linker script pins at KERNEL_BASE, so
 * ABS(label) is an assembly-time constant the descriptor fields can be split
 * from. */
#include "layout.h"

#define ABS(sym) (KERNEL_BASE + ((sym) - boot_start))

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define CR4_PAE 0x20
#define EFER_MSR 0xc0000080
#define EFER_LME_SCE 0x101 /* long mode, syscall/sysret */
#define STAR_MSR 0xc0000081
#define LSTAR_MSR 0xc0000082
#define FMASK_MSR 0xc0000084
/* Every flag but the reserved bit 1: syscall enters ring 0 with IF=TF=DF=0
 * whatever the emulated RFLAGS looked like. */
#define SYSCALL_FLAGS_CLEARED 0x003f7fd5
/* STAR[47:32]: syscall loads CS from it and SS from it + 8. (sysret, which
 * would use STAR[63:48], faults on kvm_pvm and is not used.) */
#define STAR_HIGH KCODE_SEL
#define CR0_PE_PG 0x80000001
#define PDE_2M 0x87     /* present, writable, user, 2 MiB page */
#define PDE_2M_UC 0x9f  /* same, cache disabled: the MMIO hole */
#define TABLE_FLAGS 0x7 /* present, writable, user */

/* EFER (long mode enable, syscall enable), FMASK, LSTAR, STAR: 14 instructions,
 * valid in 16- and 32-bit code. */
.macro SYSCALL_AND_LONG_MODE_MSRS
	mov $EFER_MSR, %ecx
	mov $EFER_LME_SCE, %eax
	xor %edx, %edx
	wrmsr
	mov $FMASK_MSR, %ecx
	mov $SYSCALL_FLAGS_CLEARED, %eax
	wrmsr
	mov $LSTAR_MSR, %ecx
	mov $syscall_entry, %eax
	wrmsr
	mov $STAR_MSR, %ecx
	xor %eax, %eax
	mov $STAR_HIGH, %edx
	wrmsr
.endm

/* ------------------------------------------------------------------------ */
/* PVH entry note. QEMU reads an ELF64 note's descriptor as 8 bytes, so the
 * 32-bit entry address is stored as a quad (the upper half is zero). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 8
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.balign 4
	.quad pvh_entry

	.section .boot, "awx", @progbits
	.globl boot_start
boot_start:

/* ------------------------------------------------------------------------ */
/* PVH entry: 32-bit protected mode, paging off, flat segments, %ebx = physical
 * address of struct hvm_start_info. 32 instructions to ring 3. */
	.code32
	.globl pvh_entry
pvh_entry:
	rdtsc                      /* the very first instruction: entry time */
	mov %eax, %esi
	mov %edx, %ebp
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	SYSCALL_AND_LONG_MODE_MSRS
	mov $CR0_PE_PG, %eax
	mov %eax, %cr0
	lgdt gdt_ptr
	ljmp $KCODE_SEL, $long_entry

	.code64
long_entry:
	lidt idt_ptr(%rip)
	ltr tss0_sel(%rip)
	mov %ebx, %edi             /* arg 1: start info */
	mov %ebp, %edx             /* arg 3: entry TSC high; arg 2 (%esi) is the low half */
	mov $bsp_iret_frame, %esp
	iretq                      /* to user_entry in ring 3 */

/* ------------------------------------------------------------------------ */
/* AP path after the trampoline: the BSP stores the TSS selector and the iretq
 * frame pointer for the one AP it is starting. */
ap_long_entry:
	lidt idt_ptr(%rip)
	ltr ap_tss_sel(%rip)
	mov ap_iret_frame_ptr(%rip), %rsp
	iretq

/* ------------------------------------------------------------------------ */
/* Ring-3 gates. On kvm_pvm a software interrupt from ring 3 raises #UD and
 * sysretq raises #GP, so user code enters ring 0 with `syscall` (gate address
 * in %r8) after pushing a complete iretq frame on its own stack (guest.h);
 * syscall keeps that stack, and each gate is its privileged instruction and
 * iretq. %rcx is taken by syscall, so wrmsr and cpuid take their %ecx input
 * in %r10. Only single accesses: `rep outsb` raises #GP in the kernel-mode
 * emulator, and a kernel loop around `out` does not terminate there. */
	.globl syscall_entry
syscall_entry:
	jmp *%r8

	.globl gate_outb, gate_inb, gate_null
gate_outb:  out %al, %dx
	iretq
gate_inb:   in %dx, %al
	iretq
gate_null:  iretq

/* ------------------------------------------------------------------------ */
/* #GP: the port-I/O path. User code executes plain in/out (and wrmsr, hlt);
 * ring 3 has no I/O privilege, so each one raises #GP and this handler, in
 * genuine ring 0, decodes the instruction, performs it for the user and steps
 * over it. The common byte accesses are tested first: outb costs 10 emulated
 * instructions, inb 12. Anything else is a real fault and is reflected. */
gp_entry:                       /* stack: error, rip, cs, rflags, rsp, ss */
	push %rcx
	mov 16(%rsp), %rcx          /* faulting rip */
	cmpb $0xee, (%rcx)
	je gp_outb
	cmpb $0xec, (%rcx)
	je gp_inb
	cmpb $0xef, (%rcx)
	je gp_outl
	cmpb $0xed, (%rcx)
	je gp_inl
	cmpw $0xef66, (%rcx)
	je gp_outw
	cmpw $0xed66, (%rcx)
	je gp_inw
	cmpw $0x300f, (%rcx)
	je gp_wrmsr
	cmpb $0xf4, (%rcx)
	je gp_halt
	cmpb $0xfb, (%rcx)
	je gp_wait_irq
	pop %rcx
	push $13
	jmp exc_common
gp_outb: out %al, %dx
	jmp gp_step1
gp_inb:	in %dx, %al
	jmp gp_step1
gp_outl: out %eax, %dx
	jmp gp_step1
gp_inl:	in %dx, %eax
	jmp gp_step1
gp_outw: out %ax, %dx
	jmp gp_step2
gp_inw:	in %dx, %ax
	jmp gp_step2
gp_wrmsr:
	mov (%rsp), %rcx            /* the user's %ecx names the MSR */
	wrmsr
	jmp gp_step2
gp_halt:
	cli
1:	hlt
	jmp 1b
/* A user-mode sti waits for one interrupt (irq.c): kvm_pvm delivers device
 * interrupts to ring 0 with IF=1, not to ring 3, and sti itself raises #GP
 * after a syscall entry. sti's shadow covers the hlt, so an interrupt already
 * pending wakes it at once. */
gp_wait_irq:
	sti
	hlt
	cli
	jmp gp_step1
gp_step2:
	incq 16(%rsp)
gp_step1:
	incq 16(%rsp)
	pop %rcx
	add $8, %rsp
	iretq

/* Exceptions 0-31: one 16-byte stub each, pushing a zero error code where the
 * CPU does not, then the vector. */
	.balign 16
exc_stubs:
	.set vec, 0
	.rept 32
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	push $vec
	.else
	push $0
	push $vec
	.endif
	jmp exc_common
	.balign 16
	.set vec, vec + 1
	.endr

/* Reflect the exception to user_fault_entry(vector, error, rip, cr2) in ring
 * 3 on the fault stack, whatever ring it came from. */
exc_common:
	pop %rdi
	pop %rsi
	mov (%rsp), %rdx
	mov %cr2, %rcx
	movq $user_fault_entry, (%rsp)
	movq $UCODE_SEL, 8(%rsp)
	movq $0x2, 16(%rsp)
	movq $fault_stack_top - 8, 24(%rsp)
	movq $UDATA_SEL, 32(%rsp)
	iretq

/* ------------------------------------------------------------------------ */
/* Device interrupts: three emulated instructions each. Count the vector for
 * user mode (irq.c), end it at the LAPIC (EOI: any value written to its EOI
 * register; movabs needs no scratch register), return. */
	.balign IRQ_STUB_SIZE
irq_stubs:
	.set vec, 0
	.rept IRQ_VECTOR_COUNT
	incq irq_counts + vec * 8(%rip)
	movabs %eax, LAPIC_BASE + LAPIC_EOI
	iretq
	.balign IRQ_STUB_SIZE
	.set vec, vec + 1
	.endr
/* Spurious LAPIC interrupts take no EOI. */
spurious_entry:
	iretq

/* ------------------------------------------------------------------------ */
/* Real-mode AP trampoline, copied to TRAMPOLINE_ADDR by the BSP (user mode)
 * and entered with CS = TRAMPOLINE_ADDR >> 4, IP = 0. Goes straight from real
 * mode to long mode (PE and PG set together). */
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
	mov $CR4_PAE, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	SYSCALL_AND_LONG_MODE_MSRS
	lgdtl %cs:(ap_gdt_ptr - ap_trampoline)
	mov $CR0_PE_PG, %eax
	mov %eax, %cr0
	ljmpl $KCODE_SEL, $ap_long_entry
	.balign 4
ap_gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:
	.code64

/* ------------------------------------------------------------------------ */
/* Data the boot path reads. */
	.balign 16
	.globl ap_tss_sel, ap_iret_frame_ptr
tss0_sel:
	.word TSS0_SEL
ap_tss_sel:
	.word 0
	.balign 8
ap_iret_frame_ptr:
	.quad 0
bsp_iret_frame:
	.quad user_entry
	.quad UCODE_SEL
	.quad 0x2                   /* rflags: IF=0, IOPL=0 */
	.quad bsp_user_stack_top - 8 /* as if called: rsp+8 is 16-byte aligned */
	.quad UDATA_SEL

gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt
idt_ptr:
	.word idt_end - idt - 1
	.quad idt

/* GDT: null, kernel code/data, user data/code, then one 16-byte TSS
 * descriptor per CPU. */
	.balign 16
	.globl gdt
gdt:
	.quad 0
	.quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff    /* 0x10 kernel data */
	.quad 0x00cff2000000ffff    /* 0x18 user data */
	.quad 0x00affa000000ffff    /* 0x20 user code, 64-bit */
	.set cpu, 0
	.rept MAX_CPUS
	.set tss_abs, ABS(tss_array) + cpu * TSS_STRIDE
	.quad 0x67 | ((tss_abs & 0xffffff) << 16) | (0x89 << 40) | (((tss_abs >> 24) & 0xff) << 56)
	.quad tss_abs >> 32
	.set cpu, cpu + 1
	.endr
gdt_end:

/* 64-bit TSSes: only RSP0 (the kernel stack for gates and exceptions) and an
 * I/O map base past the limit (no bitmap). */
	.balign 16
tss_array:
	.set cpu, 0
	.rept MAX_CPUS
	.long 0
	.quad kernel_stacks + (cpu + 1) * KSTACK_SIZE
	.fill 88, 1, 0
	.word 0
	.word 104
	.fill TSS_STRIDE - 104, 1, 0
	.set cpu, cpu + 1
	.endr

/* IDT: exceptions 0-31; device interrupts IRQ_VECTOR_BASE.. (irq.c routes
 * them; user mode runs with IF=1 only while a scenario waits for them) and
 * the LAPIC's spurious vector. */
#define GATE(target, attr) \
	.quad (ABS(target) & 0xffff) | (KCODE_SEL << 16) | ((attr) << 40) | ((ABS(target) >> 16 & 0xffff) << 48); \
	.quad ABS(target) >> 32
	.balign 16
idt:
	.set vec, 0
	.rept 32
	.if vec == 13
	GATE(gp_entry, 0x8e)
	.else
	GATE(exc_stubs + vec * 16, 0x8e)
	.endif
	.set vec, vec + 1
	.endr
	.fill (IRQ_VECTOR_BASE - 32) * 16, 1, 0
	.set vec, 0
	.rept IRQ_VECTOR_COUNT
	GATE(irq_stubs + vec * IRQ_STUB_SIZE, 0x8e)
	.set vec, vec + 1
	.endr
	.fill (SPURIOUS_VECTOR - IRQ_VECTOR_BASE - IRQ_VECTOR_COUNT) * 16, 1, 0
	GATE(spurious_entry, 0x8e)
idt_end:

/* Page tables: identity map of 0..64 GiB with 2 MiB user pages; 3-4 GiB (the
 * MMIO hole: IOAPIC, LAPIC) uncached. */
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + TABLE_FLAGS
	.fill 511, 8, 0
pdpt:
	.set gib, 0
	.rept MAPPED_GIB
	.quad page_dirs + gib * 4096 + TABLE_FLAGS
	.set gib, gib + 1
	.endr
	.fill 512 - MAPPED_GIB, 8, 0
page_dirs:
	.set page, 0
	.rept MAPPED_GIB * 512
	.if (page >= 3 * 512) && (page < 4 * 512)
	.quad (page << 21) | PDE_2M_UC
	.else
	.quad (page << 21) | PDE_2M
	.endif
	.set page, page + 1
	.endr

	.section .bss
	.balign 4096
kernel_stacks:
	.skip MAX_CPUS * KSTACK_SIZE
	.balign 16
bsp_user_stack:
	.skip USER_STACK_SIZE
	.globl bsp_user_stack_top
bsp_user_stack_top:
fault_stack:
	.skip 8192
fault_stack_top:
	.balign 64
	.globl irq_counts
irq_counts:
	.skip IRQ_VECTOR_COUNT * 8

	.section .note.GNU-stack, "", @progbits
