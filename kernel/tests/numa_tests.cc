// NUMA topology as the kernel sees it, checked against what QEMU was told. The ctest
// configurations pass tools/run's own NUMA options again as test.* keys:
//   test.numa_cpus  each node's CPUs, nodes split by '/'     0-3/4-7/   (empty: CPU-less)
//   test.numa_mem   each node's memory in MiB, split by '/'  256/0      (0: memory-less)
//   test.numa_dist  the distance matrix, rows split by '/'   10,21/21,10 (absent: 10/20)
// ('/', not tools/run's ';': CMake, which writes these command lines, cannot carry a ';'.)
// Logical CPU numbers are QEMU's CPU indexes here: the boot CPU is index 0 and the MADT lists
// the rest in index order.
#include <string_view>

#include <atomic>

#include "boot/params.h"
#include "mm/address_space.h"
#include "mm/heap.h"
#include "mm/phys.h"
#include "mm/pmm.h"
#include "mm/vmm.h"
#include "sched/internal.h"
#include "sched/sched.h"
#include "sched/topology.h"
#include "smp/percpu.h"
#include "sync/cpu_relax.h"
#include "time/clock.h"
#include "numa/numa.h"
#include "smp/call.h"
#include "smp/cpu.h"
#include "test/ktest.h"

namespace cohort {
namespace {

// Splits `s` at `sep`: the i-th piece (empty if there are fewer).
std::string_view piece(std::string_view s, char sep, uint32_t i) {
    for (; i > 0; --i) {
        const size_t at = s.find(sep);
        if (at == std::string_view::npos) return {};
        s.remove_prefix(at + 1);
    }
    const size_t end = s.find(sep);
    return end == std::string_view::npos ? s : s.substr(0, end);
}

uint32_t count_pieces(std::string_view s, char sep) {
    uint32_t n = 1;
    for (char c : s) n += c == sep;
    return n;
}

bool parse_num(std::string_view s, uint64_t& out) {
    if (s.empty()) return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
}

// Whether `cpu` is in a list such as "0-3,8,10-11".
bool in_list(std::string_view list, uint32_t cpu) {
    for (uint32_t i = 0; i < count_pieces(list, ','); ++i) {
        const std::string_view item = piece(list, ',', i);
        if (item.empty()) continue;
        const size_t dash = item.find('-');
        uint64_t lo = 0, hi = 0;
        if (dash == std::string_view::npos) {
            if (!parse_num(item, lo)) continue;
            hi = lo;
        } else if (!parse_num(item.substr(0, dash), lo) || !parse_num(item.substr(dash + 1), hi)) {
            continue;
        }
        if (cpu >= lo && cpu <= hi) return true;
    }
    return false;
}

KTEST(numa, every_cpu_is_on_the_node_qemu_gave_it) {
    const auto cpus = params().get("test.numa_cpus");
    if (!cpus) return ktest::skip("needs test.numa_cpus (each node's CPUs)");
    const numa::NodeMap& m = numa_map();
    KEXPECT_EQ(m.nodes(), count_pieces(*cpus, '/'));
    uint32_t checked = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        uint32_t want = numa::kNoNode;
        for (uint32_t n = 0; n < count_pieces(*cpus, '/'); ++n)
            if (in_list(piece(*cpus, '/', n), c)) want = n;
        if (!KEXPECT_EQ(m.cpu_node(c), want)) ktest::note("cpu%u: node %u, QEMU said %u", c, m.cpu_node(c), want);
        KEXPECT_EQ(cpu_by_id(c)->node, m.cpu_node(c));
        ++checked;
    }
    for (uint32_t n = 0; n < m.nodes(); ++n)
        KEXPECT_EQ(m.cpuless(n), piece(*cpus, '/', n).empty());
    ktest::note("%u CPUs on %u nodes as QEMU was told", checked, m.nodes());
}

KTEST(numa, each_node_has_the_memory_qemu_gave_it) {
    const auto mem = params().get("test.numa_mem");
    if (!mem) return ktest::skip("needs test.numa_mem (each node's MiB)");
    const numa::NodeMap& m = numa_map();
    KASSERT_EQ(m.nodes(), count_pieces(*mem, '/'));
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        uint64_t mib = 0;
        KASSERT(parse_num(piece(*mem, '/', n), mib));
        const uint64_t have = m.memory_bytes(n);
        // What the kernel calls usable is QEMU's RAM less the legacy hole, the BIOS and ACPI
        // areas, the kernel image and the allocator's metadata: a few MiB on the first and last
        // nodes, never more than QEMU gave.
        KEXPECT(have <= (mib << 20));
        KEXPECT(have + (16ull << 20) >= (mib << 20));
        KEXPECT_EQ(m.memoryless(n), mib == 0);
        if (mib == 0) KEXPECT(m.nearest_node_with_memory(n) != n);
        ktest::note("node %u: %lu MiB usable of %lu", n, have >> 20, mib);
    }
    // Every usable range is on some node, and the node map accounts for all of them.
    uint64_t total = 0;
    for (const numa::NodeRange& r : m.ranges()) {
        KEXPECT(r.node < m.nodes());
        KEXPECT_EQ(m.node_of_address(r.base), uint32_t{r.node});
        KEXPECT_EQ(m.node_of_address(r.end() - 1), uint32_t{r.node});
        total += r.length;
    }
    uint64_t sum = 0;
    for (uint32_t n = 0; n < m.nodes(); ++n) sum += m.memory_bytes(n);
    KEXPECT_EQ(total, sum);
}

