// SPDX-License-Identifier: MIT
// IOVA space allocator: size-aligned top-down ranges with per-size-class caches.
#include "iommu/iova_allocator.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

// ---- IovaRangeTree -------------------------------------------------------

int32_t IovaRangeTree::newNode(uint64_t start, uint64_t end) {
    // xorshift32: priorities only need to be unpredictable relative to the
    // insertion order, not random in any stronger sense.
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    int32_t n;
    if (!freeNodes_.empty()) {
        n = freeNodes_.back();
        freeNodes_.pop_back();
    } else {
        n = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
    }
    nodes_[n] = Node{start, end, end - start, rng_, -1, -1};
    return n;
}

void IovaRangeTree::update(int32_t t) {
    Node& n = nodes_[t];
    uint64_t m = n.end - n.start;
    if (n.left >= 0)
        m = std::max(m, nodes_[n.left].maxLen);
    if (n.right >= 0)
        m = std::max(m, nodes_[n.right].maxLen);
    n.maxLen = m;
}

int32_t IovaRangeTree::merge(int32_t a, int32_t b) {
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    if (nodes_[a].priority > nodes_[b].priority) {
        nodes_[a].right = merge(nodes_[a].right, b);
        update(a);
        return a;
    }
    nodes_[b].left = merge(a, nodes_[b].left);
    update(b);
    return b;
}

void IovaRangeTree::split(int32_t t, uint64_t key, int32_t& lo, int32_t& hi) {
    if (t < 0) {
        lo = hi = -1;
        return;
    }
    if (nodes_[t].start < key) {
        int32_t right = nodes_[t].right;
        split(right, key, nodes_[t].right, hi);
        lo = t;
    } else {
        int32_t left = nodes_[t].left;
        split(left, key, lo, nodes_[t].left);
        hi = t;
    }
    update(t);
}

int32_t IovaRangeTree::insert(int32_t t, int32_t n) {
    if (t < 0)
        return n;
    if (nodes_[n].priority > nodes_[t].priority) {
        split(t, nodes_[n].start, nodes_[n].left, nodes_[n].right);
        update(n);
        return n;
    }
    if (nodes_[n].start < nodes_[t].start) {
        int32_t left = insert(nodes_[t].left, n);
        nodes_[t].left = left;
    } else {
        int32_t right = insert(nodes_[t].right, n);
        nodes_[t].right = right;
    }
    update(t);
    return t;
}

int32_t IovaRangeTree::erase(int32_t t, uint64_t key) {
    assert(t >= 0);
    if (nodes_[t].start == key) {
        int32_t r = merge(nodes_[t].left, nodes_[t].right);
        freeNodes_.push_back(t);
        return r;
    }
    if (key < nodes_[t].start) {
        int32_t left = erase(nodes_[t].left, key);
        nodes_[t].left = left;
    } else {
        int32_t right = erase(nodes_[t].right, key);
        nodes_[t].right = right;
    }
    update(t);
    return t;
}

// Changing a range in place keeps the tree ordered as long as the new range
// stays between its neighbours, which holds for shrinking and for merging
// with an adjacent block; only the maxLen values on the path need refreshing.
void IovaRangeTree::modify(int32_t t, uint64_t key, uint64_t start, uint64_t end) {
    assert(t >= 0);
    Node& n = nodes_[t];
    if (key < n.start) {
        modify(n.left, key, start, end);
    } else if (key > n.start) {
        modify(n.right, key, start, end);
    } else {
        n.start = start;
        n.end = end;
    }
    update(t);
}

int32_t IovaRangeTree::search(int32_t t, uint64_t pages, uint64_t alignPages, uint64_t lastPfn, uint64_t& start) const {
    if (t < 0 || nodes_[t].maxLen < pages)
        return -1;
    const Node& n = nodes_[t];
    if (n.start <= lastPfn) {
        // Higher ranges first: any fit in them is above any fit here.
        int32_t r = search(n.right, pages, alignPages, lastPfn, start);
        if (r >= 0)
            return r;
        uint64_t last = std::min(n.end - 1, lastPfn);
        if (last - n.start + 1 >= pages) {
            uint64_t s = (last + 1 - pages) & ~(alignPages - 1);
            if (s >= n.start) {
                start = s;
                return t;
            }
        }
    }
    return search(n.left, pages, alignPages, lastPfn, start);
}

std::optional<IovaRangeTree::Fit> IovaRangeTree::findTopDown(uint64_t pages, uint64_t alignPages,
                                                             uint64_t lastPfn) const {
    uint64_t start = 0;
    int32_t n = search(root_, pages, alignPages, lastPfn, start);
    if (n < 0)
        return std::nullopt;
    return Fit{n, start};
}

void IovaRangeTree::take(const Fit& fit, uint64_t pages) {
    uint64_t a = nodes_[fit.node].start;
    uint64_t b = nodes_[fit.node].end;
    uint64_t s = fit.start;
    uint64_t e = s + pages;
    assert(a <= s && e <= b);
    if (s == a && e == b) {
        root_ = erase(root_, a);
        --count_;
    } else if (s == a) {
        modify(root_, a, e, b);
    } else if (e == b) {
        modify(root_, a, a, s);
    } else {
        modify(root_, a, a, s);
        int32_t n = newNode(e, b);
        root_ = insert(root_, n);
        ++count_;
    }
}

