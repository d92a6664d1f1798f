// SPDX-License-Identifier: MIT
// Recognising /dev/dma_heap and its entries in the paths a program passes to libc.
#pragma once

#include <cstddef>
#include <string_view>

namespace cenalloc::shim {

/// The directory the kernel puts its heaps in.
inline constexpr std::string_view kHeapDir = "/dev/dma_heap";
/// Room for a normalised path (PATH_MAX).
inline constexpr size_t kPathMax = 4096;

/// What a path names, lexically.
struct HeapPath {
    enum class Kind {
        Other,     ///< anything else
        Directory, ///< /dev/dma_heap itself
        Entry,     ///< /dev/dma_heap/<name>
    };
    Kind kind = Kind::Other;
    /// Entry: the name, pointing into the caller's scratch buffer.
    std::string_view name;
    /// The path ended in '/' (an Entry then fails with ENOTDIR, as a device node would).
    bool trailingSlash = false;
};

/// Cheap first test, without allocating: only a path containing "dma_heap"
/// can name the heap directory or a heap, unless it is relative to a
/// directory fd that already is the heap directory.
bool mentionsHeapDir(const char* path);

/// Normalise the absolute path @p path lexically (collapse "//", drop ".",
/// resolve ".." against the preceding component, never above "/") into
/// @p scratch and classify it. Paths longer than @p scratchSize are Other.
/// Symbolic links are not followed: /dev/dma_heap is matched as spelled.
HeapPath classifyAbsolute(std::string_view path, char* scratch, size_t scratchSize);

/// Join @p base (absolute) and @p relative into @p scratch and classify
/// the result. Other when the result does not fit.
HeapPath classifyJoined(std::string_view base, std::string_view relative, char* scratch, size_t scratchSize);

} // namespace cenalloc::shim
