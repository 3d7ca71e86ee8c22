// acpi-inspect: shows what Cohort's ACPI parser sees in table dumps (acpixtract .dat files,
// Clover/DarwinDumper .aml files, or a directory of them), as JSON.
//
//   acpi-inspect [--bsp APIC_ID] [--compact] FILE|DIR
#include "acpi/fadt.h"
#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "acpi_json.h"
#include "json.h"
#include "phys_image.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using cohort::host::Json;
using namespace cohort::acpi;

struct TableFile {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string signature; // "RSD PTR " for the RSDP
};

std::vector<uint8_t> read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool is_table_file(const fs::path& p) {
    const std::string ext = lower(p.extension().string());
    return ext == ".dat" || ext == ".aml";
}

TableFile load(const fs::path& p) {
    TableFile t{p.filename().string(), read_file(p), {}};
    if (t.bytes.size() >= 8 && std::memcmp(t.bytes.data(), "RSD PTR ", 8) == 0)
        t.signature = "RSD PTR ";
    else if (t.bytes.size() >= 4)
        t.signature.assign(reinterpret_cast<const char*>(t.bytes.data()), 4);
    return t;
}

// acpixtract numbers repeated tables apic.dat, apic2.dat, ...; sorting by (stem length, name)
// keeps that order (dump order), which is the order the MADT choice below relies on.
bool file_order(const TableFile& a, const TableFile& b) {
    if (a.name.size() != b.name.size()) return a.name.size() < b.name.size();
    return lower(a.name) < lower(b.name);
}

