// SPDX-License-Identifier: MIT
// IOVA space allocator: size-aligned top-down ranges with per-size-class caches.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <cenalloc/result.h>

namespace cenalloc {

/// Free ranges of an IOVA space, in page frames, kept in a treap ordered by
/// start and augmented with the longest free range of each subtree, so the
/// top-down search skips every subtree that cannot hold the request.
///
/// Complexity (n = number of free ranges, expected, as a treap is balanced
/// in expectation): find O(log n) when the highest range long enough also
/// has a suitably aligned block (the common case; a range that is long enough
/// but only for a misaligned block costs one extra visit, as in Linux's
/// rbtree walk); take and give O(log n). Nodes live in a vector with a free
/// list, so steady-state operation allocates nothing.
///
/// Not thread-safe.
class IovaRangeTree {
public:
    /// Where a block was found: the free range holding it and the block start.
    struct Fit {
        int32_t node;
        uint64_t start;
    };

    /// The highest block of @p pages frames whose start is a multiple of
    /// @p alignPages (a power of two) and whose last frame is <= @p lastPfn.
    std::optional<Fit> findTopDown(uint64_t pages, uint64_t alignPages, uint64_t lastPfn) const;
    /// Remove the block [@p fit.start, + @p pages) found by findTopDown().
    void take(const Fit& fit, uint64_t pages);
    /// Return [@p start, + @p pages), merging with adjacent free ranges. The
    /// block must not overlap a free range (asserted).
    void give(uint64_t start, uint64_t pages);

    /// Number of disjoint free ranges.
    size_t rangeCount() const { return count_; }
    /// Length in frames of the longest free range.
    uint64_t longest() const { return root_ < 0 ? 0 : nodes_[root_].maxLen; }

private:
    struct Node {
        uint64_t start = 0;  // first free frame
        uint64_t end = 0;    // one past the last free frame
        uint64_t maxLen = 0; // longest range in this subtree
        uint32_t priority = 0;
        int32_t left = -1;
        int32_t right = -1;
    };

    int32_t newNode(uint64_t start, uint64_t end);
    void update(int32_t t);
    int32_t merge(int32_t a, int32_t b);
    void split(int32_t t, uint64_t key, int32_t& lo, int32_t& hi);
    int32_t insert(int32_t t, int32_t n);
    int32_t erase(int32_t t, uint64_t key);
    void modify(int32_t t, uint64_t key, uint64_t start, uint64_t end);
    int32_t search(int32_t t, uint64_t pages, uint64_t alignPages, uint64_t lastPfn, uint64_t& start) const;
    int32_t predecessor(uint64_t pfn) const; // node with the greatest start <= pfn
    int32_t successor(uint64_t pfn) const;   // node with the least start > pfn

    std::vector<Node> nodes_;
    std::vector<int32_t> freeNodes_;
    int32_t root_ = -1;
    size_t count_ = 0;
    uint32_t rng_ = 0x9e3779b9u; // xorshift state for treap priorities
};

/// Hands out I/O virtual address ranges of one IOMMU domain, in the manner of
/// Linux's drivers/iommu/iova.c as dma-iommu uses it:
///
/// - Sizes are rounded up to the granule (the IOMMU page). Sizes of up to
///   kCacheClasses classes (1, 2, 4, ... 32 pages: 128 KiB with 4 KiB pages)
///   are further rounded up to a power of two of pages, as
///   iommu_dma_alloc_iova() does, so that freed ranges can be recycled by
///   size class.
/// - Ranges are size-aligned: the start is a multiple of the size rounded up
///   to a power of two, capped at kMaxAlignment (4 MiB), the cap the ARM and
///   Android kernels put on IOVA alignment so large buffers do not waste the
///   aperture. Size alignment keeps segment boundaries of the device (e.g. a
///   64 KiB boundary mask) from cutting small mappings.
/// - Allocation is top-down: the highest fitting range below the limit, so
///   low IOVA (what devices with narrow masks need) is used last.
/// - Fast path: every size class has a per-class cache of recently freed
///   ranges ("rcache"): a loaded and a previous magazine of kMagazineSize
///   entries and a depot of up to kDepotMagazines full magazines. free()
///   pushes into it and allocate() pops from it in O(1) (a popped range must
///   satisfy the limit; the top entries are searched first).
/// - Slow path: IovaRangeTree, with frees coalescing with their neighbours.
/// - Exhaustion: the caches are flushed into the tree (coalescing) and the
///   search is retried once; then ENOMEM.
///
/// Accounting: usedBytes() counts what callers hold; ranges sitting in the
/// caches count as free (cachedBytes()), so usage returns to zero once every
/// range is freed.
///
/// Not thread-safe: the owning IommuDomain serialises calls.
class IovaAllocator {
public:
    static constexpr unsigned kCacheClasses = 6;          ///< 1..32 pages, as Linux's IOVA_RANGE_CACHE_MAX_SIZE
    static constexpr size_t kMagazineSize = 128;          ///< ranges per magazine (Linux IOVA_MAG_SIZE)
    static constexpr size_t kDepotMagazines = 8;          ///< full magazines kept per class beyond the two loaded
    static constexpr uint64_t kMaxAlignment = 4ull << 20; ///< cap on size alignment, in bytes

