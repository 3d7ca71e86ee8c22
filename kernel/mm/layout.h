// The kernel's virtual address layout. Everything above kKernelHalf is shared by all address
// spaces: its PML4 entries are created once at boot and never replaced, so a private address
// space copies them and stays coherent with every later kernel mapping.
#pragma once

#include <cstdint>

namespace cohort::layout {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kKernelHalf = 0xffff800000000000;
/// All RAM (and the low 1 MiB) is mapped here: phys P is at kDirectMapBase + P.
constexpr uint64_t kDirectMapBase = 0xffff800000000000;
constexpr uint64_t kDirectMapSize = 64ull << 40; // 64 TiB
/// Kernel stacks, each in its own slot whose unmapped low part is the guard region.
constexpr uint64_t kStackAreaBase = 0xffffc00000000000;
constexpr uint64_t kStackAreaSize = 512ull << 30;
constexpr uint64_t kStackSlotSize = 256 * 1024;
/// Device registers and firmware tables mapped on demand (uncached or write-back as asked).
constexpr uint64_t kMmioAreaBase = 0xffffc08000000000;
constexpr uint64_t kMmioAreaSize = 512ull << 30;
/// Remote-call request slots (smp/call.cc): CPU n's at kCallSlotAreaBase + n * kCallSlotStride,
/// so a target tells which CPU sent a request from the request's address alone.
constexpr uint64_t kCallSlotAreaBase = 0xffffc10000000000;
constexpr uint64_t kCallSlotStride = 8192;
constexpr uint64_t kCallSlotAreaSize = 4096 * kCallSlotStride; // kMaxCpus CPUs
/// The CPU-private region (PML4 slot 510). Each CPU's own top-level table points this slot at
/// that CPU's tables, so the same addresses hold each CPU's private pages, which no other CPU
/// can reach: their direct-map alias is removed (arch/x86/cpu_private.cc, docs/security.md).
constexpr uint64_t kCpuPrivateBase = 0xffffff0000000000;
constexpr uint64_t kCpuPrivateSize = 2ull << 20; // one page table's worth is used
/// The CPU's own top-level table, writable only here (its direct-map alias is read-only).
constexpr uint64_t kCpuPrivateRoot = kCpuPrivateBase + 0x1000;
/// IST stack i occupies [kCpuPrivateIstBase + i * kCpuPrivateIstStride + 4 KiB, + stride): an
/// unmapped guard page below each stack.
constexpr uint64_t kCpuPrivateIstBase = kCpuPrivateBase + 0x3000;
constexpr uint64_t kCpuPrivateIstStride = 0x3000; // guard + 8 KiB stack
/// CPU-private variables (smp/cpu_private.h), after the IST stacks and a guard page.
constexpr uint64_t kCpuPrivateData = kCpuPrivateBase + 0x40000;
/// The kernel image, linked at -2 GiB so code can use the kernel code model.
constexpr uint64_t kKernelImageBase = 0xffffffff80000000;

/// Physical address where the loader puts the kernel (see linker.ld).
constexpr uint64_t kKernelLoadPhys = 0x100000;

} // namespace cohort::layout