KTEST(numa, distances_are_the_ones_qemu_was_given) {
    const numa::NodeMap& m = numa_map();
    const auto dist = params().get("test.numa_dist");
    for (uint32_t i = 0; i < m.nodes(); ++i) {
        for (uint32_t j = 0; j < m.nodes(); ++j) {
            uint64_t want = i == j ? 10 : 20; // QEMU builds no SLIT without distances
            if (dist) KASSERT(parse_num(piece(piece(*dist, '/', i), ',', j), want));
            if (!KEXPECT_EQ(uint64_t{m.distance(i, j)}, want))
                ktest::note("distance %u -> %u is %u", i, j, m.distance(i, j));
        }
    }
    KEXPECT(m.notes().slit == (dist ? numa::SlitStatus::Used : numa::SlitStatus::Absent));
    ktest::note("%u node(s), SLIT %s", m.nodes(), numa::slit_status_name(m.notes().slit));
}

KTEST(numa, allocation_falls_back_by_distance_then_node_id) {
    // Whatever the machine: each node's fallback list holds every reachable node with memory,
    // nearest first, equal distances by node id.
    const numa::NodeMap& m = numa_map();
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        const auto order = m.nearest_nodes_with_memory(n);
        uint32_t with_memory = 0;
        for (uint32_t k = 0; k < m.nodes(); ++k)
            with_memory += !m.memoryless(k) && m.distance(n, k) != numa::kUnreachable;
        KEXPECT_EQ(uint32_t(order.size()), with_memory);
        for (size_t k = 0; k < order.size(); ++k) {
            KEXPECT(!m.memoryless(order[k]));
            if (k == 0) continue;
            const uint8_t a = m.distance(n, order[k - 1]), b = m.distance(n, order[k]);
            KEXPECT(a < b || (a == b && order[k - 1] < order[k]));
        }
        if (!m.memoryless(n) && !order.empty()) KEXPECT_EQ(uint32_t{order[0]}, n);
    }
}

std::atomic<uint32_t> g_wrong_node{0};

void check_own_node(void*) {
    const CpuData* me = this_cpu();
    if (me->node != numa_map().cpu_node(me->cpu_id)) g_wrong_node.fetch_add(1);
}

