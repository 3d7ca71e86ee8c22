// JSON renderings of the portable ACPI parser's results, shared by acpi-inspect and the corpus
// test. MADT field names follow the corpus's expected.json schema.
#pragma once

#include "acpi/error.h"
#include "acpi/fadt.h"
#include "acpi/madt.h"
#include "acpi/srat.h"
#include "acpi/tables.h"
#include "json.h"

namespace cohort::host {

Json header_json(const acpi::SdtHeader& h);
Json rsdp_json(const acpi::Rsdp& r);
Json root_entries_json(const acpi::RootEntries& entries);
Json fadt_json(const acpi::Fadt& f);

/// The expected.json-style `madt` object, decoded entry by entry from `table` (placeholders
/// and hidden entries included, as the raw lists are). Walk errors go to `log`.
Json madt_json(acpi::Bytes table, acpi::ErrorLog& log);

/// Present CPUs and the rest of the topology summary.
Json topology_json(const acpi::MadtTopology& t);

Json srat_json(const acpi::SratInfo& s);
Json slit_json(const acpi::Slit& s);
Json errors_json(const acpi::ErrorLog& log);

const char* cpu_state_name(acpi::CpuState s);

} // namespace cohort::host
