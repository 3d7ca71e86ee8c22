// Finding one OperationRegion in AML by its name, without an interpreter: enough to learn
// where a platform put a register block it describes only in the DSDT (QEMU's CPU hotplug
// block, "PRST"). Only regions whose address and length are constants can be found; the scan
// walks the bytes, so callers must also know whose tables these are (OEM id) before trusting
// a match.
#pragma once

#include <cstdint>
#include <optional>

#include "acpi/bytes.h"

namespace cohort::acpi {

struct AmlRegion {
    uint8_t space = 0;   // 0 system memory, 1 system I/O, ...
    uint64_t address = 0;
    uint64_t length = 0;
};

enum class AmlRegionResult : uint8_t {
    Found,
    NotFound,
    NotConstant, // declared, but its address or length is computed at run time
    Ambiguous,   // declared more than once, with different values
};

/// Looks for `OperationRegion (NAME, space, address, length)` whose last name segment is
/// `name` (four characters) in `aml` (a DSDT's or SSDT's body, after the 36-byte header).
AmlRegionResult find_operation_region(Bytes aml, const char (&name)[5], AmlRegion& out);

} // namespace cohort::acpi
