// SPDX-License-Identifier: MIT
// IOMMU domains: IOVA space, page table and the shared mapping cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/storage_types.h>

#include "iommu/iova_allocator.h"
#include "iommu/page_table.h"

namespace cenalloc {

/// A buffer's storage mapped into one contiguous IOVA range of a domain.
/// Immutable while it lives.
struct IovaMapping {
    uint64_t bufferId = 0;
    uint64_t iova = 0;     ///< first IOVA; page-aligned and size-aligned (see IovaAllocator)
    uint64_t size = 0;     ///< bytes mapped: the sum of the chunk sizes
    uint64_t iovaSize = 0; ///< IOVA bytes reserved (size rounded as IovaAllocator does)
    uint64_t end() const { return iova + size; }
};

/// One IOMMU's address space, shared by every device behind that IOMMU: an
/// IOVA allocator, a page table and a cache of buffer mappings.
///
/// Mapping cache: mapBuffer() of a buffer that already has a mapping in the
/// domain whose range the caller's limit admits is a hit and returns that
/// mapping (so devices in one domain share it); otherwise it maps the
/// buffer's chunks into a new IOVA range (a miss). Mappings are counted by
/// use: a MappingRef holds one use; when the last use ends the mapping stays
/// mapped, cached, and becomes evictable. Cached mappings are evicted least
/// recently used first (by the time their last use ended) when IOVA runs out,
/// never while in use, and destroyed by releaseBuffer().
///
/// Thread safety: every public function may be called from any thread. One
/// mutex guards the allocator, the page table, the cache and the counters; a
/// hit holds it for a hash lookup and a list splice.
class IommuDomain {
    struct Entry;

public:
    /// One use of a cached mapping; ending it (destruction or reset()) leaves
    /// the mapping cached. Move-only.
    ///
    /// Ownership: borrows the domain, which must outlive every MappingRef.
    class MappingRef {
    public:
        MappingRef() = default;
        MappingRef(MappingRef&& other) noexcept : domain_(other.domain_), entry_(other.entry_) {
            other.domain_ = nullptr;
            other.entry_ = nullptr;
        }
        MappingRef& operator=(MappingRef&& other) noexcept;
        MappingRef(const MappingRef&) = delete;
        MappingRef& operator=(const MappingRef&) = delete;
        ~MappingRef() { reset(); }

        explicit operator bool() const { return entry_ != nullptr; }
        const IovaMapping& operator*() const { return entry_->mapping; }
        const IovaMapping* operator->() const { return &entry_->mapping; }
        /// The domain the mapping lives in, or nullptr when empty.
        IommuDomain* domain() const { return domain_; }
        /// End this use now; the ref becomes empty.
        void reset();

    private:
        friend class IommuDomain;
        MappingRef(IommuDomain* domain, Entry* entry) : domain_(domain), entry_(entry) {}

        IommuDomain* domain_ = nullptr;
        Entry* entry_ = nullptr;
    };

    /// The domain of @p iommu, which must have passed validatePlatform()
    /// (page size a power of two, aperture page-aligned and non-empty).
    explicit IommuDomain(const Iommu& iommu);
    /// Every MappingRef must have ended (asserted).
    ~IommuDomain();
    IommuDomain(const IommuDomain&) = delete;
    IommuDomain& operator=(const IommuDomain&) = delete;

    const std::string& name() const { return name_; }
    uint64_t pageSize() const { return pageTable_.pageSize(); }
    uint64_t apertureBase() const { return iova_.base(); }
    uint64_t apertureSize() const { return iova_.size(); }

