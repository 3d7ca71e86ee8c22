// TLB shootdown: a translation every CPU has cached is changed, and every CPU must see the new
// frame at once. QEMU's TCG keeps a real per-CPU TLB, so a missing flush shows up as a stale
// read here (run with tlb.disable_shootdown=1 to watch these tests fail).
#include "arch/x86/cpu.h"
#include "debug/fault_catcher.h"
#include "mm/address_space.h"
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

KTEST(tlb, kernel_remap_is_seen_by_every_cpu) {
    const uint64_t a = frame_with(kValueA), b = frame_with(kValueB);
    KASSERT(a != 0 && b != 0);
    static ReadAll r;
    r.va = layout::kMmioAreaBase + layout::kMmioAreaSize - 0x800000;
    KASSERT(vmm::map(r.va, a, layout::kPageSize, vmm::kRead | vmm::kWrite));
    // Every CPU reads through the mapping: now each has the translation to A cached.
    KASSERT(call_on_all(read_va, &r, true, true) == CallStatus::Ok);
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
    KASSERT(tlb_shootdown(nullptr, base, base + (kTlbFlushAllThreshold + 1) * 4096));
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
// its CPU switches to the kernel's space (and PCID) between reads.
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
    // With PCIDs the reader's CPU keeps the space's translations while it runs the kernel's
    // space; the remap's shootdown does not reach it (the space is not active there). It must
    // flush when it loads the space again. Without PCIDs every reload flushes anyway.
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
    ktest::note("%u reads after %u remaps, %u stale; PCIDs %s, on the reader's CPU %lu switches "
                "kept the TLB entries and %lu flushed them", round, kRounds, stale,
                address_space_pcid_enabled() ? "on" : "off", kept, flushed);
    KEXPECT_EQ(stale, 0u);
    if (address_space_pcid_enabled()) {
        KEXPECT(kept > 0);        // unchanged spaces keep their entries (what PCIDs are for)
        KEXPECT(flushed >= kRounds); // and every return after a remap flushed
    }
    address_space_destroy(as);
    pmm::free_pages(fa);
    pmm::free_pages(fb);
}

} // namespace
} // namespace cohort
