/*
 * Interrupt entry stubs: one per vector, each pushing a uniform (error code, vector) pair and
 * then the general registers, so C++ sees one InterruptFrame layout for everything.
 * No user mode exists yet, so no SWAPGS: GSBASE always holds the kernel's per-CPU pointer.
 */
    .section .text, "ax"
    .code64

/*
 * 256 stubs of exactly 16 bytes each (C++ finds stub v at isr_stubs + 16 * v). Vectors where
 * the CPU pushes an error code (8, 10-14, 17, 21, 29, 30) skip the dummy push.
 */
    .align 16
    .global isr_stubs
isr_stubs:
.set vec, 0
.rept 256
    .align 16
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
.endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    call interrupt_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

