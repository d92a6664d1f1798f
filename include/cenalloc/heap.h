// SPDX-License-Identifier: MIT
// Heaps: named allocators of backing storage with declared properties and statistics.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/storage_types.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

enum class HeapKind {
    System,   ///< pages from general memory, scattered
    Cma,      ///< a contiguous pool (reusable reserved memory)
    Carveout, ///< memory reserved for devices only
    /// A dma-heap of the host kernel (/dev/dma_heap/<name>): real dma-bufs
    /// whose pages the kernel does not show, so no modelled device can be
    /// matched against it or map it. Allocated from by name only.
    Kernel,
};

CENALLOC_EXPORT const char* heapKindName(HeapKind kind);

/// How a heap relates to the host kernel's dma-heaps (/dev/dma_heap/*)
/// when a Context places the model on them (ContextOptions::placeKernelHeaps).
enum class KernelPlacement {
    /// A heap of the model only: cenalloc allocates its storage (memfds and
    /// modelled chunks). Every heap when nothing is placed.
    Modelled,
    /// A heap of the model that stands for the host kernel's heap of the
    /// same name: placement reasoning from the model, storage (real
    /// dma-bufs) from the kernel.
    Placed,
    /// A heap of the model the host kernel does not expose: never chosen
    /// on the host (Refusal::NotInHostKernel).
    NotInKernel,
    /// A host kernel heap that matches no heap of the model ("kernel:<n>"):
    /// usable by name, never chosen (Refusal::HostKernel).
    Unplaced,
    /// A second host kernel node of the memory a placed heap stands for
    /// ("kernel:<n>", with the placed heap's properties): from Linux 6.17
    /// cma_heap.c registers the default CMA area as "default_cma_region"
    /// and, with CONFIG_DMABUF_HEAPS_CMA_LEGACY, under its legacy name too.
    /// Usable by name, never chosen (Refusal::KernelAlias): the placed heap
    /// is.
    Alias,
};

/// "modelled", "placed", "not-in-kernel", "unplaced", "alias".
CENALLOC_EXPORT const char* kernelPlacementName(KernelPlacement placement);

/// What a heap promises about every buffer it hands out. Matching a device
/// against a heap uses only these (see alloc/match).
struct HeapProperties {
    std::string name;
    HeapKind kind = HeapKind::System;
    std::string description;
    /// Every chunk lies in [lowestAddress, highestAddress].
    uint64_t lowestAddress = 0;
    uint64_t highestAddress = UINT64_MAX;
    /// Every buffer is one physically contiguous chunk.
    bool contiguous = false;
    /// CPU mappings are cached (false: write-combined/uncached).
    bool cached = true;
    /// Largest and smallest chunk the heap produces.
    uint64_t maxChunkSize = 4096;
    uint64_t minChunkSize = 4096;
    /// Alignment of every chunk's start address.
    uint64_t chunkAlignment = 4096;
    /// Kinds of memory the heap's storage is (see DmaConstraints::accessBits).
    uint64_t accessBits = kAllAccess;
    /// Bytes the heap can hand out in total.
    uint64_t capacity = 0;
    /// Heap flags this heap defines; any other bit is EINVAL (the kernel
    /// defines none today).
    uint64_t validHeapFlags = 0;
    /// The devices whose private pool this is (a reserved region they name
    /// in `memory-region`): it serves sets of these devices only, and is
    /// allocated from by their drivers, not through a /dev/dma_heap node.
    /// Empty: a heap for any device.
    std::vector<std::string> owners{};
    /// An allocation can be asked to stay below an address
    /// (StorageLimits::highestAddress), as cenalloc's own heaps can. A heap
    /// that stands for a board kernel's /dev/dma_heap node cannot: the
    /// kernel's system and CMA heaps take no address limit (system_heap.c
    /// allocates GFP_HIGHUSER pages from any zone), so a device must reach
    /// all of its memory, or its driver would bounce the buffer through
    /// swiotlb instead of sharing it.
    bool honoursAddressLimit = true;
    /// How the heap relates to the host kernel's heaps (see KernelPlacement).
    KernelPlacement kernelPlacement = KernelPlacement::Modelled;
    /// The host kernel heap's node name in /dev/dma_heap ("system",
    /// "linux,cma@50000000", "default_cma_region") for a placed, unplaced or
    /// alias heap; empty
    /// for a heap of the model only.
    std::string kernelHeap{};

    /// The kernel makes this heap's storage: a real dma-buf whose pages the
    /// model does not hold (a HeapKind::Kernel heap, or a placed one).
    bool inHostKernel() const { return kind == HeapKind::Kernel || !kernelHeap.empty(); }
};

/// Live statistics of one heap.
struct HeapStats {
    uint64_t liveBuffers = 0;
    uint64_t liveBytes = 0;
    /// Highest liveBytes since creation or the last resetWatermark().
    uint64_t watermarkBytes = 0;
    uint64_t failedAllocations = 0;
    uint64_t totalAllocations = 0;
};

