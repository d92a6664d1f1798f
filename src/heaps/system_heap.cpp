// SPDX-License-Identifier: MIT
// The system heaps: buffers made of 1 MiB, 64 KiB and 4 KiB page blocks, as Linux's system_heap.c.
#include "heaps/system_heap.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

namespace {

// Orders of the page blocks a buffer is built from, largest first. They match
// common IOMMU and TLB page sizes (1 MiB sections, 64 KiB large pages, 4 KiB
// pages) so an IOMMU can map big chunks with big entries, and the CPU's TLB
// is used well, as in Linux's system_heap.c.
constexpr std::array<unsigned, 3> kOrders = {8, 4, 0};

constexpr uint64_t orderSize(unsigned order) {
    return kPageSize << order;
}

constexpr uint64_t kDma32Highest = 0xffffffff;

class SystemHeap final : public Heap {
public:
    SystemHeap(HeapProperties properties, std::shared_ptr<PhysicalMemory> memory)
        : Heap(std::move(properties)), memory_(std::move(memory)) {}

    uint64_t freeBytes() const override {
        // The plain heaps span all general memory: skip the per-block walk a
        // bank cut by the range (a reserved region at its bottom) would cost.
        const HeapProperties& p = properties();
        if (p.lowestAddress <= memory_->lowestAddress() && p.highestAddress >= memory_->endAddress() - 1)
            return memory_->freeBytes();
        return memory_->freeBytes(AddressLimit{p.lowestAddress, p.highestAddress});
    }

protected:
    Result<Backing> allocateBacking(uint64_t length, const StorageLimits& limits) override {
        const AddressLimit limit{properties().lowestAddress,
                                 std::min(properties().highestAddress, limits.highestAddress)};

        // Start from the largest order the caller wants: a device that takes
        // at most N-byte segments gains nothing from bigger chunks. A limit
        // below one page still gets pages, the smallest chunk there is.
        size_t first = 0;
        if (limits.maxChunkSize != 0)
            while (first + 1 < kOrders.size() && orderSize(kOrders[first]) > limits.maxChunkSize)
                ++first;

        // Nothing is sized from the request before it is known to fit: a
        // length beyond everything the heap spans can never be served, and
        // reserving room for its chunks first would ask the C++ allocator
        // for up to 2^52 / 4 KiB of them (std::bad_alloc, a dead daemon).
        // Within the capacity the reservation is bounded by the platform's
        // memory.
        if (length > properties().capacity)
            return Error(ENOMEM, fmt::format("heap '{}' cannot allocate {}: it spans {} in all", name(),
                                             formatSize(length), formatSize(properties().capacity)));
        std::vector<PhysChunk> chunks;
        chunks.reserve(length / orderSize(kOrders[first]) + kOrders.size());
        uint64_t remaining = length;
        // The largest blocks that fit what is left, as many as fit, under
        // one lock. Once an order has failed (or is too big for what is
        // left) it is not tried again for this buffer: as in Linux's system
        // heap, a failed high-order attempt is expensive and likely to fail
        // again, so the rest comes from smaller orders ("never grow again").
        for (size_t i = first; i < kOrders.size() && remaining > 0; ++i) {
            const uint64_t size = orderSize(kOrders[i]);
            if (size > remaining)
                continue;
            const size_t wanted = remaining / size;
            const size_t got = memory_->allocatePagesBulk(kOrders[i], wanted, limit, chunks);
            remaining -= got * size;
        }
        if (remaining > 0) {
            // Nothing may remain allocated after a failure.
            giveBack(chunks);
            return Error(ENOMEM, fmt::format("heap '{}' cannot allocate {} below {}: {} free, {} still missing", name(),
                                             formatSize(length), formatAddress(limit.highest),
                                             formatSize(memory_->freeBytes(limit)), formatSize(remaining)));
        }
        return Backing{std::move(chunks), {}};
    }

    void freeChunks(std::span<const PhysChunk> chunks) override { giveBack(chunks); }

private:
    void giveBack(std::span<const PhysChunk> chunks) { memory_->freePagesBulk(chunks); }

    std::shared_ptr<PhysicalMemory> memory_;
};

uint64_t bytesWithin(const std::vector<PhysChunk>& spans, uint64_t lowest, uint64_t highest) {
    uint64_t bytes = 0;
    for (const PhysChunk& s : spans) {
        if (s.size == 0 || s.address > highest || s.end() - 1 < lowest)
            continue;
        bytes += std::min(s.end() - 1, highest) - std::max(s.address, lowest) + 1;
    }
    return bytes;
}

HeapProperties systemProperties(std::string name, bool cached, uint64_t lowest, uint64_t highest,
                                const std::vector<PhysChunk>& spans) {
    HeapProperties p;
    p.name = std::move(name);
    p.kind = HeapKind::System;
    p.description = fmt::format("{} pages from general-purpose memory in [{}, {}]", cached ? "cached" : "uncached",
                                formatAddress(lowest), formatAddress(highest));
    p.lowestAddress = lowest;
    p.highestAddress = highest;
    p.contiguous = false;
    p.cached = cached;
    p.maxChunkSize = orderSize(kOrders.front());
    p.minChunkSize = orderSize(kOrders.back());
    p.chunkAlignment = kPageSize;
    p.accessBits = kAllAccess;
    p.capacity = bytesWithin(spans, lowest, highest);
    return p;
}

} // namespace

std::vector<HeapProperties> systemHeapProperties(const Platform& platform) {
    const std::vector<PhysChunk> spans = generalMemorySpans(platform);
    uint64_t lowest = 0;
    uint64_t highest = 0;
    if (!spans.empty()) {
        // Same range as PhysicalMemory::lowestAddress()/endAddress().
        lowest = spans.front().address;
        for (const PhysChunk& s : spans)
            highest = std::max(highest, s.end() - 1);
    }
    // `system` is every kernel's (drivers/dma-buf/heaps/system_heap.c); the
    // vendor heaps exist where the board's kernel has them: all of them in a
    // modelled platform, those the board description names otherwise.
    auto exists = [&](std::string_view name) {
        return !platform.vendorHeaps || std::find(platform.vendorHeaps->begin(), platform.vendorHeaps->end(), name) !=
                                            platform.vendorHeaps->end();
    };
    std::vector<HeapProperties> heaps;
    heaps.push_back(systemProperties("system", true, lowest, highest, spans));
    // The kernel's heaps take no address limit: on a board the model
    // stands for them, so they honour none either.
    const bool kernel = platform.vendorHeaps.has_value();
    if (exists("system-uncached"))
        heaps.push_back(systemProperties("system-uncached", false, lowest, highest, spans));

    // Devices with 32-bit DMA need memory below 4 GiB; the dma32 heaps exist
    // only when the plain ones could hand out memory they cannot reach (and
    // there is something below 4 GiB to give them).
    const bool above = highest > kDma32Highest;
    const bool below = !spans.empty() && lowest <= kDma32Highest;
    if (above && below) {
        if (exists("system-dma32"))
            heaps.push_back(systemProperties("system-dma32", true, lowest, kDma32Highest, spans));
        if (exists("system-uncached-dma32"))
            heaps.push_back(systemProperties("system-uncached-dma32", false, lowest, kDma32Highest, spans));
    }
    for (HeapProperties& h : heaps)
        h.honoursAddressLimit = !kernel;
    return heaps;
}

std::shared_ptr<Heap> createSystemHeap(HeapProperties properties, std::shared_ptr<PhysicalMemory> memory) {
    assert(memory);
    return std::make_shared<SystemHeap>(std::move(properties), std::move(memory));
}

} // namespace cenalloc
