// SPDX-License-Identifier: MIT
// DMA windows of a device tree: what a master reaches through the dma-ranges above it, and the mask that gives
// (the rules are stated at the top of dtb_loader.cpp).
#include "platform/dtb_interpreter.h"

namespace cenalloc::dtb {

std::optional<std::vector<Piece>> Interpreter::window(int start, uint64_t driverMask, const std::string& who,
                                                      bool quiet) {
    auto say = [&](std::string message) {
        if (!quiet)
            warn(std::move(message));
    };
    std::vector<Piece> pieces{{0, 0, driverMask}};
    for (int bus = start; bus > 0 && !pieces.empty(); bus = tree_.node(bus).parent) {
        const DtProperty* p = tree_.node(bus).find("dma-ranges");
        if (!p || p->value.empty())
            continue; // no constraint, or 1:1
        std::optional<int> childCells = tree_.addressCells(bus), sizeCells = tree_.sizeCells(bus);
        std::optional<int> parentCells = tree_.addressCells(tree_.node(bus).parent);
        if (!childCells || !parentCells || !sizeCells) {
            say(fmt::format("{}: skipped: the cells of {} are malformed, so its dma-ranges cannot be read", who,
                            tree_.path(bus)));
            return std::nullopt;
        }
        // PCI child addresses carry a phys.hi cell of flags before the address.
        int skip = isPciBus(bus) && *childCells == 3 ? 1 : 0;
        size_t stride = static_cast<size_t>(*childCells + *parentCells + *sizeCells);
        size_t cells = dtCellCount(p->value);
        if (stride == 0 || cells % stride != 0)
            say(fmt::format("{}: dma-ranges of {} is not a whole number of entries; the rest is ignored", who,
                            tree_.path(bus)));
        std::vector<Piece> next;
        for (size_t c = 0; stride != 0 && c + stride <= cells; c += stride) {
            std::optional<uint64_t> child = dtNumber(p->value, c + static_cast<size_t>(skip), *childCells - skip);
            std::optional<uint64_t> parent = dtNumber(p->value, c + static_cast<size_t>(*childCells), *parentCells);
            std::optional<uint64_t> size =
                dtNumber(p->value, c + static_cast<size_t>(*childCells + *parentCells), *sizeCells);
            if (!child || !parent || !size || *size == 0)
                continue;
            uint64_t childLast = *child > UINT64_MAX - (*size - 1) ? UINT64_MAX : *child + (*size - 1);
            for (const Piece& piece : pieces) {
                uint64_t lo = std::max(piece.addr, *child);
                uint64_t hi = std::min(piece.addr + piece.extent, childLast);
                if (lo > hi)
                    continue;
                uint64_t extent = hi - lo;
                uint64_t mapped = *parent + (lo - *child);
                if (mapped < *parent || mapped > UINT64_MAX - extent)
                    continue; // wraps the parent's address space: nothing real there
                next.push_back({piece.dev + (lo - piece.addr), mapped, extent});
                if (next.size() > kMaxWindowPieces) {
                    say(fmt::format("{}: skipped: the dma-ranges above it split its window into more than {} "
                                    "pieces",
                                    who, kMaxWindowPieces));
                    return std::nullopt;
                }
            }
        }
        pieces = std::move(next);
    }
    return pieces;
}

std::optional<uint64_t> Interpreter::windowMask(const Master& m, uint64_t driverMask,
                                                const std::vector<MemoryBank>& banks) {
    std::string who = tree_.path(m.node);
    int start = isPciBus(m.node) ? m.node : tree_.node(m.node).parent;
    std::optional<std::vector<Piece>> pieces = window(start, driverMask, who);
    if (!pieces)
        return std::nullopt;
    std::vector<Interval> reach;
    for (const Piece& p : *pieces) {
        uint64_t first = m.iommuNode >= 0 ? p.dev : p.addr;
        reach.push_back({first, first + p.extent});
    }
    reach = normalise(reach);
    // A limit ends a page: the model allocates in pages.
    auto pageEnd = [](uint64_t last) -> std::optional<uint64_t> {
        if ((last & (kPageSize - 1)) == kPageSize - 1)
            return last;
        if (last < kPageSize - 1)
            return std::nullopt;
        return (last & ~(kPageSize - 1)) - 1;
    };
    if (m.iommuNode >= 0) {
        // The I/O virtual addresses the device emits, from 0 up.
        if (!reach.empty() && reach.front().first == 0)
            if (std::optional<uint64_t> limit = pageEnd(reach.front().last))
                return limit;
        warn(fmt::format("{}: skipped: its DMA window does not start with a page at address 0", who));
        return std::nullopt;
    }
    // The highest address below which the device reaches every byte of
    // RAM: the first RAM byte it cannot reach ends the limit; when it
    // reaches all RAM, the window's own end is the limit (the kernel's
    // bus_dma_limit, an address, not rounded to a power of two).
    // Past the last RAM byte it reaches, the limit is the end of the
    // window piece that byte lies in: addresses beyond are not reachable
    // even where no RAM lies.
    std::optional<uint64_t> limit;
    bool blocked = false;
    uint64_t pieceEnd = 0;
    for (const MemoryBank& b : banks) {
        uint64_t cursor = b.base, last = b.end() - 1;
        while (cursor <= last) {
            auto it = std::find_if(reach.begin(), reach.end(),
                                   [&](const Interval& i) { return i.first <= cursor && cursor <= i.last; });
            if (it == reach.end()) {
                blocked = true;
                break;
            }
            pieceEnd = it->last;
            if (it->last >= last)
                break;
            cursor = it->last + 1;
        }
        if (blocked) {
            if (cursor > banks.front().base)
                limit = std::min(cursor - 1, pieceEnd);
            break;
        }
    }
    if (!blocked && !reach.empty())
        limit = pieceEnd;
    if (limit)
        limit = pageEnd(*limit);
    if (!limit || *limit < banks.front().base) {
        warn(fmt::format("{}: skipped: its DMA window reaches no RAM from the start of RAM up (a DMA mask limits "
                         "addresses from above only)",
                         who));
        return std::nullopt;
    }
    return limit;
}

} // namespace cenalloc::dtb
