// x86 implementation of mm/address_space.h.
#include "mm/address_space.h"

#include "sync/lock_ranks.h"

#include <cstring>
#include <new>

#include "arch/x86/cpu.h"
#include "arch/x86/cpu_features.h"
#include "arch/x86/cpu_private.h"
#include "arch/x86/paging.h"
#include "debug/log.h"
#include "debug/panic.h"
#include "mm/heap.h"
#include "mm/layout.h"
#include "mm/pcid_cache.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "boot/params.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "smp/cpu_private.h"
#include "smp/percpu.h"
#include "smp/tlb.h"

namespace cohort {

LockClass g_address_space_class{"address space", rank::kAddressSpace};

namespace {

AddressSpace g_kernel_as;
COHORT_PERCPU(AddressSpace*, g_current_as);
// This CPU's own business only: in its private region (smp/cpu_private.h).
COHORT_CPU_PRIVATE(PcidCache, g_pcids);
COHORT_CPU_PRIVATE(AddressSpaceSwitchStats, g_switch_stats);
// Whose lower half the CPU's own top-level table holds (its table starts with none: the
// kernel's).
COHORT_CPU_PRIVATE(const AddressSpace*, g_installed) = &g_kernel_as;
// Which of its lower-half entries are set (so a switch touches only those).
COHORT_CPU_PRIVATE(uint64_t, g_lower_set)[4];
// Lazy TLB on this CPU. `on`: it keeps g_current_as loaded for a kernel thread. `loaded_gen`:
// the space's generation read just before this CPU last loaded it with a flush (CR3 write),
// the newest change its TLB is sure to reflect. Not the generation at the switch to the kernel
// thread: a change bumped before that read may have found this CPU already out of the active
// set and sent it no IPI, and its stale entry would then survive the return.
struct LazyState {
    bool on;
    uint64_t loaded_gen;
};
COHORT_CPU_PRIVATE(LazyState, g_lazy);
std::atomic<uint64_t> g_next_id{1};

constexpr uint64_t kCr3NoFlush = 1ull << 63; // with CR4.PCIDE: keep the new PCID's entries

uint64_t* table(uint64_t phys) { return phys_to_virt<uint64_t>(phys); }
// The running CPU's own top-level table, through the only writable mapping it has.
uint64_t* own_root() { return reinterpret_cast<uint64_t*>(layout::kCpuPrivateRoot); }

// Test injection: a lazy CPU coming back skips its generation check (the TLB tests show it
// then reads through a stale translation).
bool lazy_gen_check_skipped() {
    static const bool skip = param_bool("tlb.lazy_skip_gen_check", false);
    return skip;
}

void write_cr3_counted(uint64_t v) {
    x86::write_cr3(v);
    ++cpu_private(g_switch_stats).cr3_writes;
}

// Remote call from address_space_destroy: stop keeping `arg` loaded.
void leave_lazy(void* arg) {
    if (cpu_private(g_lazy).on && per_cpu(g_current_as) == static_cast<AddressSpace*>(arg))
        address_space_activate(&g_kernel_as);
}

} // namespace

AddressSpace& kernel_address_space() { return g_kernel_as; }

bool tlb_lazy_enabled() {
    static const bool on = param_bool("tlb.lazy", true);
    return on;
}

void address_space_init_kernel(uint64_t root) { g_kernel_as.root = root; }

AddressSpace* address_space_create() {
    void* mem = kzalloc(sizeof(AddressSpace));
    if (mem == nullptr) return nullptr;
    auto* as = new (mem) AddressSpace{};
    as->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    as->root = pmm::alloc_zeroed_page();
    if (as->root == 0) {
        kfree(as);
        return nullptr;
    }
    // The kernel half is the same everywhere (those PML4 entries never change after boot).
    memcpy(table(as->root) + 256, table(g_kernel_as.root) + 256, 256 * sizeof(uint64_t));
    return as;
}

void address_space_destroy(AddressSpace* as) {
    if (as == nullptr || as == &g_kernel_as) return;
    // CPUs that keep it loaded for a kernel thread: off it first. Their page walks (even
    // speculative ones, which set accessed bits) must not reach tables we free and reuse.
    const CpuMask lazy = as->lazy.snapshot(cpu_count());
    if (!lazy.empty()) {
        const CallStatus st = call_on_many_and_self(lazy, leave_lazy, as);
        if (st != CallStatus::Ok)
            panic("address space %lu: could not move %zu lazy CPU(s) off it (%s); destroy needs "
                  "interrupts enabled", as->id, lazy.count(), call_status_name(st));
    }
    // A CPU still running it would keep walking page tables we are about to free. (PCID slots
    // that still name it need no cleanup: ids are never reused, so no later space matches.)
    CpuMask users = as->active.snapshot(cpu_count());
    const CpuMask still_lazy = as->lazy.snapshot(cpu_count());
    for (uint32_t c = still_lazy.first(); c != CpuMask::kNone; c = still_lazy.next(c + 1))
        users.set(c);
    if (!users.empty())
        panic("address space %lu destroyed while cpu%u (and %zu other(s)) still run it", as->id,
              users.first(), users.count() - 1);
    uint64_t* root = table(as->root);
    for (unsigned i = 0; i < 256; ++i)
        if (root[i] & x86::pte::kPresent) x86::pt_free_tree(root[i] & x86::pte::kAddrMask, 3);
    pmm::free_pages(as->root);
    kfree(as);
}

AddressSpace* address_space_current() {
    AddressSpace* as = per_cpu(g_current_as);
    return as != nullptr ? as : &g_kernel_as;
}

bool address_space_pcid_enabled() { return x86::pcid_enabled(); }

AddressSpaceSwitchStats address_space_switch_stats() {
    x86::InterruptGuard irq;
    return cpu_private(g_switch_stats);
}

void address_space_activate(AddressSpace* as) {
    x86::InterruptGuard irq; // the switch and the mask updates must not be split by a call
    AddressSpace* old = address_space_current();
    LazyState& lazy = cpu_private(g_lazy);
    AddressSpaceSwitchStats& stats = cpu_private(g_switch_stats);
    const CpuData* cpu = this_cpu();
    const uint32_t me = cpu->cpu_id;
    const uint64_t root = cpu->page_root; // every space runs on the CPU's own top-level table
    // Whether its lower half is in our table already (then CR3 need not change for it).
    const bool installed = cpu_private(g_installed) == as;
    as->active.set(me); // a locked RMW: a full barrier before the generation is read
    if (!x86::pcid_enabled()) {
        // Any change bumped after this read either finds us active (and sends us its flush)
        // or leaves the generation past what we record here.
        const uint64_t gen = as->tlb_gen.load(std::memory_order_seq_cst);
        if (lazy.on && old == as && installed) {
            // Back to the space a kernel thread kept loaded. Shootdowns skipped us while we
            // were out of the active set; if any change was made since we last loaded it with
            // a flush, its generation moved on: drop the space's entries (the kernel's are
            // global and stay).
            if (gen != lazy.loaded_gen && !lazy_gen_check_skipped()) {
                x86::write_cr3(root);
                lazy.loaded_gen = gen;
                ++stats.cr3_writes;
                ++stats.lazy_flushed;
            } else {
                ++stats.lazy_kept;
            }
        } else if (old != as || !installed) {
            // Every CR3 load flushes the non-global entries: nothing of another space survives.
            x86::lower_half_clear();
            write_cr3_counted(root);
            x86::lower_half_fill(as);
            lazy.loaded_gen = gen;
        }
    } else {
        // The PCID cache compares the generation itself, lazy or not (mm/pcid_cache.h).
        const PcidCache::Decision d =
            cpu_private(g_pcids).switch_to(as->id, as->tlb_gen.load(std::memory_order_seq_cst));
        const uint64_t cr3 = root | d.pcid;
        if (d.flush || x86::read_cr3() != cr3 || !installed) {
            // The old space's entries leave the table before the new PCID is loaded and the
            // new ones arrive after: a walk tagged with either PCID only ever sees its own
            // space's entries (paging-structure caches keep entries per PCID).
            if (!installed) x86::lower_half_clear();
            write_cr3_counted(cr3 | (d.flush ? 0 : kCr3NoFlush));
            if (!installed) x86::lower_half_fill(as);
            ++(d.flush ? stats.flushed : stats.kept);
        } else if (lazy.on && old == as) {
            ++stats.lazy_kept;
        }
    }
    if (lazy.on) {
        old->lazy.clear(me);
        lazy.on = false;
    }
    if (old != as) old->active.clear(me);
    per_cpu(g_current_as) = as;
}

void address_space_cpu_leaving() {
    x86::InterruptGuard irq;
    address_space_activate(&g_kernel_as); // off any space a kernel thread kept lazily
    g_kernel_as.active.clear(this_cpu()->cpu_id);
    // INIT empties its TLB; the PCID cache must say so when it comes back.
    new (&cpu_private(g_pcids)) PcidCache();
    cpu_private(g_lazy) = LazyState{};
}

void address_space_enter_lazy() {
    x86::InterruptGuard irq;
    AddressSpace* as = address_space_current();
    LazyState& lazy = cpu_private(g_lazy);
    if (as == &g_kernel_as || lazy.on) return;
    if (!tlb_lazy_enabled()) {
        address_space_activate(&g_kernel_as);
        return;
    }
    const uint32_t me = this_cpu()->cpu_id;
    // No generation is read here: the return compares with the one read when the space was
    // last loaded with a flush (LazyState), which no change missed by this CPU can be older
    // than. Reading it here let a change that bumped it just before, and found us already out
    // of the active set, go unflushed (seen as stale reads in the torture run).
    lazy.on = true;
    as->lazy.set(me); // before leaving `active`: address_space_destroy sees us in one of them
    as->active.clear(me);
    ++cpu_private(g_switch_stats).lazy_entered;
}

bool address_space_map(AddressSpace* as, uint64_t va, uint64_t pa, bool writable) {
    if (va >= layout::kKernelHalf) return false;
    Guard<SpinLock, IrqSave> guard(as->lock);
    uint64_t* e = x86::pt_walk(as->root, va, 1, /*create=*/true);
    const unsigned slot = (va >> 39) & 511;
    if (table(as->root)[slot] & x86::pte::kPresent)
        as->lower_used[slot / 64].fetch_or(uint64_t{1} << (slot % 64), std::memory_order_release);
    if (e == nullptr || (*e & x86::pte::kPresent)) return false;
    *e = (pa & x86::pte::kAddrMask) | x86::pte::kPresent | x86::pte::kNx |
         (writable ? x86::pte::kWrite : 0);
    return true;
}

uint64_t address_space_unmap(AddressSpace* as, uint64_t va, uint64_t size) {
    uint64_t n = 0;
    TlbBatch batch(as);
    {
        Guard<SpinLock, IrqSave> guard(as->lock);
        for (uint64_t off = 0; off < size; off += layout::kPageSize) {
            uint64_t* e = x86::pt_walk(as->root, va + off, 1, /*create=*/false);
            if (e == nullptr || !(*e & x86::pte::kPresent)) continue;
            *e = 0;
            batch.add(va + off, va + off + layout::kPageSize);
            ++n;
        }
    }
    // Outside the lock, with interrupts back on: the other CPUs may need us to answer calls.
    batch.flush();
    return n;
}

namespace x86 {

namespace {
// Copies made by lower_half_sync_fault (machine-wide: it is a rare path, once per CPU and slot).
std::atomic<uint64_t> g_lower_syncs{0};
} // namespace

// The lower half lives in the space's own top-level table (written under its lock, where
// address_space_map creates entries and marks them in lower_used); the CPU's table gets a copy
// of the entries marked there, and remembers which it set (g_lower_set) to clear just those.
void lower_half_clear() {
    uint64_t* root = own_root();
    uint64_t (&set)[4] = cpu_private(g_lower_set);
    for (unsigned w = 0; w < 4; ++w) {
        for (uint64_t bits = set[w]; bits != 0; bits &= bits - 1)
            root[w * 64 + __builtin_ctzll(bits)] = 0;
        set[w] = 0;
    }
    cpu_private(g_installed) = nullptr;
}

void lower_half_fill(const AddressSpace* as) {
    uint64_t* root = own_root();
    const uint64_t* src = table(as->root);
    uint64_t (&set)[4] = cpu_private(g_lower_set);
    // An entry made after the bit was read is copied by lower_half_sync_fault on first use.
    for (unsigned w = 0; w < 4; ++w) {
        for (uint64_t bits = as->lower_used[w].load(std::memory_order_acquire); bits != 0;
             bits &= bits - 1) {
            const unsigned i = w * 64 + __builtin_ctzll(bits);
            root[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
            set[w] |= uint64_t{1} << (i % 64);
        }
    }
    cpu_private(g_installed) = as;
}

const AddressSpace* lower_half_installed() { return cpu_private(g_installed); }

uint64_t lower_half_syncs() { return g_lower_syncs.load(std::memory_order_relaxed); }

bool lower_half_sync_fault(uint64_t addr) {
    if (addr >= layout::kKernelHalf || this_cpu()->page_root == 0) return false;
    const AddressSpace* as = cpu_private(g_installed);
    if (as == nullptr) return false;
    const unsigned i = (addr >> 39) & 511;
    uint64_t* root = own_root();
    const uint64_t e = __atomic_load_n(&table(as->root)[i], __ATOMIC_ACQUIRE);
    if (root[i] != 0 || e == 0) return false;
    root[i] = e; // non-present entries are never cached: the retry walks this one
    cpu_private(g_lower_set)[i / 64] |= uint64_t{1} << (i % 64);
    g_lower_syncs.fetch_add(1, std::memory_order_relaxed);
    return true;
}

} // namespace x86

} // namespace cohort
