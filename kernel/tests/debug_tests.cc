// Diagnostics: symbols, UBSan runtime, command line checks, boot information.
#include <climits>
#include <cstring>

#include "boot/bootinfo.h"
#include "boot/params.h"
#include "debug/log.h"
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