KTEST(numa, each_cpu_reads_its_own_node) {
    g_wrong_node = 0;
    KASSERT(call_on_all(check_own_node, nullptr, true, true) == CallStatus::Ok);
    KEXPECT_EQ(g_wrong_node.load(), 0u);
}

// --- memory -------------------------------------------------------------------------------------

COHORT_PERCPU(uint64_t, g_probe); // a per-CPU variable, to find each CPU's area

uint32_t home_of(const CpuData* c) { return numa_map().nearest_node_with_memory(c->node); }

struct LocalCount {
    std::atomic<uint64_t> pages{0}, local{0}, failed{0};
};

void allocate_locally(void* arg) {
    auto* c = static_cast<LocalCount*>(arg);
    const uint32_t home = home_of(this_cpu());
    uint64_t got[48];
    uint32_t n = 0;
    for (uint32_t i = 0; i < 48; ++i) {
        const uint64_t count = i % 4 == 3 ? 16 : 1; // single pages and 16-page blocks
        const uint64_t p = pmm::alloc_pages(count);
        if (p == 0) {
            c->failed.fetch_add(1);
            continue;
        }
        c->pages.fetch_add(1);
        c->local.fetch_add(pmm::node_of(p) == home && pmm::node_of(p + (count - 1) * 4096) == home);
        got[n++] = p | (count == 16 ? 1 : 0); // the low bit says which size
    }
    for (uint32_t i = 0; i < n; ++i) pmm::free_pages(got[i] & ~uint64_t{1}, (got[i] & 1) ? 16 : 1);
}

bool conserved(uint32_t* bad_node) {
    for (uint32_t n = 0; n < numa_map().nodes(); ++n) {
        if (numa_map().memoryless(n)) continue;
        const pmm::NodeStats s = pmm::node_stats(n);
        if (s.managed != s.free + s.cached + s.used) {
            *bad_node = n;
            ktest::note("node %u: managed %lu, free %lu + cached %lu + used %lu", n, s.managed,
                        s.free, s.cached, s.used);
            return false;
        }
    }
    return true;
}

KTEST(numa, every_cpu_allocates_from_its_own_node) {
    if (numa_map().nodes() < 2) return ktest::skip("one node");
    static LocalCount c;
    c.pages = 0;
    c.local = 0;
    c.failed = 0;
    KASSERT(ktest::run_on_all_cpus(allocate_locally, &c));
    KEXPECT_EQ(c.failed.load(), 0u);
    KEXPECT_EQ(c.local.load(), c.pages.load());
    ktest::note("%lu of %lu allocations on every CPU came from its node", c.local.load(),
                c.pages.load());
    KEXPECT_EQ(pmm::misplaced_frames(), 0u);
}

KTEST(numa, explicit_node_allocation_lands_there) {
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2) return ktest::skip("one node");
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        const uint64_t p = pmm::alloc_pages_node(n, 4);
        KASSERT(p != 0);
        // A memory-less node's pages come from its nearest node with memory.
        KEXPECT_EQ(pmm::node_of(p), m.nearest_node_with_memory(n));
        pmm::free_pages(p, 4);
    }
}

