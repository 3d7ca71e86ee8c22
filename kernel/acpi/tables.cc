#include "acpi/tables.h"

namespace cohort::acpi {
namespace {

// Real XSDTs hold a few dozen entries; anything this long is corrupt, and checksumming it
// through the reader would mean touching gigabytes of memory at boot.
constexpr uint32_t kMaxRootTableLength = 64 * 1024;

template <size_t N>
FixedString<N> fixed_string(Bytes bytes, size_t offset) {
    FixedString<N> s;
    for (size_t i = 0; i < N; ++i)
        s.bytes[i] = static_cast<char>(load_le<uint8_t>(bytes, offset + i));
    return s;
}

std::string_view sig_of(const SdtHeader& h) {
    return {h.signature.bytes, 4};
}

// Sums `len` bytes of physical memory in small chunks, so no buffer of the table's size is
// needed.
bool phys_byte_sum(const PhysReader& reader, uint64_t phys, uint64_t len, uint8_t& sum) {
    uint8_t chunk[128];
    sum = 0;
    while (len > 0) {
        const size_t n = len < sizeof(chunk) ? static_cast<size_t>(len) : sizeof(chunk);
        if (!reader.read(phys, chunk, n)) return false;
        sum = static_cast<uint8_t>(sum + byte_sum(Bytes(chunk, n)));
        phys += n;
        len -= n;
    }
    return true;
}

struct RootCheck {
    bool ok;
    uint32_t length;
};

// Validates a root table (RSDT/XSDT) in place through the reader.
RootCheck check_root(const PhysReader& reader, uint64_t phys, std::string_view sig, ErrorLog& log) {
    uint8_t raw[kSdtHeaderSize];
    if (!reader.read(phys, raw, sizeof(raw))) {
        log.error(sig, ErrorCode::Unreadable, 0, phys);
        return {false, 0};
    }
    const SdtHeader h = *parse_sdt_header(Bytes(raw, sizeof(raw)));
    if (sig_of(h) != sig) {
        log.error(sig, ErrorCode::BadSignature, 0, phys);
        return {false, 0};
    }
    if (h.length < kSdtHeaderSize) {
        log.error(sig, ErrorCode::Truncated, 4, phys, h.length);
        return {false, 0};
    }
    if (h.length > kMaxRootTableLength) {
        log.error(sig, ErrorCode::ImplausibleLength, 4, phys, h.length);
        return {false, 0};
    }
    uint8_t sum = 0;
    if (!phys_byte_sum(reader, phys, h.length, sum)) {
        log.error(sig, ErrorCode::LengthBeyondMapping, 4, phys, h.length);
        return {false, 0};
    }
    if (sum != 0) {
        log.error(sig, ErrorCode::BadChecksum, 9, phys);
        return {false, 0};
    }
    return {true, h.length};
}

/// The checks every table header must pass before its bytes are trusted: the expected
/// signature (if any), a length that covers at least the header, and one that fits in the
/// `available` bytes (`too_big` says why not: past the mapping, or past the caller's buffer).
bool header_fits(const SdtHeader& h, std::string_view signature, size_t available,
                 ErrorCode too_big, uint64_t phys, ErrorLog& log) {
    const std::string_view sig = sig_of(h);
    if (!signature.empty() && sig != signature) {
        log.error(signature, ErrorCode::BadSignature, 0, phys);
        return false;
    }
    if (h.length < kSdtHeaderSize) {
        log.error(sig, ErrorCode::Truncated, 4, phys, h.length);
        return false;
    }
    if (h.length > available) {
        log.error(sig, too_big, 4, phys, h.length);
        return false;
    }
    return true;
}

} // namespace

std::optional<SdtHeader> parse_sdt_header(Bytes bytes) {
    if (bytes.size() < kSdtHeaderSize) return std::nullopt;
    SdtHeader h;
    h.signature = fixed_string<4>(bytes, 0);
    h.length = load_le<uint32_t>(bytes, 4);
    h.revision = load_le<uint8_t>(bytes, 8);
    h.checksum = load_le<uint8_t>(bytes, 9);
    h.oem_id = fixed_string<6>(bytes, 10);
    h.oem_table_id = fixed_string<8>(bytes, 16);
    h.oem_revision = load_le<uint32_t>(bytes, 24);
    h.creator_id = fixed_string<4>(bytes, 28);
    h.creator_revision = load_le<uint32_t>(bytes, 32);
    return h;
}

std::optional<Bytes> validate_table(Bytes bytes, std::string_view signature, ErrorLog& log,
                                    uint64_t phys) {
    const std::string_view label = signature.empty() ? std::string_view("????") : signature;
    const auto h = parse_sdt_header(bytes);
    if (!h) {
        log.error(label, ErrorCode::LengthBeyondMapping, 0, phys, bytes.size());
        return std::nullopt;
    }
    const std::string_view sig = sig_of(*h);
    if (!header_fits(*h, signature, bytes.size(), ErrorCode::LengthBeyondMapping, phys, log))
        return std::nullopt;
    const Bytes table = bytes.first(h->length);
    if (byte_sum(table) != 0) {
        log.error(sig, ErrorCode::BadChecksum, 9, phys);
        return std::nullopt;
    }
    return table;
}

std::optional<Rsdp> parse_rsdp(Bytes bytes, ErrorLog& log, uint64_t phys) {
    constexpr std::string_view kLabel = "RSD ";
    if (bytes.size() < kRsdpV1Size) {
        log.error(kLabel, ErrorCode::LengthBeyondMapping, 0, phys, bytes.size());
        return std::nullopt;
    }
    if (std::string_view(reinterpret_cast<const char*>(bytes.data()), 8) != "RSD PTR ") {
        log.error(kLabel, ErrorCode::BadSignature, 0, phys);
        return std::nullopt;
    }
    Rsdp r{};
    r.checksum = load_le<uint8_t>(bytes, 8);
    r.oem_id = fixed_string<6>(bytes, 9);
    r.revision = load_le<uint8_t>(bytes, 15);
    r.rsdt_address = load_le<uint32_t>(bytes, 16);
    r.checksum_valid = byte_sum(bytes.first(kRsdpV1Size)) == 0;
    if (!r.checksum_valid) log.error(kLabel, ErrorCode::BadChecksum, 8, phys);
    if (r.revision >= 2) {
        if (bytes.size() < kRsdpV2Size) {
            log.error(kLabel, ErrorCode::LengthBeyondMapping, 20, phys, bytes.size());
            return r;
        }
        r.has_extended = true;
        r.length = load_le<uint32_t>(bytes, 20);
        r.xsdt_address = load_le<uint64_t>(bytes, 24);
        r.extended_checksum = load_le<uint8_t>(bytes, 32);
        r.extended_checksum_valid = byte_sum(bytes.first(kRsdpV2Size)) == 0;
        if (!r.extended_checksum_valid) log.error(kLabel, ErrorCode::BadExtendedChecksum, 32, phys);
    }
    return r;
}

uint64_t RootEntries::operator[](size_t i) const {
    if (i >= size()) return 0;
    const size_t off = kSdtHeaderSize + i * entry_size_;
    return entry_size_ == 8 ? load_le<uint64_t>(table_, off) : load_le<uint32_t>(table_, off);
}

std::optional<RootEntries> root_entries(Bytes table) {
    const auto h = parse_sdt_header(table);
    if (!h) return std::nullopt;
    const Bytes own = table.first(h->length < table.size() ? h->length : table.size());
    if (h->signature == "XSDT") return RootEntries(own, 8);
    if (h->signature == "RSDT") return RootEntries(own, 4);
    return std::nullopt;
}

std::optional<SdtHeader> read_table_header(const PhysReader& reader, uint64_t phys, ErrorLog& log) {
    uint8_t raw[kSdtHeaderSize];
    if (phys == 0 || !reader.read(phys, raw, sizeof(raw))) {
        log.error("????", ErrorCode::Unreadable, 0, phys);
        return std::nullopt;
    }
    return parse_sdt_header(Bytes(raw, sizeof(raw)));
}

std::optional<Bytes> load_table(const PhysReader& reader, uint64_t phys, std::span<uint8_t> buffer,
                                std::string_view signature, ErrorLog& log) {
    const auto h = read_table_header(reader, phys, log);
    if (!h) return std::nullopt;
    const std::string_view sig = sig_of(*h);
    if (!header_fits(*h, signature, buffer.size(), ErrorCode::BufferTooSmall, phys, log))
        return std::nullopt;
    if (!reader.read(phys, buffer.data(), h->length)) {
        log.error(sig, ErrorCode::LengthBeyondMapping, 4, phys, h->length);
        return std::nullopt;
    }
    return validate_table(Bytes(buffer.data(), h->length), sig, log, phys);
}

std::optional<TableDirectory> TableDirectory::open(const PhysReader& reader, uint64_t rsdp_phys,
                                                   ErrorLog& log) {
    uint8_t raw[kRsdpV2Size];
    size_t got = 0;
    if (reader.read(rsdp_phys, raw, kRsdpV2Size))
        got = kRsdpV2Size;
    else if (reader.read(rsdp_phys, raw, kRsdpV1Size))
        got = kRsdpV1Size; // A revision-0 RSDP may end the readable region.
    if (got == 0) {
        log.error("RSD ", ErrorCode::Unreadable, 0, rsdp_phys);
        return std::nullopt;
    }
    // parse_rsdp reads bytes 20-35 only for revision >= 2, so what follows a 20-byte
    // revision-0 RSDP is never taken for an XSDT pointer.
    const auto rsdp = parse_rsdp(Bytes(raw, got), log, rsdp_phys);
    if (!rsdp || !rsdp->checksum_valid) return std::nullopt;

    TableDirectory dir;
    dir.reader_ = &reader;
    dir.rsdp_ = *rsdp;

    bool have_root = false;
    const bool xsdt_advertised = rsdp->revision >= 2;
    if (xsdt_advertised && rsdp->has_extended && rsdp->extended_checksum_valid &&
        rsdp->xsdt_address != 0) {
        const RootCheck c = check_root(reader, rsdp->xsdt_address, "XSDT", log);
        if (c.ok) {
            dir.kind_ = RootKind::Xsdt;
            dir.root_phys_ = rsdp->xsdt_address;
            dir.entries_ = (c.length - kSdtHeaderSize) / 8;
            have_root = true;
        }
    } else if (xsdt_advertised && rsdp->xsdt_address == 0) {
        log.error("XSDT", ErrorCode::NullEntry, 24, rsdp_phys);
    }
    if (!have_root) {
        if (xsdt_advertised) log.warn("XSDT", ErrorCode::RootFallback, 0, rsdp->xsdt_address);
        if (rsdp->rsdt_address == 0) {
            log.error("RSDT", ErrorCode::NullEntry, 16, rsdp_phys);
        } else {
            const RootCheck c = check_root(reader, rsdp->rsdt_address, "RSDT", log);
            if (c.ok) {
                dir.kind_ = RootKind::Rsdt;
                dir.root_phys_ = rsdp->rsdt_address;
                dir.entries_ = (c.length - kSdtHeaderSize) / 4;
                have_root = true;
            }
        }
    }
    if (!have_root) {
        log.error("RSD ", ErrorCode::NoRootTable, 0, rsdp_phys);
        return std::nullopt;
    }

    const std::string_view root_sig = dir.kind_ == RootKind::Xsdt ? "XSDT" : "RSDT";
    const size_t esize = dir.kind_ == RootKind::Xsdt ? 8 : 4;
    for (size_t i = 0; i < dir.entries_; ++i) {
        const uint32_t off = static_cast<uint32_t>(kSdtHeaderSize + i * esize);
        const uint64_t addr = dir.entry(i);
        uint8_t sig[4];
        if (addr == 0)
            log.error(root_sig, ErrorCode::NullEntry, off, dir.root_phys_);
        else if (!reader.read(addr, sig, sizeof(sig)))
            log.error(root_sig, ErrorCode::Unreadable, off, dir.root_phys_, addr);
    }
    return dir;
}

uint64_t TableDirectory::entry(size_t i) const {
    if (i >= entries_) return 0;
    const size_t esize = kind_ == RootKind::Xsdt ? 8 : 4;
    uint8_t raw[8] = {};
    if (!reader_->read(root_phys_ + kSdtHeaderSize + i * esize, raw, esize)) return 0;
    return esize == 8 ? load_le<uint64_t>(Bytes(raw, 8), 0) : load_le<uint32_t>(Bytes(raw, 4), 0);
}

std::optional<uint64_t> TableDirectory::find(std::string_view signature, size_t instance) const {
    for (size_t i = 0; i < entries_; ++i) {
        const uint64_t addr = entry(i);
        char sig[4];
        if (addr == 0 || !reader_->read(addr, sig, sizeof(sig))) continue;
        if (std::string_view(sig, 4) != signature) continue;
        if (instance == 0) return addr;
        --instance;
    }
    return std::nullopt;
}

size_t TableDirectory::count(std::string_view signature) const {
    size_t n = 0;
    while (find(signature, n))
        ++n;
    return n;
}

std::optional<Bytes> TableDirectory::load_first_valid(std::string_view signature,
                                                      std::span<uint8_t> buffer, ErrorLog& log,
                                                      uint64_t* phys_out) const {
    for (size_t n = 0;; ++n) {
        const auto addr = find(signature, n);
        if (!addr) return std::nullopt;
        if (auto table = load_table(*reader_, *addr, buffer, signature, log)) {
            if (phys_out) *phys_out = *addr;
            return table;
        }
    }
}

} // namespace cohort::acpi
