#include "acpi/subtable.h"

namespace cohort::acpi {

bool SubtableWalker::next(Subtable& out) {
    if (failed_ || offset_ >= table_.size()) return false;
    const uint32_t off = static_cast<uint32_t>(offset_);
    uint8_t type = 0;
    uint8_t length = 0;
    if (!read_le(table_, offset_, type) || !read_le(table_, offset_ + 1, length)) {
        // A lone trailing byte: not even room for the length field.
        failed_ = true;
        if (log_) log_->error(signature_, ErrorCode::SubtablePastEnd, off, phys_, 2);
        return false;
    }
    if (length < 2) {
        failed_ = true;
        if (log_) log_->error(signature_, ErrorCode::SubtableZeroLength, off, phys_, length);
        return false;
    }
    if (length > table_.size() - offset_) {
        failed_ = true;
        if (log_) log_->error(signature_, ErrorCode::SubtablePastEnd, off, phys_, length);
        return false;
    }
    out.type = type;
    out.length = length;
    out.offset = off;
    out.bytes = table_.subspan(offset_, length);
    offset_ += length;
    return true;
}

} // namespace cohort::acpi
