// bench=ipi, bench=tlb: IPI round trip, call_on_all latency, shootdown latency (TSC cycles).
#include "arch/arch.h"
#include "arch/x86/cpu.h"
#include "bench/bench.h"
#include "debug/log.h"
#include "lib/format.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/ipi.h"
#include "smp/tlb.h"

namespace cohort {
namespace {

constexpr uint32_t kRuns = 200;

void noop(void*) {}

uint64_t call_ipis() {
    uint64_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        n += cpu_by_id(i)->counters.ipis_sent[static_cast<int>(IpiKind::Call)].load();
    return n;
}

void emit(const char* name, uint64_t* samples, uint32_t runs, const char* extra) {
    uint64_t median = 0, p99 = 0;
    kbench::summarize(samples, runs, &median, &p99);
    console_printf("bench: {\"name\":\"%s\",\"cpus\":%u%s,\"median_cycles\":%lu,\"p99_cycles\":%lu,"
                   "\"runs\":%u}\n",
                   name, cpus_online(), extra, median, p99, runs);
}

KBENCH(ipi_round_trip) {
    static uint64_t samples[kRuns];
    if (cpus_online() < 2) {
        console_printf("bench: {\"name\":\"ipi.round_trip\",\"cpus\":1,\"skipped\":true}\n");
        return;
    }
    for (uint32_t i = 0; i < kRuns; ++i) {
        const uint64_t t0 = x86::rdtsc();
        call_on(1, noop, nullptr, true);
        samples[i] = x86::rdtsc() - t0;
    }
    emit("ipi.round_trip", samples, kRuns, "");
}

KBENCH(ipi_call_on_all) {
    static uint64_t samples[kRuns];
    for (uint32_t i = 0; i < kRuns; ++i) {
        const uint64_t t0 = x86::rdtsc();
        call_on_all(noop, nullptr, true, false);
        samples[i] = x86::rdtsc() - t0;
    }
    emit("ipi.call_on_all", samples, kRuns, "");
}

KBENCH(tlb_shootdown) {
    static uint64_t samples[kRuns];
    constexpr uint64_t kMaxPages = 512;
    const uint64_t base = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x4000000;
    const uint64_t frame = pmm::alloc_zeroed_page();
    for (uint64_t p = 0; p < kMaxPages; ++p)
        if (!vmm::map(base + p * 4096, frame, 4096, vmm::kRead)) {
            log_error("bench: cannot map the shootdown range");
            return;
        }
    for (uint64_t pages : {uint64_t{1}, uint64_t{32}, uint64_t{512}}) {
        const uint64_t ipis_before = call_ipis();
        for (uint32_t i = 0; i < kRuns; ++i) {
            const uint64_t t0 = x86::rdtsc();
            tlb_shootdown(nullptr, base, base + pages * 4096);
            samples[i] = x86::rdtsc() - t0;
        }
        char extra[96];
        format(extra, sizeof(extra), ",\"pages\":%lu,\"ipis_per_shootdown\":%lu.%02lu", pages,
               (call_ipis() - ipis_before) / kRuns, ((call_ipis() - ipis_before) * 100 / kRuns) % 100);
        emit("tlb.shootdown", samples, kRuns, extra);
    }
    vmm::unmap(base, kMaxPages * 4096);
    pmm::free_pages(frame);
}


// Where page-by-page INVLPG stops paying (kTlbFlushAllThreshold): on this CPU alone, a range of
// N pages that the code then uses again is flushed either page by page or all at once (a CR4.PGE
// toggle: kernel pages are global), and the N pages are touched again. The full flush also
// drops everything else this CPU had cached, which costs later; so the crossover measured here
// is a lower bound for the right ceiling.
KBENCH(tlb_ceiling) {
    static uint64_t by_page[kRuns], all[kRuns];
    constexpr uint64_t kMaxPages = 512;
    const uint64_t base = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x4000000;
    const uint64_t frame = pmm::alloc_zeroed_page();
    for (uint64_t p = 0; p < kMaxPages; ++p)
        if (frame == 0 || !vmm::map(base + p * 4096, frame, 4096, vmm::kRead)) {
            log_error("bench: cannot map the ceiling range");
            return;
        }
    auto touch = [&](uint64_t pages) {
        for (uint64_t p = 0; p < pages; ++p) (void)*reinterpret_cast<volatile uint64_t*>(base + p * 4096);
    };
    for (uint64_t pages : {uint64_t{1}, uint64_t{4}, uint64_t{16}, uint64_t{33}, uint64_t{64},
                           uint64_t{128}, uint64_t{512}}) {
        x86::InterruptGuard irq; // one CPU, nothing else in between
        for (uint32_t i = 0; i < kRuns; ++i) {
            touch(pages);
            uint64_t t0 = x86::rdtsc();
            for (uint64_t p = 0; p < pages; ++p) x86::invlpg(base + p * 4096);
            touch(pages);
            by_page[i] = x86::rdtsc() - t0;
            t0 = x86::rdtsc();
            arch::tlb_flush_all();
            touch(pages);
            all[i] = x86::rdtsc() - t0;
        }
        char extra[64];
        format(extra, sizeof(extra), ",\"pages\":%lu", pages);
        emit("tlb.flush_by_page", by_page, kRuns, extra);
        emit("tlb.flush_all", all, kRuns, extra);
    }
    vmm::unmap(base, kMaxPages * 4096);
    pmm::free_pages(frame);
}

} // namespace
} // namespace cohort
