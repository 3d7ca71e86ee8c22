// libFuzzer targets for the ACPI parser, one per entry point, selected at compile time by
// COHORT_FUZZ_TARGET: 1 RSDP, 2 RSDT/XSDT walk, 3 MADT, 4 SRAT, 5 SLIT.
// Every read must stay inside the input; ASan/UBSan turn any slip into a crash.
#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "phys_image.h"

#include <cstdint>
#include <cstring>
#include <vector>

using namespace cohort::acpi;

namespace {

// The input is the table itself; its length and checksum fields are used as they come, so the
// fuzzer reaches the walkers only through validate_table, the way the kernel does — except for
// the byte-level walkers, which are also fed the raw input to skip the checksum gate.
void fuzz_madt(Bytes in, ErrorLog& log) {
    static std::vector<CpuEntry> cpus(4096);
    static std::vector<IoApic> io(64);
    static std::vector<InterruptOverride> ovr(64);
    static std::vector<NmiSource> nmi(64);
    static std::vector<LocalApicNmi> lnmi(64);
    static std::vector<LocalX2apicNmi> xnmi(64);
    MadtTopology topo;
    const uint32_t bsp = in.size() > 4 ? in[in.size() - 1] : kNoBsp;
    parse_madt(in, bsp, MadtStorage{cpus, io, ovr, nmi, lnmi, xnmi}, topo, log);
    if (auto t = validate_table(in, "APIC", log))
        parse_madt(*t, bsp, MadtStorage{cpus, io, ovr, nmi, lnmi, xnmi}, topo, log);
}

void fuzz_srat(Bytes in, ErrorLog& log) {
    static std::vector<SratCpu> cpus(256);
    static std::vector<SratMemory> mem(64);
    static std::vector<NumaNode> nodes(64);
    SratInfo info;
    parse_srat(in, SratStorage{cpus, mem, nodes}, info, log);
}

void fuzz_slit(Bytes in, ErrorLog& log) {
    if (auto s = Slit::parse(in, log)) {
        const uint64_t n = s->localities();
        (void)s->distance(n - 1, n - 1);
        (void)s->distance(n, 0);
    }
}

// The input is a memory image: RSDP at 0x1000, followed by whatever the fuzzer writes; table
// pointers inside it land in the image or in unmapped space.
void fuzz_root(Bytes in, ErrorLog& log) {
    cohort::host::PhysImage img;
    img.add(0x1000, std::vector<uint8_t>(in.begin(), in.end()));
    if (auto dir = TableDirectory::open(img, 0x1000, log)) {
        std::vector<uint8_t> buf(4096);
        (void)dir->load_first_valid("APIC", buf, log);
        (void)dir->count("FACP");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Error errs[16];
    ErrorLog log(errs);
    const Bytes in(data, size);
#if COHORT_FUZZ_TARGET == 1
    parse_rsdp(in, log);
#elif COHORT_FUZZ_TARGET == 2
    fuzz_root(in, log);
    if (auto t = validate_table(in, {}, log))
        if (auto e = root_entries(*t))
            for (size_t i = 0; i < e->size(); ++i)
                (void)(*e)[i];
#elif COHORT_FUZZ_TARGET == 3
    fuzz_madt(in, log);
#elif COHORT_FUZZ_TARGET == 4
    fuzz_srat(in, log);
    if (auto t = validate_table(in, "SRAT", log)) fuzz_srat(*t, log);
#elif COHORT_FUZZ_TARGET == 5
    fuzz_slit(in, log);
#else
#error "COHORT_FUZZ_TARGET must be 1..5"
#endif
    return 0;
}
