// Where a remote-call request sits, from its address alone (smp/call.cc, docs/security.md "IPI
// sources"). Portable: host-tested.
//
// CPU n's slots are at base + n * stride: a header, then `count` slots of `slot_size` bytes
// from offset `first`. A target decides which CPU sent a request by this arithmetic, without
// reading the request, so nothing the sender wrote can change the answer.
#pragma once

#include <cstdint>

namespace cohort {

struct CallSlotLayout {
    uint64_t base;      // CPU 0's slots
    uint64_t stride;    // between two CPUs' slots
    uint64_t first;     // offset of slot 0 in a CPU's stride
    uint64_t slot_size; // bytes per slot
    uint32_t count;     // slots per CPU
};

struct CallSlotRef {
    uint32_t cpu;
    uint32_t index;
};

/// The slot `addr` is the start of, among `cpus` CPUs; false when it is not exactly one.
constexpr bool call_slot_at(const CallSlotLayout& l, uint64_t addr, uint32_t cpus,
                            CallSlotRef* out) {
    if (addr < l.base || addr - l.base >= uint64_t{cpus} * l.stride) return false;
    const uint64_t off = addr - l.base;
    const uint64_t in = off % l.stride;
    if (in < l.first || (in - l.first) % l.slot_size != 0) return false;
    const uint64_t index = (in - l.first) / l.slot_size;
    if (index >= l.count) return false;
    *out = {static_cast<uint32_t>(off / l.stride), static_cast<uint32_t>(index)};
    return true;
}

} // namespace cohort