int32_t IovaRangeTree::predecessor(uint64_t pfn) const {
    int32_t best = -1;
    for (int32_t t = root_; t >= 0;) {
        if (nodes_[t].start <= pfn) {
            best = t;
            t = nodes_[t].right;
        } else {
            t = nodes_[t].left;
        }
    }
    return best;
}

int32_t IovaRangeTree::successor(uint64_t pfn) const {
    int32_t best = -1;
    for (int32_t t = root_; t >= 0;) {
        if (nodes_[t].start > pfn) {
            best = t;
            t = nodes_[t].left;
        } else {
            t = nodes_[t].right;
        }
    }
    return best;
}

void IovaRangeTree::give(uint64_t start, uint64_t pages) {
    uint64_t end = start + pages;
    int32_t p = predecessor(start);
    int32_t s = successor(start);
    assert(p < 0 || nodes_[p].end <= start); // freeing a range that is already free
    assert(s < 0 || nodes_[s].start >= end);
    bool joinPrev = p >= 0 && nodes_[p].end == start;
    bool joinNext = s >= 0 && nodes_[s].start == end;
    if (joinPrev && joinNext) {
        uint64_t prevStart = nodes_[p].start;
        uint64_t nextStart = nodes_[s].start;
        uint64_t nextEnd = nodes_[s].end;
        root_ = erase(root_, nextStart);
        --count_;
        modify(root_, prevStart, prevStart, nextEnd);
    } else if (joinPrev) {
        uint64_t prevStart = nodes_[p].start;
        modify(root_, prevStart, prevStart, end);
    } else if (joinNext) {
        uint64_t nextStart = nodes_[s].start;
        uint64_t nextEnd = nodes_[s].end;
        modify(root_, nextStart, start, nextEnd);
    } else {
        int32_t n = newNode(start, end);
        root_ = insert(root_, n);
        ++count_;
    }
}

// ---- IovaAllocator -------------------------------------------------------

namespace {

constexpr uint64_t kMaxCachedPages = uint64_t{1} << (IovaAllocator::kCacheClasses - 1);

} // namespace

IovaAllocator::IovaAllocator(uint64_t base, uint64_t size, uint64_t granule)
    : granule_(granule), granuleShift_(static_cast<unsigned>(std::countr_zero(granule))) {
    assert(isPowerOfTwo(granule));
    assert(size != 0 && base % granule == 0 && size % granule == 0);
    assert(base <= UINT64_MAX - size + 1);
    basePfn_ = base >> granuleShift_;
    endPfn_ = basePfn_ + (size >> granuleShift_);
    tree_.give(basePfn_, endPfn_ - basePfn_);
}

IovaAllocator::~IovaAllocator() = default;

uint64_t IovaAllocator::size() const {
    uint64_t pages = endPfn_ - basePfn_;
    if (pages > (UINT64_MAX >> granuleShift_))
        return UINT64_MAX;
    return pages << granuleShift_;
}

uint64_t IovaAllocator::pagesFor(uint64_t size) const {
    if (size == 0)
        return 0;
    uint64_t pages = (size >> granuleShift_) + ((size & (granule_ - 1)) != 0 ? 1 : 0);
    // Round cacheable sizes to a power of two, as iommu_dma_alloc_iova()
    // does, so every freed range fits exactly one cache class.
    if (pages <= kMaxCachedPages)
        pages = std::bit_ceil(pages);
    return pages;
}

uint64_t IovaAllocator::reservedSize(uint64_t size) const {
    uint64_t pages = pagesFor(size);
    if (pages > (UINT64_MAX >> granuleShift_))
        return 0;
    return pages << granuleShift_;
}

uint64_t IovaAllocator::windowBytes(uint64_t limit) const {
    if (limit < granule_ - 1)
        return 0;
    uint64_t lastPfn = std::min((limit - (granule_ - 1)) >> granuleShift_, endPfn_ - 1);
    if (lastPfn < basePfn_)
        return 0;
    uint64_t pages = lastPfn - basePfn_ + 1;
    if (pages > (UINT64_MAX >> granuleShift_))
        return UINT64_MAX;
    return pages << granuleShift_;
}

