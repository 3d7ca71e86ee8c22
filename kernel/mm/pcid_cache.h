// Which process-context identifier (PCID) an address space uses on one CPU, and whether its
// TLB entries there may be kept. Free of hardware: the x86 code (arch/x86/address_space.cc)
// asks it on every switch, host tests drive it directly.
//
// With PCIDs a CPU keeps an address space's translations after switching away, so a CPU that
// is not running it can still hold stale entries. The rules that keep this correct:
// - Every address space has a generation, incremented (before the shootdown is sent) by every
//   change that needs a TLB flush. Shootdown IPIs still go only to the CPUs where it is active.
// - A CPU remembers, per PCID slot, which address space it last loaded there and at which
//   generation. Switching to an address space whose generation moved on since (or that is not
//   in a slot at all) loads it with a flush of that PCID; otherwise the entries are kept.
// - The switching CPU marks itself active before it reads the generation, the changer bumps
//   the generation before it reads the active set (both full barriers): either the changer
//   sends us the IPI or we see the new generation and flush.
// PCIDs are per CPU and handed out from a few slots (most-recently-used kept), as Linux does:
// the 12-bit PCID space never runs out, and an address space needs no global number. PCID 0 is
// the kernel's address space, permanently.
#pragma once

#include <cstdint>

namespace cohort {

class PcidCache {
  public:
    static constexpr uint32_t kSlots = 6; // PCIDs 1..6 for other address spaces
    static constexpr uint64_t kKernelSpace = 0;

    struct Decision {
        uint16_t pcid;
        bool flush; // load with a flush of this PCID (its entries may be stale or foreign)
    };

    /// Address space `id` (unique for the life of the system, kKernelSpace for the kernel's)
    /// at generation `gen` is about to be loaded on this CPU.
    Decision switch_to(uint64_t id, uint64_t gen) {
        ++clock_;
        if (id == kKernelSpace) {
            const bool flush = !kernel_.valid || kernel_.gen != gen;
            kernel_ = {id, gen, clock_, true};
            return {0, flush};
        }
        Slot* victim = &slots_[0];
        for (Slot& s : slots_) {
            if (s.valid && s.id == id) {
                const bool flush = s.gen != gen;
                s.gen = gen;
                s.last_use = clock_;
                return {pcid_of(s), flush};
            }
            if (!s.valid || (victim->valid && s.last_use < victim->last_use)) victim = &s;
        }
        // Not cached here: take the least recently used slot; whatever it tagged is foreign.
        *victim = {id, gen, clock_, true};
        return {pcid_of(*victim), true};
    }

    /// The PCID `id` currently has on this CPU, or -1 when it has none.
    int pcid_for(uint64_t id) const {
        if (id == kKernelSpace) return kernel_.valid ? 0 : -1;
        for (const Slot& s : slots_)
            if (s.valid && s.id == id) return pcid_of(s);
        return -1;
    }

  private:
    struct Slot {
        uint64_t id = 0;
        uint64_t gen = 0;
        uint64_t last_use = 0;
        bool valid = false;
    };
    uint16_t pcid_of(const Slot& s) const { return static_cast<uint16_t>(&s - slots_ + 1); }

    Slot slots_[kSlots];
    Slot kernel_;
    uint64_t clock_ = 0;
};

} // namespace cohort
