// Helpers shared by the lock tests (also built into cohort_tsan_tests).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "sync/cpu_relax.h"

namespace cohort::test {

/// Joins `threads` once `finished` reaches their number, or aborts after `limit`: a broken lock
/// deadlocks, and a loud failure beats a hung test run.
inline void join_or_abort(std::vector<std::thread>& threads, const std::atomic<size_t>& finished,
                          std::chrono::seconds limit = std::chrono::seconds(300)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (finished.load() < threads.size()) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "threads still running after %llds: deadlock?\n",
                         static_cast<long long>(limit.count()));
            std::abort();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& t : threads)
        t.join();
}

/// Spins until `cond()` holds, or aborts after `limit` (same reason as above).
template <typename F>
void wait_until(F&& cond, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!cond()) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "condition not reached after %llds\n",
                         static_cast<long long>(limit.count()));
            std::abort();
        }
        std::this_thread::yield();
    }
}

/// Runs `body(thread_index)` on `n` threads released together; aborts on deadlock.
template <typename F>
void run_threads(int n, F&& body) {
    std::atomic<bool> go{false};
    std::atomic<size_t> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load())
                cpu_relax();
            body(t);
            ++finished;
        });
    }
    go = true;
    join_or_abort(threads, finished);
}

} // namespace cohort::test