Result<uint64_t> IovaAllocator::allocate(uint64_t size, uint64_t limit) {
    uint64_t pages = pagesFor(size);
    if (pages == 0)
        return Error(EINVAL, "iova size is zero");
    // The last whole page at or below the limit, clipped to the space.
    uint64_t lastPfn = 0;
    bool inWindow = limit >= granule_ - 1;
    if (inWindow) {
        lastPfn = std::min((limit - (granule_ - 1)) >> granuleShift_, endPfn_ - 1);
        inWindow = lastPfn >= basePfn_ && pages <= lastPfn - basePfn_ + 1;
    }
    if (!inWindow)
        return Error(ENOMEM, fmt::format("no {} of iova space at or below {:#x} in [{:#x}, {:#x}]", formatSize(size),
                                         limit, base(), (endPfn_ << granuleShift_) - 1));

    if (pages <= kMaxCachedPages) {
        uint64_t pfn = 0;
        if (cachePop(static_cast<unsigned>(std::countr_zero(pages)), pages, lastPfn, pfn)) {
            usedPages_ += pages;
            return pfn << granuleShift_;
        }
    }

    uint64_t maxAlignPages = std::max<uint64_t>(1, kMaxAlignment >> granuleShift_);
    uint64_t alignPages = pages >= maxAlignPages ? maxAlignPages : std::bit_ceil(pages);
    std::optional<IovaRangeTree::Fit> fit = tree_.findTopDown(pages, alignPages, lastPfn);
    if (!fit && cachedPages_ != 0) {
        // Cached ranges may be exactly what blocks the request: give them
        // back to the tree so they coalesce, and search once more.
        flushCaches();
        fit = tree_.findTopDown(pages, alignPages, lastPfn);
    }
    if (!fit)
        return Error(ENOMEM, fmt::format("iova space exhausted: no {}-aligned {} at or below {:#x} ({} free in {} "
                                         "ranges, largest {})",
                                         formatSize(alignPages << granuleShift_), formatSize(pages << granuleShift_),
                                         limit, formatSize(freeBytes()), freeRangeCount(), formatSize(largestFree())));
    tree_.take(*fit, pages);
    usedPages_ += pages;
    return fit->start << granuleShift_;
}

void IovaAllocator::free(uint64_t iova, uint64_t size) {
    uint64_t pages = pagesFor(size);
    uint64_t pfn = iova >> granuleShift_;
    assert(pages != 0 && (iova & (granule_ - 1)) == 0);
    assert(pfn >= basePfn_ && pfn < endPfn_ && pages <= endPfn_ - pfn);
    assert(usedPages_ >= pages);
    usedPages_ -= pages;
    if (pages <= kMaxCachedPages)
        cachePush(static_cast<unsigned>(std::countr_zero(pages)), pages, pfn);
    else
        tree_.give(pfn, pages);
}

std::unique_ptr<IovaAllocator::Magazine> IovaAllocator::takeMagazine() {
    if (spares_.empty())
        return std::make_unique<Magazine>();
    std::unique_ptr<Magazine> m = std::move(spares_.back());
    spares_.pop_back();
    return m;
}

void IovaAllocator::drainMagazine(Magazine& mag, uint64_t pages) {
    for (size_t i = 0; i < mag.count; ++i)
        tree_.give(mag.pfns[i], pages);
    cachedPages_ -= mag.count * pages;
    mag.count = 0;
}

bool IovaAllocator::cachePop(unsigned cls, uint64_t pages, uint64_t lastPfn, uint64_t& pfn) {
    SizeClass& c = classes_[cls];
    if (!c.loaded || c.loaded->count == 0) {
        if (c.previous && c.previous->count != 0) {
            std::swap(c.loaded, c.previous);
        } else if (!c.depot.empty()) {
            if (c.loaded)
                spares_.push_back(std::move(c.loaded));
            c.loaded = std::move(c.depot.back());
            c.depot.pop_back();
        } else {
            return false;
        }
    }
    // The top entry is the most recently freed; search down for one inside
    // the limit, and fall back to the tree when none is (as Linux does).
    Magazine& m = *c.loaded;
    for (size_t i = m.count; i-- > 0;) {
        if (m.pfns[i] + pages - 1 <= lastPfn) {
            pfn = m.pfns[i];
            m.pfns[i] = m.pfns[--m.count];
            cachedPages_ -= pages;
            return true;
        }
    }
    return false;
}

void IovaAllocator::cachePush(unsigned cls, uint64_t pages, uint64_t pfn) {
    SizeClass& c = classes_[cls];
    if (!c.loaded)
        c.loaded = takeMagazine();
    if (c.loaded->count == kMagazineSize) {
        if (!c.previous)
            c.previous = takeMagazine();
        if (c.previous->count < kMagazineSize) {
            std::swap(c.loaded, c.previous);
        } else if (c.depot.size() < kDepotMagazines) {
            c.depot.push_back(std::move(c.loaded));
            c.loaded = takeMagazine();
        } else {
            // The class holds all it may: return a magazine's worth to the
            // tree rather than grow without bound.
            drainMagazine(*c.loaded, pages);
        }
    }
    Magazine& m = *c.loaded;
    m.pfns[m.count++] = pfn;
    cachedPages_ += pages;
}

void IovaAllocator::flushCaches() {
    for (unsigned cls = 0; cls < kCacheClasses; ++cls) {
        SizeClass& c = classes_[cls];
        uint64_t pages = uint64_t{1} << cls;
        if (c.loaded)
            drainMagazine(*c.loaded, pages);
        if (c.previous)
            drainMagazine(*c.previous, pages);
        for (std::unique_ptr<Magazine>& m : c.depot) {
            drainMagazine(*m, pages);
            spares_.push_back(std::move(m));
        }
        c.depot.clear();
    }
    assert(cachedPages_ == 0);
}

} // namespace cenalloc
