// Reusable spinning barrier for a fixed set of participants (CPUs in the kernel, threads in
// host tests). Generation-based: the last arrival of a round opens it by bumping the
// generation, which the others spin on, so a fast participant re-entering the next round can
// never be confused with a slow one still leaving the previous round.
//
// Mirrored by models/barrier.pml.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/cpu_relax.h"

namespace cohort {

class Barrier {
  public:
    /// A barrier for `participants` (at least 1) callers of wait() per round.
    constexpr explicit Barrier(uint32_t participants) : participants_(participants) {}
    Barrier(const Barrier&) = delete;
    Barrier& operator=(const Barrier&) = delete;

    /// Waits until all participants have called wait() in this round. Returns true in exactly
    /// one of them per round (the last to arrive: the "serial" participant, which may do
    /// per-round work while the others already run on). Everything each participant did before
    /// wait() is visible to all of them afterwards.
    bool wait() {
        const uint32_t gen = generation_.load(std::memory_order_acquire);
        // acq_rel: the last arrival acquires every earlier arrival's writes before releasing
        // them all through generation_.
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == participants_) {
            // Nobody can arrive for the next round before generation_ moves, so the reset
            // cannot race with an arrival.
            arrived_.store(0, std::memory_order_relaxed);
            generation_.store(gen + 1, std::memory_order_release);
            return true;
        }
        while (generation_.load(std::memory_order_acquire) == gen)
            cpu_relax();
        return false;
    }

    uint32_t participants() const { return participants_; }
    /// Completed rounds (wraps).
    uint32_t generation() const { return generation_.load(std::memory_order_relaxed); }

  private:
    const uint32_t participants_;
    std::atomic<uint32_t> arrived_{0};
    std::atomic<uint32_t> generation_{0};
};

} // namespace cohort
