// Real-machine corpus: every table of every machine in the ACPI corpus is parsed by the
// portable code and compared field by field with its expected.json (decoded by ACPICA's iasl).
// Which corpus is read is decided by corpus() below (docs/acpi.md).
#include "acpi/fadt.h"
#include "acpi/madt.h"
#include "acpi/tables.h"
#include "acpi_json.h"
#include "json.h"
#include "phys_image.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using cohort::host::Json;
using namespace cohort::acpi;

struct Corpus {
    fs::path dir;
    const char* origin;
};

// First match wins: an explicit COHORT_ACPI_CORPUS, the full corpus beside the source tree
// (CI has one), else the linuxhw subset committed in tests/data, so that a bare clone still
// checks the parser against real firmware.
Corpus corpus() {
    if (const char* env = std::getenv("COHORT_ACPI_CORPUS"); env && *env)
        return {env, "COHORT_ACPI_CORPUS"};
    if (fs::is_directory(COHORT_ACPI_CORPUS_FULL))
        return {COHORT_ACPI_CORPUS_FULL, "full corpus beside the source tree"};
    return {COHORT_ACPI_CORPUS_SUBSET, "subset kept in the repository"};
}

// The subset names its machines, so a machine lost from it fails the test instead of
// quietly shrinking what is checked.
constexpr const char* kManifest = "machines.txt";

