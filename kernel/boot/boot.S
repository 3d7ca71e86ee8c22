/*
 * 32-bit entry points and the switch to long mode.
 *
 * Two loaders reach us here, both in 32-bit protected mode with paging off:
 *   - QEMU direct boot through the PVH ELF note: EBX = physical address of hvm_start_info.
 *   - GRUB through Multiboot2: EAX = 0x36d76289, EBX = physical address of the MBI.
 * We build early page tables (identity 0-4 GiB, the same 4 GiB at the direct-map base, and the
 * first 1 GiB at -2 GiB for the kernel image), enter long mode, and jump to the higher half.
 * C++ later replaces these tables with the real ones and drops the identity mapping.
 */
#include "boot/boot_defs.h"

#define KERNEL_VMA 0xffffffff80000000

/* ---------------------------------------------------------------- Multiboot2 header */
    .section .multiboot2, "a"
    .align 8
mb2_header:
    .long 0xe85250d6                /* magic */
    .long 0                         /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header
    .long -(0xe85250d6 + 0 + (mb2_header_end - mb2_header))
    /* Information request: the tags we cannot boot well without. */
    .align 8
    .short 1, 0
    .long 24
    .long 1, 6, 14, 15              /* cmdline, mmap, ACPI old, ACPI new */
    .align 8
    .short 0, 0                     /* end tag */
    .long 8
mb2_header_end:

/* ---------------------------------------------------------------- PVH ELF note */
    .section .note.cohort.pvh, "a", @note
    .align 4
    .long 4                         /* name size */
    .long 8                         /* desc size */
    .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .align 4
    .quad _start_pvh
    .align 4

/* ---------------------------------------------------------------- 32-bit code */
    .section .boot.text, "ax"
    .code32

    .global _start_pvh
_start_pvh:
    cli
    cld
    movl $BOOT_PROTO_PVH, %edi
    jmp common32

    .global _start_mb2
_start_mb2:
    cli
    cld
    cmpl $0x36d76289, %eax
    jne bad_magic
    movl $BOOT_PROTO_MB2, %edi

common32:
    movl $boot_stack32_top, %esp
    movl %edi, boot_protocol
    movl %ebx, boot_info_phys

    /* Long mode is required; say so on COM1 instead of faulting mysteriously. */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode
    movl %edx, %esi                 /* keep ext. features: bit 20 = NX */

    /* The page-table area is NOLOAD: loaders zero it, but do not rely on that. */
    movl $early_tables_start, %edi
    movl $((early_tables_end - early_tables_start) / 4), %ecx
    xorl %eax, %eax
    rep stosl

    /* early_pd: 2048 x 2 MiB pages = identity 0-4 GiB. */
    movl $early_pd, %edi
    movl $0x83, %eax                /* present | writable | page size */
    xorl %edx, %edx
    movl $2048, %ecx
1:  movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %eax
    adcl $0, %edx
    addl $8, %edi
    loop 1b

    /* early_pdpt_low: 4 entries -> the 4 page directories. */
    movl $early_pd + 0x03, %eax
    movl %eax, early_pdpt_low + 0
    addl $0x1000, %eax
    movl %eax, early_pdpt_low + 8
    addl $0x1000, %eax
    movl %eax, early_pdpt_low + 16
    addl $0x1000, %eax
    movl %eax, early_pdpt_low + 24

    /* early_pdpt_high[510] -> first page directory: -2 GiB maps physical 0-1 GiB. */
    movl $early_pd + 0x03, %eax
    movl %eax, early_pdpt_high + 510 * 8

    movl $early_pdpt_low + 0x03, %eax
    movl %eax, early_pml4 + 0           /* identity */
    movl %eax, early_pml4 + 256 * 8     /* direct map of the first 4 GiB */
    movl $early_pdpt_high + 0x03, %eax
    movl %eax, early_pml4 + 511 * 8     /* kernel image */

    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $early_pml4, %eax
    movl %eax, %cr3

    movl $0xc0000080, %ecx          /* EFER */
    rdmsr
    orl $(1 << 8), %eax             /* LME */
    testl $(1 << 20), %esi
    jz 2f
    orl $(1 << 11), %eax            /* NXE, so later tables may use NX from the start */
2:  wrmsr

    movl %cr0, %eax
    orl $0x80010001, %eax           /* PG | WP | PE */
    movl %eax, %cr0

    lgdt early_gdt_ptr
    ljmp $0x08, $long_mode_entry

bad_magic:
    movl $msg_bad_magic, %esi
    jmp die32
no_long_mode:
    movl $msg_no_long_mode, %esi
die32:
    /* Minimal COM1 output; the port may be uninitialised but emulators and most UARTs cope. */
    movw $0x3f8, %dx
3:  lodsb
    testb %al, %al
    jz 4f
    outb %al, %dx
    jmp 3b
4:  cli
    hlt
    jmp 4b

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $kernel_entry64, %rax
    jmp *%rax

/* ---------------------------------------------------------------- 32-bit data */
    .section .boot.data, "aw"
    .align 16
early_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
early_gdt_end:
early_gdt_ptr:
    .short early_gdt_end - early_gdt - 1
    .long early_gdt

    .global boot_protocol, boot_info_phys
    .align 4
boot_protocol:
    .long 0
boot_info_phys:
    .long 0

msg_bad_magic:
    .asciz "cohort: entered through the Multiboot2 entry without the Multiboot2 magic\r\n"
msg_no_long_mode:
    .asciz "cohort: this CPU does not support 64-bit long mode; cannot boot\r\n"

    .section .boot.bss, "aw", @nobits
    .align 4096
early_tables_start:
early_pml4:      .skip 4096
early_pdpt_low:  .skip 4096
early_pdpt_high: .skip 4096
early_pd:        .skip 4 * 4096
early_tables_end:
    .align 16
    .skip 4096
boot_stack32_top:

/* ---------------------------------------------------------------- 64-bit higher-half entry */
    .section .text.boot64, "ax"
    .code64
    .global kernel_entry64
kernel_entry64:
    movabsq $bsp_boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl boot_protocol, %edi     /* still identity-mapped */
    movl boot_info_phys, %esi
    call kernel_main
1:  cli
    hlt
    jmp 1b

    .section .bss.boot_stack, "aw", @nobits
    .align 4096
    .global bsp_boot_stack_bottom, bsp_boot_stack_top
bsp_boot_stack_bottom:
    .skip BSP_BOOT_STACK_SIZE
bsp_boot_stack_top:
