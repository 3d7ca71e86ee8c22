#include "boot/bootinfo.h"

#include <cstring>

#include "debug/log.h"
#include "mm/layout.h"

namespace cohort {

BootInfo g_boot_info;
MemoryMap g_memory_map;

namespace {

// Until the real page tables exist only the first 4 GiB are mapped (see boot.S).
constexpr uint64_t kEarlyMappedLimit = 4ull << 30;

bool early_readable(uint64_t phys, uint64_t size) {
    return phys != 0 && phys < kEarlyMappedLimit && size <= kEarlyMappedLimit - phys;
}

template <typename T = uint8_t>
const T* early_ptr(uint64_t phys) {
    return reinterpret_cast<const T*>(layout::kDirectMapBase + phys);
}

void copy_string(char* dst, size_t cap, const char* src, size_t max_src, bool* truncated) {
    size_t n = 0;
    while (n < max_src && src[n] != 0) ++n;
    const size_t copy = n < cap - 1 ? n : cap - 1;
    memcpy(dst, src, copy);
    dst[copy] = 0;
    if (truncated != nullptr) *truncated = copy < n;
}

MemType firmware_type(uint32_t type) {
    switch (type) {
    case 1: return MemType::Usable;
    case 3: return MemType::AcpiReclaimable;
    case 4: return MemType::AcpiNvs;
    case 5: return MemType::Bad;
    default: return MemType::Reserved; // includes 2 and anything newer (e.g. 20, firmware code)
    }
}

void record_rsdp(BootInfo& out, const uint8_t* bytes, size_t len, uint64_t phys) {
    const size_t n = len < sizeof(out.rsdp) ? len : sizeof(out.rsdp);
    memcpy(out.rsdp, bytes, n);
    out.rsdp_length = static_cast<uint32_t>(n);
    out.rsdp_phys = phys;
}

// --- PVH (QEMU direct boot): struct hvm_start_info, version 1 -----------------------------
struct [[gnu::packed]] PvhStartInfo {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
struct [[gnu::packed]] PvhMemmapEntry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
constexpr uint32_t kPvhMagic = 0x336ec578;

bool parse_pvh(uint64_t phys, BootInfo& out) {
    if (!early_readable(phys, sizeof(PvhStartInfo))) {
        log_error("boot: PVH start_info at %#lx is not accessible", phys);
        return false;
    }
    PvhStartInfo si;
    memcpy(&si, early_ptr(phys), sizeof(si));
    if (si.magic != kPvhMagic) {
        log_error("boot: PVH start_info magic %#x, expected %#x", si.magic, kPvhMagic);
        return false;
    }
    out.info_phys = phys;
    out.info_size = sizeof(si);
    copy_string(out.loader_name, sizeof(out.loader_name), "QEMU (PVH direct boot)", 64, nullptr);
    if (si.cmdline_paddr != 0 && early_readable(si.cmdline_paddr, 1)) {
        const uint64_t avail = kEarlyMappedLimit - si.cmdline_paddr;
        copy_string(out.cmdline, sizeof(out.cmdline), early_ptr<char>(si.cmdline_paddr),
                    avail < 65536 ? avail : 65536, &out.cmdline_truncated);
    }
    if (si.rsdp_paddr != 0 && early_readable(si.rsdp_paddr, 36))
        record_rsdp(out, early_ptr(si.rsdp_paddr), 36, si.rsdp_paddr);
    if (si.version >= 1 && si.memmap_paddr != 0) {
        const uint64_t bytes = uint64_t(si.memmap_entries) * sizeof(PvhMemmapEntry);
        if (si.memmap_entries > 4096 || !early_readable(si.memmap_paddr, bytes)) {
            log_error("boot: PVH memory map (%u entries at %#lx) is not accessible",
                      si.memmap_entries, si.memmap_paddr);
            return false;
        }
        for (uint32_t i = 0; i < si.memmap_entries; ++i) {
            PvhMemmapEntry e;
            memcpy(&e, early_ptr(si.memmap_paddr + i * sizeof(e)), sizeof(e));
            if (!out.memmap.add(e.addr, e.size, firmware_type(e.type)))
                log_warn("boot: memory map has more entries than we can hold; ignoring the rest");
        }
    } else {
        log_error("boot: PVH start_info version %u carries no memory map", si.version);
        return false;
    }
    return true;
}

// --- Multiboot2 ------------------------------------------------------------------------------
struct [[gnu::packed]] Mb2Tag {
    uint32_t type;
    uint32_t size;
};
struct [[gnu::packed]] Mb2MmapEntry {
    uint64_t base;
    uint64_t length;
    uint32_t type;
    uint32_t reserved;
};
constexpr uint32_t kMb2MaxInfoSize = 1u << 20;

bool parse_mb2(uint64_t phys, BootInfo& out) {
    if (!early_readable(phys, 8) || (phys & 7) != 0) {
        log_error("boot: Multiboot2 information at %#lx is not accessible or misaligned", phys);
        return false;
    }
    uint32_t total;
    memcpy(&total, early_ptr(phys), 4);
    if (total < 16 || total > kMb2MaxInfoSize || !early_readable(phys, total)) {
        log_error("boot: Multiboot2 information size %u is implausible", total);
        return false;
    }
    out.info_phys = phys;
    out.info_size = total;
    bool have_mmap = false;
    uint64_t off = 8;
    while (off + sizeof(Mb2Tag) <= total) {
        Mb2Tag tag;
        memcpy(&tag, early_ptr(phys + off), sizeof(tag));
        if (tag.type == 0) break;
        if (tag.size < sizeof(Mb2Tag) || tag.size > total - off) {
            log_error("boot: Multiboot2 tag type %u at offset %lu has bad size %u; stopping",
                      tag.type, off, tag.size);
            break;
        }
        const uint8_t* body = early_ptr(phys + off + sizeof(Mb2Tag));
        const uint32_t body_size = tag.size - sizeof(Mb2Tag);
        switch (tag.type) {
        case 1: // command line
            copy_string(out.cmdline, sizeof(out.cmdline), reinterpret_cast<const char*>(body),
                        body_size, &out.cmdline_truncated);
            break;
        case 2: // boot loader name
            copy_string(out.loader_name, sizeof(out.loader_name),
                        reinterpret_cast<const char*>(body), body_size, nullptr);
            break;
        case 6: { // memory map
            if (body_size < 8) break;
            uint32_t entry_size;
            memcpy(&entry_size, body, 4);
            if (entry_size < sizeof(Mb2MmapEntry)) {
                log_error("boot: Multiboot2 mmap entry size %u too small", entry_size);
                break;
            }
            for (uint32_t p = 8; p + entry_size <= body_size; p += entry_size) {
                Mb2MmapEntry e;
                memcpy(&e, body + p, sizeof(e));
                if (!out.memmap.add(e.base, e.length, firmware_type(e.type)))
                    log_warn("boot: memory map has more entries than we can hold");
            }
            have_mmap = true;
            break;
        }
        case 12: // EFI 64-bit system table pointer
            if (body_size >= 8) memcpy(&out.efi_system_table, body, 8);
            break;
        case 14: // ACPI 1.0 RSDP copy; a later tag 15 (ACPI 2.0+) takes precedence
            if (out.rsdp_length == 0) record_rsdp(out, body, body_size, 0);
            break;
        case 15:
            record_rsdp(out, body, body_size, 0);
            break;
        default:
            break;
        }
        off += (tag.size + 7) & ~uint64_t(7);
    }
    if (!have_mmap) {
        log_error("boot: the Multiboot2 loader gave no memory map");
        return false;
    }
    return true;
}

} // namespace

bool parse_boot_info(BootProtocol protocol, uint64_t info_phys, BootInfo& out) {
    out.protocol = protocol;
    switch (protocol) {
    case BootProtocol::Pvh: return parse_pvh(info_phys, out);
    case BootProtocol::Multiboot2: return parse_mb2(info_phys, out);
    }
    log_error("boot: unknown boot protocol %u", static_cast<uint32_t>(protocol));
    return false;
}

} // namespace cohort