    /// The IOVA space [@p base, @p base + @p size), which may end at 2^64.
    /// @p granule is the IOMMU page size (a power of two); base and size are
    /// non-zero multiples of it (asserted: domains pass a validated platform).
    IovaAllocator(uint64_t base, uint64_t size, uint64_t granule);
    ~IovaAllocator();
    IovaAllocator(const IovaAllocator&) = delete;
    IovaAllocator& operator=(const IovaAllocator&) = delete;

    /// A range of reservedSize(@p size) bytes, aligned as described above,
    /// whose last byte is at or below @p limit (inclusive: a 32-bit dma_mask
    /// is 0xffffffff). Errors: EINVAL for a zero size; ENOMEM when nothing
    /// fits even after flushing the caches, with usedBytes() unchanged.
    Result<uint64_t> allocate(uint64_t size, uint64_t limit = UINT64_MAX);

    /// Give back a range from allocate(); @p size is the size that was
    /// requested (or its reservedSize()). O(1) for cached size classes.
    void free(uint64_t iova, uint64_t size);

    /// Return every cached range to the tree, coalescing.
    void flushCaches();

    /// The number of bytes allocate(@p size) reserves (0 for 0 or on overflow).
    uint64_t reservedSize(uint64_t size) const;
    /// Bytes of the space at or below @p limit (the most one range can span).
    uint64_t windowBytes(uint64_t limit) const;

    uint64_t base() const { return basePfn_ * granule_; }
    /// Size of the space in bytes (saturating at 2^64 - 1).
    uint64_t size() const;
    uint64_t granule() const { return granule_; }
    /// Bytes held by callers (cached ranges excluded).
    uint64_t usedBytes() const { return usedPages_ * granule_; }
    /// Bytes of freed ranges waiting in the size-class caches.
    uint64_t cachedBytes() const { return cachedPages_ * granule_; }
    /// Bytes free in the tree (cached ranges excluded).
    uint64_t freeBytes() const { return (endPfn_ - basePfn_ - usedPages_ - cachedPages_) * granule_; }
    /// Number of disjoint free ranges in the tree.
    size_t freeRangeCount() const { return tree_.rangeCount(); }
    /// Longest free range in the tree, in bytes.
    uint64_t largestFree() const { return tree_.longest() * granule_; }

private:
    struct Magazine {
        size_t count = 0;
        std::array<uint64_t, kMagazineSize> pfns;
    };
    struct SizeClass {
        std::unique_ptr<Magazine> loaded;
        std::unique_ptr<Magazine> previous;
        std::vector<std::unique_ptr<Magazine>> depot;
    };

    /// Pages a request of @p size occupies, or 0 when it cannot be expressed.
    uint64_t pagesFor(uint64_t size) const;
    bool cachePop(unsigned cls, uint64_t pages, uint64_t lastPfn, uint64_t& pfn);
    void cachePush(unsigned cls, uint64_t pages, uint64_t pfn);
    void drainMagazine(Magazine& mag, uint64_t pages);
    std::unique_ptr<Magazine> takeMagazine();

    uint64_t granule_;
    unsigned granuleShift_;
    uint64_t basePfn_;
    uint64_t endPfn_; // one past the last frame
    uint64_t usedPages_ = 0;
    uint64_t cachedPages_ = 0;
    IovaRangeTree tree_;
    std::array<SizeClass, kCacheClasses> classes_;
    std::vector<std::unique_ptr<Magazine>> spares_; // empty magazines for reuse
};

} // namespace cenalloc