int usage() {
    std::fprintf(stderr,
                 "usage: acpi-inspect [--bsp APIC_ID] [--compact] FILE|DIR\n"
                 "  FILE: one ACPI table (.dat/.aml) or an RSDP\n"
                 "  DIR:  a directory of them; the RSDP/RSDT/XSDT are walked when present\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    uint32_t bsp = kNoBsp;
    bool compact = false;
    std::string path;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--bsp" && i + 1 < argc)
            bsp = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 0));
        else if (a == "--compact")
            compact = true;
        else if (a == "-h" || a == "--help")
            return usage();
        else if (path.empty())
            path = a;
        else
            return usage();
    }
    if (path.empty()) return usage();

    std::vector<TableFile> files;
    if (fs::is_directory(path)) {
        for (const auto& e : fs::directory_iterator(path))
            if (e.is_regular_file() && is_table_file(e.path())) files.push_back(load(e.path()));
    } else if (fs::is_regular_file(path)) {
        files.push_back(load(path));
    } else {
        std::fprintf(stderr, "acpi-inspect: %s: no such file or directory\n", path.c_str());
        return 1;
    }
    std::sort(files.begin(), files.end(), file_order);

    std::vector<Error> err_storage(1024);
    ErrorLog log(err_storage);
    Json out = Json::object();
    out["source"] = path;
    Json tables = Json::object();
    const TableFile* madt_file = nullptr;
    std::vector<std::string> madt_files;
    std::optional<Bytes> madt_bytes, srat_bytes, slit_bytes;
    const TableFile *rsdp_file = nullptr, *rsdt_file = nullptr, *xsdt_file = nullptr;

    for (const TableFile& f : files) {
        Json t = Json::object();
        if (f.signature == "RSD PTR ") {
            rsdp_file = &f;
            if (auto r = parse_rsdp(f.bytes, log)) t["rsdp"] = cohort::host::rsdp_json(*r);
            tables[f.name] = std::move(t);
            continue;
        }
        const auto hdr = parse_sdt_header(f.bytes);
        if (!hdr) {
            log.error("????", ErrorCode::Truncated, 0, 0, f.bytes.size());
            t["valid"] = false;
            tables[f.name] = std::move(t);
            continue;
        }
        t["header"] = cohort::host::header_json(*hdr);
        const auto table = validate_table(f.bytes, {}, log);
        t["valid"] = table.has_value();
        tables[f.name] = std::move(t);
        if (!table) continue;
        if (f.signature == "APIC") {
            madt_files.push_back(f.name);
            // The first valid MADT in dump order, like TableDirectory::load_first_valid.
            if (!madt_file) {
                madt_file = &f;
                madt_bytes = table;
            }
        } else if (f.signature == "SRAT" && !srat_bytes) {
            srat_bytes = table;
        } else if (f.signature == "SLIT" && !slit_bytes) {
            slit_bytes = table;
        } else if (f.signature == "RSDT") {
            rsdt_file = &f;
            tables[f.name]["entries"] = cohort::host::root_entries_json(*root_entries(*table));
        } else if (f.signature == "XSDT") {
            xsdt_file = &f;
            tables[f.name]["entries"] = cohort::host::root_entries_json(*root_entries(*table));
        } else if (f.signature == "FACP") {
            tables[f.name]["fadt"] = cohort::host::fadt_json(parse_fadt(*table));
        }
    }
    out["tables"] = std::move(tables);

    if (rsdp_file) {
        // A .dat dump does not record where tables lived, except that the RSDP names its
        // RSDT/XSDT: place those and walk them as the kernel does. Entries for the other
        // tables then point to memory the dump does not hold; those are listed as unresolved
        // rather than as errors.
        Error werrs[256];
        ErrorLog wlog(werrs);
        cohort::host::PhysImage image;
        constexpr uint64_t kRsdpAddr = 0xE0000000'0000ull;
        image.add(kRsdpAddr, rsdp_file->bytes);
        if (auto r = parse_rsdp(rsdp_file->bytes, wlog)) {
            if (rsdt_file && r->rsdt_address) image.add(r->rsdt_address, rsdt_file->bytes);
            if (xsdt_file && r->has_extended && r->xsdt_address)
                image.add(r->xsdt_address, xsdt_file->bytes);
        }
        Error derrs[256];
        ErrorLog dlog(derrs);
        Json root = Json::object();
        if (const auto dir = TableDirectory::open(image, kRsdpAddr, dlog)) {
            root["kind"] = dir->kind() == RootKind::Xsdt ? "XSDT" : "RSDT";
            root["address"] = dir->root_address();
            Json entries = Json::array();
            for (size_t i = 0; i < dir->entry_count(); ++i)
                entries.push_back(dir->entry(i));
            root["entries"] = std::move(entries);
        } else {
            root["kind"] = nullptr;
        }
        size_t unresolved = 0;
        for (const Error& e : dlog.errors()) {
            if (e.code == ErrorCode::Unreadable &&
                (std::strcmp(e.table, "XSDT") == 0 || std::strcmp(e.table, "RSDT") == 0) &&
                e.offset >= kSdtHeaderSize) {
                ++unresolved;
                continue;
            }
            log.add(e.table, e.severity, e.code, e.offset, e.address, e.detail);
        }
        root["entries_not_in_dump"] = unresolved;
        out["root"] = std::move(root);
    }

    if (madt_bytes) {
        out["madt_file"] = madt_file->name;
        out["madt_choice"] =
            madt_files.size() > 1
                ? "first of " + std::to_string(madt_files.size()) +
                      " MADTs in dump order: ACPICA (Linux, Windows) uses the first instance, so "
                      "Cohort does too; a later one only if the first fails validation"
                : std::string("only MADT");
        out["madt"] = cohort::host::madt_json(*madt_bytes, log);
        std::vector<CpuEntry> cpus(65536);
        std::vector<IoApic> ioapics(4096);
        std::vector<InterruptOverride> ovr(4096);
        std::vector<NmiSource> nmis(4096);
        std::vector<LocalApicNmi> lnmis(65536);
        std::vector<LocalX2apicNmi> xnmis(65536);
        MadtTopology topo;
        // madt_json already reported walk errors; keep the topology's own findings
        // (duplicates, placeholders, BSP) without repeating those.
        Error terrs[256];
        ErrorLog tlog(terrs);
        parse_madt(*madt_bytes, bsp, MadtStorage{cpus, ioapics, ovr, nmis, lnmis, xnmis}, topo,
                   tlog);
        for (const Error& e : tlog.errors())
            if (e.code != ErrorCode::SubtableZeroLength && e.code != ErrorCode::SubtablePastEnd)
                log.add(e.table, e.severity, e.code, e.offset, e.address, e.detail);
        Json tj = cohort::host::topology_json(topo);
        out["cpus"] = *tj.find("cpus");
        out["topology"] = std::move(tj);
    }
    if (srat_bytes) {
        std::vector<SratCpu> c(65536);
        std::vector<SratMemory> m(4096);
        std::vector<NumaNode> n(4096);
        SratInfo info;
        parse_srat(*srat_bytes, SratStorage{c, m, n}, info, log);
        out["srat"] = cohort::host::srat_json(info);
    }
    if (slit_bytes) {
        if (auto s = Slit::parse(*slit_bytes, log)) out["slit"] = cohort::host::slit_json(*s);
    }
    out["errors"] = cohort::host::errors_json(log);
    std::printf("%s\n", out.dump(compact ? -1 : 1).c_str());
    return log.count(Severity::Error) == 0 ? 0 : 3;
}
