// Walking the type/length-prefixed subtables that follow the fixed part of the MADT and SRAT,
// and fixed-capacity output arrays in caller storage.
#pragma once

#include "acpi/bytes.h"
#include "acpi/error.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cohort::acpi {

/// One subtable: its type, its declared length and exactly its bytes.
struct Subtable {
    uint8_t type;
    uint8_t length;
    uint32_t offset; ///< From the start of the table.
    Bytes bytes;     ///< `length` bytes, starting with the type byte.
};

/// Iterates subtables from `first` to the end of `table`. The walk stops, logging once, at a
/// subtable whose length is below 2 (a length of 0 would otherwise loop forever) or that runs
/// past the end; everything before that point has been returned. Unknown types are returned
/// like any other: skipping them is the caller's decision, made by length.
class SubtableWalker {
  public:
    SubtableWalker(Bytes table, size_t first, std::string_view signature, ErrorLog* log,
                   uint64_t phys = 0)
        : table_(table), offset_(first), signature_(signature), log_(log), phys_(phys) {}

    /// Stores the next subtable in `out`; false at the end of the table or after a malformed
    /// subtable (see failed()).
    bool next(Subtable& out);

    /// True if the walk stopped early on a malformed subtable.
    bool failed() const { return failed_; }

  private:
    Bytes table_;
    size_t offset_;
    std::string_view signature_;
    ErrorLog* log_;
    uint64_t phys_;
    bool failed_ = false;
};

/// Appends to caller-provided storage; once full, further items are counted, not stored.
template <typename T>
class OutputArray {
  public:
    OutputArray() = default;
    explicit OutputArray(std::span<T> storage) : storage_(storage) {}

    /// False (and counted as dropped) when the storage is full.
    bool push(const T& item) {
        ++total_;
        if (size_ >= storage_.size()) return false;
        storage_[size_++] = item;
        return true;
    }
    std::span<const T> items() const { return storage_.first(size_); }
    std::span<T> items() { return storage_.first(size_); }
    size_t size() const { return size_; }
    /// Items offered, stored or not.
    size_t total() const { return total_; }
    size_t dropped() const { return total_ - size_; }
    bool truncated() const { return total_ != size_; }

  private:
    std::span<T> storage_;
    size_t size_ = 0;
    size_t total_ = 0;
};

} // namespace cohort::acpi
