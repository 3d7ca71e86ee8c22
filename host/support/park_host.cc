// The host's park hooks (sync/park.h): a thread parks in a futex wait on its flag (C++20
// atomic wait), and wake() notifies it, so ParkLock's algorithm runs unchanged under the host
// tests, ThreadSanitizer included.
#include "sync/park.h"

#include <cstdio>
#include <cstdlib>

namespace cohort::park {

namespace {
constexpr uint32_t kDepth = 4;
struct ThreadWaiters {
    Waiter records[kDepth];
    uint32_t depth = 0;
};
thread_local ThreadWaiters t_waiters;
std::atomic<uint32_t> g_next_thread{0};
thread_local uint32_t t_id = g_next_thread.fetch_add(1);
std::atomic<uint64_t> g_kicks{0};
} // namespace

Waiter& waiter_enter() {
    if (t_waiters.depth >= kDepth) {
        std::fprintf(stderr, "park: waits nested too deep\n");
        std::abort();
    }
    Waiter& w = t_waiters.records[t_waiters.depth++];
    w.cpu = t_id;
    w.irqs_on = false;
    w.parked.store(false, std::memory_order_relaxed);
    return w;
}

void waiter_exit(Waiter& w) {
    if (t_waiters.depth == 0 || &t_waiters.records[t_waiters.depth - 1] != &w) {
        std::fprintf(stderr, "park: waiter records released out of order\n");
        std::abort();
    }
    --t_waiters.depth;
}

void wait(Waiter& w, const std::atomic<bool>& flag) {
    w.parked.store(true, std::memory_order_seq_cst);
    flag.wait(false, std::memory_order_seq_cst); // returns at once if already set
    w.parked.store(false, std::memory_order_relaxed);
}

void wake(Waiter& w, std::atomic<bool>& flag) {
    flag.store(true, std::memory_order_seq_cst);
    if (!w.parked.load(std::memory_order_seq_cst)) return;
    g_kicks.fetch_add(1, std::memory_order_relaxed);
    flag.notify_all();
}

uint64_t kicks_sent() { return g_kicks.load(std::memory_order_relaxed); }

} // namespace cohort::park
