// Admission control for remote calls on one CPU, free of hardware so host tests drive it with
// simulated time. A storm of calls toward one CPU must neither starve that CPU's own work nor
// let one sender crowd out the others, and must never lose a request: what is not admitted
// now stays queued (smp/call.cc keeps it) until a later window.
//
// Time is cut into windows. In each window the CPU spends at most `budget_ns` running remote
// calls (all senders together), and one sender at most `per_source_ns` of that, so a second
// sender always finds room. Senders are tracked in kSlots buckets by id modulo kSlots, so the
// state is small and fixed whatever the CPU count; senders that share a bucket share its
// allowance (less time each, never more). Limits are in time, not in calls: a quick call
// costs little budget, so ordinary traffic (a shootdown, a ping-pong of tiny calls) is not
// slowed, while a flood of expensive calls is. Time spent beyond an allowance is a debt paid
// from the following windows (a token bucket), so calls that each cost more than a window's
// allowance are held to it on average too.
#pragma once

#include <cstdint>

namespace cohort {

class CallLimiter {
  public:
    struct Params {
        uint64_t window_ns = 1'000'000;
        uint64_t budget_ns = 500'000;     // all senders: half of each window at most
        uint64_t per_source_ns = 250'000; // one sender: half of the budget at most
        bool enabled = true;
    };
    static constexpr uint32_t kSlots = 32;

    constexpr CallLimiter() = default;
    explicit constexpr CallLimiter(const Params& p) : p_(p) {}
    void set_params(const Params& p) { p_ = p; }
    const Params& params() const { return p_; }

    /// Nothing may run before the window ends: the caller need not even look at its queue.
    bool exhausted(uint64_t now) {
        if (!p_.enabled) return false;
        roll(now);
        return used_ns_ >= p_.budget_ns;
    }
    /// May a request from `source` start at `now`? (Its run time is charged afterwards.)
    bool admit(uint32_t source, uint64_t now) {
        if (!p_.enabled) return true;
        roll(now);
        return used_ns_ < p_.budget_ns && slot_ns_[source % kSlots] < p_.per_source_ns;
    }
    /// Charges `ns` spent on a request from `source` to the current window.
    void charge(uint32_t source, uint64_t ns) {
        used_ns_ = capped(used_ns_ + ns, p_.budget_ns);
        uint64_t& slot = slot_ns_[source % kSlots];
        slot = capped(slot + ns, p_.per_source_ns);
    }
    /// Charges time spent on remote calls that belongs to no sender (queue handling): it comes
    /// out of the CPU's budget all the same.
    void charge_overhead(uint64_t ns) { used_ns_ = capped(used_ns_ + ns, p_.budget_ns); }

    /// Debt is kept for at most this many windows' allowance: one pathological call (a sender
    /// that ran for a second) must not lock its sender out for minutes.
    static constexpr uint64_t kMaxDebtWindows = 16;

    /// The start of the first window after `now`: the moment to look at held-back requests
    /// again (never in the past, however long the caller took).
    uint64_t next_window(uint64_t now) const {
        const uint64_t w = p_.window_ns == 0 ? 1 : p_.window_ns;
        return now - now % w + w;
    }
    uint64_t used_ns() const { return used_ns_; }

  private:
    void roll(uint64_t now) {
        if (now - window_start_ < p_.window_ns) return;
        const uint64_t windows = (now - window_start_) / p_.window_ns;
        // Windows start at multiples of window_ns; each elapsed window pays back one allowance.
        window_start_ = now - now % p_.window_ns;
        used_ns_ = pay(used_ns_, windows, p_.budget_ns);
        for (uint64_t& s : slot_ns_) s = pay(s, windows, p_.per_source_ns);
    }
    static uint64_t capped(uint64_t owed, uint64_t allowance) {
        const uint64_t cap = allowance * kMaxDebtWindows;
        return owed < cap ? owed : cap;
    }
    static uint64_t pay(uint64_t owed, uint64_t windows, uint64_t allowance) {
        if (allowance == 0 || windows > owed / allowance) return 0; // also: a long quiet spell
        return owed - windows * allowance;
    }

    Params p_{};
    uint64_t window_start_ = 0;
    uint64_t used_ns_ = 0;
    uint64_t slot_ns_[kSlots] = {};
};

} // namespace cohort
