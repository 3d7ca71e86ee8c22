// Access to physical memory for the ACPI parser, so the same code runs in the kernel (through
// the direct map) and in host tests (over table files placed at fake addresses).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cohort::acpi {

/// Reads physical memory. A virtual interface rather than a template parameter so the parser is
/// compiled once and callers need no header-only code; one indirect call per table header or
/// table copy is negligible. Implementations must fail (return false) rather than fault for
/// any range they cannot map, including ranges that wrap around 2^64.
class PhysReader {
  public:
    /// Copies `len` bytes starting at `phys` into `dst`. Returns false, with `dst` in an
    /// unspecified state, if any byte of the range is not readable.
    virtual bool read(uint64_t phys, void* dst, size_t len) const = 0;

  protected:
    // Non-virtual and protected: readers are never deleted through this interface, and a
    // virtual destructor would drag operator delete into the freestanding kernel.
    ~PhysReader() = default;
};

} // namespace cohort::acpi
