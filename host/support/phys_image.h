// Host PhysReader over byte buffers placed at chosen "physical" addresses.
#pragma once

#include "acpi/phys.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

namespace cohort::host {

/// Fake physical memory: regions of bytes at fixed addresses; everything else is unreadable.
/// A read may span adjacent regions but fails if any byte falls in a hole.
class PhysImage final : public acpi::PhysReader {
  public:
    /// Places `bytes` at `phys`. Returns false if it would overlap an existing region with
    /// different contents (identical overlapping bytes are accepted, as when two table dumps
    /// came from overlapping firmware memory).
    bool add(uint64_t phys, std::vector<uint8_t> bytes);

    bool read(uint64_t phys, void* dst, size_t len) const override;

  private:
    std::map<uint64_t, std::vector<uint8_t>> regions_;
};

inline bool PhysImage::add(uint64_t phys, std::vector<uint8_t> bytes) {
    if (bytes.empty()) return true;
    if (phys + bytes.size() < phys) return false;
    // Overlap is allowed only where the bytes agree, so reads never depend on which region
    // they are served from.
    for (size_t i = 0; i < bytes.size(); ++i) {
        uint8_t b;
        if (read(phys + i, &b, 1) && b != bytes[i]) return false;
    }
    auto& slot = regions_[phys];
    if (slot.size() < bytes.size()) slot = std::move(bytes);
    return true;
}

inline bool PhysImage::read(uint64_t phys, void* dst, size_t len) const {
    auto* out = static_cast<uint8_t*>(dst);
    while (len > 0) {
        // The region starting at or below phys that extends furthest past it.
        const uint8_t* src = nullptr;
        size_t avail = 0;
        for (auto it = regions_.begin(); it != regions_.end() && it->first <= phys; ++it) {
            const uint64_t end = it->first + it->second.size();
            if (end > phys && end - phys > avail) {
                avail = static_cast<size_t>(end - phys);
                src = it->second.data() + (phys - it->first);
            }
        }
        if (!src) return false;
        const size_t n = len < avail ? len : avail;
        std::memcpy(out, src, n);
        out += n;
        phys += n;
        len -= n;
    }
    return true;
}

} // namespace cohort::host
