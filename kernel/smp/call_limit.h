// Admission control for remote calls on one CPU, free of hardware so host tests drive it with
// simulated time. A storm of calls toward one CPU must neither starve that CPU's own work nor
// let one sender crowd out the others, and must never lose a request: what is not admitted
// now stays queued (smp/call.cc keeps it) until a later window.
//
// Time is cut into windows. In each window the CPU spends at most `budget_ns` running remote
// calls (all senders together), and one sender at most `per_source_ns` of that, so a second
// sender always finds room. Every sender has its own account (8 bytes: what it owes and the
// window that was last settled), in storage the owner hands in sized for the CPU count, so one
// noisy CPU never throttles another; accounts are settled lazily when their sender is next
// looked at, so a window roll costs O(1) whatever the CPU count. Limits are in time, not in calls: a quick call
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
    /// One sender's account: time owed, and the window (its number, modulo 2^32) up to which
    /// that debt was settled.
    struct Account {
        uint32_t owed_ns;
        uint32_t window;
    };

    constexpr CallLimiter() = default;
    explicit constexpr CallLimiter(const Params& p) : p_(p) {}
    /// Parameters and the per-sender accounts (zero-initialised, one per possible sender id;
    /// ids at or beyond `count` share the last account, which only a broken caller reaches).
    void set_params(const Params& p, Account* accounts, uint32_t count) {
        p_ = p;
        accounts_ = accounts;
        count_ = count;
    }
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
        return used_ns_ < p_.budget_ns && settled(source) < p_.per_source_ns;
    }
    /// Charges `ns` spent on a request from `source` to the current window.
    void charge(uint32_t source, uint64_t ns) {
        used_ns_ = capped(used_ns_ + ns, p_.budget_ns);
        if (accounts_ == nullptr || count_ == 0) return;
        const uint64_t owed = capped(settled(source) + ns, p_.per_source_ns);
        account(source).owed_ns = owed > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(owed);
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
        const uint64_t w = p_.window_ns == 0 ? 1 : p_.window_ns;
        const uint64_t index = now / w;
        if (index == window_) return;
        // Windows start at multiples of window_ns; each elapsed window pays back one allowance.
        used_ns_ = pay(used_ns_, index - window_, p_.budget_ns);
        window_ = index;
    }
    Account& account(uint32_t source) {
        return accounts_[source < count_ ? source : count_ - 1];
    }
    // The sender's debt as of the current window (roll() has run).
    uint64_t settled(uint32_t source) {
        if (accounts_ == nullptr || count_ == 0) return 0;
        Account& a = account(source);
        const uint32_t now_window = static_cast<uint32_t>(window_);
        if (a.window != now_window) {
            a.owed_ns = static_cast<uint32_t>(pay(a.owed_ns, uint32_t(now_window - a.window),
                                                  p_.per_source_ns));
            a.window = now_window;
        }
        return a.owed_ns;
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
    uint64_t window_ = 0; // the current window's number (now / window_ns)
    uint64_t used_ns_ = 0;
    Account* accounts_ = nullptr;
    uint32_t count_ = 0;
};

} // namespace cohort
