// Assembly targets of indirect calls for the KCFI tests (security_tests.cc): one carries the
// type id of `uint64_t (uint64_t)` where clang puts it for C++ functions, one carries none.
// An assembly function that C++ calls through a pointer needs the first form.

    .text
    .p2align 4
    // clang's KCFI preamble: `mov $id, %eax` right before the function, so the caller finds
    // the id at target-4. __kcfi_typeid_<name> is defined by clang in the C++ file that takes
    // the function's address (security_tests.cc).
    .byte 0xb8
#ifdef COHORT_KCFI
    .long __kcfi_typeid_kcfi_probe_typed_asm
#else
    .long 0
#endif
    .global kcfi_probe_typed_asm
    .type kcfi_probe_typed_asm, @function
kcfi_probe_typed_asm:
    leaq 1(%rdi), %rax
    ret
    .size kcfi_probe_typed_asm, . - kcfi_probe_typed_asm

    .p2align 4
    .global kcfi_probe_untyped_asm
    .type kcfi_probe_untyped_asm, @function
kcfi_probe_untyped_asm:
    leaq 2(%rdi), %rax
    ret
    .size kcfi_probe_untyped_asm, . - kcfi_probe_untyped_asm

    .section .note.GNU-stack, "", @progbits
