// Handlers called by code compiled with -fsanitize=undefined. The data layouts follow Clang's
// documented runtime ABI (compiler-rt ubsan_handlers.h); only the fields we print are used.
#include "debug/ubsan.h"

#include <atomic>

#include "debug/log.h"
#include "debug/panic.h"
#include "lib/format.h"

namespace cohort {

namespace {
std::atomic<uint64_t> g_reports{0};
bool g_panic = false;
} // namespace

uint64_t ubsan_report_count() { return g_reports.load(std::memory_order_relaxed); }
void ubsan_set_panic(bool p) { g_panic = p; }

namespace ubsan {

struct SourceLocation {
    const char* file;
    uint32_t line;
    uint32_t column;
};
struct TypeDescriptor {
    uint16_t kind;
    uint16_t info;
    char name[1];
};
struct TypeMismatchData {
    SourceLocation loc;
    const TypeDescriptor* type;
    uint8_t log_alignment;
    uint8_t type_check_kind;
};
struct OverflowData {
    SourceLocation loc;
    const TypeDescriptor* type;
};
struct ShiftData {
    SourceLocation loc;
    const TypeDescriptor* lhs;
    const TypeDescriptor* rhs;
};
struct OutOfBoundsData {
    SourceLocation loc;
    const TypeDescriptor* array;
    const TypeDescriptor* index;
};
struct LocationOnly {
    SourceLocation loc;
};
struct InvalidValueData {
    SourceLocation loc;
    const TypeDescriptor* type;
};
struct NonNullArgData {
    SourceLocation loc;
    SourceLocation attr;
    int arg_index;
};
struct InvalidBuiltinData {
    SourceLocation loc;
    uint8_t kind;
};
struct VlaBoundData {
    SourceLocation loc;
    const TypeDescriptor* type;
};

void report(const SourceLocation& loc, const char* what, const char* detail = "") {
    g_reports.fetch_add(1, std::memory_order_relaxed);
    log_error("ubsan: %s%s at %s:%u:%u", what, detail, loc.file != nullptr ? loc.file : "?",
              loc.line, loc.column);
    if (g_panic) panic("undefined behaviour (ubsan=panic): %s at %s:%u", what, loc.file, loc.line);
}

} // namespace ubsan
} // namespace cohort

using namespace cohort::ubsan;

extern "C" {

void __ubsan_handle_type_mismatch_v1(TypeMismatchData* d, uintptr_t ptr) {
    static const char* const kKinds[] = {"load of",    "store to",   "reference binding to",
                                         "member access within", "member call on", "constructor call on",
                                         "downcast of", "downcast of", "upcast of", "cast to virtual base of",
                                         "_Nonnull binding to", "dynamic operation on"};
    const char* kind = d->type_check_kind < 12 ? kKinds[d->type_check_kind] : "access to";
    char detail[160];
    if (ptr == 0) {
        cohort::format(detail, sizeof(detail), ": %s null pointer of type %s", kind, d->type->name);
        report(d->loc, "null pointer use", detail);
    } else if ((ptr & ((uintptr_t(1) << d->log_alignment) - 1)) != 0) {
        cohort::format(detail, sizeof(detail), ": %s address %#lx, which needs %u-byte alignment for %s",
                       kind, ptr, 1u << d->log_alignment, d->type->name);
        report(d->loc, "misaligned access", detail);
    } else {
        cohort::format(detail, sizeof(detail), ": %s address %#lx with too little space for %s", kind,
                       ptr, d->type->name);
        report(d->loc, "object size mismatch", detail);
    }
}

#define COHORT_UBSAN_ARITH(handler, text)                                                             \
    void __ubsan_handle_##handler(OverflowData* d, uintptr_t, uintptr_t) {                            \
        char detail[96];                                                                           \
        cohort::format(detail, sizeof(detail), " in type %s", d->type->name);                      \
        report(d->loc, text, detail);                                                              \
    }
COHORT_UBSAN_ARITH(add_overflow, "signed integer overflow (addition)")
COHORT_UBSAN_ARITH(sub_overflow, "signed integer overflow (subtraction)")
COHORT_UBSAN_ARITH(mul_overflow, "signed integer overflow (multiplication)")
COHORT_UBSAN_ARITH(divrem_overflow, "division by zero or overflow in division")
#undef COHORT_UBSAN_ARITH

void __ubsan_handle_negate_overflow(OverflowData* d, uintptr_t) {
    report(d->loc, "signed integer overflow (negation)");
}
void __ubsan_handle_shift_out_of_bounds(ShiftData* d, uintptr_t, uintptr_t) {
    char detail[96];
    cohort::format(detail, sizeof(detail), " (%s shifted by %s)", d->lhs->name, d->rhs->name);
    report(d->loc, "shift out of bounds", detail);
}
void __ubsan_handle_out_of_bounds(OutOfBoundsData* d, uintptr_t index) {
    char detail[96];
    cohort::format(detail, sizeof(detail), ": index %lu into %s", index, d->array->name);
    report(d->loc, "array index out of bounds", detail);
}
void __ubsan_handle_load_invalid_value(InvalidValueData* d, uintptr_t) {
    char detail[96];
    cohort::format(detail, sizeof(detail), " of type %s", d->type->name);
    report(d->loc, "load of an invalid value", detail);
}
void __ubsan_handle_builtin_unreachable(LocationOnly* d) {
    report(d->loc, "__builtin_unreachable() reached");
    cohort::panic("unreachable code reached at %s:%u", d->loc.file, d->loc.line);
}
void __ubsan_handle_missing_return(LocationOnly* d) {
    report(d->loc, "end of a value-returning function reached without return");
    cohort::panic("missing return at %s:%u", d->loc.file, d->loc.line);
}
void __ubsan_handle_vla_bound_not_positive(VlaBoundData* d, uintptr_t) {
    report(d->loc, "variable-length array bound is not positive");
}
void __ubsan_handle_nonnull_arg(NonNullArgData* d) {
    report(d->loc, "null passed as an argument declared nonnull");
}
void __ubsan_handle_nonnull_return_v1(LocationOnly*, SourceLocation* loc) {
    report(*loc, "null returned from a function declared returns_nonnull");
}
void __ubsan_handle_pointer_overflow(LocationOnly* d, uintptr_t base, uintptr_t result) {
    char detail[96];
    cohort::format(detail, sizeof(detail), ": %#lx became %#lx", base, result);
    report(d->loc, "pointer arithmetic overflow", detail);
}
void __ubsan_handle_invalid_builtin(InvalidBuiltinData* d) {
    report(d->loc, "invalid argument to a builtin (ctz/clz of zero)");
}
void __ubsan_handle_alignment_assumption(LocationOnly* d, uintptr_t, uintptr_t, uintptr_t) {
    report(d->loc, "alignment assumption violated");
}

} // extern "C"