KTEST(numa, a_full_node_falls_back_to_the_nearest_by_distance) {
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2) return ktest::skip("one node");
    const uint32_t node = home_of(this_cpu());
    const auto order = m.nearest_nodes_with_memory(node);
    if (order.size() < 2) return ktest::skip("no second node with memory");
    // Take the node's memory page by page (each page holds the next one's address) until a
    // page comes from elsewhere: that one must be from the nearest other node.
    uint64_t head = 0, taken = 0, spill = 0;
    for (;;) {
        const uint64_t p = pmm::alloc_pages_node(node, 1);
        if (p == 0) break;
        if (pmm::node_of(p) != node) {
            spill = p;
            break;
        }
        *phys_to_virt<uint64_t>(p) = head;
        head = p;
        ++taken;
    }
    KEXPECT(spill != 0);
    if (spill != 0) {
        if (!KEXPECT_EQ(pmm::node_of(spill), uint32_t{order[1]}))
            ktest::note("node %u full: the next page came from node %u, the nearest is %u", node,
                        pmm::node_of(spill), order[1]);
        pmm::free_pages(spill);
    }
    while (head != 0) {
        const uint64_t next = *phys_to_virt<uint64_t>(head);
        pmm::free_pages(head);
        head = next;
    }
    ktest::note("node %u gave %lu pages, then node %u (distance %u)", node, taken,
                spill ? pmm::node_of(spill) : 0, spill ? m.distance(node, pmm::node_of(spill)) : 0);
    uint32_t bad = 0;
    KEXPECT(conserved(&bad));
    KEXPECT_EQ(pmm::misplaced_frames(), 0u);
}

KTEST(numa, each_cpus_data_and_per_cpu_area_are_on_its_node) {
    if (numa_map().nodes() < 2) return ktest::skip("one node");
    uint32_t checked = 0;
    // The boot CPU's were set up before NUMA was known (statically, or with the first pages).
    for (uint32_t c = 1; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        const uint32_t home = home_of(cpu);
        const uint64_t data = direct_map_virt_to_phys(cpu);
        const uint64_t area = direct_map_virt_to_phys(&per_cpu_on(cpu, g_probe));
        if (!KEXPECT_EQ(pmm::node_of(data), home) || !KEXPECT_EQ(pmm::node_of(area), home))
            ktest::note("cpu%u (home node %u): CpuData on node %u, per-CPU area on node %u", c,
                        home, pmm::node_of(data), pmm::node_of(area));
        ++checked;
    }
    ktest::note("%u APs' CpuData and per-CPU areas on their home nodes", checked);
}

// Where a CPU's own memory lives: CpuData, per-CPU area, kernel and IST stacks, idle and
// worker tasks (their Task and FPU area) and the worker's stack. The boot CPU's were made
// before NUMA was known.
KTEST(numa, each_cpus_stacks_and_scheduler_tasks_are_on_its_node) {
    if (numa_map().nodes() < 2) return ktest::skip("one node");
    uint32_t checked = 0, wrong = 0;
    for (uint32_t c = 1; c < cpu_count(); ++c) {
        const CpuData* cpu = cpu_by_id(c);
        const uint32_t home = home_of(cpu);
        const sched_impl::RunQueue& rq = per_cpu_on(cpu, sched_impl::g_rq);
        struct Piece {
            const char* what;
            uint64_t phys;
        };
        const Piece pieces[] = {
            {"kernel stack", vmm::translate(cpu->kernel_stack_top - 8)},
            // The IST stacks and CPU-private variables: one block, mapped only on that CPU.
            {"IST stacks", cpu->private_phys},
            {"own page tables", cpu->page_root},
            {"idle task", direct_map_virt_to_phys(rq.idle)},
            {"worker task", direct_map_virt_to_phys(rq.worker)},
            {"worker FPU area", direct_map_virt_to_phys(rq.worker->fpu_area)},
            {"worker stack", vmm::translate(rq.worker->stack.top - 8)},
        };
        for (const Piece& p : pieces) {
            ++checked;
            if (p.phys == UINT64_MAX || pmm::node_of(p.phys) != home) {
                ++wrong;
                ktest::note("cpu%u (home node %u): its %s is on node %u", c, home, p.what,
                            p.phys == UINT64_MAX ? 0 : pmm::node_of(p.phys));
            }
        }
    }
    KEXPECT_EQ(wrong, 0u);
    ktest::note("%u pieces of the APs' own memory checked, %u on another node", checked, wrong);
}

// Page tables come from the node of the CPU that maps: an address space built on a CPU of
// each node has every level of its tables (root, PDPT, PD, PT) on that node.
struct TableCheck {
    uint32_t home = 0;
    uint32_t tables = 0, wrong = 0;
    bool ok = false;
};

