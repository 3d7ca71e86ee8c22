// The few symbols the C++ compiler expects from a runtime, for the freestanding kernel.
#include "debug/panic.h"

extern "C" {
void __cxa_pure_virtual() { cohort::panic("pure virtual function called"); }
// Global destructors never run in a kernel: registering one is a no-op.
int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }
void* __dso_handle = nullptr;
}

// libstdc++ headers call these where the hosted library would throw (e.g. string_view::substr
// out of range). Without exceptions that is a bug in the caller: stop with a message.
namespace std {
[[noreturn]] void __throw_out_of_range_fmt(const char* fmt, ...) {
    cohort::panic("std: out of range (%s)", fmt);
}
} // namespace std
