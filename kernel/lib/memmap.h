// Physical memory map: collects firmware/bootloader regions and normalises them into a sorted,
// non-overlapping list that the frame allocator can trust.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cohort {

/// Region types. Values 1-5 match the BIOS E820 types; values from 0x100 are Cohort's own.
enum class MemType : uint32_t {
    Usable = 1,
    Reserved = 2,
    AcpiReclaimable = 3,
    AcpiNvs = 4,
    Bad = 5,
    Kernel = 0x100,     ///< Kernel image and boot data.
    Trampoline = 0x101, ///< Low memory for the AP startup trampoline.
};

/// Human-readable name for logs; "unknown" for values outside the enum.
const char* mem_type_name(MemType type);

/// Maps a raw E820 type to MemType. Types we do not understand (e.g. 7, persistent memory, or 20
/// from some UEFI-derived maps) become Reserved, since treating them as RAM could be fatal.
MemType mem_type_from_e820(uint32_t e820_type);

/// A half-open physical range [base, base + length).
struct MemRegion {
    uint64_t base;
    uint64_t length;
    MemType type;

    uint64_t end() const { return base + length; }
};

/// A bounded memory map. Fill it with add(), then call normalize(); reserve() carves out ranges
/// afterwards. Memory not covered by any region is a hole and must never be used. The object is
/// about 22 KiB because normalisation needs scratch space and the kernel has no heap.
class MemoryMap {
  public:
    static constexpr size_t kCapacity = 256;
    static constexpr uint64_t kPageSize = 4096;

    /// Records a region as reported. Zero-length regions are ignored (returns true); a range
    /// running past 2^64 - 1 is clamped to end there. Returns false and sets overflowed() if the
    /// map is full.
    bool add(uint64_t base, uint64_t length, MemType type);

    /// Makes the map sorted and non-overlapping, with adjacent regions of equal type merged.
    /// Where regions overlap, the more restrictive type wins for the overlapping part only:
    ///   Bad > Reserved (and any unknown type) > AcpiNvs > AcpiReclaimable > Kernel
    ///       > Trampoline > Usable.
    /// Usable regions are then shrunk inward to page boundaries and dropped if empty. Splitting
    /// can produce up to twice as many regions as went in; if the result exceeds kCapacity,
    /// overflowed() is set and regions are dropped, smallest Usable first, then (only if there
    /// are still too many) the smallest of any type. Dropping is always safe since holes are
    /// never allocated; losing a little RAM is the cheapest choice.
    void normalize();

    /// Marks [base, base + length) as `type` wherever it is currently Usable or a hole, keeping
    /// any more restrictive type already there, and re-normalises. Works even when the map is
    /// full. `type` must not be Usable.
    void reserve(uint64_t base, uint64_t length, MemType type);

    std::span<const MemRegion> regions() const { return {regions_, count_}; }

    /// Bytes of the given type. Only meaningful after normalize(): overlaps count twice before.
    uint64_t total(MemType type) const;

    /// End of the highest Usable region, or 0 if there is none.
    uint64_t highest_usable_end() const;

    /// True if any region was refused by add() or dropped by normalize().
    bool overflowed() const { return overflowed_; }

  private:
    // One spare slot so reserve() can always add its region, even to a full map.
    static constexpr size_t kSlots = kCapacity + 1;

    bool append(uint64_t base, uint64_t length, MemType type);

    MemRegion regions_[kSlots] = {};
    size_t count_ = 0;
    bool overflowed_ = false;
    // Scratch for normalize(): every region contributes two boundaries, and n boundaries delimit
    // at most n - 1 pieces.
    uint64_t bounds_[2 * kSlots] = {};
    MemRegion pieces_[2 * kSlots] = {};
};

} // namespace cohort