void build_space_here(void* arg) {
    auto* t = static_cast<TableCheck*>(arg);
    t->home = home_of(this_cpu());
    AddressSpace* as = address_space_create();
    if (as == nullptr) return;
    const uint64_t frame = pmm::alloc_page();
    constexpr uint64_t kVa = 0x40'0000;
    if (frame != 0 && address_space_map(as, kVa, frame, true)) {
        t->ok = true;
        uint64_t table = as->root;
        for (int level = 3; level >= 0; --level) {
            ++t->tables;
            t->wrong += pmm::node_of(table) != t->home;
            if (level == 0) break;
            const uint64_t entry = phys_to_virt<uint64_t>(table)[(kVa >> (12 + 9 * level)) & 511];
            if ((entry & 1) == 0) {
                t->ok = false;
                break;
            }
            table = entry & 0x000f'ffff'ffff'f000ull;
        }
        address_space_unmap(as, kVa, 4096);
    }
    address_space_destroy(as);
    if (frame != 0) pmm::free_pages(frame);
}

KTEST(numa, page_tables_come_from_the_mapping_cpus_node) {
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2) return ktest::skip("one node");
    uint32_t spaces = 0;
    for (uint32_t n = 0; n < m.nodes(); ++n) {
        uint32_t cpu = kMaxCpus;
        for (uint32_t c = 0; c < cpu_count() && cpu == kMaxCpus; ++c)
            if (cpu_by_id(c)->node == n && cpu_by_id(c)->online.load()) cpu = c;
        if (cpu == kMaxCpus) continue;
        TableCheck t;
        run_pinned(cpu, build_space_here, &t);
        KEXPECT(t.ok);
        if (!KEXPECT_EQ(t.wrong, 0u))
            ktest::note("cpu%u (home node %u): %u of %u page tables on another node", cpu, t.home,
                        t.wrong, t.tables);
        ++spaces;
    }
    ktest::note("an address space built on a CPU of each of %u nodes, its tables checked", spaces);
}

// Cross-node frees: each CPU frees pages a CPU of another node allocated; every frame must go
// back to its own node, and each node's frames must add up.
struct Storm {
    static constexpr uint32_t kPerCpu = 64;
    uint64_t pages[kMaxCpus][kPerCpu];
};
Storm* g_storm = nullptr;

void storm_allocate(void*) {
    const uint32_t me = this_cpu()->cpu_id;
    for (uint32_t i = 0; i < Storm::kPerCpu; ++i) g_storm->pages[me][i] = pmm::alloc_pages(1 + i % 2);
}

void storm_free(void*) {
    // CPU c frees the pages CPU c + N/2 allocated: each CPU's pages are freed exactly once, and
    // with the nodes' CPUs in blocks (as every configuration here has them) across nodes.
    const uint32_t me = this_cpu()->cpu_id, n = cpu_count();
    const uint32_t partner = (me + n / 2) % n;
    for (uint32_t i = 0; i < Storm::kPerCpu; ++i)
        if (g_storm->pages[partner][i] != 0) pmm::free_pages(g_storm->pages[partner][i], 1 + i % 2);
}

KTEST(numa, frees_from_other_nodes_go_home_and_every_frame_is_accounted) {
    const numa::NodeMap& m = numa_map();
    if (m.nodes() < 2) return ktest::skip("one node");
    if (cpus_online() != cpu_count() || cpu_count() % 2 != 0)
        return ktest::skip("needs an even number of CPUs, all online");
    g_storm = static_cast<Storm*>(kzalloc(sizeof(Storm)));
    KASSERT(g_storm != nullptr);
    KASSERT(ktest::run_on_all_cpus(storm_allocate, nullptr));
    uint32_t cross = 0;
    for (uint32_t c = 0; c < cpu_count(); ++c)
        cross += cpu_by_id(c)->node != cpu_by_id((c + cpu_count() / 2) % cpu_count())->node;
    KASSERT(ktest::run_on_all_cpus(storm_free, nullptr));
    kfree(g_storm);
    g_storm = nullptr;
    KEXPECT_EQ(pmm::misplaced_frames(), 0u);
    uint32_t bad = 0;
    KEXPECT(conserved(&bad));
    ktest::note("%u CPUs freed another node's pages; no frame on a wrong node's lists, every "
                "node's frames add up", cross);
}

