// What the loader told us, normalised into one structure whichever way we were booted.
#pragma once

#include <cstdint>

#include "lib/memmap.h"

namespace cohort {

enum class BootProtocol : uint32_t { Pvh = 1, Multiboot2 = 2 };

struct BootInfo {
    BootProtocol protocol;
    char loader_name[64];
    char cmdline[1024];
    bool cmdline_truncated;
    /// Firmware memory map as the loader gave it (raw, not yet normalised).
    MemoryMap memmap;
    /// The RSDP: its bytes (a copy, since Multiboot2 gives only a copy) and, when known, where
    /// it lives in physical memory.
    uint8_t rsdp[36];
    uint32_t rsdp_length; // 0 when the loader gave none
    uint64_t rsdp_phys;   // 0 when only a copy is known
    uint64_t efi_system_table; // 0 unless booted from UEFI
    /// Physical range of the loader's information structure (already copied; informational).
    uint64_t info_phys;
    uint64_t info_size;
};

/// Parses the loader's structures (reachable through the early direct map) into `out`.
/// Returns false with a logged error when the structure is unusable.
bool parse_boot_info(BootProtocol protocol, uint64_t info_phys, BootInfo& out);

/// The parsed boot information (filled once by kernel_main).
extern BootInfo g_boot_info;

/// The normalised physical memory map with the kernel's own reservations (kernel image, the
/// low 1 MiB kept for the AP trampoline, the frame bitmap).
extern MemoryMap g_memory_map;

} // namespace cohort