std::vector<std::string> manifest(const fs::path& dir) {
    std::vector<std::string> out;
    std::ifstream in(dir / kManifest);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(line);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<uint8_t> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<fs::path> machines(const fs::path& dir) {
    std::vector<fs::path> out;
    if (dir.empty() || !fs::is_directory(dir)) return out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && fs::exists(e.path() / "expected.json")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

// Recursive comparison of every leaf in `expected` against `actual`. Keys listed in `ignore`
// are iasl-specific and have no counterpart in Cohort's output.
struct Comparer {
    size_t fields = 0;
    std::vector<std::string> mismatches;
    std::set<std::string> ignore;

    void compare(const Json& expected, const Json* actual, const std::string& path) {
        if (!actual) {
            mismatches.push_back(path + ": missing");
            return;
        }
        if (expected.is_object()) {
            if (!actual->is_object()) {
                mismatches.push_back(path + ": not an object");
                return;
            }
            for (const auto& [k, v] : expected.as_object()) {
                if (ignore.count(k)) continue;
                compare(v, actual->find(k), path + "." + k);
            }
        } else if (expected.is_array()) {
            if (!actual->is_array() || actual->as_array().size() != expected.as_array().size()) {
                mismatches.push_back(path + ": array length " +
                                     std::to_string(expected.as_array().size()) + " vs " +
                                     (actual->is_array() ? std::to_string(actual->as_array().size())
                                                         : std::string("non-array")));
                return;
            }
            for (size_t i = 0; i < expected.as_array().size(); ++i)
                compare(expected.as_array()[i], &actual->as_array()[i],
                        path + "[" + std::to_string(i) + "]");
        } else {
            ++fields;
            if (!(expected == *actual))
                mismatches.push_back(path + ": expected " + expected.dump() + ", got " +
                                     actual->dump());
        }
    }
};

// Present CPUs as the topology must report them, derived independently from iasl's lists:
// non-placeholder type 0/9 entries in table order, first occurrence of an APIC id wins.
struct ExpectedCpu {
    uint64_t apic_id, uid, offset;
    CpuState state;
};

std::vector<ExpectedCpu> expected_cpus(const Json& madt, uint8_t revision) {
    struct Raw {
        uint64_t offset, id, uid, flags;
        bool placeholder;
    };
    std::vector<Raw> raw;
    for (const Json& e : madt.find("local_apics")->as_array())
        raw.push_back({*e.find("offset")->as_uint(), *e.find("apic_id")->as_uint(),
                       *e.find("processor_id")->as_uint(), *e.find("flags")->as_uint(),
                       *e.find("apic_id")->as_uint() == 0xFF});
    for (const Json& e : madt.find("local_x2apics")->as_array())
        raw.push_back({*e.find("offset")->as_uint(), *e.find("x2apic_id")->as_uint(),
                       *e.find("uid")->as_uint(), *e.find("flags")->as_uint(),
                       *e.find("x2apic_id")->as_uint() == 0xFFFFFFFF});
    std::sort(raw.begin(), raw.end(),
              [](const Raw& a, const Raw& b) { return a.offset < b.offset; });
    std::vector<ExpectedCpu> out;
    std::set<uint64_t> seen;
    for (const Raw& r : raw) {
        if (r.placeholder || !seen.insert(r.id).second) continue;
        CpuState st = (r.flags & 1)                           ? CpuState::Enabled
                      : (revision >= 5 && (r.flags & 2) != 0) ? CpuState::OnlineCapable
                                                              : CpuState::Disabled;
        out.push_back({r.id, r.uid, r.offset, st});
    }
    return out;
}

struct CorpusTotals {
    size_t machines = 0, tables = 0, fields = 0, mismatches = 0, cpus = 0, walks = 0;
};

void check_topology(const std::string& where, Bytes table, const Json& madt, uint8_t revision,
                    Comparer& cmp, CorpusTotals& totals) {
    std::vector<CpuEntry> cpus(4096);
    std::vector<IoApic> ioapics(256);
    std::vector<InterruptOverride> ovr(256);
    std::vector<NmiSource> nmis(64);
    std::vector<LocalApicNmi> lnmis(1024);
    std::vector<LocalX2apicNmi> xnmis(1024);
    MadtStorage st{cpus, ioapics, ovr, nmis, lnmis, xnmis};
    Error errs[64];
    ErrorLog log(errs);
    MadtTopology t;
    const auto want = expected_cpus(madt, revision);
    // Use the second expected CPU (if any) as the BSP, to show the BSP is not "entry 0".
    const uint32_t bsp = want.size() > 1 ? static_cast<uint32_t>(want[1].apic_id) : kNoBsp;
    ASSERT_TRUE(parse_madt(table, bsp, st, t, log)) << where;
    auto mismatch = [&](const std::string& what) { cmp.mismatches.push_back(where + ": " + what); };
    ++cmp.fields;
    if (log.count(Severity::Error) != 0) mismatch("parse errors in a valid table");
    ++cmp.fields;
    if (t.cpus.size() != want.size()) {
        mismatch("present CPUs " + std::to_string(t.cpus.size()) + " vs " +
                 std::to_string(want.size()));
        return;
    }
    for (size_t i = 0; i < want.size(); ++i) {
        const CpuEntry& c = t.cpus.items()[i];
        cmp.fields += 4;
        if (c.apic_id != want[i].apic_id || c.uid != want[i].uid || c.offset != want[i].offset ||
            c.state != want[i].state)
            mismatch("cpu " + std::to_string(i) + " differs");
    }
    totals.cpus += want.size();
    cmp.fields += 6;
    const Json& counts = *madt.find("counts");
    if (t.io_apics.size() != *counts.find("io_apics")->as_uint()) mismatch("io_apics");
    if (t.overrides.size() != *counts.find("interrupt_overrides")->as_uint()) mismatch("overrides");
    if (t.skipped != *counts.find("other_subtables")->as_uint()) mismatch("skipped");
    if (t.local_apic_address != *madt.find("effective_local_apic_address")->as_uint())
        mismatch("effective LAPIC address");
    if (t.header.pcat_compat() != madt.find("pcat_compat")->as_bool()) mismatch("pcat_compat");
    if (want.size() > 1 ? t.bsp != std::optional<size_t>(1) : t.bsp.has_value())
        mismatch("bsp index");
}

// For dumps with an RSDP: place RSDP, RSDT and XSDT at the addresses the RSDP names and walk
// them as the kernel would. The other tables' addresses are not in a .dat dump, so every entry
// is expected to be reported unreadable (and nothing else to go wrong).
void check_directory(const fs::path& m, const Json& tables, Comparer& cmp, CorpusTotals& totals) {
    const auto rsdp_bytes = read_file(m / "rsdp.dat");
    Error errs[64];
    ErrorLog plog(errs);
    const auto rsdp = parse_rsdp(rsdp_bytes, plog);
    ASSERT_TRUE(rsdp) << m;
    cohort::host::PhysImage image;
    constexpr uint64_t kRsdpAddr = 0xE0000000'0000ull; // Far above any real table address.
    ASSERT_TRUE(image.add(kRsdpAddr, rsdp_bytes));
    const bool has_x = tables.find("xsdt.dat") && rsdp->has_extended;
    if (tables.find("rsdt.dat"))
        ASSERT_TRUE(image.add(rsdp->rsdt_address, read_file(m / "rsdt.dat")));
    if (has_x) ASSERT_TRUE(image.add(rsdp->xsdt_address, read_file(m / "xsdt.dat")));
    Error derrs[128];
    ErrorLog log(derrs);
    const auto dir = TableDirectory::open(image, kRsdpAddr, log);
    const std::string where = m.filename().string() + " directory";
    ++totals.walks;
    cmp.fields += 3;
    if (!dir) {
        cmp.mismatches.push_back(where + ": open failed");
        return;
    }
    const RootKind want_kind = has_x && rsdp->revision >= 2 ? RootKind::Xsdt : RootKind::Rsdt;
    if (dir->kind() != want_kind) cmp.mismatches.push_back(where + ": wrong root kind");
    const Json& root = *tables.find(want_kind == RootKind::Xsdt ? "xsdt.dat" : "rsdt.dat");
    const auto& entries = root.find("entries")->as_array();
    if (dir->entry_count() != entries.size()) {
        cmp.mismatches.push_back(where + ": entry count");
        return;
    }
    for (size_t i = 0; i < entries.size(); ++i) {
        ++cmp.fields;
        if (dir->entry(i) != *entries[i].as_uint())
            cmp.mismatches.push_back(where + ": entry " + std::to_string(i));
    }
    if (log.total() != log.count(ErrorCode::Unreadable) || log.total() != entries.size())
        cmp.mismatches.push_back(where + ": unexpected errors " +
                                 cohort::host::errors_json(log).dump());
}

TEST(AcpiCorpus, EveryMachineMatchesIasl) {
    const Corpus c = corpus();
    std::printf("acpi corpus: %s (%s)\n", c.dir.c_str(), c.origin);
    const auto list = machines(c.dir);
    ASSERT_FALSE(list.empty()) << "no machine with an expected.json in '" << c.dir.string()
                               << "' (from " << c.origin << ")";
    Comparer cmp;
    // iasl-only metadata with no counterpart in a parser's output.
    cmp.ignore = {"decoded_by_iasl", "decoder", "file_length"};
    CorpusTotals totals;
    for (const fs::path& m : list) {
        const std::string id = m.filename().string();
        std::ifstream in(m / "expected.json");
        std::stringstream ss;
        ss << in.rdbuf();
        std::string err;
        const auto expected = Json::parse(ss.str(), &err);
        ASSERT_TRUE(expected) << id << ": " << err;
        ++totals.machines;
        const Json& tables = *expected->find("tables");
        for (const auto& [file, t] : tables.as_object()) {
            const std::string where = id + "/" + file;
            const auto bytes = read_file(m / file);
            ASSERT_FALSE(bytes.empty()) << where;
            ++totals.tables;
            Error errs[64];
            ErrorLog log(errs);
            if (const Json* r = t.find("rsdp")) {
                const auto rsdp = parse_rsdp(bytes, log);
                if (!rsdp) {
                    cmp.mismatches.push_back(where + ": RSDP rejected");
                    continue;
                }
                const Json got = cohort::host::rsdp_json(*rsdp);
                cmp.compare(*r, &got, where + ".rsdp");
                continue;
            }
            const auto hdr = parse_sdt_header(bytes);
            ASSERT_TRUE(hdr) << where;
            const Json got_header = cohort::host::header_json(*hdr);
            cmp.compare(*t.find("header"), &got_header, where + ".header");
            const auto table = validate_table(bytes, {}, log);
            ++cmp.fields; // The corpus README: every checksum is valid.
            if (!table) {
                cmp.mismatches.push_back(where +
                                         ": rejected: " + cohort::host::errors_json(log).dump());
                continue;
            }
            if (const Json* madt = t.find("madt")) {
                const Json got = cohort::host::madt_json(*table, log);
                cmp.compare(*madt, &got, where + ".madt");
                check_topology(where, *table, *madt, hdr->revision, cmp, totals);
            }
            if (const Json* entries = t.find("entries")) {
                const auto re = root_entries(*table);
                ASSERT_TRUE(re) << where;
                const Json got = cohort::host::root_entries_json(*re);
                cmp.compare(*entries, &got, where + ".entries");
            }
            if (const Json* fadt = t.find("fadt")) {
                const Json got = cohort::host::fadt_json(parse_fadt(*table));
                cmp.compare(*fadt, &got, where + ".fadt");
                // Both directions: a field iasl left out (short FADT) must be absent here too.
                ++cmp.fields;
                if (got.as_object().size() != fadt->as_object().size())
                    cmp.mismatches.push_back(where + ".fadt: field set differs");
            }
            ++cmp.fields;
            if (log.count(Severity::Error) != 0)
                cmp.mismatches.push_back(where + ": errors " +
                                         cohort::host::errors_json(log).dump());
        }
        if (tables.find("rsdp.dat")) check_directory(m, tables, cmp, totals);
    }
    for (size_t i = 0; i < cmp.mismatches.size() && i < 50; ++i)
        ADD_FAILURE() << cmp.mismatches[i];
    std::printf("acpi corpus: %zu machines, %zu tables, %zu directory walks, %zu present CPUs, "
                "%zu fields compared, %zu mismatches\n",
                totals.machines, totals.tables, totals.walks, totals.cpus, cmp.fields,
                cmp.mismatches.size());
    RecordProperty("fields_compared", static_cast<int>(cmp.fields));
    EXPECT_EQ(cmp.mismatches.size(), 0u);
    if (fs::exists(c.dir / kManifest)) {
        std::set<std::string> found;
        for (const fs::path& m : list)
            found.insert(m.filename().string());
        const auto listed = manifest(c.dir);
        for (const std::string& id : listed)
            if (!found.count(id)) ADD_FAILURE() << id << ": listed in " << kManifest << ", missing";
        for (const std::string& id : found)
            if (!std::binary_search(listed.begin(), listed.end(), id))
                ADD_FAILURE() << id << ": present, not listed in " << kManifest;
    } else {
        EXPECT_GE(totals.machines, 135u); // the full corpus: 134 machines and a template
    }
}

// The committed subset must stay a faithful copy of the full corpus (same tables, same
// reference decoding), or the two would test different things without anyone noticing.
TEST(AcpiCorpus, SubsetMatchesFullCorpus) {
    const Corpus c = corpus();
    const fs::path subset = COHORT_ACPI_CORPUS_SUBSET;
    if (fs::exists(c.dir / kManifest))
        GTEST_SKIP() << "the corpus in use (" << c.dir.string()
                     << ") is a subset; the full corpus is read from COHORT_ACPI_CORPUS or "
                        "../shared/corpus/acpi beside the source tree";
    std::printf("acpi corpus: comparing %s with %s (%s)\n", subset.c_str(), c.dir.c_str(),
                c.origin);
    const auto ids = manifest(subset);
    ASSERT_FALSE(ids.empty()) << subset / kManifest;
    size_t files = 0;
    for (const std::string& id : ids) {
        std::set<std::string> ours, theirs;
        for (const auto& e : fs::directory_iterator(subset / id))
            ours.insert(e.path().filename().string());
        if (fs::is_directory(c.dir / id))
            for (const auto& e : fs::directory_iterator(c.dir / id))
                theirs.insert(e.path().filename().string());
        EXPECT_EQ(ours, theirs) << id << ": file lists differ";
        for (const std::string& f : ours) {
            if (!theirs.count(f)) continue;
            ++files;
            EXPECT_TRUE(read_file(subset / id / f) == read_file(c.dir / id / f))
                << id << "/" << f << " differs";
        }
    }
    std::printf("acpi corpus: %zu machines, %zu files compared\n", ids.size(), files);
}

} // namespace
