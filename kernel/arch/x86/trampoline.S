/*
 * AP start-up trampoline: real mode -> protected mode -> long mode -> the kernel.
 *
 * The BSP copies the code part to a page P below 1 MiB and the data part (TrampolineData in
 * trampoline.h: GDT, far pointers, CR3/CR4/EFER, the APIC-id table) to the page right after
 * it, then sends SIPI with vector P >> 12, so each AP starts at P:0 in real mode with CS = P>>4.
 * The code is position independent: it finds P from CS and reaches the data page at P + 4096.
 * It uses no stack until it has found its own, so any number of APs may run it at once.
 * Offsets into the data page are pinned by static_asserts in trampoline.h.
 */
#define DATA 0x1000          /* the data page follows the code page */
#define D_GDTR (DATA + 32)
#define D_FAR32 (DATA + 40)
#define D_FAR64 (DATA + 48)
#define D_CR3 (DATA + 56)
#define D_CR4 (DATA + 60)
#define D_EFER (DATA + 64)
#define D_FLAGS (DATA + 68)
#define D_ENTRY64 (DATA + 72)
#define D_TABLE (DATA + 80)
#define D_COUNT (DATA + 88)
#define D_REACHED16 (DATA + 96)
#define D_REACHED32 (DATA + 100)
#define D_REACHED64 (DATA + 104)
#define D_UNKNOWN (DATA + 108)

    .section .rodata.trampoline, "a"
    .balign 4096
    .global trampoline_code_start, trampoline_code_end
trampoline_code_start:
    .code16
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    movzwl %ax, %ebx
    shll $4, %ebx                       /* EBX = P, kept through every mode switch */
    lock incl D_REACHED16
    lgdtl D_GDTR
    movl %cr0, %eax
    orl $1, %eax                        /* PE */
    movl %eax, %cr0
    ljmpl *D_FAR32                      /* CS = 0x08 (32-bit, flat), EIP = P + tramp32 */

    .code32
tramp32 = . - trampoline_code_start
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    lock incl D_REACHED32(%ebx)
    movl D_CR4(%ebx), %eax
    movl %eax, %cr4
    movl D_CR3(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx              /* EFER: LME (and NXE, which the page tables use) */
    rdmsr
    orl D_EFER(%ebx), %eax
    wrmsr
    /* INIT leaves the caches disabled (CD and NW set): turn them on, or this CPU would run
     * uncached on real hardware (emulators do not care, which is how this goes unnoticed). */
    movl %cr0, %eax
    andl $0x9fffffff, %eax              /* clear CD (bit 30) and NW (bit 29) */
    orl $0x80010001, %eax               /* PG | WP | PE */
    movl %eax, %cr0
    ljmpl *D_FAR64(%ebx)                /* CS = 0x18 (64-bit) */

    .code64
tramp64 = . - trampoline_code_start
    movl %ebx, %r8d                     /* upper halves are undefined after the switch */
    lock incl D_REACHED64(%r8)
    /* Our APIC id: CPUID 0xB (x2APIC id, 32 bits) when the BSP runs x2APIC, else CPUID 1. */
    testl $1, D_FLAGS(%r8)
    jz 1f
    movl $0xb, %eax
    xorl %ecx, %ecx
    cpuid
    movl %edx, %esi
    jmp 2f
1:  movl $1, %eax
    cpuid
    shrl $24, %ebx
    movl %ebx, %esi
2:  movq D_TABLE(%r8), %r9
    movq D_COUNT(%r8), %rcx
    testq %rcx, %rcx
    jz 4f
3:  cmpl (%r9), %esi
    je 5f
    addq $24, %r9
    decq %rcx
    jnz 3b
4:  movl %esi, D_UNKNOWN(%r8)           /* not ours to start: park with interrupts off */
6:  cli
    hlt
    jmp 6b
5:  movq 16(%r9), %rsp
    movq 8(%r9), %rdi
    xorl %ebp, %ebp
    movq D_ENTRY64(%r8), %rax
    call *%rax
    jmp 6b
trampoline_code_end:

    .balign 4096
    .global trampoline_data_start, trampoline_data_end
trampoline_data_start:
    .quad 0
    .quad 0x00cf9a000000ffff            /* 0x08: 32-bit code, flat */
    .quad 0x00cf92000000ffff            /* 0x10: data, flat */
    .quad 0x00af9a000000ffff            /* 0x18: 64-bit code */
    .short 31                           /* gdt limit */
    .long 0                             /* gdt base: P + 4096 (filled by the BSP) */
    .short 0
    .long tramp32                       /* far32: relative here, the BSP adds P */
    .short 0x08
    .short 0
    .long tramp64
    .short 0x18
    .short 0
    .long 0, 0, 0, 0                    /* cr3, cr4, efer, flags */
    .quad 0, 0, 0                       /* entry64, table, table_count */
    .long 0, 0, 0, 0xffffffff           /* reached16/32/64, unknown_apic_id */
trampoline_data_end:
