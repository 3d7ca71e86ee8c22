// Diagnostics: symbols, UBSan runtime, command line checks, boot information.
#include <climits>
#include <cstring>

#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "debug/symbols.h"
#include "debug/ubsan.h"
#include "test/ktest.h"

namespace cohort {
namespace {

KTEST(debug, symbol_table_names_functions) {
    KASSERT(symbol_count() > 100);
    uint64_t off = 1;
    const char* name = symbolize(reinterpret_cast<uint64_t>(&ktest::run), &off);
    KASSERT(name != nullptr);
    KEXPECT(strstr(name, "ktest::run") != nullptr);
    KEXPECT_EQ(off, uint64_t{0});
    KEXPECT_EQ(symbol_address(name), reinterpret_cast<uint64_t>(&ktest::run));
}

[[gnu::noinline]] uint64_t prologue_target(uint64_t x) { return x * 3 + 1; }
[[gnu::noinline]] void marker_caller_of_prologue() { asm volatile("" ::: "memory"); }

KTEST(debug, backtrace_stopped_in_a_prologue_names_the_caller) {
    // A context interrupted at a function's first instruction has not pushed its frame pointer
    // yet: rbp is still its caller's frame, and the caller is known only from the return
    // address on the stack. (An NMI backtrace of a CPU that just called a function is exactly
    // that.) Simulate the stack of such a moment.
    const uint64_t entry = reinterpret_cast<uint64_t>(&prologue_target);
    const uint64_t ret = reinterpret_cast<uint64_t>(&marker_caller_of_prologue) + 4;
    alignas(16) uint64_t stack[2] = {ret, 0};
    const uint64_t mark = log_mark();
    print_backtrace(entry, reinterpret_cast<uint64_t>(__builtin_frame_address(0)),
                    reinterpret_cast<uint64_t>(stack));
    KEXPECT(log_contains_since(mark, "prologue_target"));
    KEXPECT(log_contains_since(mark, "marker_caller_of_prologue"));
    // Past the prologue rbp is the function's own frame: nothing is read from the stack.
    const uint64_t mark2 = log_mark();
    print_backtrace(entry + 8, reinterpret_cast<uint64_t>(__builtin_frame_address(0)),
                    reinterpret_cast<uint64_t>(stack));
    KEXPECT(!log_contains_since(mark2, "marker_caller_of_prologue"));
}

KTEST(debug, backtrace_stopped_at_a_ret_names_the_caller) {
    // At the final ret the frame is already popped (an NMI landing there once made
    // locks.long_wait_is_reported_with_the_holder miss the function holding the lock).
    const auto* code = reinterpret_cast<const uint8_t*>(&prologue_target);
    uint64_t ret_at = 0;
    for (int i = 1; i < 64 && ret_at == 0; ++i)
        if (code[i] == 0xc3 && (code[i - 1] == 0x5d || code[i - 1] == 0xc9)) // pop %rbp / leave
            ret_at = reinterpret_cast<uint64_t>(code + i);
    KASSERT(ret_at != 0);
    const uint64_t ret = reinterpret_cast<uint64_t>(&marker_caller_of_prologue) + 4;
    alignas(16) uint64_t stack[2] = {ret, 0};
    const uint64_t mark = log_mark();
    print_backtrace(ret_at, reinterpret_cast<uint64_t>(__builtin_frame_address(0)),
                    reinterpret_cast<uint64_t>(stack));
    KEXPECT(log_contains_since(mark, "prologue_target"));
    KEXPECT(log_contains_since(mark, "marker_caller_of_prologue"));
}

KTEST(debug, ubsan_reports_with_location) {
#if COHORT_ASSERTS
    ktest::allow_ubsan_reports();
    const uint64_t before = ubsan_report_count();
    const uint64_t mark = log_mark();
    volatile int big = INT_MAX;
    volatile int result = big + 1; // signed overflow: undefined, must be reported
    (void)result;
    KEXPECT_EQ(ubsan_report_count(), before + 1);
    KEXPECT(log_contains_since(mark, "signed integer overflow"));
    KEXPECT(log_contains_since(mark, "debug_tests.cc:"));
#else
    ktest::skip("release build has no UBSan instrumentation");
#endif
}

KTEST(debug, unknown_command_line_options_are_reported) {
    CommandLine cl;
    KASSERT(cl.parse("loglevel=info bogus.option=1 test=all"));
    const uint64_t mark = log_mark();
    KEXPECT_EQ(params_warn_unknown(cl), size_t{1});
    KEXPECT(log_contains_since(mark, "unknown option 'bogus.option'"));
}

KTEST(boot, loader_information_is_complete) {
    const BootInfo& b = g_boot_info;
    KEXPECT(b.loader_name[0] != 0);
    KEXPECT(b.memmap.regions().size() >= 3);
    // Both QEMU direct boot and GRUB pass the RSDP; check it is a real one.
    KASSERT(b.rsdp_length >= 20);
    KEXPECT(memcmp(b.rsdp, "RSD PTR ", 8) == 0);
    uint8_t sum = 0;
    for (int i = 0; i < 20; ++i) sum = static_cast<uint8_t>(sum + b.rsdp[i]);
    KEXPECT_EQ(sum, uint8_t{0});
}

} // namespace
} // namespace cohort
