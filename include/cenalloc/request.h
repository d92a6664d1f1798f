// SPDX-License-Identifier: MIT
// Typed requests: a buffer name, sync flags and a heap allocation, each validated once where input enters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <string>
#include <string_view>

#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// DMA_BUF_NAME_LEN: names are at most 31 bytes plus the terminator.
inline constexpr size_t kBufferNameMax = 31;

/// The fd flags of an allocation that does not say: read-write and
/// close-on-exec, what dma-heap users put in DMA_HEAP_IOCTL_ALLOC's fd_flags.
inline constexpr uint32_t kDefaultFdFlags = O_RDWR | O_CLOEXEC;
/// Kernel dma-heap: the fd flags an allocation may carry.
inline constexpr uint32_t kValidFdFlags = O_CLOEXEC | O_ACCMODE;

/// CPU access directions, with the values of DMA_BUF_SYNC_READ/WRITE.
inline constexpr uint32_t kSyncRead = 1;
inline constexpr uint32_t kSyncWrite = 2;
inline constexpr uint32_t kSyncReadWrite = 3;

// Each type below is made by its make() where input enters cenalloc (the
// C API, the wire decoder, Session and Context's convenience overloads) and
// is passed down as that type: whoever holds one knows it is valid, so no
// lower layer checks it again.

/// A buffer name as DMA_BUF_SET_NAME takes it: at most kBufferNameMax bytes.
class CENALLOC_EXPORT BufferName {
public:
    /// The empty name.
    BufferName() = default;
    /// Errors: EINVAL for a name longer than kBufferNameMax bytes.
    static Result<BufferName> make(std::string_view name);

    const std::string& str() const { return name_; }
    bool empty() const { return name_.empty(); }
    bool operator==(const BufferName&) const = default;

private:
    explicit BufferName(std::string name) : name_(std::move(name)) {}
    std::string name_;
};

/// The flags of DMA_BUF_IOCTL_SYNC START/END: read and/or write, at least
/// one, nothing else.
class CENALLOC_EXPORT SyncFlags {
public:
    /// Errors: EINVAL for no direction or any other bit.
    static Result<SyncFlags> make(uint32_t flags);

    uint32_t bits() const { return bits_; }
    bool reads() const { return bits_ & kSyncRead; }
    bool writes() const { return bits_ & kSyncWrite; }
    bool operator==(const SyncFlags&) const = default;

private:
    explicit SyncFlags(uint32_t bits) : bits_(bits) {}
    uint32_t bits_ = kSyncRead;
};

/// DMA_HEAP_IOCTL_ALLOC's arguments, as a caller gives them.
struct AllocArgs {
    std::string heap;
    uint64_t length = 0;
    uint32_t fdFlags = kDefaultFdFlags;
    uint64_t heapFlags = 0;
};

/// An allocation request validated with the kernel dma-heap's rules: a
/// non-zero length that does not overflow when page-aligned, fd flags within
/// O_CLOEXEC|O_ACCMODE. The heap flags can be checked only against the heap
/// they are for: checkHeap() does, where the heap is found.
class CENALLOC_EXPORT AllocRequest {
public:
    /// Errors: EINVAL for a zero length, a length that overflows when
    /// rounded up to a page, fd flags outside O_CLOEXEC|O_ACCMODE.
    static Result<AllocRequest> make(AllocArgs args);
    static Result<AllocRequest> make(std::string_view heap, uint64_t length, uint32_t fdFlags = kDefaultFdFlags,
                                     uint64_t heapFlags = 0) {
        return make(AllocArgs{std::string(heap), length, fdFlags, heapFlags});
    }

    /// What the caller asked, as it asked it (the wire carries these).
    const AllocArgs& args() const { return args_; }
    const std::string& heap() const { return args_.heap; }
    uint64_t length() const { return args_.length; }
    uint32_t fdFlags() const { return args_.fdFlags; }
    uint64_t heapFlags() const { return args_.heapFlags; }
    /// The length rounded up to a page: the buffer's size.
    uint64_t alignedLength() const { return aligned_; }
    /// O_RDONLY, O_WRONLY or O_RDWR (or all of O_ACCMODE, which the kernel
    /// accepts as read-write).
    uint32_t accessMode() const { return args_.fdFlags & 03; }

    /// The heap flags are ones @p heap defines. Errors: EINVAL naming the
    /// heap.
    Result<void> checkHeap(const HeapProperties& heap) const;

private:
    AllocRequest(AllocArgs args, uint64_t aligned) : args_(std::move(args)), aligned_(aligned) {}
    AllocArgs args_;
    uint64_t aligned_ = 0;
};

} // namespace cenalloc