// The scheduling domains on this machine: every CPU's levels nest and end with the machine; the
// node level is exactly the CPU's node; each NUMA level is exactly the nodes within its
// distance of the CPU's node by that node's own row of the SLIT (asymmetric tables included);
// every distinct distance of the row is the boundary of some level; CPUs of one node see the
// same node and NUMA domains.
KTEST(numa, scheduling_domains_follow_the_slit) {
    const sched::Topology& t = sched_topology();
    const numa::NodeMap& m = numa_map();
    const uint32_t n = cpu_count();
    KASSERT(t.ncpus() == n);
    KEXPECT_EQ(t.nodes(), m.nodes());
    KEXPECT(t.kind(t.levels() - 1) == sched::DomainKind::Machine);
    uint32_t wrong = 0, numa_levels = 0;
    for (uint32_t l = 0; l < t.levels(); ++l) numa_levels += t.kind(l) == sched::DomainKind::Numa;
    for (uint32_t c = 0; c < n && wrong < 8; ++c) {
        const uint32_t node = cpu_by_id(c)->node;
        const uint32_t first = t.cpu_at(t.node_span(node).lo);
        // A node holding every CPU is the machine level.
        bool saw_node = m.nodes() == 1 || t.node_span(node).size() == n;
        KEXPECT_EQ(t.node_of(c), node);
        for (uint32_t l = 0; l < t.levels(); ++l) {
            const sched::DomainKind k = t.kind(l);
            uint32_t members = 0;
            for (uint32_t p = 0; p < n; ++p) {
                const bool in = t.in_domain(c, l, p);
                const uint32_t x = t.cpu_at(p);
                members += in;
                bool ok = !(l > 0 && t.in_domain(c, l - 1, p) && !in); // nested
                if (k == sched::DomainKind::Node) ok = ok && in == (t.node_of(x) == node);
                if (k == sched::DomainKind::Numa)
                    ok = ok && in == (m.distance(node, t.node_of(x)) <= t.level_distance(l));
                if (k != sched::DomainKind::Smt && k != sched::DomainKind::Package)
                    ok = ok && in == t.in_domain(first, l, p);
                if (!ok && wrong++ < 8)
                    ktest::note("cpu%u (node %u), level %u (%s): cpu%u is %s", c, node, l,
                                sched::domain_kind_name(k), x, in ? "in" : "out");
            }
            KEXPECT_EQ(members, t.domain_size(c, l));
            saw_node = saw_node || k == sched::DomainKind::Node;
        }
        KEXPECT_EQ(t.domain_size(c, t.levels() - 1), n);
        if (!saw_node && wrong++ < 8) ktest::note("cpu%u has no node level", c);
        // Each distance of the node's row bounds a domain of some level.
        for (uint32_t to = 0; to < m.nodes(); ++to) {
            const uint32_t d = m.distance(node, to);
            if (d == numa::kUnreachable) continue;
            uint32_t within = 0;
            for (uint32_t x = 0; x < n; ++x) within += m.distance(node, t.node_of(x)) <= d;
            bool found = false;
            for (uint32_t l = 0; l < t.levels() && !found; ++l) found = t.domain_size(c, l) == within;
            if (!found && wrong++ < 8)
                ktest::note("cpu%u: no level holds the %u CPUs within distance %u", c, within, d);
        }
    }
    KEXPECT_EQ(wrong, 0u);
    ktest::note("%u levels (%u NUMA) on %u nodes; every CPU's domains match the SLIT",
                t.levels(), numa_levels, m.nodes());
}

