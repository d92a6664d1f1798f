// SPDX-License-Identifier: MIT
// Simulated physical address ranges and the limits an allocation must meet.
#pragma once

#include <cstdint>
#include <vector>

#include <cenalloc/storage_types.h>

namespace cenalloc {

/// Where an allocation may be placed: every byte of it within [lowest, highest].
struct AddressLimit {
    uint64_t lowest = 0;
    uint64_t highest = UINT64_MAX; ///< inclusive, so a 32-bit mask is 0xffffffff

    bool admits(uint64_t base, uint64_t size) const {
        return size != 0 && base >= lowest && base <= highest && size - 1 <= highest - base;
    }
};

} // namespace cenalloc