    /// Map buffer @p bufferId, whose storage is @p chunks (in buffer order,
    /// each page-aligned), into one contiguous IOVA range whose last byte is
    /// at or below @p iovaLimit (the device's dma_mask), or reuse a cached
    /// mapping of it that meets the limit. On a miss with the IOVA space
    /// full, unused cached mappings that could make room are evicted (least
    /// recently used first) until the range fits; evicted mappings stay
    /// evicted even if the map still fails (they were only cache).
    ///
    /// The caller promises that a buffer id names the same storage until
    /// releaseBuffer(): storage that moves must be released first.
    ///
    /// Errors: EINVAL for no chunks or a chunk that is empty or not aligned to
    /// the IOMMU page; ENOMEM when no IOVA range fits (a request larger than
    /// the aperture below the limit fails without evicting anything). On
    /// error nothing is mapped and no IOVA is held.
    Result<MappingRef> mapBuffer(uint64_t bufferId, std::span<const PhysChunk> chunks, uint64_t iovaLimit);

    /// The buffer is gone or its storage is moving: destroy its cached
    /// mappings. A mapping still in use is a caller bug (a device would DMA
    /// to freed memory); it is not yanked from under its user but detached
    /// from the buffer ("orphaned": never a hit again) and destroyed when its
    /// last use ends. Returns the number of mappings orphaned, for the caller
    /// to report; 0 when the caller is correct.
    size_t releaseBuffer(uint64_t bufferId);

    /// The physical address of @p iova. Errors: EFAULT when it is not mapped.
    /// Does not count a fault: the caller decides (recordFault()).
    Result<uint64_t> translate(uint64_t iova) const;
    /// The physical address of @p iova and the bytes that stay physically
    /// contiguous from there. Errors: EFAULT when it is not mapped.
    Result<PhysChunk> translateRun(uint64_t iova) const;
    /// Count a DMA fault against the domain (unmapped address, beyond a
    /// segment, wrong direction: the DMA model decides what faulted).
    void recordFault();

    IommuDomainStats stats() const;
    /// Every live mapping, ordered by IOVA.
    std::vector<IommuMappingInfo> mappings() const;

private:
    struct Entry {
        IovaMapping mapping;
        uint32_t useCount = 0;
        bool indexed = true;           // reachable from byBuffer_; false once its buffer was released
        size_t chunkCount = 0;         // what it was mapped from, to catch a caller breaking
        uint64_t firstChunk = 0;       // the "same storage" promise (checked by assert)
        Entry* nextOfBuffer = nullptr; // the next mapping of the same buffer (other limits)
        std::list<Entry>::iterator self;
    };

    void unuse(Entry* entry);
    /// Unmap, free the IOVA and forget @p entry, which is an element of @p owner.
    void destroy(Entry& entry, std::list<Entry>& owner);
    void unlink(Entry& entry);

    const std::string name_;

    mutable std::mutex mutex_;
    // Everything below is guarded by mutex_.
    IovaAllocator iova_;
    IoPageTable pageTable_;
    std::list<Entry> inUse_;                        // mappings with useCount > 0
    std::list<Entry> idle_;                         // cached mappings with useCount == 0; front = most recently used
    std::unordered_map<uint64_t, Entry*> byBuffer_; // buffer id -> its first mapping
    uint64_t hits_ = 0;
    uint64_t misses_ = 0;
    uint64_t evictions_ = 0;
    uint64_t faults_ = 0;
};

/// The domains of a platform: one per IOMMU, so devices naming the same IOMMU
/// share one domain. Domains are heap-allocated: their addresses are stable
/// for the life of the IommuDomains.
class IommuDomains {
public:
    IommuDomains() = default;
    /// One domain per IOMMU of @p platform (which passed validatePlatform()).
    explicit IommuDomains(const Platform& platform);

    /// The domain of the IOMMU named @p iommuName, or nullptr.
    IommuDomain* find(std::string_view iommuName) const;
    /// The domain @p device sits behind, or nullptr when it has no IOMMU.
    IommuDomain* forDevice(const Device& device) const;
    /// All domains, in platform order.
    const std::vector<std::unique_ptr<IommuDomain>>& all() const { return domains_; }

private:
    std::vector<std::unique_ptr<IommuDomain>> domains_;
};

} // namespace cenalloc
