// SPDX-License-Identifier: MIT
// The typed requests of request.h: each validated once, where input enters.
#include <cenalloc/request.h>

#include <cerrno>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

Result<BufferName> BufferName::make(std::string_view name) {
    if (name.size() > kBufferNameMax)
        return Error(EINVAL, fmt::format("buffer name of {} bytes is longer than {}", name.size(), kBufferNameMax));
    return BufferName(std::string(name));
}

Result<SyncFlags> SyncFlags::make(uint32_t flags) {
    if (flags == 0 || (flags & ~kSyncReadWrite))
        return Error(EINVAL, fmt::format("sync flags {:#x}: need read and/or write and nothing else", flags));
    return SyncFlags(flags);
}

Result<AllocRequest> AllocRequest::make(AllocArgs args) {
    auto invalid = [&](std::string what) {
        return Error(EINVAL, fmt::format("allocating from heap '{}': {}", args.heap, what));
    };
    if (args.length == 0)
        return invalid("length is 0");
    auto aligned = alignUpChecked(args.length, kPageSize);
    if (!aligned)
        return invalid(fmt::format("length {} overflows when rounded up to a page", args.length));
    if (args.fdFlags & ~kValidFdFlags)
        return invalid(fmt::format("fd flags {:#o} include bits other than O_CLOEXEC and O_ACCMODE", args.fdFlags));
    return AllocRequest(std::move(args), *aligned);
}

Result<void> AllocRequest::checkHeap(const HeapProperties& heap) const {
    if (args_.heapFlags & ~heap.validHeapFlags)
        return Error(EINVAL, fmt::format("allocating from heap '{}': heap flags {:#x} are not defined by heap '{}'",
                                         args_.heap, args_.heapFlags, heap.name));
    return {};
}

} // namespace cenalloc
