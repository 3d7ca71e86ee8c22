// TLB shootdown: a translation every CPU has cached is changed, and every CPU must see the new
// frame at once. QEMU's TCG keeps a real per-CPU TLB, so a missing flush shows up as a stale
// read here (run with tlb.disable_shootdown=1 to watch these tests fail).
#include "arch/x86/cpu.h"
#include "debug/fault_catcher.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "sched/sched.h"
#include "sched/wait.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpumask.h"
#include "smp/tlb.h"
#include "test/ktest.h"
#include "time/clock.h"


namespace cohort {
namespace {

constexpr uint64_t kValueA = 0xaaaa'aaaa'0000'0001;
constexpr uint64_t kValueB = 0xbbbb'bbbb'0000'0002;

struct ReadAll {
    uint64_t va;
    uint64_t seen[kMaxCpus];
};

void read_va(void* arg) {
    auto* r = static_cast<ReadAll*>(arg);
    r->seen[this_cpu()->cpu_id] = *reinterpret_cast<volatile uint64_t*>(r->va);
}

uint32_t count_online() {
    uint32_t n = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) n += cpu_by_id(i)->online.load();
    return n;
}

uint64_t frame_with(uint64_t value) {
    const uint64_t f = pmm::alloc_zeroed_page();
    if (f != 0) *phys_to_virt<uint64_t>(f) = value;
    return f;
}

// Maps `frame` at the test page and has every CPU read it, so each caches the translation.
bool map_and_cache_everywhere(ReadAll& r, uint64_t frame) {
    r.va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x800000;
    return vmm::map(r.va, frame, layout::kPageSize, vmm::kRead | vmm::kWrite) &&
           call_on_all(read_va, &r, true, true) == CallStatus::Ok;
}

KTEST(tlb, kernel_remap_is_seen_by_every_cpu) {
    const uint64_t a = frame_with(kValueA), b = frame_with(kValueB);
    KASSERT(a != 0 && b != 0);
    static ReadAll r;
    // Every CPU reads through the mapping: now each has the translation to A cached.
    KASSERT(map_and_cache_everywhere(r, a));
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (cpu_by_id(i)->online.load()) KEXPECT_EQ(r.seen[i], kValueA);
    // Point the page at B: unmap (shootdown) and map again.
    const TlbStats before = tlb_stats();
    KEXPECT_EQ(vmm::unmap(r.va, layout::kPageSize), uint64_t{1});
    KASSERT(vmm::map(r.va, b, layout::kPageSize, vmm::kRead | vmm::kWrite));
    KASSERT(call_on_all(read_va, &r, true, true) == CallStatus::Ok);
    uint32_t stale = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i) {
        if (!cpu_by_id(i)->online.load()) continue;
        KEXPECT_EQ(r.seen[i], kValueB);
        stale += r.seen[i] != kValueB;
    }
    const TlbStats after = tlb_stats();
    ktest::note("%u of %u CPUs saw the new frame; %lu shootdown(s) to %lu remote CPUs",
                count_online() - stale, count_online(), after.shootdowns - before.shootdowns,
                after.remote_cpus - before.remote_cpus);
    vmm::unmap(r.va, layout::kPageSize);
    pmm::free_pages(a);
    pmm::free_pages(b);
}

// A shootdown must not need memory: it is what frees memory (stacks, page tables), so it runs
// exactly when memory is short. With every page and every small heap object taken, a remap
// must still reach every CPU. (Shootdowns that allocated their requests flushed only locally
// here, and the callers freed the frames anyway.)
struct Hoard {
    uint64_t pages = 0;      // a list threaded through the hoarded frames themselves
    uint64_t page_count = 0;
    void* objects = nullptr; // the same for heap objects
    uint64_t object_count = 0;
};

