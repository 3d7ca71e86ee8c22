#include "numa/node_map.h"

#include <cstdarg>

#include "lib/format.h"

namespace cohort::numa {
namespace {

uint64_t end_of(uint64_t base, uint64_t length) {
    // A range running past 2^64 ends there: firmware lengths are untrusted.
    return length > UINT64_MAX - base ? UINT64_MAX : base + length;
}

// Adds `domain` to the sorted set `kept` (n entries) unless it is already there, keeping only
// the kMaxNodes lowest domains: a larger one is refused once the set is full, a smaller one
// pushes the largest out.
void keep_domain(uint32_t* kept, uint32_t& n, uint32_t domain) {
    uint32_t i = 0;
    while (i < n && kept[i] < domain)
        ++i;
    if (i < n && kept[i] == domain) return;
    if (i == kMaxNodes) return;
    if (n < kMaxNodes) ++n;
    for (uint32_t j = n - 1; j > i; --j)
        kept[j] = kept[j - 1];
    kept[i] = domain;
}

// Appends formatted text to a fixed buffer, remembering the length the whole text would have,
// so a caller can tell it was cut short.
struct Line {
    char* buf;
    size_t size;
    size_t len = 0;

    __attribute__((format(printf, 2, 3))) void add(const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        const bool room = buf != nullptr && len < size;
        len += vformat(room ? buf + len : nullptr, room ? size - len : 0, fmt, ap);
        va_end(ap);
    }
};

} // namespace

const char* slit_status_name(SlitStatus status) {
    switch (status) {
    case SlitStatus::Absent:
        return "absent";
    case SlitStatus::Used:
        return "used";
    case SlitStatus::TooSmall:
        return "too few localities";
    case SlitStatus::BadDiagonal:
        return "local distance not 10";
    case SlitStatus::BadDistance:
        return "remote distance 10 or less";
    }
    return "unknown";
}

void NodeMap::build(const acpi::SratInfo* srat, const acpi::Slit* slit,
                    std::span<const uint32_t> apic_ids, std::span<const MemRegion> memory) {
    nnodes_ = 0;
    ncpus_ = 0;
    nranges_ = 0;
    notes_ = NodeMapNotes{};
    for (Node& n : nodes_)
        n = Node{};

    if (srat != nullptr) {
        collect_domains(*srat);
        if (nnodes_ == 0) {
            notes_.srat_empty = true;
            srat = nullptr;
        }
    }
    if (nnodes_ == 0) nnodes_ = 1; // no (usable) SRAT: one node, domain 0

    place_cpus(srat, apic_ids);
    place_memory(srat, memory);
    set_distances(slit);
    build_fallback_orders();
}

void NodeMap::collect_domains(const acpi::SratInfo& srat) {
    uint32_t kept[kMaxNodes] = {};
    uint32_t n = 0;
    // The parser keeps enabled entries only. A zero-length memory entry describes nothing and
    // does not make a node.
    for (const acpi::SratCpu& c : srat.cpus.items())
        keep_domain(kept, n, c.domain);
    for (const acpi::SratMemory& m : srat.memory.items())
        if (m.length != 0) keep_domain(kept, n, m.domain);
    nnodes_ = n;
    for (uint32_t i = 0; i < n; ++i)
        nodes_[i].domain = kept[i];

    for (const acpi::SratCpu& c : srat.cpus.items())
        if (node_of_domain(c.domain) == kNoNode) ++notes_.srat_entries_dropped;
    for (const acpi::SratMemory& m : srat.memory.items()) {
        if (m.length == 0) continue;
        const uint32_t node = node_of_domain(m.domain);
        if (node == kNoNode) {
            ++notes_.srat_entries_dropped;
            continue;
        }
        if (m.hot_pluggable()) nodes_[node].hotplug_bytes += m.length;
    }
    notes_.srat_incomplete = !srat.complete || srat.cpus.truncated() || srat.memory.truncated();
}

uint32_t NodeMap::node_of_domain(uint32_t domain) const {
    for (uint32_t i = 0; i < nnodes_; ++i)
        if (nodes_[i].domain == domain) return i;
    return kNoNode;
}

void NodeMap::place_cpus(const acpi::SratInfo* srat, std::span<const uint32_t> apic_ids) {
    ncpus_ = apic_ids.size() < kMaxCpus ? static_cast<uint32_t>(apic_ids.size()) : kMaxCpus;
    notes_.cpus_dropped = static_cast<uint32_t>(apic_ids.size() - ncpus_);
    const std::span<const acpi::SratCpu> entries =
        srat != nullptr ? srat->cpus.items() : std::span<const acpi::SratCpu>{};
    // Firmware lists CPUs in about the order the MADT does, so each search starts after the
    // previous match: linear in practice rather than quadratic at thousands of CPUs. (An APIC
    // id listed twice, a firmware bug, is placed by whichever entry this finds first.)
    size_t hint = 0;
    for (uint32_t cpu = 0; cpu < ncpus_; ++cpu) {
        uint32_t node = kNoNode;
        for (size_t k = 0; k < entries.size(); ++k) {
            const size_t i = (hint + k) % entries.size();
            if (entries[i].apic_id != apic_ids[cpu]) continue;
            node = node_of_domain(entries[i].domain);
            hint = i + 1;
            break;
        }
        if (node == kNoNode) {
            node = 0;
            if (srat != nullptr) ++notes_.cpus_not_in_srat;
        }
        cpu_node_[cpu] = static_cast<uint8_t>(node);
        ++nodes_[node].cpus;
    }
}

void NodeMap::place_memory(const acpi::SratInfo* srat, std::span<const MemRegion> memory) {
    const std::span<const acpi::SratMemory> entries =
        srat != nullptr ? srat->memory.items() : std::span<const acpi::SratMemory>{};
    auto usable_entry = [&](const acpi::SratMemory& m) {
        return m.length != 0 && node_of_domain(m.domain) != kNoNode;
    };
    for (const MemRegion& r : memory) {
        if (r.type != MemType::Usable || r.length == 0) continue;
        const uint64_t end = end_of(r.base, r.length);
        uint64_t p = r.base;
        while (p < end) {
            // The piece starting at p runs to the next SRAT boundary: the end of the range
            // covering p, or the start of any range beginning inside the region. Overlapping
            // SRAT ranges (a firmware bug) go to the first one in table order.
            const acpi::SratMemory* cover = nullptr;
            uint64_t next = end;
            for (const acpi::SratMemory& m : entries) {
                if (!usable_entry(m)) continue;
                const uint64_t m_end = end_of(m.base, m.length);
                if (m.base <= p && p < m_end) {
                    if (cover == nullptr) cover = &m;
                    if (m_end < next) next = m_end;
                } else if (m.base > p && m.base < next) {
                    next = m.base;
                }
            }
            if (cover != nullptr)
                add_piece(p, next, node_of_domain(cover->domain), cover->hot_pluggable(), false);
            else
                add_piece(p, next, 0, false, srat != nullptr);
            p = next;
        }
    }
    sort_and_merge_ranges();
    for (uint32_t i = 0; i < nranges_; ++i) {
        const NodeRange& r = ranges_[i];
        nodes_[r.node].memory_bytes += r.length;
        if (r.outside_srat) {
            ++notes_.ranges_outside_srat;
            notes_.bytes_outside_srat += r.length;
        }
    }
}

void NodeMap::add_piece(uint64_t base, uint64_t end, uint32_t node, bool hot, bool outside) {
    if (nranges_ > 0) {
        NodeRange& last = ranges_[nranges_ - 1];
        if (last.end() == base && last.node == node && last.hot_pluggable == hot &&
            last.outside_srat == outside) {
            last.length += end - base;
            return;
        }
    }
    if (nranges_ == kMaxRanges) {
        ++notes_.ranges_dropped;
        notes_.bytes_dropped += end - base;
        return;
    }
    ranges_[nranges_++] = NodeRange{base, end - base, static_cast<uint8_t>(node), hot, outside};
}

void NodeMap::sort_and_merge_ranges() {
    // The kernel's memory map is already sorted; a caller's list may not be, and
    // node_of_address needs order. Insertion sort: at most kMaxRanges, once per boot.
    for (uint32_t i = 1; i < nranges_; ++i) {
        const NodeRange r = ranges_[i];
        uint32_t j = i;
        for (; j > 0 && ranges_[j - 1].base > r.base; --j)
            ranges_[j] = ranges_[j - 1];
        ranges_[j] = r;
    }
    uint32_t out = 0;
    for (uint32_t i = 0; i < nranges_; ++i) {
        const NodeRange& r = ranges_[i];
        if (out > 0) {
            NodeRange& last = ranges_[out - 1];
            if (last.end() == r.base && last.node == r.node &&
                last.hot_pluggable == r.hot_pluggable && last.outside_srat == r.outside_srat) {
                last.length += r.length;
                continue;
            }
        }
        ranges_[out++] = r;
    }
    nranges_ = out;
}

uint32_t NodeMap::node_of_address(uint64_t phys) const {
    uint32_t lo = 0, hi = nranges_;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (ranges_[mid].end() <= phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < nranges_ && ranges_[lo].base <= phys) return ranges_[lo].node;
    return kNoNode;
}

void NodeMap::set_distances(const acpi::Slit* slit) {
    for (uint32_t i = 0; i < nnodes_; ++i)
        for (uint32_t j = 0; j < nnodes_; ++j)
            distance_[i][j] = i == j ? kLocalDistance : kRemoteDistance;
    if (slit == nullptr) return;

    // Only the nodes' own entries are checked: a SLIT may describe more localities than the
    // SRAT uses, and those rows matter to nobody.
    uint32_t max_domain = 0;
    for (uint32_t i = 0; i < nnodes_; ++i)
        if (nodes_[i].domain > max_domain) max_domain = nodes_[i].domain;
    if (slit->localities() <= max_domain) {
        notes_.slit = SlitStatus::TooSmall;
        notes_.slit_from = static_cast<uint32_t>(slit->localities());
        notes_.slit_to = max_domain;
        return;
    }
    // Linux's rule (slit_valid): 10 on the diagonal, more than 10 elsewhere. 0xFF passes as
    // "unreachable"; asymmetric tables are legal (ACPI 6.5, 5.2.17).
    for (uint32_t i = 0; i < nnodes_; ++i) {
        for (uint32_t j = 0; j < nnodes_; ++j) {
            const uint8_t d = slit->distance(nodes_[i].domain, nodes_[j].domain).value_or(0);
            const bool ok = i == j ? d == kLocalDistance : d > kLocalDistance;
            if (!ok) {
                notes_.slit = i == j ? SlitStatus::BadDiagonal : SlitStatus::BadDistance;
                notes_.slit_from = nodes_[i].domain;
                notes_.slit_to = nodes_[j].domain;
                notes_.slit_value = d;
                // The defaults stay: one bad entry makes the whole table suspect.
                for (uint32_t a = 0; a < nnodes_; ++a)
                    for (uint32_t b = 0; b < nnodes_; ++b)
                        distance_[a][b] = a == b ? kLocalDistance : kRemoteDistance;
                return;
            }
            distance_[i][j] = d;
        }
    }
    notes_.slit = SlitStatus::Used;
}

void NodeMap::build_fallback_orders() {
    for (uint32_t n = 0; n < nnodes_; ++n) {
        uint8_t len = 0;
        // Candidates arrive in node-id order and the insertion below moves a node only past
        // strictly farther ones, so equal distances stay in node-id order.
        for (uint32_t m = 0; m < nnodes_; ++m) {
            if (nodes_[m].memory_bytes == 0 || distance_[n][m] == kUnreachable) continue;
            uint8_t j = len++;
            for (; j > 0 && distance_[n][order_[n][j - 1]] > distance_[n][m]; --j)
                order_[n][j] = order_[n][j - 1];
            order_[n][j] = static_cast<uint8_t>(m);
        }
        order_len_[n] = len;
    }
}

size_t NodeMap::distance_levels(std::span<uint8_t> out) const {
    bool seen[256] = {};
    for (uint32_t i = 0; i < nnodes_; ++i)
        for (uint32_t j = 0; j < nnodes_; ++j)
            seen[distance_[i][j]] = true;
    seen[kUnreachable] = false;
    size_t count = 0;
    for (uint32_t d = 0; d < 256; ++d) {
        if (!seen[d]) continue;
        if (count < out.size()) out[count] = static_cast<uint8_t>(d);
        ++count;
    }
    return count;
}

NodeMask NodeMap::nodes_within(uint32_t node, uint32_t distance) const {
    if (node >= nnodes_) return 0;
    NodeMask mask = 0;
    for (uint32_t m = 0; m < nnodes_; ++m)
        if (distance_[node][m] != kUnreachable && distance_[node][m] <= distance)
            mask |= NodeMask{1} << m;
    return mask;
}

size_t NodeMap::describe_node(uint32_t node, char* buf, size_t size) const {
    Line line{buf, size};
    if (buf != nullptr && size > 0) buf[0] = '\0';
    if (node >= nnodes_) {
        line.add("node %u: no such node", node);
        return line.len;
    }
    const Node& n = nodes_[node];
    line.add("node %u (domain %u): ", node, n.domain);

    // CPUs as ranges of consecutive logical CPU numbers: "CPUs 0-3,8-11".
    if (n.cpus == 0) {
        line.add("no CPUs");
    } else {
        line.add(n.cpus == 1 ? "CPU " : "CPUs ");
        bool first = true;
        for (uint32_t cpu = 0; cpu < ncpus_; ++cpu) {
            if (cpu_node_[cpu] != node) continue;
            uint32_t last = cpu;
            while (last + 1 < ncpus_ && cpu_node_[last + 1] == node)
                ++last;
            line.add("%s%u", first ? "" : ",", cpu);
            if (last != cpu) line.add("-%u", last);
            first = false;
            cpu = last;
        }
    }

    if (n.memory_bytes >= (uint64_t{1} << 20)) {
        line.add(", %lu MiB", static_cast<unsigned long>(n.memory_bytes >> 20));
    } else if (n.memory_bytes > 0) {
        line.add(", %lu KiB", static_cast<unsigned long>(n.memory_bytes >> 10));
    } else {
        const uint32_t from = nearest_node_with_memory(node);
        if (from == kNoNode)
            line.add(", no memory");
        else
            line.add(", no memory (allocates from node %u)", from);
    }
    if (n.hotplug_bytes > 0)
        line.add(", hot-pluggable %lu MiB", static_cast<unsigned long>(n.hotplug_bytes >> 20));

    line.add(", distances");
    for (uint32_t m = 0; m < nnodes_; ++m)
        line.add(" %u", distance_[node][m]);
    return line.len;
}

} // namespace cohort::numa
