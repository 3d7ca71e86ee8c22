// Lock throughput and handoff latency (Google Benchmark), on the host with real threads:
//   build/debug/host/cohort_lock_bench   (see docs/locks.md for a table)
//
// items_per_second: acquisitions per second over all threads (wall time).
// handoff_ns: for acquisitions that had to wait, the time from the previous holder's release to
// this acquisition, i.e. how long the lock sat free while someone wanted it.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include "sync/lock_class.h"
#include "sync/mcs_lock.h"
#include "sync/rwlock.h"
#include "sync/spinlock.h"

namespace {

using namespace cohort;

double g_ns_per_tick = 0;

double ns_per_tick() {
    if (g_ns_per_tick == 0) {
        const auto w0 = std::chrono::steady_clock::now();
        const uint64_t t0 = lock_clock_now();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const uint64_t t1 = lock_clock_now();
        const auto w1 = std::chrono::steady_clock::now();
        g_ns_per_tick = std::chrono::duration<double, std::nano>(w1 - w0).count() / double(t1 - t0);
    }
    return g_ns_per_tick;
}

// Shared per lock type (every benchmark thread runs the same instantiation).
template <typename Lock>
struct Shared {
    static inline Lock lock;
    static inline uint64_t counter = 0;      // guarded by lock
    static inline uint64_t last_release = 0; // guarded by lock: TSC of the last release
};

// The exclusive critical section: counts a handoff when the lock was released after this
// acquisition started waiting, which only happens if we waited for it.
template <typename Lock>
inline void critical(uint64_t started, uint64_t& handoffs, uint64_t& handoff_ticks) {
    using S = Shared<Lock>;
    const uint64_t now = lock_clock_now();
    if (S::last_release > started) {
        ++handoffs;
        handoff_ticks += now - S::last_release;
    }
    benchmark::DoNotOptimize(++S::counter);
    S::last_release = lock_clock_now();
}

void report(benchmark::State& state, uint64_t handoffs, uint64_t handoff_ticks) {
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["handoff_ns"] = benchmark::Counter(
        handoffs == 0 ? 0 : double(handoff_ticks) / double(handoffs) * ns_per_tick(),
        benchmark::Counter::kAvgThreads);
    state.counters["waited_pct"] = benchmark::Counter(
        100.0 * double(handoffs) / double(state.iterations()), benchmark::Counter::kAvgThreads);
}

template <typename Lock>
void BM_Exclusive(benchmark::State& state) {
    ns_per_tick();
    if (state.thread_index() == 0) Shared<Lock>::last_release = 0;
    uint64_t handoffs = 0, handoff_ticks = 0;
    for (auto _ : state) {
        const uint64_t started = lock_clock_now();
        Guard<Lock, NoIrq> g(Shared<Lock>::lock);
        critical<Lock>(started, handoffs, handoff_ticks);
    }
    report(state, handoffs, handoff_ticks);
}

// One write in every `write_every` acquisitions; the rest read.
template <int write_every>
void BM_RwLock(benchmark::State& state) {
    using S = Shared<RwLock>;
    ns_per_tick();
    if (state.thread_index() == 0) S::last_release = 0;
    uint64_t handoffs = 0, handoff_ticks = 0;
    uint64_t i = uint64_t(state.thread_index());
    for (auto _ : state) {
        if (++i % write_every == 0) {
            const uint64_t started = lock_clock_now();
            WriteGuard<RwLock, NoIrq> g(S::lock);
            critical<RwLock>(started, handoffs, handoff_ticks);
        } else {
            ReadGuard<RwLock, NoIrq> g(S::lock);
            benchmark::DoNotOptimize(S::counter);
        }
    }
    report(state, handoffs, handoff_ticks);
}

void threads(benchmark::internal::Benchmark* b) {
    b->Threads(1)->Threads(2)->Threads(4)->Threads(8)->UseRealTime();
}

BENCHMARK(BM_Exclusive<SpinLock>)->Name("ticket")->Apply(threads);
BENCHMARK(BM_Exclusive<MCSLock>)->Name("mcs")->Apply(threads);
BENCHMARK(BM_RwLock<20>)->Name("rwlock_read_mostly")->Apply(threads);
BENCHMARK(BM_RwLock<2>)->Name("rwlock_write_heavy")->Apply(threads);

} // namespace

BENCHMARK_MAIN();