void hoard_everything(Hoard& h) {
    while (const uint64_t f = pmm::alloc_page()) {
        *phys_to_virt<uint64_t>(f) = h.pages;
        h.pages = f;
        ++h.page_count;
    }
    // Then whatever the heap's slabs still hold, in every size class a request array could use.
    for (size_t size = 4096; size >= 16; size /= 2) {
        while (void* p = kmalloc(size)) {
            *static_cast<void**>(p) = h.objects;
            h.objects = p;
            ++h.object_count;
        }
    }
}

void release_hoard(Hoard& h) {
    while (h.objects != nullptr) {
        void* next = *static_cast<void**>(h.objects);
        kfree(h.objects);
        h.objects = next;
    }
    while (h.pages != 0) {
        const uint64_t next = *phys_to_virt<uint64_t>(h.pages);
        pmm::free_pages(h.pages);
        h.pages = next;
    }
}

KTEST(tlb, shootdown_needs_no_memory) {
    const uint64_t a = frame_with(kValueA), b = frame_with(kValueB);
    KASSERT(a != 0 && b != 0);
    static ReadAll r;
    KASSERT(map_and_cache_everywhere(r, a));
    static Hoard h;
    h = Hoard{};
    hoard_everything(h);
    // Remapping within the same page table needs no new memory, the shootdown must not either.
    KEXPECT_EQ(vmm::unmap(r.va, layout::kPageSize), uint64_t{1});
    const bool mapped = vmm::map(r.va, b, layout::kPageSize, vmm::kRead | vmm::kWrite);
    const CallStatus s = call_on_all(read_va, &r, true, true);
    const bool still_none = pmm::alloc_page() == 0;
    release_hoard(h);
    KASSERT(mapped);
    KASSERT(s == CallStatus::Ok);
    uint32_t stale = 0;
    for (uint32_t i = 0; i < cpu_count(); ++i)
        if (cpu_by_id(i)->online.load()) stale += r.seen[i] != kValueB;
    ktest::note("%lu pages and %lu heap objects taken; %u of %u CPUs saw the new frame",
                h.page_count, h.object_count, count_online() - stale, count_online());
    KEXPECT(still_none);
    KEXPECT_EQ(stale, 0u);
    vmm::unmap(r.va, layout::kPageSize);
    pmm::free_pages(a);
    pmm::free_pages(b);
}

struct Activate {
    AddressSpace* as;
};
void activate(void* arg) { address_space_activate(static_cast<Activate*>(arg)->as); }

KTEST(tlb, private_space_shootdown_reaches_only_active_cpus) {
    const uint32_t n = count_online();
    if (n < 3) return ktest::skip("needs at least 3 CPUs");
    AddressSpace* as = address_space_create();
    KASSERT(as != nullptr);
    const uint64_t a = frame_with(kValueA), b = frame_with(kValueB);
    KASSERT(a != 0 && b != 0);
    static ReadAll r;
    r.va = 0x40000000; // lower half: private to `as`
    KASSERT(address_space_map(as, r.va, a, false));
    // Load it on this CPU and CPU 1 only; the others keep the kernel's address space.
    Activate act{as};
    const uint32_t me = this_cpu()->cpu_id;
    const uint32_t other = me == 1 ? 2 : 1;
    KASSERT(call_on(other, activate, &act, true) == CallStatus::Ok);
    activate(&act);
    CpuMask users;
    users.set(me);
    users.set(other);
    KASSERT(call_on_many(users, read_va, &r, true) == CallStatus::Ok);
    KEXPECT_EQ(r.seen[me], kValueA);
    KEXPECT_EQ(r.seen[other], kValueA);
    const TlbStats before = tlb_stats();
    KEXPECT_EQ(address_space_unmap(as, r.va, layout::kPageSize), uint64_t{1});
    KASSERT(address_space_map(as, r.va, b, false));
    const TlbStats after = tlb_stats();
    KASSERT(call_on_many(users, read_va, &r, true) == CallStatus::Ok);
    KEXPECT_EQ(r.seen[me], kValueB);
    KEXPECT_EQ(r.seen[other], kValueB);
    KEXPECT_EQ(after.shootdowns - before.shootdowns, uint64_t{1});
    if (!tlb_shootdown_disabled()) KEXPECT_EQ(after.remote_cpus - before.remote_cpus, uint64_t{1});
    // Back to the kernel's address space everywhere before freeing this one.
    Activate back{&kernel_address_space()};
    KEXPECT(call_on(other, activate, &back, true) == CallStatus::Ok);
    activate(&back);
    KEXPECT(!as->active.test(me) && !as->active.test(other));
    address_space_destroy(as);
    pmm::free_pages(a);
    pmm::free_pages(b);
}

