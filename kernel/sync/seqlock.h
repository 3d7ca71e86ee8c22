// Sequence lock for data read often and written rarely (clock parameters, statistics).
// Readers never write shared memory and never wait for each other; they retry if a writer was
// active. Writers are serialised by an internal SpinLock.
//
// In the C++ memory model a reader's copy may overlap a write, so the protected bytes must be
// read and written through atomics. SeqLocked<T> does that for any trivially copyable T; plain
// SeqLock::read() is for callers that read their fields with relaxed atomics themselves.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "sync/cpu_relax.h"
#include "sync/spinlock.h"

namespace cohort {

/// The sequence counter and writer lock. The sequence is odd while a write is in progress.
class SeqLock {
  public:
    constexpr SeqLock() = default;
    constexpr explicit SeqLock(LockClass* cls) : writer_(cls) {}
    SeqLock(const SeqLock&) = delete;
    SeqLock& operator=(const SeqLock&) = delete;

    /// Start of a read: waits out an active writer and returns the even sequence seen.
    uint32_t read_begin() const {
        uint32_t s;
        while (((s = seq_.load(std::memory_order_acquire)) & 1) != 0)
            cpu_relax();
        return s;
    }
    /// End of a read that started at `start`: true if the data read in between is consistent.
    bool read_retry(uint32_t start) const {
        // Orders the data loads before the re-read of the sequence.
        std::atomic_thread_fence(std::memory_order_acquire);
        return seq_.load(std::memory_order_relaxed) != start;
    }
    /// Runs `f` (which reads the protected data with relaxed atomics) until it ran without a
    /// concurrent write, and returns its last result.
    template <typename F>
    auto read(F&& f) const -> decltype(f()) {
        for (;;) {
            const uint32_t s = read_begin();
            if constexpr (std::is_void_v<decltype(f())>) {
                f();
                if (!read_retry(s)) return;
            } else {
                auto result = f();
                if (!read_retry(s)) return result;
            }
        }
    }

    void write_begin(LockSite site = COHORT_LOCK_SITE) COHORT_ACQUIRE(writer_) {
        writer_.lock(site);
        seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        // Orders the odd sequence before the data stores that follow.
        std::atomic_thread_fence(std::memory_order_release);
    }
    void write_end() COHORT_RELEASE(writer_) {
        seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        writer_.unlock();
    }
    /// Runs `f` (which updates the protected data with relaxed atomic stores) as one write.
    template <typename F>
    void write(F&& f, LockSite site = COHORT_LOCK_SITE) {
        write_begin(site);
        f();
        write_end();
    }

    uint32_t sequence() const { return seq_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint32_t> seq_{0};
    SpinLock writer_;
};

/// A value of trivially copyable type T published through a SeqLock: load() returns a copy
/// that was never torn by a concurrent store().
template <typename T>
class SeqLocked {
    static_assert(std::is_trivially_copyable_v<T>);

  public:
    constexpr SeqLocked() = default;
    explicit SeqLocked(const T& value) { store_words(value); }

    T load() const {
        return lock_.read([this] { return load_words(); });
    }
    void store(const T& value, LockSite site = COHORT_LOCK_SITE) {
        lock_.write([&] { store_words(value); }, site);
    }
    /// Read-modify-write under the writer lock: `f(T&)` edits a copy that is then published.
    template <typename F>
    void update(F&& f, LockSite site = COHORT_LOCK_SITE) {
        lock_.write(
            [&] {
                T v = load_words();
                f(v);
                store_words(v);
            },
            site);
    }
    uint32_t sequence() const { return lock_.sequence(); }

  private:
    static constexpr size_t kWords = (sizeof(T) + 7) / 8;
    void store_words(const T& value) {
        uint64_t buf[kWords] = {};
        __builtin_memcpy(buf, &value, sizeof(T));
        for (size_t i = 0; i < kWords; ++i)
            words_[i].store(buf[i], std::memory_order_relaxed);
    }
    T load_words() const {
        uint64_t buf[kWords];
        for (size_t i = 0; i < kWords; ++i)
            buf[i] = words_[i].load(std::memory_order_relaxed);
        T out;
        __builtin_memcpy(&out, buf, sizeof(T));
        return out;
    }

    SeqLock lock_;
    std::atomic<uint64_t> words_[kWords] = {};
};

} // namespace cohort
