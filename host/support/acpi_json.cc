#include "acpi_json.h"

#include <algorithm>
#include <map>
#include <string>

namespace cohort::host {

using namespace cohort::acpi;

namespace {

// Header text as iasl displays it (up to the first NUL, other control and non-ASCII bytes
// shown as spaces), so dumps compare with iasl output and stay readable.
std::string printable(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
    return out;
}

} // namespace

Json header_json(const SdtHeader& h) {
    Json j = Json::object();
    j["signature"] = printable(h.signature.text());
    j["length"] = h.length;
    j["revision"] = h.revision;
    j["checksum"] = h.checksum;
    j["oem_id"] = printable(h.oem_id.text());
    j["oem_table_id"] = printable(h.oem_table_id.text());
    j["oem_revision"] = h.oem_revision;
    j["asl_compiler_id"] = printable(h.creator_id.text());
    j["asl_compiler_revision"] = h.creator_revision;
    return j;
}

Json rsdp_json(const Rsdp& r) {
    Json j = Json::object();
    j["signature"] = "RSD PTR ";
    j["checksum"] = r.checksum;
    j["oem_id"] = std::string(r.oem_id.bytes, 6);
    j["revision"] = r.revision;
    j["rsdt_address"] = r.rsdt_address;
    j["checksum_valid"] = r.checksum_valid;
    if (r.has_extended) {
        j["length"] = r.length;
        j["xsdt_address"] = r.xsdt_address;
        j["extended_checksum"] = r.extended_checksum;
        j["extended_checksum_valid"] = r.extended_checksum_valid;
    }
    return j;
}

Json root_entries_json(const RootEntries& entries) {
    Json j = Json::array();
    for (size_t i = 0; i < entries.size(); ++i)
        j.push_back(entries[i]);
    return j;
}

Json fadt_json(const Fadt& f) {
    Json j = Json::object();
    auto put = [&](const char* key, const auto& v) {
        if (v) j[key] = *v;
    };
    put("facs_address", f.facs_address);
    put("dsdt_address", f.dsdt_address);
    put("model", f.model);
    put("pm_profile", f.pm_profile);
    put("sci_interrupt", f.sci_interrupt);
    put("boot_architecture_flags", f.boot_architecture_flags);
    put("flags", f.flags);
    put("minor_revision", f.minor_revision);
    put("x_facs_address", f.x_facs_address);
    put("x_dsdt_address", f.x_dsdt_address);
    return j;
}

namespace {

template <typename E>
void put_inti(Json& j, const E& e) {
    j["flags"] = e.flags;
    j["polarity"] = static_cast<unsigned>(e.polarity());
    j["trigger_mode"] = static_cast<unsigned>(e.trigger());
}

void put_cpu_flags(Json& j, uint32_t flags) {
    j["flags"] = flags;
    j["enabled"] = cpu_flags_enabled(flags);
    j["online_capable"] = cpu_flags_online_capable(flags);
}

size_t count_true(const Json& list, const char* key) {
    size_t n = 0;
    for (const Json& e : list.as_array())
        if (const Json* v = e.find(key); v && v->as_bool()) ++n;
    return n;
}

} // namespace

Json madt_json(Bytes table, ErrorLog& log) {
    Json j = Json::object();
    const auto hdr = madt_header(table);
    if (!hdr) {
        log.error("APIC", ErrorCode::Truncated, 0, 0, table.size());
        return j;
    }
    j["local_apic_address"] = hdr->local_apic_address;
    j["flags"] = hdr->flags;
    j["pcat_compat"] = hdr->pcat_compat();
    Json lapics = Json::array(), x2apics = Json::array(), ioapics = Json::array(),
         overrides = Json::array(), nmis = Json::array(), lapic_nmis = Json::array(),
         x2_nmis = Json::array(), addr_overrides = Json::array(), others = Json::array(),
         subtables = Json::array();
    SubtableWalker walker = madt_subtables(table, &log);
    Subtable s;
    while (walker.next(s)) {
        Json sub = Json::object();
        sub["offset"] = s.offset;
        sub["type"] = s.type;
        sub["length"] = s.length;
        sub["type_name"] = madt_type_name(s.type);
        subtables.push_back(sub);
        Json e = Json::object();
        e["offset"] = s.offset;
        if (auto v = decode_local_apic(s)) {
            e["processor_id"] = v->processor_id;
            e["apic_id"] = v->apic_id;
            put_cpu_flags(e, v->flags);
            lapics.push_back(e);
        } else if (auto v = decode_io_apic(s)) {
            e["id"] = v->id;
            e["address"] = v->address;
            e["gsi_base"] = v->gsi_base;
            ioapics.push_back(e);
        } else if (auto v = decode_interrupt_override(s)) {
            e["bus"] = v->bus;
            e["source_irq"] = v->source_irq;
            e["gsi"] = v->gsi;
            put_inti(e, *v);
            overrides.push_back(e);
        } else if (auto v = decode_nmi_source(s)) {
            e["gsi"] = v->gsi;
            put_inti(e, *v);
            nmis.push_back(e);
        } else if (auto v = decode_local_apic_nmi(s)) {
            e["processor_id"] = v->processor_id;
            e["lint"] = v->lint;
            put_inti(e, *v);
            lapic_nmis.push_back(e);
        } else if (auto v = decode_lapic_address_override(s)) {
            e["address"] = v->address;
            addr_overrides.push_back(e);
        } else if (auto v = decode_local_x2apic(s)) {
            e["x2apic_id"] = v->x2apic_id;
            e["uid"] = v->uid;
            put_cpu_flags(e, v->flags);
            x2apics.push_back(e);
        } else if (auto v = decode_local_x2apic_nmi(s)) {
            e["uid"] = v->uid;
            e["lint"] = v->lint;
            put_inti(e, *v);
            x2_nmis.push_back(e);
        } else {
            // Unknown/non-x86 types, and known types too short to decode.
            e["type"] = s.type;
            e["length"] = s.length;
            e["type_name"] = madt_type_name(s.type);
            others.push_back(e);
        }
    }

    std::map<uint32_t, int> enabled_ids;
    for (const Json& e : lapics.as_array())
        if (e.find("enabled")->as_bool()) ++enabled_ids[*e.find("apic_id")->as_uint()];
    for (const Json& e : x2apics.as_array())
        if (e.find("enabled")->as_bool()) ++enabled_ids[*e.find("x2apic_id")->as_uint()];
    Json dup = Json::array();
    for (const auto& [id, n] : enabled_ids)
        if (n > 1) dup.push_back(id);

    size_t id_ff = 0, ge255 = 0;
    for (const Json& e : lapics.as_array())
        if (*e.find("apic_id")->as_uint() == 0xFF) ++id_ff;
    for (const Json& e : x2apics.as_array())
        if (*e.find("x2apic_id")->as_uint() >= 255) ++ge255;
    const size_t lap_en = count_true(lapics, "enabled"), x2_en = count_true(x2apics, "enabled");
    const size_t lap_oc = count_true(lapics, "online_capable");
    const size_t x2_oc = count_true(x2apics, "online_capable");
    const size_t total = lapics.as_array().size() + x2apics.as_array().size();

    Json c = Json::object();
    c["subtables"] = subtables.as_array().size();
    c["local_apic_total"] = lapics.as_array().size();
    c["local_apic_enabled"] = lap_en;
    c["local_apic_online_capable"] = lap_oc;
    c["local_apic_id_ff"] = id_ff;
    c["x2apic_total"] = x2apics.as_array().size();
    c["x2apic_enabled"] = x2_en;
    c["x2apic_online_capable"] = x2_oc;
    c["x2apic_id_ge_255"] = ge255;
    c["cpus_total"] = total;
    c["cpus_enabled"] = lap_en + x2_en;
    c["cpus_online_capable"] = lap_oc + x2_oc;
    c["cpus_disabled"] = total - lap_en - x2_en - lap_oc - x2_oc;
    c["io_apics"] = ioapics.as_array().size();
    c["interrupt_overrides"] = overrides.as_array().size();
    c["nmi_sources"] = nmis.as_array().size();
    c["local_apic_nmis"] = lapic_nmis.as_array().size();
    c["local_x2apic_nmis"] = x2_nmis.as_array().size();
    c["local_apic_address_overrides"] = addr_overrides.as_array().size();
    c["other_subtables"] = others.as_array().size();

    j["effective_local_apic_address"] =
        addr_overrides.as_array().empty()
            ? Json(hdr->local_apic_address)
            : Json(*addr_overrides.as_array()[0].find("address")->as_uint());
    j["local_apics"] = std::move(lapics);
    j["local_x2apics"] = std::move(x2apics);
    j["io_apics"] = std::move(ioapics);
    j["interrupt_overrides"] = std::move(overrides);
    j["nmi_sources"] = std::move(nmis);
    j["local_apic_nmis"] = std::move(lapic_nmis);
    j["local_x2apic_nmis"] = std::move(x2_nmis);
    j["local_apic_address_overrides"] = std::move(addr_overrides);
    j["other_subtables"] = std::move(others);
    j["subtables"] = std::move(subtables);
    j["duplicate_enabled_apic_ids"] = std::move(dup);
    j["counts"] = std::move(c);
    j["complete"] = !walker.failed();
    return j;
}

const char* cpu_state_name(CpuState s) {
    switch (s) {
    case CpuState::Enabled:
        return "enabled";
    case CpuState::OnlineCapable:
        return "online_capable";
    case CpuState::Disabled:
        return "disabled";
    }
    return "?";
}

Json topology_json(const MadtTopology& t) {
    Json j = Json::object();
    Json cpus = Json::array();
    for (const CpuEntry& c : t.cpus.items()) {
        Json e = Json::object();
        e["apic_id"] = c.apic_id;
        e["uid"] = c.uid;
        e["state"] = cpu_state_name(c.state);
        e["entry_type"] = static_cast<unsigned>(c.source);
        e["offset"] = c.offset;
        cpus.push_back(e);
    }
    j["cpus"] = std::move(cpus);
    j["enabled"] = t.enabled;
    j["online_capable"] = t.online_capable;
    j["disabled"] = t.disabled;
    j["placeholders"] = t.placeholders;
    j["duplicates"] = t.duplicates;
    j["skipped_subtables"] = t.skipped;
    j["io_apics"] = t.io_apics.size();
    j["interrupt_overrides"] = t.overrides.size();
    j["local_apic_address"] = t.local_apic_address;
    j["complete"] = t.complete;
    j["bsp_index"] = t.bsp ? Json(*t.bsp) : Json();
    return j;
}

Json srat_json(const SratInfo& s) {
    Json j = Json::object();
    j["table_revision"] = s.table_revision;
    Json cpus = Json::array();
    for (const SratCpu& c : s.cpus.items()) {
        Json e = Json::object();
        e["offset"] = c.offset;
        e["domain"] = c.domain;
        e["apic_id"] = c.apic_id;
        e["x2apic"] = c.x2apic;
        e["flags"] = c.flags;
        cpus.push_back(e);
    }
    Json mem = Json::array();
    for (const SratMemory& m : s.memory.items()) {
        Json e = Json::object();
        e["offset"] = m.offset;
        e["domain"] = m.domain;
        e["base"] = m.base;
        e["length"] = m.length;
        e["hot_pluggable"] = m.hot_pluggable();
        e["non_volatile"] = m.non_volatile();
        mem.push_back(e);
    }
    Json nodes = Json::array();
    for (const NumaNode& n : s.nodes.items()) {
        Json e = Json::object();
        e["domain"] = n.domain;
        e["cpus"] = n.cpus;
        e["memory_ranges"] = n.memory_ranges;
        e["memory_bytes"] = n.memory_bytes;
        nodes.push_back(e);
    }
    j["cpus"] = std::move(cpus);
    j["memory"] = std::move(mem);
    j["nodes"] = std::move(nodes);
    j["disabled_entries"] = s.disabled;
    j["skipped_subtables"] = s.skipped;
    j["complete"] = s.complete;
    return j;
}

Json slit_json(const Slit& s) {
    Json j = Json::object();
    j["localities"] = s.localities();
    Json m = Json::array();
    for (uint64_t i = 0; i < s.localities() && i < 256; ++i) {
        Json row = Json::array();
        for (uint64_t k = 0; k < s.localities() && k < 256; ++k)
            row.push_back(*s.distance(i, k));
        m.push_back(row);
    }
    j["distances"] = std::move(m);
    return j;
}

Json errors_json(const ErrorLog& log) {
    Json j = Json::array();
    for (const Error& e : log.errors()) {
        Json r = Json::object();
        r["table"] = std::string(e.table);
        r["severity"] = e.severity == Severity::Error ? "error" : "warning";
        r["offset"] = e.offset;
        r["address"] = e.address;
        r["reason"] = error_reason(e.code);
        r["detail"] = e.detail;
        j.push_back(r);
    }
    if (log.dropped() > 0) {
        Json r = Json::object();
        r["severity"] = "error";
        r["reason"] = "more errors not stored";
        r["detail"] = log.dropped();
        j.push_back(r);
    }
    return j;
}

} // namespace cohort::host