KTEST(tlb, batch_sends_one_shootdown_and_large_ranges_flush_all) {
    const uint64_t base = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x1000000;
    const uint64_t frame = pmm::alloc_zeroed_page();
    KASSERT(frame != 0);
    for (int i = 0; i < 8; ++i)
        KASSERT(vmm::map(base + i * 0x10000, frame, layout::kPageSize, vmm::kRead));
    TlbStats before = tlb_stats();
    {
        TlbBatch batch(nullptr);
        for (int i = 0; i < 8; ++i) batch.add(base + i * 0x10000, base + i * 0x10000 + 4096);
    }
    TlbStats after = tlb_stats();
    KEXPECT_EQ(after.shootdowns - before.shootdowns, uint64_t{1});
    KEXPECT_EQ(after.pages - before.pages, uint64_t{8});
    KEXPECT_EQ(after.full_flushes - before.full_flushes, uint64_t{0});
    before = after;
    tlb_shootdown(nullptr, base, base + (kTlbFlushAllThreshold + 1) * 4096);
    after = tlb_stats();
    KEXPECT_EQ(after.full_flushes - before.full_flushes, uint64_t{1});
    for (int i = 0; i < 8; ++i) vmm::unmap(base + i * 0x10000, layout::kPageSize);
    pmm::free_pages(frame);
}


// --- PCIDs: a space changed while its CPU ran something else ---------------------------------
constexpr uint64_t kPcidVa = 0x60000000;
struct PcidProbe {
    WaitQueue wq;
    std::atomic<uint32_t> asked{0}, answered{0};
    std::atomic<uint64_t> seen{0};
    std::atomic<bool> stop{false};
    AddressSpaceSwitchStats before{}, after{};
};
PcidProbe g_pcid;

// Runs in the private space on one CPU: reads the page each time it is asked, then blocks, so
// its CPU runs kernel threads (lazily keeping the space, or in the kernel's) between reads.
void pcid_reader(void*) {
    g_pcid.before = address_space_switch_stats();
    for (uint32_t round = 1;; ++round) {
        g_pcid.wq.wait([round] { return g_pcid.asked.load() >= round || g_pcid.stop.load(); });
        if (g_pcid.stop.load()) break;
        g_pcid.seen = *reinterpret_cast<volatile uint64_t*>(kPcidVa);
        g_pcid.answered = round;
    }
    g_pcid.after = address_space_switch_stats();
}

