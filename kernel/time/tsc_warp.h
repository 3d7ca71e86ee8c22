// The TSC warp test's core: two CPUs take strict turns reading their clock and publishing the
// reading through one shared atomic. Each reading is taken after the other CPU's last one was
// published, so on synchronised clocks it can never be smaller; when it is, the difference is
// the warp. Portable (the clock is a parameter) so the host tests can give each side a clock
// of its own and check that a skew is found and measured.
#pragma once

#include <atomic>
#include <cstdint>

namespace cohort {

struct TscWarpResult {
    uint64_t max_warp = 0;  ///< Largest amount a reading fell below the other side's, in ticks.
    uint32_t turns = 0;     ///< Readings compared with one of the other side's.
    bool timed_out = false; ///< The other side stopped taking turns without saying so.
};

struct TscWarpLimits {
    uint32_t turns;     ///< Take at most this many turns.
    uint32_t min_turns; ///< ... and at least this many, whatever `duration` says.
    uint64_t duration;  ///< Start no turn after this many ticks of this side's clock (0: none).
    uint64_t patience; ///< Give up after waiting this many ticks for a turn.
    /// Set by the other side when it has finished early (its `duration`): stop, no time-out.
    const std::atomic<bool>* stop;
};

/// One side (`side` 0 or 1) of the test. The shared word holds a reading with its low bit
/// replaced by the side that published it (one tick of resolution is the price of needing one
/// atomic only); start it at 0, which lets side 1 go first. `read` must not execute before the
/// preceding load of the shared word completes (the kernel's uses LFENCE; RDTSC).
template <typename ReadClock>
TscWarpResult tsc_warp_side(std::atomic<uint64_t>& shared, unsigned side,
                            const TscWarpLimits& limits, ReadClock read) {
    TscWarpResult r;
    const uint64_t me = side & 1;
    const uint64_t start = read();
    auto stopped = [&] {
        return limits.stop != nullptr && limits.stop->load(std::memory_order_acquire);
    };
    for (uint32_t i = 0; i < limits.turns; ++i) {
        if (i >= limits.min_turns && limits.duration != 0 && read() - start > limits.duration)
            break;
        uint64_t prev = shared.load(std::memory_order_acquire);
        if ((prev & 1) == me) {
            const uint64_t wait_start = read();
            while (((prev = shared.load(std::memory_order_acquire)) & 1) == me) {
                if (stopped()) return r;
                if (read() - wait_start > limits.patience) {
                    r.timed_out = true;
                    return r;
                }
            }
        }
        const uint64_t now = read() & ~uint64_t{1};
        const uint64_t theirs = prev & ~uint64_t{1};
        if (now < theirs && theirs - now > r.max_warp) r.max_warp = theirs - now;
        if (prev != 0) ++r.turns; // side 1's first turn has nothing to compare with
        shared.store(now | me, std::memory_order_release);
    }
    return r;
}

} // namespace cohort
