// SPDX-License-Identifier: MIT
// Allocation request validation with the kernel dma-heap's rules.
#include "heaps/heap_request.h"

#include <cerrno>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

Result<uint64_t> validateHeapRequest(const HeapProperties& heap, uint64_t length, uint32_t fdFlags,
                                     uint64_t heapFlags) {
    if (length == 0)
        return Error(EINVAL, "length is 0");
    auto aligned = alignUpChecked(length, kPageSize);
    if (!aligned)
        return Error(EINVAL, fmt::format("length {} overflows when rounded up to a page", length));
    if (fdFlags & ~kValidFdFlags)
        return Error(EINVAL, fmt::format("fd flags {:#o} include bits other than O_CLOEXEC and O_ACCMODE", fdFlags));
    if (heapFlags & ~heap.validHeapFlags)
        return Error(EINVAL, fmt::format("heap flags {:#x} are not defined by heap '{}'", heapFlags, heap.name));
    return *aligned;
}

} // namespace cenalloc