uint64_t ask_pcid_reader(uint32_t round) {
    g_pcid.asked = round;
    g_pcid.wq.wake_all();
    const uint64_t limit = monotonic_ns() + 5'000'000'000;
    while (g_pcid.answered.load() < round && monotonic_ns() < limit) sleep_for(100'000);
    return g_pcid.seen.load();
}

KTEST(tlb, a_space_changed_while_its_cpu_ran_another_is_flushed_on_return) {
    // While the reader is blocked its CPU runs kernel threads. With lazy TLB (the default) it
    // keeps the reader's space loaded; with PCIDs it keeps the space's translations under its
    // PCID even when it loads the kernel's space. Either way the remap's shootdown does not
    // reach it (the space is not active there), and it must flush when the reader runs again:
    // the generation check. tlb.lazy_skip_gen_check=1 skips it, and this test must then fail
    // (ctest kernel.tlb.fails_without_lazy_generation_check).
    AddressSpace* as = address_space_create();
    KASSERT(as != nullptr);
    const uint64_t fa = pmm::alloc_zeroed_page(), fb = pmm::alloc_zeroed_page();
    KASSERT(fa != 0 && fb != 0);
    *phys_to_virt<uint64_t>(fa) = 0xaaaa;
    *phys_to_virt<uint64_t>(fb) = 0xbbbb;
    KASSERT(address_space_map(as, kPcidVa, fa, false));
    g_pcid.asked = g_pcid.answered = 0;
    g_pcid.stop = false;
    CpuMask one;
    one.set(cpu_count() - 1);
    Task* t = task_create(pcid_reader, nullptr, {.name = "pcid-reader", .affinity = &one,
                                                 .address_space = as});
    KASSERT(t != nullptr);
    uint32_t stale = 0, round = 0;
    constexpr uint32_t kRounds = 20;
    for (uint32_t i = 0; i < kRounds; ++i) {
        const bool now_a = i % 2 == 0;
        // Odd rounds: read twice without a change in between (the entries may be kept), then
        // remap to the other frame while the reader is blocked in the kernel's space.
        if (ask_pcid_reader(++round) != (now_a ? 0xaaaa : 0xbbbb)) ++stale;
        if (ask_pcid_reader(++round) != (now_a ? 0xaaaa : 0xbbbb)) ++stale;
        KASSERT(address_space_unmap(as, kPcidVa, 4096) == 1);
        KASSERT(address_space_map(as, kPcidVa, now_a ? fb : fa, false));
    }
    g_pcid.stop = true;
    g_pcid.wq.wake_all();
    task_join(t);
    const uint64_t kept = g_pcid.after.kept - g_pcid.before.kept;
    const uint64_t flushed = g_pcid.after.flushed - g_pcid.before.flushed;
    const uint64_t lazy_kept = g_pcid.after.lazy_kept - g_pcid.before.lazy_kept;
    const uint64_t lazy_flushed = g_pcid.after.lazy_flushed - g_pcid.before.lazy_flushed;
    ktest::note("%u reads after %u remaps, %u stale; PCIDs %s, on the reader's CPU %lu switches "
                "kept the TLB entries and %lu flushed them; lazy returns: %lu kept, %lu flushed",
                round, kRounds, stale, address_space_pcid_enabled() ? "on" : "off", kept, flushed,
                lazy_kept, lazy_flushed);
    KEXPECT_EQ(stale, 0u);
    if (address_space_pcid_enabled()) {
        KEXPECT(kept + lazy_kept > 0); // unchanged spaces keep their entries (what PCIDs are for)
        KEXPECT(flushed >= kRounds);   // and every return after a remap flushed
    }
    // Without PCIDs the counts of lazy returns are only reported: in a full test run other
    // tasks (other spaces) may run on the reader's CPU between reads, which makes a return an
    // ordinary load. The stale count is the property; kernel.tlb.fails_without_lazy_generation_check
    // shows it catches a missing check.
    address_space_destroy(as);
    pmm::free_pages(fa);
    pmm::free_pages(fb);
}


// --- page tables under load --------------------------------------------------------------------
// One CPU keeps unmapping pages and mapping them again to fresh contents while every other CPU
// reads through them. A read may fault (the page is unmapped at that moment: counted) or return
// a value the mapper allowed during the read, never anything else: a stale translation would
// return an older version, or another page's frame.
constexpr uint32_t kLoadPages = 8;
struct Load {
    uint64_t va;
    uint64_t frames[kLoadPages][2];
    std::atomic<uint64_t> gen[kLoadPages]; // even: mapped with version gen/2; odd: changing
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> readers_done{0};
    std::atomic<uint64_t> reads{0}, faults{0}, wrong{0};
    std::atomic<uint64_t> first_wrong{0};
    std::atomic<bool> recorded{false};
    uint64_t w_page, w_g1, w_g2, w_value, w_faulted, w_cpu; // the first wrong read
};
Load g_load;

uint64_t load_tag(uint32_t page, uint64_t version) { return 0x10ad'0000'0000'0000 | uint64_t{page} << 40 | version; }

void record_wrong(uint32_t p, uint64_t g1, uint64_t g2, uint64_t v, bool faulted) {
    if (g_load.recorded.exchange(true)) return;
    g_load.w_page = p, g_load.w_g1 = g1, g_load.w_g2 = g2, g_load.w_value = v;
    g_load.w_faulted = faulted, g_load.w_cpu = this_cpu()->cpu_id;
}

void load_reader(void*) {
    uint64_t reads = 0, faults = 0, wrong = 0;
    while (!g_load.stop.load(std::memory_order_relaxed)) {
        for (uint32_t p = 0; p < kLoadPages; ++p) {
            const uint64_t g1 = g_load.gen[p].load(std::memory_order_acquire);
            auto* va = reinterpret_cast<volatile uint64_t*>(g_load.va + p * layout::kPageSize);
            FaultInfo f{};
            uint64_t v = 0;
            struct Read {
                volatile uint64_t* va;
                uint64_t* out;
            } rd{va, &v};
            const bool faulted = run_catching_faults(
                [](void* arg) {
                    auto* r = static_cast<Read*>(arg);
                    *r->out = *r->va;
                },
                &rd, &f);
            const uint64_t g2 = g_load.gen[p].load(std::memory_order_acquire);
            ++reads;
            if (faulted) {
                ++faults;
                // Only an unmapped moment explains a fault: steadily mapped throughout is wrong.
                if (g1 == g2 && g1 % 2 == 0) {
                    ++wrong;
                    record_wrong(p, g1, g2, f.cr2, true);
                }
                continue;
            }
            // Allowed: the versions mapped at some moment between the two generation reads. An
            // odd generation is a change in progress: the old version until the shootdown, the
            // new one from its mapping on (the generation moves on just after that).
            const uint64_t version = v & 0xffff'ffffull;
            if ((v & ~0xffff'ffffull) != load_tag(p, 0) || version < g1 / 2 || version > (g2 + 1) / 2) {
                ++wrong;
                record_wrong(p, g1, g2, v, false);
            }
        }
    }
    g_load.reads.fetch_add(reads);
    g_load.faults.fetch_add(faults);
    g_load.wrong.fetch_add(wrong);
    g_load.readers_done.fetch_add(1);
}

KTEST(tlb, destroying_a_space_moves_the_cpus_that_keep_it_lazily_off_it) {
    // A task in a private space ends on another CPU, which then runs kernel threads with the
    // space still loaded (lazy). Destroying the space must first move that CPU to the kernel's
    // space: its page walks must not reach freed page tables.
    if (tlb_lazy_enabled() == false) return ktest::skip("tlb.lazy=0");
    const uint32_t n = count_online();
    if (n < 2) return ktest::skip("needs 2 CPUs");
    AddressSpace* as = address_space_create();
    KASSERT(as != nullptr);
    CpuMask one;
    const uint32_t cpu = cpu_count() - 1 == this_cpu()->cpu_id ? 0 : cpu_count() - 1;
    one.set(cpu);
    Task* t = task_create([](void*) {}, nullptr,
                          {.name = "brief", .affinity = &one, .address_space = as});
    KASSERT(t != nullptr);
    task_join(t);
    KEXPECT(as->lazy.test(cpu));
    KEXPECT(!as->active.test(cpu));
    struct Probe {
        AddressSpace* current;
    } probe{nullptr};
    address_space_destroy(as); // panics if a CPU still has it loaded
    KASSERT(call_on(cpu, [](void* arg) { static_cast<Probe*>(arg)->current = address_space_current(); },
                    &probe, true) == CallStatus::Ok);
    KEXPECT(probe.current == &kernel_address_space());
}

KTEST(tlb, page_tables_under_load_never_show_a_wrong_value) {
    if (count_online() < 2) return ktest::skip("needs 2 CPUs");
    Load& L = g_load;
    L.va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0xc00000;
    L.stop = false;
    L.readers_done = 0;
    L.reads = L.faults = L.wrong = L.first_wrong = 0;
    L.recorded = false;
    for (uint32_t p = 0; p < kLoadPages; ++p) {
        L.frames[p][0] = frame_with(load_tag(p, 0));
        L.frames[p][1] = pmm::alloc_zeroed_page();
        KASSERT(L.frames[p][0] != 0 && L.frames[p][1] != 0);
        L.gen[p] = 0;
        KASSERT(vmm::map(L.va + p * layout::kPageSize, L.frames[p][0], layout::kPageSize, vmm::kRead));
    }
    const uint32_t me = this_cpu()->cpu_id;
    uint32_t readers = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (c == me || !cpu_by_id(c)->online.load()) continue;
        // At most kAsyncCallCredit queued at once: wait for the first to start (many CPUs).
        CallStatus st;
        while ((st = run_on_async(c, load_reader, nullptr)) == CallStatus::Busy) yield();
        KASSERT(st == CallStatus::Ok);
        ++readers;
    }
    // The mapper: page after page, unmap (shootdown), write the next version into the frame
    // unmapped one change ago (no CPU can reach it any more), map that frame.
    uint64_t remaps = 0;
    bool mapper_ok = true;
    const uint64_t end = monotonic_ns() + 300'000'000;
    for (uint32_t p = 0; monotonic_ns() < end && mapper_ok; p = (p + 1) % kLoadPages, ++remaps) {
        const uint64_t va = L.va + p * layout::kPageSize;
        const uint64_t version = L.gen[p].load() / 2 + 1;
        L.gen[p].fetch_add(1, std::memory_order_acq_rel); // odd: changing
        mapper_ok = vmm::unmap(va, layout::kPageSize) == 1;
        const uint64_t frame = L.frames[p][version % 2];
        *phys_to_virt<volatile uint64_t>(frame) = load_tag(p, version);
        mapper_ok = mapper_ok && vmm::map(va, frame, layout::kPageSize, vmm::kRead);
        L.gen[p].fetch_add(1, std::memory_order_acq_rel); // even: version mapped
    }
    L.stop = true; // also after a failure: the readers must not outlive the test
    KEXPECT(mapper_ok);
    const uint64_t limit = monotonic_ns() + 5'000'000'000;
    while (L.readers_done.load() < readers && monotonic_ns() < limit) sleep_for(1'000'000);
    ktest::note("%lu remaps of %u pages against %u readers: %lu reads, %lu faulted (unmapped at "
                "the time), %lu wrong", remaps, kLoadPages, readers, L.reads.load(),
                L.faults.load(), L.wrong.load());
    if (L.wrong.load() != 0)
        ktest::note("first wrong read: cpu%lu page %lu, generation %lu then %lu, %s %#lx", L.w_cpu,
                    L.w_page, L.w_g1, L.w_g2, L.w_faulted ? "fault at" : "value", L.w_value);
    KEXPECT_EQ(L.readers_done.load(), readers);
    KEXPECT_EQ(L.wrong.load(), uint64_t{0});
    KEXPECT(L.reads.load() > 0);
    for (uint32_t p = 0; p < kLoadPages; ++p) {
        vmm::unmap(L.va + p * layout::kPageSize, layout::kPageSize);
        pmm::free_pages(L.frames[p][0]);
        pmm::free_pages(L.frames[p][1]);
    }
}

} // namespace
} // namespace cohort
