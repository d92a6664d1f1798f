// SPDX-License-Identifier: MIT
// Reserved memory of a device tree: static and dynamic regions, the default CMA pool, and banks without them.
#include "platform/dtb_interpreter.h"

namespace cenalloc::dtb {

void Interpreter::readReservedMemory() {
    for (const DtMemReserve& r : tree_.memReserve()) {
        if (r.size == 0)
            continue;
        uint64_t last = r.address > UINT64_MAX - (r.size - 1) ? UINT64_MAX : r.address + (r.size - 1);
        reserved_.push_back({r.address, last});
        holes_.push_back({r.address, last});
    }
    int rm = tree_.child(0, "reserved-memory");
    if (rm < 0)
        return;
    const DtNode& parent = tree_.node(rm);
    std::optional<uint32_t> ac = dtU32(parent.find("#address-cells")), sc = dtU32(parent.find("#size-cells"));
    std::optional<int> rootAc = tree_.addressCells(0), rootSc = tree_.sizeCells(0);
    if (!ac || !sc || !rootAc || !rootSc || static_cast<int>(*ac) != *rootAc || static_cast<int>(*sc) != *rootSc ||
        !parent.has("ranges")) {
        reservedMemoryIgnored_ = true;
        warn("/reserved-memory is ignored: it needs `ranges` and the root's #address-cells and #size-cells (the "
             "kernel ignores it too)");
        return;
    }
    int aCells = *rootAc, sCells = *rootSc;

    // Static regions first: the kernel reserves every reg before placing
    // any dynamic region.
    std::vector<std::pair<size_t, int>> dynamic; // index in regions_, node
    for (int child : parent.children) {
        if (!tree_.available(child))
            continue;
        const DtNode& n = tree_.node(child);
        ReservedNode r;
        r.node = child;
        r.name = std::string(n.name);
        r.noMap = n.has("no-map");
        r.reusable = n.has("reusable");
        std::vector<std::string_view> compat = compatibles(child);
        r.pool = std::find(compat.begin(), compat.end(), "shared-dma-pool") != compat.end();
        r.restricted = std::find(compat.begin(), compat.end(), "restricted-dma-pool") != compat.end();
        r.isDefault = n.has("linux,cma-default");
        std::string path = tree_.path(child);
        if (const DtProperty* reg = n.find("reg")) {
            size_t stride = static_cast<size_t>(aCells + sCells);
            size_t cells = dtCellCount(reg->value);
            bool first = true;
            for (size_t i = 0; stride != 0 && i + stride <= cells; i += stride) {
                std::optional<uint64_t> base = dtNumber(reg->value, i, aCells);
                std::optional<uint64_t> size = dtNumber(reg->value, i + static_cast<size_t>(aCells), sCells);
                if (!base || !size) {
                    warn(fmt::format("{}: a range beyond 64 bits is ignored", path));
                    continue;
                }
                if (*size == 0) {
                    first = false;
                    continue;
                }
                uint64_t last = *base > UINT64_MAX - (*size - 1) ? UINT64_MAX : *base + (*size - 1);
                reserved_.push_back({*base, last});
                if (last == UINT64_MAX) {
                    warn(fmt::format("{}: reaches the end of the 64-bit space; ignored", path));
                    first = false;
                    continue;
                }
                // Only the first entry describes the region (the kernel
                // saves only the first); the others are just reserved.
                if (first) {
                    r.placed = true;
                    r.base = *base;
                    r.size = last - *base + 1;
                } else {
                    holes_.push_back({*base, last});
                }
                first = false;
            }
            if (r.placed) {
                regions_.push_back(std::move(r));
                continue;
            }
        }
        if (n.has("size")) {
            r.dynamic = true;
            regions_.push_back(std::move(r));
            dynamic.emplace_back(regions_.size() - 1, child);
            continue;
        }
        if (!n.has("reg"))
            warn(fmt::format("{}: has neither reg nor size; ignored", path));
    }

    for (auto [index, child] : dynamic) {
        ReservedNode& r = regions_[index];
        const DtNode& n = tree_.node(child);
        std::string path = tree_.path(child);
        const DtProperty* sizeProperty = n.find("size");
        std::optional<uint64_t> size;
        if (dtCellCount(sizeProperty->value) * 4 == sizeProperty->value.size() &&
            static_cast<int>(dtCellCount(sizeProperty->value)) == sCells)
            size = dtNumber(sizeProperty->value, 0, sCells);
        if (!size || *size == 0) {
            warn(fmt::format("{}: size must be {} cells and non-zero (as the kernel demands); ignored", path, sCells));
            continue;
        }
        uint64_t align = kPageSize;
        if (const DtProperty* a = n.find("alignment")) {
            // The kernel reads alignment with the root's #address-cells.
            std::optional<uint64_t> value = dtNumber(a->value, 0, aCells);
            if (!value || static_cast<int>(dtCellCount(a->value)) != aCells) {
                warn(fmt::format("{}: alignment must be {} cells; ignored", path, aCells));
                continue;
            }
            if (*value != 0 && !isPowerOfTwo(*value)) {
                warn(fmt::format("{}: alignment {:#x} is not a power of two; ignored", path, *value));
                continue;
            }
            align = std::max(align, *value);
        }
        if (r.pool && r.reusable && !r.noMap)
            align = std::max(align, kCmaMinAlignment);
        std::vector<Interval> ranges;
        if (const DtProperty* a = n.find("alloc-ranges")) {
            size_t stride = static_cast<size_t>(aCells + sCells);
            for (size_t i = 0; stride != 0 && i + stride <= dtCellCount(a->value); i += stride) {
                std::optional<uint64_t> start = dtNumber(a->value, i, aCells);
                std::optional<uint64_t> length = dtNumber(a->value, i + static_cast<size_t>(aCells), sCells);
                if (!start || !length || *length == 0)
                    continue;
                uint64_t last = *start > UINT64_MAX - (*length - 1) ? UINT64_MAX : *start + (*length - 1);
                ranges.push_back({*start, last});
            }
            if (ranges.empty()) {
                warn(fmt::format("{}: alloc-ranges has no usable entry; ignored", path));
                continue;
            }
        } else {
            ranges.push_back({0, UINT64_MAX});
        }
        placeDynamic(r, *size, align, ranges);
    }
}

// memblock's top-down search (__memblock_find_range_top_down) in RAM not
// reserved yet, within @p range.
std::optional<uint64_t> Interpreter::placeTopDown(uint64_t size, uint64_t align, Interval range) const {
    std::vector<Interval> taken = normalise(reserved_);
    for (auto bank = ram_.rbegin(); bank != ram_.rend(); ++bank) {
        std::vector<Interval> free = subtract(bank->range, taken);
        for (auto it = free.rbegin(); it != free.rend(); ++it) {
            uint64_t first = std::max(it->first, range.first);
            uint64_t last = std::min(it->last, range.last);
            if (first > last || last - first < size - 1)
                continue;
            uint64_t candidate = (last - (size - 1)) & ~(align - 1);
            if (candidate >= first)
                return candidate;
        }
    }
    return std::nullopt;
}

void Interpreter::placeDynamic(ReservedNode& r, uint64_t size, uint64_t align, const std::vector<Interval>& ranges) {
    for (const Interval& range : ranges) {
        if (std::optional<uint64_t> base = placeTopDown(size, align, range)) {
            r.placed = true;
            r.base = *base;
            r.size = size;
            reserved_.push_back({*base, *base + size - 1});
            return;
        }
    }
    warn(fmt::format("{}: no free RAM for {} aligned to {} in its alloc-ranges; the kernel could not place it "
                     "either, so it is skipped",
                     tree_.path(r.node), formatSize(size), formatSize(align)));
}

void Interpreter::classifyRegions() {
    // Which regions some master names: those are carveouts even without a
    // pool compatible (remote processors' no-map memory). Who owns them is
    // settled once the devices are named (assignOwners).
    std::set<int> used;
    for (const Master& m : masters_)
        for (int region : m.memoryRegions)
            used.insert(region);
    bool cmdline = overlay_ && overlay_->cmaSize;
    for (ReservedNode& r : regions_) {
        if (!r.placed)
            continue;
        std::string path = tree_.path(r.node);
        bool named = used.count(r.node) != 0;
        if (r.restricted) {
            // rmem_swiotlb_setup (kernel/dma/swiotlb.c) refuses these.
            const DtNode& n = tree_.node(r.node);
            if (r.reusable || r.noMap || n.has("linux,cma-default") || n.has("linux,dma-default")) {
                warn(fmt::format("{}: a restricted-dma-pool may not be reusable, no-map or a default pool "
                                 "(rmem_swiotlb_setup refuses it); its memory is reserved, not a pool",
                                 path));
                r.use = RegionUse::Hole;
            } else {
                // A bounce buffer its users' DMA goes through: never a heap.
                r.use = RegionUse::Carveout;
            }
        } else if (r.pool && r.reusable) {
            if (r.noMap) {
                warn(fmt::format("{}: reusable and no-map together are refused by the kernel; its memory is "
                                 "reserved, not a pool",
                                 path));
                r.use = RegionUse::Hole;
            } else if (r.base % kCmaMinAlignment || r.size % kCmaMinAlignment) {
                warn(fmt::format("{}: a CMA pool must be aligned to {} (rmem_cma_setup refuses it); its memory is "
                                 "reserved, not a pool",
                                 path, formatSize(kCmaMinAlignment)));
                r.use = RegionUse::Hole;
            } else if (r.isDefault && cmdline) {
                warn(fmt::format("{}: replaced by the overlay's cma_size, as cma= on the command line replaces it "
                                 "(its memory stays reserved)",
                                 path));
                r.use = RegionUse::Hole;
            } else {
                r.use = RegionUse::Cma;
                // Only the default CMA area becomes a dma-buf heap
                // (drivers/dma-buf/heaps/cma_heap.c, 6.12:
                // add_default_cma_heap adds dev_get_cma_area(NULL) under
                // cma_get_name(), which rmem_cma_setup set to the node's
                // full name, unit address included).
                r.heap = r.isDefault;
            }
        } else if (r.pool) {
            r.use = RegionUse::Carveout;
        } else if (r.noMap && named) {
            r.use = RegionUse::Carveout;
        } else {
            r.use = RegionUse::Hole;
        }
        if (r.use == RegionUse::Carveout) {
            // The model works in pages: keep the region's whole pages, the
            // partial ones at its edges stay reserved.
            uint64_t end = r.base + r.size;
            std::optional<uint64_t> first = alignUpChecked(r.base, kPageSize);
            uint64_t pageEnd = end & ~(kPageSize - 1);
            if (!first || *first >= pageEnd) {
                warn(fmt::format("{}: smaller than a page once aligned; its memory is reserved, not a heap", path));
                r.use = RegionUse::Hole;
            } else if (*first != r.base || pageEnd != end) {
                warn(fmt::format("{}: trimmed to whole pages", path));
                if (*first != r.base)
                    holes_.push_back({r.base, *first - 1});
                if (pageEnd != end)
                    holes_.push_back({pageEnd, end - 1});
                r.base = *first;
                r.size = pageEnd - *first;
            }
        }
        if (r.use == RegionUse::Hole)
            holes_.push_back({r.base, r.base + (r.size - 1)});
    }
}

// of_dma_get_max_cpu_address over the whole tree, then the arm64 DMA zone:
// min(32, fls64(that)) bits above the start of RAM, at most the end of RAM.
uint64_t Interpreter::dmaZoneLimit() {
    uint64_t maxCpu = UINT64_MAX;
    for (size_t i = 1; i < tree_.nodes().size(); ++i) {
        int index = static_cast<int>(i);
        const DtProperty* p = tree_.node(index).find("dma-ranges");
        if (!p || p->value.empty() || !tree_.available(index))
            continue;
        // Every address below this bus, carried to the CPU (the kernel
        // translates each range's CPU address with of_translate_dma_address).
        std::optional<std::vector<Piece>> pieces = window(index, kNoLimit, tree_.path(index), true);
        if (!pieces || pieces->empty())
            continue;
        uint64_t end = 0;
        for (const Piece& piece : *pieces)
            end = std::max(end, piece.addr + piece.extent);
        maxCpu = std::min(maxCpu, end);
    }
    unsigned bits = 64 - static_cast<unsigned>(__builtin_clzll(maxCpu | 1));
    bits = std::min(bits, 32u);
    uint64_t ramStart = ram_.front().range.first, ramLast = ram_.back().range.last;
    uint64_t offset = ramStart & ~maskOfBits(bits);
    uint64_t limit = offset > UINT64_MAX - maskOfBits(bits) ? UINT64_MAX : offset + maskOfBits(bits);
    return std::min(limit, ramLast);
}

void Interpreter::addCmdlineCma() {
    // cma_declare_contiguous_nid rounds the size up to the alignment.
    std::optional<uint64_t> size = alignUpChecked(*overlay_->cmaSize, kCmaMinAlignment);
    if (!size) {
        warn("overlay cma_size is too large; no default CMA pool");
        return;
    }
    uint64_t limit = dmaZoneLimit();
    std::optional<uint64_t> base = placeTopDown(*size, kCmaMinAlignment, {0, limit});
    if (!base) {
        warn(fmt::format("overlay cma_size {}: no free RAM for it below {:#x}; no default CMA pool", formatSize(*size),
                         limit + 1));
        return;
    }
    // dma_contiguous_reserve names the cma= area "reserved"
    // (dma_contiguous_reserve_area -> cma_declare_contiguous(..., "reserved",
    // ...)), and the CMA heap takes that name.
    std::string name = "reserved";
    auto taken = [&] {
        return std::any_of(regions_.begin(), regions_.end(),
                           [&](const ReservedNode& r) { return r.use != RegionUse::Hole && r.name == name; });
    };
    for (int n = 1; taken(); ++n)
        name = fmt::format("reserved-{}", n);
    ReservedNode r;
    r.name = name;
    r.placed = true;
    r.base = *base;
    r.size = *size;
    r.pool = r.reusable = r.isDefault = r.heap = r.dynamic = true;
    r.use = RegionUse::Cma;
    reserved_.push_back({*base, *base + *size - 1});
    regions_.push_back(std::move(r));
}

std::vector<MemoryBank> Interpreter::settleRegions() {
    // Regions overlapping one kept before them, or not inside one bank once
    // the holes are cut, are reserved memory but not heaps.
    std::vector<ReservedNode*> kept;
    for (ReservedNode& r : regions_)
        if (r.placed && r.use != RegionUse::Hole)
            kept.push_back(&r);
    std::sort(kept.begin(), kept.end(), [](const ReservedNode* a, const ReservedNode* b) { return a->base < b->base; });
    // Kept regions are disjoint and sorted, so the last one kept ends highest.
    const ReservedNode* previous = nullptr;
    for (ReservedNode* r : kept) {
        if (previous && r->base < previous->base + previous->size) {
            warn(fmt::format("{}: overlaps {}; its memory is reserved, not a heap", r->name, previous->name));
            r->use = RegionUse::Hole;
            holes_.push_back({r->base, r->base + r->size - 1});
            continue;
        }
        previous = r;
    }
    std::vector<MemoryBank> banks;
    for (bool changed = true; changed;) {
        changed = false;
        // Memory reserved twice (a /memreserve/ or a dropped region inside a
        // pool) stays the pool's: only what lies outside kept regions is cut.
        std::vector<Interval> keptRanges;
        for (const ReservedNode* r : kept)
            if (r->use != RegionUse::Hole)
                keptRanges.push_back({r->base, r->base + r->size - 1});
        keptRanges = normalise(keptRanges);
        std::vector<Interval> holes;
        for (const Interval& h : holes_)
            for (const Interval& piece : subtract(h, keptRanges))
                holes.push_back(piece);
        banks = buildBanks(holes);
        for (ReservedNode* r : kept) {
            if (r->use == RegionUse::Hole)
                continue;
            bool inside = std::any_of(banks.begin(), banks.end(), [&](const MemoryBank& b) {
                return r->base >= b.base && r->base + r->size <= b.end();
            });
            if (!inside) {
                warn(fmt::format("{} ({:#x}..{:#x}): not inside one RAM bank; not a heap", r->name, r->base,
                                 r->base + r->size));
                r->use = RegionUse::Hole;
                holes_.push_back({r->base, r->base + r->size - 1});
                changed = true;
            }
        }
    }
    return banks;
}

} // namespace cenalloc::dtb
