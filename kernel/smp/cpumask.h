// A set of logical CPU ids. Fixed at kMaxCpus bits (512 bytes) so masks can live anywhere
// without allocation. CPU ids stay below kMaxCpus because select_cpus_to_start (smp/cpu_list.cc,
// called by platform_acpi_init) keeps at most kMaxCpus - 1 APs from the MADT, and smp_boot
// (arch/x86/ap_boot.cc) caps whatever list it is given to the same number.
#pragma once

#include <cstddef>
#include <cstdint>

#include <atomic>

#include "lib/bitmap.h"

namespace cohort {

inline constexpr uint32_t kMaxCpus = 4096;

class CpuMask {
  public:
    void set(uint32_t cpu) { bits_.set(cpu); }
    void clear(uint32_t cpu) { bits_.clear(cpu); }
    bool test(uint32_t cpu) const { return cpu < kMaxCpus && bits_.test(cpu); }
    void clear_all() { bits_.clear_range(0, kMaxCpus); }
    size_t count() const { return bits_.view().count_set(); }
    bool empty() const { return first() == kNone; }
    /// First CPU at or after `from`, or kNone.
    uint32_t next(uint32_t from) const {
        const size_t i = bits_.find_first_set(from);
        return i == BitmapView::npos ? kNone : static_cast<uint32_t>(i);
    }
    uint32_t first() const { return next(0); }
    static constexpr uint32_t kNone = UINT32_MAX;

    /// All CPUs in [0, n).
    static CpuMask first_n(uint32_t n) {
        CpuMask m;
        m.bits_.set_range(0, n < kMaxCpus ? n : kMaxCpus);
        return m;
    }

  private:
    Bitmap<kMaxCpus> bits_;
};

/// Iterates the set bits: `for (uint32_t c = m.first(); c != CpuMask::kNone; c = m.next(c + 1))`.

} // namespace cohort

namespace cohort {

/// A CpuMask that CPUs update concurrently (each sets or clears its own bit). Every access is
/// seq_cst: the masks take part in Dekker-style handshakes (a CPU sets its bit, then reads a
/// generation; another bumps the generation, then reads the mask), which the C++ model
/// guarantees only when both sides are sequentially consistent. On x86 this costs nothing
/// extra: the RMWs are locked instructions and the loads plain moves either way.
class AtomicCpuMask {
  public:
    void set(uint32_t cpu) { words_[cpu / 64].fetch_or(bit(cpu), std::memory_order_seq_cst); }
    void clear(uint32_t cpu) { words_[cpu / 64].fetch_and(~bit(cpu), std::memory_order_seq_cst); }
    bool test(uint32_t cpu) const {
        return (words_[cpu / 64].load(std::memory_order_seq_cst) & bit(cpu)) != 0;
    }
    /// Sets the bit and returns whether it was already set.
    bool test_and_set(uint32_t cpu) {
        return (words_[cpu / 64].fetch_or(bit(cpu), std::memory_order_seq_cst) & bit(cpu)) != 0;
    }
    /// Clears the bit and returns whether it was set: of two CPUs clearing it, exactly one sees
    /// true.
    bool test_and_clear(uint32_t cpu) {
        return (words_[cpu / 64].fetch_and(~bit(cpu), std::memory_order_seq_cst) & bit(cpu)) != 0;
    }
    /// Word `w` (CPUs 64w .. 64w+63), for callers that scan without copying 512 bytes.
    uint64_t word(uint32_t w) const { return words_[w].load(std::memory_order_seq_cst); }
    /// Any bit set among CPUs [0, limit).
    bool any(uint32_t limit = kMaxCpus) const {
        for (uint32_t w = 0; w * 64 < limit; ++w)
            if (word(w) != 0) return true;
        return false;
    }
    /// A copy for iterating; bits may change right after, which callers must tolerate.
    CpuMask snapshot(uint32_t limit = kMaxCpus) const {
        CpuMask m;
        for (uint32_t w = 0; w * 64 < limit; ++w) {
            uint64_t v = words_[w].load(std::memory_order_seq_cst);
            while (v != 0) {
                const int b = __builtin_ctzll(v);
                m.set(w * 64 + static_cast<uint32_t>(b));
                v &= v - 1;
            }
        }
        return m;
    }

  private:
    static uint64_t bit(uint32_t cpu) { return uint64_t{1} << (cpu % 64); }
    std::atomic<uint64_t> words_[kMaxCpus / 64]{};
};

} // namespace cohort
