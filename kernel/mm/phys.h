// Physical <-> virtual through the direct map.
#pragma once

#include <cstdint>

#include "mm/layout.h"

namespace cohort {

template <typename T = void>
inline T* phys_to_virt(uint64_t phys) {
    return reinterpret_cast<T*>(layout::kDirectMapBase + phys);
}

inline uint64_t direct_map_virt_to_phys(const void* p) {
    return reinterpret_cast<uint64_t>(p) - layout::kDirectMapBase;
}

/// Physical address of a kernel-image symbol (the image is linked at -2 GiB, loaded at 0).
inline uint64_t kernel_image_virt_to_phys(const void* p) {
    return reinterpret_cast<uint64_t>(p) - layout::kKernelImageBase;
}

} // namespace cohort
