// Context switch between kernel tasks: only the callee-saved registers need saving, because
// the switch is an ordinary function call for the compiler. See sched/core.cc.
    .text
    .code64

// void x86_context_switch(uint64_t* save_rsp, uint64_t new_rsp)
    .globl x86_context_switch
    .type x86_context_switch, @function
x86_context_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size x86_context_switch, . - x86_context_switch

// First instruction of a new task: the prepared stack "returned" here with the Task* in rbx
// and rsp 16-byte aligned, as at a call site.
    .globl x86_task_entry
    .type x86_task_entry, @function
x86_task_entry:
    movq %rbx, %rdi
    call sched_task_first_run
    ud2
    .size x86_task_entry, . - x86_task_entry

    .section .note.GNU-stack, "", @progbits