/// What the storage of one allocation must meet beyond the heap's own
/// properties: the attached devices' address limit and alignment.
struct StorageLimits {
    uint64_t highestAddress = UINT64_MAX; ///< inclusive
    uint64_t alignment = 4096;
    /// Largest chunk wanted (a device that takes at most N-byte segments
    /// without an IOMMU gains nothing from bigger ones). 0 = heap's choice.
    uint64_t maxChunkSize = 0;
};

class Heap;

/// The storage of one buffer, returned to its heap when the Storage is
/// destroyed: chunks of the modelled physical memory, or (HeapKind::Kernel)
/// a real dma-buf the host kernel made, whose chunks are unknown. Move-only.
///
/// Ownership: keeps its heap alive (shared_ptr); owns the dma-buf fd until
/// takeDmaBuf().
class CENALLOC_EXPORT Storage {
public:
    Storage() = default;
    Storage(std::shared_ptr<Heap> heap, std::vector<PhysChunk> chunks, uint64_t size, UniqueFd dmaBuf = {});
    /// Takes @p other's chunks; @p other is left empty with size 0.
    Storage(Storage&& other) noexcept;
    Storage& operator=(Storage&& other) noexcept;
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() { reset(); }

    bool empty() const { return heap_ == nullptr; }
    const std::vector<PhysChunk>& chunks() const { return chunks_; }
    /// Bytes of storage (page-aligned length of the buffer).
    uint64_t size() const { return size_; }
    Heap* heap() const { return heap_.get(); }
    /// The host kernel made this storage: its bytes are a real dma-buf and
    /// where its pages lie is unknown (chunks() is empty).
    bool inHostKernel() const;
    /// The real dma-buf's fd, for the buffer to own (invalid afterwards and
    /// for modelled storage). The storage still counts in its heap's
    /// statistics until reset().
    UniqueFd takeDmaBuf() { return std::move(dmaBuf_); }
    /// Give the chunks back to the heap now.
    void reset();

private:
    std::shared_ptr<Heap> heap_;
    std::vector<PhysChunk> chunks_;
    uint64_t size_ = 0;
    UniqueFd dmaBuf_;
};

/// A named allocator of backing storage (the exporter side of a dma-heap).
///
/// Ops a backend implements:
///  - allocateBacking (mandatory): storage for exactly @p length bytes that
///    meets the heap's properties and @p limits: chunks of the modelled
///    memory, or for a HeapKind::Kernel heap a real dma-buf and no chunks.
///    @p length is non-zero and page-aligned: the caller validated it
///    (allocation requests are validated once, at the boundary, never again
///    in a backend). On failure nothing may remain allocated; ENOMEM for
///    exhaustion.
///  - freeChunks (mandatory): take back chunks allocateBacking returned (a
///    kernel heap's dma-buf is freed by the kernel when its last fd closes).
/// Both may be called concurrently; a backend serialises its own state.
///
/// Thread safety: all public methods are safe to call concurrently.
class CENALLOC_EXPORT Heap : public std::enable_shared_from_this<Heap> {
public:
    explicit Heap(HeapProperties properties) : properties_(std::move(properties)) {}
    virtual ~Heap() = default;
    Heap(const Heap&) = delete;
    Heap& operator=(const Heap&) = delete;

    const HeapProperties& properties() const { return properties_; }
    const std::string& name() const { return properties_.name; }

    /// Storage for @p length bytes (non-zero, page-aligned). Updates the
    /// statistics; a failure counts in failedAllocations and changes nothing
    /// else. Errors: ENOMEM (exhausted or no memory inside @p limits).
    Result<Storage> allocate(uint64_t length, const StorageLimits& limits = {});

    HeapStats stats() const;
    void resetWatermark();
    /// Bytes still free in the heap's memory (shared with other heaps for the
    /// system heaps).
    virtual uint64_t freeBytes() const = 0;

protected:
    /// What allocateBacking hands out.
    struct Backing {
        std::vector<PhysChunk> chunks;
        UniqueFd dmaBuf; ///< HeapKind::Kernel only
    };
    virtual Result<Backing> allocateBacking(uint64_t length, const StorageLimits& limits) = 0;
    virtual void freeChunks(std::span<const PhysChunk> chunks) = 0;
    /// Storage of @p chunks (@p size bytes in all) that the backend set
    /// aside itself rather than in allocateBacking (a contiguous heap's
    /// window cleared by moving buffers out of it), counted in the
    /// statistics as an allocation.
    CENALLOC_NO_EXPORT Storage adoptChunks(std::vector<PhysChunk> chunks, uint64_t size);

private:
    friend class Storage;
    CENALLOC_NO_EXPORT void release(std::span<const PhysChunk> chunks, uint64_t size);
    CENALLOC_NO_EXPORT Storage countAllocation(std::vector<PhysChunk> chunks, uint64_t size, UniqueFd dmaBuf);

    HeapProperties properties_;
    mutable std::mutex statsMutex_;
    HeapStats stats_; // guarded by statsMutex_
};

} // namespace cenalloc
