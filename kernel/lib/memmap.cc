#include "lib/memmap.h"

#include "lib/assert.h"

namespace cohort {
namespace {

// Higher rank means more restrictive; unknown types rank with Reserved so they are never used.
int rank(MemType type) {
    switch (type) {
    case MemType::Usable:
        return 0;
    case MemType::Trampoline:
        return 1;
    case MemType::Kernel:
        return 2;
    case MemType::AcpiReclaimable:
        return 3;
    case MemType::AcpiNvs:
        return 4;
    case MemType::Reserved:
        return 5;
    case MemType::Bad:
        return 6;
    }
    return 5;
}

// Whether `a` should win over `b` where they overlap. Equal ranks only happen between Reserved
// and unknown types; prefer Reserved, then the smaller value, so the result never depends on the
// order the firmware listed regions in.
bool outranks(MemType a, MemType b) {
    if (rank(a) != rank(b)) return rank(a) > rank(b);
    if (a == MemType::Reserved || b == MemType::Reserved) return a == MemType::Reserved && a != b;
    return static_cast<uint32_t>(a) < static_cast<uint32_t>(b);
}

void sort_unique(uint64_t* v, size_t& n) {
    // Insertion sort: n is at most a few hundred and this runs a handful of times at boot.
    for (size_t i = 1; i < n; ++i) {
        const uint64_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; --j)
            v[j] = v[j - 1];
        v[j] = x;
    }
    size_t out = 0;
    for (size_t i = 0; i < n; ++i)
        if (out == 0 || v[out - 1] != v[i]) v[out++] = v[i];
    n = out;
}

} // namespace

const char* mem_type_name(MemType type) {
    switch (type) {
    case MemType::Usable:
        return "usable";
    case MemType::Reserved:
        return "reserved";
    case MemType::AcpiReclaimable:
        return "acpi-reclaimable";
    case MemType::AcpiNvs:
        return "acpi-nvs";
    case MemType::Bad:
        return "bad";
    case MemType::Kernel:
        return "kernel";
    case MemType::Trampoline:
        return "trampoline";
    }
    return "unknown";
}

MemType mem_type_from_e820(uint32_t e820_type) {
    if (e820_type >= 1 && e820_type <= 5) return static_cast<MemType>(e820_type);
    return MemType::Reserved;
}

bool MemoryMap::append(uint64_t base, uint64_t length, MemType type) {
    if (length == 0) return true;
    if (count_ == kSlots) {
        overflowed_ = true;
        return false;
    }
    if (length > UINT64_MAX - base) length = UINT64_MAX - base;
    if (length == 0) return true; // base was UINT64_MAX: nothing addressable remains.
    regions_[count_++] = MemRegion{base, length, type};
    return true;
}

bool MemoryMap::add(uint64_t base, uint64_t length, MemType type) {
    if (length != 0 && count_ >= kCapacity) {
        overflowed_ = true;
        return false;
    }
    return append(base, length, type);
}

void MemoryMap::normalize() {
    // Cut the address space at every region boundary. Each resulting elementary interval is
    // either inside or outside every region, so its type is simply the most restrictive type of
    // the regions containing it. O(n^2) in the region count, which is bounded and small.
    size_t nb = 0;
    for (size_t i = 0; i < count_; ++i) {
        bounds_[nb++] = regions_[i].base;
        bounds_[nb++] = regions_[i].end();
    }
    sort_unique(bounds_, nb);

    size_t np = 0;
    for (size_t k = 0; k + 1 < nb; ++k) {
        const uint64_t lo = bounds_[k], hi = bounds_[k + 1];
        bool covered = false;
        MemType type = MemType::Usable;
        for (size_t i = 0; i < count_; ++i) {
            const MemRegion& r = regions_[i];
            if (r.base <= lo && r.end() >= hi && (!covered || outranks(r.type, type))) {
                type = r.type;
                covered = true;
            }
        }
        if (!covered) continue;
        if (np > 0 && pieces_[np - 1].type == type && pieces_[np - 1].end() == lo)
            pieces_[np - 1].length += hi - lo;
        else
            pieces_[np++] = MemRegion{lo, hi - lo, type};
    }

    // Shrink Usable pieces to whole pages. This cannot create new adjacencies: the trimmed bits
    // become holes, and two Usable pieces were never adjacent after merging.
    size_t kept = 0;
    for (size_t i = 0; i < np; ++i) {
        MemRegion r = pieces_[i];
        if (r.type == MemType::Usable) {
            const uint64_t end = r.end() & ~(kPageSize - 1);
            if (r.base > UINT64_MAX - (kPageSize - 1)) continue;
            const uint64_t base = (r.base + kPageSize - 1) & ~(kPageSize - 1);
            if (base >= end) continue;
            r = MemRegion{base, end - base, r.type};
        }
        pieces_[kept++] = r;
    }
    np = kept;

    while (np > kCapacity) {
        overflowed_ = true;
        size_t victim = np;
        for (size_t i = 0; i < np; ++i) {
            if (victim == np) {
                victim = i;
                continue;
            }
            const MemRegion& a = pieces_[i];
            const MemRegion& v = pieces_[victim];
            const bool a_usable = a.type == MemType::Usable, v_usable = v.type == MemType::Usable;
            if (a_usable != v_usable ? a_usable : a.length < v.length) victim = i;
        }
        for (size_t i = victim; i + 1 < np; ++i)
            pieces_[i] = pieces_[i + 1];
        --np;
    }

    for (size_t i = 0; i < np; ++i)
        regions_[i] = pieces_[i];
    count_ = np;
}

void MemoryMap::reserve(uint64_t base, uint64_t length, MemType type) {
    COHORT_ASSERT(type != MemType::Usable);
    // normalize() leaves at most kCapacity regions, so the spare slot is free for this one.
    COHORT_CHECK(count_ < kSlots);
    append(base, length, type);
    normalize();
}

uint64_t MemoryMap::total(MemType type) const {
    uint64_t sum = 0;
    for (size_t i = 0; i < count_; ++i)
        if (regions_[i].type == type) sum += regions_[i].length;
    return sum;
}

uint64_t MemoryMap::highest_usable_end() const {
    uint64_t end = 0;
    for (size_t i = 0; i < count_; ++i)
        if (regions_[i].type == MemType::Usable && regions_[i].end() > end) end = regions_[i].end();
    return end;
}

} // namespace cohort
