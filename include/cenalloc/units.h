// SPDX-License-Identifier: MIT
// Sizes: parsing "64K"/"0x1000", printing "1 MiB", overflow-checked alignment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <cenalloc/export.h>
#include <cenalloc/result.h>

namespace cenalloc {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;
inline constexpr uint64_t kPageSize = 4096;

/// Parse "4096", "0x1000", "64K", "256M", "4G", "1T" (suffixes are binary and
/// case-insensitive; "KiB"/"MiB"/"GiB" also accepted). Errors: EINVAL for
/// anything else, ERANGE when the value does not fit in 64 bits.
CENALLOC_EXPORT Result<uint64_t> parseSize(std::string_view text);

/// "4 KiB", "1.5 MiB", "0 B": for people, not for parsing.
CENALLOC_EXPORT std::string formatSize(uint64_t bytes);

/// "0x0000000040000000": fixed-width hex for addresses.
CENALLOC_EXPORT std::string formatAddress(uint64_t address);

/// @p value rounded up to a multiple of @p align (a power of two), or nullopt
/// when that overflows.
constexpr std::optional<uint64_t> alignUpChecked(uint64_t value, uint64_t align) {
    uint64_t mask = align - 1;
    if (value > UINT64_MAX - mask)
        return std::nullopt;
    return (value + mask) & ~mask;
}

constexpr bool isPowerOfTwo(uint64_t v) {
    return v != 0 && (v & (v - 1)) == 0;
}

/// A DMA mask read as an inclusive address limit: DMA_BIT_MASK(n) (2^n-1,
/// all 64 bits included), or a bus window's last byte that ends a page
/// (0xbfffffff for a 3 GiB window; Linux's bus_dma_limit).
constexpr bool isAddressLimit(uint64_t mask) {
    return mask == UINT64_MAX || isPowerOfTwo(mask + 1) || (mask & 0xfff) == 0xfff;
}

/// Number of address bits a mask covers: 0xffffffff -> 32; 0 -> 0.
CENALLOC_EXPORT int maskBits(uint64_t mask);

} // namespace cenalloc
