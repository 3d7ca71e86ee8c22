/*
 * Minimal setjmp/longjmp for recovering from faults a test provokes on purpose (and from
 * crashes inside a test). Saves the callee-saved registers, the stack pointer, the return
 * address and RFLAGS (so the interrupt flag comes back as it was).
 * Layout must match JumpBuffer in debug/fault_catcher.h.
 */
    .section .text, "ax"
    .code64
    .global cohort_setjmp
cohort_setjmp:
    movq %rbx, 0(%rdi)
    movq %rbp, 8(%rdi)
    movq %r12, 16(%rdi)
    movq %r13, 24(%rdi)
    movq %r14, 32(%rdi)
    movq %r15, 40(%rdi)
    leaq 8(%rsp), %rax          /* caller's rsp after our return */
    movq %rax, 48(%rdi)
    movq (%rsp), %rax           /* return address */
    movq %rax, 56(%rdi)
    pushfq
    popq %rax
    movq %rax, 64(%rdi)
    xorl %eax, %eax
    ret

    .global cohort_longjmp
cohort_longjmp:
    movl %esi, %eax
    testl %eax, %eax
    jnz 1f
    incl %eax
1:  movq 0(%rdi), %rbx
    movq 8(%rdi), %rbp
    movq 16(%rdi), %r12
    movq 24(%rdi), %r13
    movq 32(%rdi), %r14
    movq 40(%rdi), %r15
    movq 48(%rdi), %rsp
    pushq 64(%rdi)
    popfq
    jmpq *56(%rdi)
