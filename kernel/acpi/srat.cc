#include "acpi/srat.h"

namespace cohort::acpi {
namespace {

void note_node(SratInfo& out, ErrorLog& log, uint64_t phys, uint32_t offset, uint32_t domain,
               uint32_t cpus, uint64_t bytes) {
    for (NumaNode& n : out.nodes.items()) {
        if (n.domain == domain) {
            n.cpus += cpus;
            n.memory_ranges += cpus == 0 ? 1 : 0;
            n.memory_bytes += bytes;
            return;
        }
    }
    const NumaNode node{domain, cpus, cpus == 0 ? 1u : 0u, bytes};
    if (!out.nodes.push(node) && out.nodes.dropped() == 1)
        log.error("SRAT", ErrorCode::OutputTruncated, offset, phys);
}

template <typename T>
void push_logged(OutputArray<T>& arr, const T& item, ErrorLog& log, uint64_t phys) {
    if (!arr.push(item) && arr.dropped() == 1)
        log.error("SRAT", ErrorCode::OutputTruncated, item.offset, phys);
}

} // namespace

bool parse_srat(Bytes table, const SratStorage& storage, SratInfo& out, ErrorLog& log,
                uint64_t phys) {
    out = SratInfo{};
    out.cpus = OutputArray<SratCpu>(storage.cpus);
    out.memory = OutputArray<SratMemory>(storage.memory);
    out.nodes = OutputArray<NumaNode>(storage.nodes);
    if (table.size() < kSratHeaderSize) {
        log.error("SRAT", ErrorCode::Truncated, 0, phys, table.size());
        return false;
    }
    out.table_revision = load_le<uint32_t>(table, 36);

    SubtableWalker walker(table, kSratHeaderSize, "SRAT", &log, phys);
    Subtable s;
    while (walker.next(s)) {
        ++out.subtables;
        const Bytes b = s.bytes;
        size_t min = 0;
        switch (s.type) {
        case 0:
            min = 16;
            break;
        case 1:
            min = 40;
            break;
        case 2:
            min = 24;
            break;
        default:
            ++out.skipped;
            continue;
        }
        if (b.size() < min) {
            ++out.too_short;
            log.error("SRAT", ErrorCode::SubtableTooShort, s.offset, phys, s.length);
            continue;
        }
        if (s.type == 0 || s.type == 2) {
            SratCpu c{};
            c.offset = s.offset;
            c.x2apic = s.type == 2;
            if (s.type == 0) {
                // The domain is split: bits 0-7 at offset 2, bits 8-31 at offsets 9-11.
                c.domain = load_le<uint8_t>(b, 2) | (load_le<uint8_t>(b, 9) << 8) |
                           (load_le<uint8_t>(b, 10) << 16) |
                           (static_cast<uint32_t>(load_le<uint8_t>(b, 11)) << 24);
                c.apic_id = load_le<uint8_t>(b, 3);
                c.flags = load_le<uint32_t>(b, 4);
                c.clock_domain = load_le<uint32_t>(b, 12);
            } else {
                c.domain = load_le<uint32_t>(b, 4);
                c.apic_id = load_le<uint32_t>(b, 8);
                c.flags = load_le<uint32_t>(b, 12);
                c.clock_domain = load_le<uint32_t>(b, 16);
            }
            if (!c.enabled()) {
                ++out.disabled;
                continue;
            }
            push_logged(out.cpus, c, log, phys);
            note_node(out, log, phys, s.offset, c.domain, 1, 0);
        } else {
            SratMemory m{};
            m.offset = s.offset;
            m.domain = load_le<uint32_t>(b, 2);
            m.base = load_le<uint64_t>(b, 8);
            m.length = load_le<uint64_t>(b, 16);
            m.flags = load_le<uint32_t>(b, 28);
            if (!m.enabled()) {
                ++out.disabled;
                continue;
            }
            push_logged(out.memory, m, log, phys);
            note_node(out, log, phys, s.offset, m.domain, 0, m.length);
        }
    }
    out.complete = !walker.failed();
    return true;
}

std::optional<Slit> Slit::parse(Bytes table, ErrorLog& log, uint64_t phys) {
    constexpr size_t kFixed = 44;
    uint64_t n = 0;
    if (!read_le(table, 36, n)) {
        log.error("SLIT", ErrorCode::Truncated, 0, phys, table.size());
        return std::nullopt;
    }
    const uint64_t avail = table.size() - kFixed;
    // Compare n against avail / n instead of computing n * n, which could overflow.
    if (n == 0 || n > avail || n > avail / n) {
        log.error("SLIT", ErrorCode::BadSlitSize, 36, phys, n);
        return std::nullopt;
    }
    Slit s;
    s.n_ = n;
    s.matrix_ = table.subspan(kFixed, static_cast<size_t>(n * n));
    return s;
}

std::optional<uint8_t> Slit::distance(uint64_t from, uint64_t to) const {
    if (from >= n_ || to >= n_) return std::nullopt;
    return matrix_[static_cast<size_t>(from * n_ + to)];
}

} // namespace cohort::acpi