// A node other than `not_this` with CPUs and memory, nearest to it first; kMaxCpus if none.
uint32_t other_node(uint32_t not_this) {
    const numa::NodeMap& m = numa_map();
    uint32_t best = kMaxCpus;
    for (uint32_t nd = 0; nd < m.nodes(); ++nd) {
        if (nd == not_this || m.cpuless(nd) || m.memoryless(nd)) continue;
        if (best == kMaxCpus || m.distance(not_this, nd) < m.distance(not_this, best)) best = nd;
    }
    return best;
}

CpuMask cpus_of_node(uint32_t node) {
    CpuMask mask;
    for (uint32_t c = 0; c < cpu_count(); ++c)
        if (cpu_by_id(c)->node == node && cpu_by_id(c)->online.load()) mask.set(c);
    return mask;
}

// A task that sleeps and wakes in phases, noting the node of each wake-up; the test changes
// its affinity between phases.
struct HomeProbe {
    static constexpr uint32_t kPhases = 3, kWakes = 8;
    uint32_t node[kPhases][kWakes] = {};
    std::atomic<uint32_t> phase_done{0}, go{0};
};

void home_probe(void* arg) {
    auto* h = static_cast<HomeProbe*>(arg);
    for (uint32_t ph = 0; ph < HomeProbe::kPhases; ++ph) {
        while (h->go.load() < ph) sleep_for(1'000'000);
        // Noted after a wake-up only: an affinity change reaches a running task at its next
        // switch, a sleeping one at its wake-up.
        for (uint32_t i = 0; i < HomeProbe::kWakes; ++i) {
            sleep_for(500'000);
            h->node[ph][i] = this_cpu()->node;
        }
        h->phase_done.store(ph + 1);
    }
}

// A task created on another node's memory is placed on that node (its home), wakes there,
// runs where its affinity sends it, and goes home again at its next wake-ups once allowed.
KTEST(numa, a_task_is_placed_on_its_home_node_and_returns_there) {
    const uint32_t here = this_cpu()->node;
    const uint32_t home = other_node(here);
    if (home == kMaxCpus) return ktest::skip("no other node with CPUs and memory");
    HomeProbe probe;
    TaskOptions o;
    o.name = "numa-home";
    o.node = home;
    Task* t = task_create(home_probe, &probe, o);
    KASSERT(t != nullptr);
    KEXPECT_EQ(t->home_node, home);
    KEXPECT_EQ(pmm::node_of(vmm::translate(t->stack.top - 8)), home);
    KEXPECT_EQ(pmm::node_of(direct_map_virt_to_phys(t)), home);
    const uint64_t deadline = monotonic_ns() + 20'000'000'000;
    auto wait_phase = [&](uint32_t ph) {
        while (probe.phase_done.load() < ph && monotonic_ns() < deadline) sleep_for(1'000'000);
        return probe.phase_done.load() >= ph;
    };
    const bool p1 = wait_phase(1);
    task_set_affinity(t, cpus_of_node(here));
    probe.go.store(1);
    const bool p2 = p1 && wait_phase(2);
    CpuMask all;
    for (uint32_t c = 0; c < cpu_count(); ++c) all.set(c);
    task_set_affinity(t, all);
    probe.go.store(2);
    const bool p3 = p2 && wait_phase(3);
    probe.go.store(3);
    task_join(t);
    KASSERT(p3);
    const uint32_t want[HomeProbe::kPhases] = {home, here, home};
    uint32_t wrong = 0;
    for (uint32_t ph = 0; ph < HomeProbe::kPhases; ++ph)
        for (uint32_t i = 0; i < HomeProbe::kWakes; ++i)
            if (probe.node[ph][i] != want[ph] && wrong++ < 4)
                ktest::note("phase %u, wake-up %u: on node %u, expected %u", ph, i,
                            probe.node[ph][i], want[ph]);
    KEXPECT_EQ(wrong, 0u);
    ktest::note("home node %u: %u wake-ups there, %u on node %u while its affinity said so, "
                "%u back home", home, HomeProbe::kWakes, HomeProbe::kWakes, here,
                HomeProbe::kWakes);
}

struct Spinner {
    std::atomic<uint32_t> cpu{kMaxCpus};
    std::atomic<bool>* stop = nullptr;
    Task* task = nullptr;
};

void spin_here(void* arg) {
    auto* s = static_cast<Spinner*>(arg);
    while (!s->stop->load(std::memory_order_relaxed)) {
        s->cpu.store(this_cpu()->cpu_id, std::memory_order_relaxed);
        cpu_relax();
    }
}

// A queue of as many CPU-bound tasks as two nodes have CPUs, all on one CPU, then allowed on
// both nodes: balancing must spread them one per CPU, across the node boundary, without any
// CPU idling for two balance intervals beside waiting work (the wasted-core check counts it).
KTEST(numa, a_two_node_load_spreads_with_no_wasted_cores) {
    const uint32_t a = this_cpu()->node;
    const uint32_t b = other_node(a);
    if (b == kMaxCpus) return ktest::skip("no other node with CPUs and memory");
    CpuMask both = cpus_of_node(a);
    const CpuMask nb = cpus_of_node(b);
    uint32_t k = 0, start = kMaxCpus;
    for (uint32_t c = 0; c < cpu_count(); ++c) {
        if (nb.test(c)) both.set(c);
        if (both.test(c)) ++k;
        // The queue starts on a CPU of this node other than ours (main sleeps and wakes here).
        if (both.test(c) && c != this_cpu()->cpu_id && cpu_by_id(c)->node == a && start == kMaxCpus)
            start = c;
    }
    if (start == kMaxCpus) start = this_cpu()->cpu_id;
    static Spinner spinners[kMaxCpus];
    std::atomic<bool> stop{false};
    CpuMask only_start;
    only_start.set(start);
    const uint64_t violations_before = sched_wasted_core_violations();
    uint32_t created = 0;
    for (uint32_t i = 0; i < k; ++i) {
        spinners[i].cpu.store(kMaxCpus);
        spinners[i].stop = &stop;
        TaskOptions o;
        o.name = "numa-spin";
        o.affinity = &only_start;
        spinners[i].task = task_create(spin_here, &spinners[i], o);
        created += spinners[i].task != nullptr;
    }
    for (uint32_t i = 0; i < k; ++i)
        if (spinners[i].task != nullptr) task_set_affinity(spinners[i].task, both);
    // Spread: every spinner seen on its own CPU of the two nodes, three looks in a row.
    const uint64_t deadline = monotonic_ns() + 60'000'000'000;
    uint32_t stable = 0, distinct = 0;
    while (stable < 3 && monotonic_ns() < deadline) {
        sleep_for(5'000'000);
        CpuMask seen;
        distinct = 0;
        for (uint32_t i = 0; i < k; ++i) {
            const uint32_t c = spinners[i].cpu.load(std::memory_order_relaxed);
            if (c < cpu_count() && both.test(c) && !seen.test(c)) seen.set(c), ++distinct;
        }
        stable = distinct == k ? stable + 1 : 0;
    }
    stop.store(true);
    for (uint32_t i = 0; i < k; ++i)
        if (spinners[i].task != nullptr) task_join(spinners[i].task);
    const uint64_t violations = sched_wasted_core_violations() - violations_before;
    KASSERT(created == k);
    KEXPECT_EQ(distinct, k);
    KEXPECT_EQ(violations, 0u);
    ktest::note("%u tasks from cpu%u spread over nodes %u and %u (%u CPUs); %lu wasted-core "
                "violations", k, start, a, b, distinct, violations);
}

} // namespace
} // namespace cohort
