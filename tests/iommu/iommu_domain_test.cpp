// SPDX-License-Identifier: MIT
// Tests of IOMMU domains: contiguous mapping, the mapping cache and its limits.
#include "iommu/iommu_domain.h"

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "iommu/sg_coalesce.h"

namespace cenalloc {
namespace {

constexpr uint64_t k32BitMask = 0xffffffffull;

Iommu makeIommu(uint64_t base, uint64_t size, uint64_t pageSize = 4 * KiB) {
    return Iommu{"smmu0", pageSize, base, size};
}

// @p pages 4 KiB pages, no two physically adjacent, in a shuffled order.
std::vector<PhysChunk> scatteredPages(size_t pages, uint64_t physBase = 0x80000000) {
    std::vector<PhysChunk> chunks;
    for (size_t i = 0; i < pages; ++i)
        chunks.push_back({physBase + ((i * 37) % pages) * 2 * 4 * KiB, 4 * KiB});
    return chunks;
}

std::vector<PhysChunk> oneChunk(uint64_t phys, uint64_t size) {
    return {{phys, size}};
}

TEST(IommuDomain, ScatteredPagesMapToOneContiguousIovaRange) {
    IommuDomain d(makeIommu(0, uint64_t{1} << 40));
    std::vector<PhysChunk> chunks = scatteredPages(128);
    Result<IommuDomain::MappingRef> m = d.mapBuffer(1, chunks, UINT64_MAX);
    ASSERT_TRUE(m) << m.error().toString();
    const IovaMapping& map = **m;
    EXPECT_EQ(map.bufferId, 1u);
    EXPECT_EQ(map.size, 512 * KiB);
    EXPECT_EQ(map.iova % (512 * KiB), 0u) << "size-aligned";
    for (size_t k = 0; k < chunks.size(); ++k) {
        SCOPED_TRACE(k);
        Result<uint64_t> phys = d.translate(map.iova + k * 4 * KiB + 5);
        ASSERT_TRUE(phys);
        EXPECT_EQ(*phys, chunks[k].address + 5);
    }
    Result<uint64_t> past = d.translate(map.end());
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code(), EFAULT);

    // The contiguous IOVA range needs far fewer segments than the 128 chunks.
    EXPECT_EQ(splitSegments(map.iova, map.size, kNoLimit, kNoLimit).size(), 1u);
    EXPECT_EQ(splitSegments(map.iova, map.size, kDefaultMaxSegmentSize, kNoLimit).size(), 8u);
    EXPECT_EQ(splitSegments(map.iova, map.size, kNoLimit, 0xffff).size(), 8u);
    EXPECT_EQ(splitSegments(map.iova, map.size, kDefaultMaxSegmentSize, 0xffff).size(), 8u);
    EXPECT_EQ(coalesceChunks(chunks, kDefaultMaxSegmentSize, kNoLimit).size(), 128u) << "without an iommu";

    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.misses, 1u);
    EXPECT_EQ(s.mappedBytes, 512 * KiB);
    EXPECT_EQ(s.usedIovaBytes, 512 * KiB);
}

TEST(IommuDomain, A32BitDeviceNeverGetsAnIovaAt4GiBOrAbove) {
    IommuDomain d(makeIommu(0, uint64_t{1} << 40));
    std::vector<IommuDomain::MappingRef> refs;
    for (uint64_t id = 1; id <= 64; ++id) {
        SCOPED_TRACE(id);
        bool narrow = id % 2 == 0;
        Result<IommuDomain::MappingRef> m =
            d.mapBuffer(id, scatteredPages(id % 7 + 1, id * 0x100000), narrow ? k32BitMask : UINT64_MAX);
        ASSERT_TRUE(m);
        if (narrow) {
            EXPECT_LE((*m)->iova + (*m)->size - 1, k32BitMask);
        } else {
            EXPECT_GE((*m)->iova, uint64_t{1} << 32) << "top-down: wide devices leave low IOVA alone";
        }
        refs.push_back(std::move(*m));
    }
}

TEST(IommuDomain, SecondMapOfABufferIsAHit) {
    IommuDomain d(makeIommu(0, 1 * GiB));
    std::vector<PhysChunk> chunks = scatteredPages(16);
    Result<IommuDomain::MappingRef> first = d.mapBuffer(7, chunks, UINT64_MAX);
    ASSERT_TRUE(first);
    uint64_t iova = (*first)->iova;
    first->reset();
    EXPECT_FALSE(*first);
    IommuDomainStats afterFirst = d.stats();
    EXPECT_EQ(afterFirst.misses, 1u);
    EXPECT_EQ(afterFirst.hits, 0u);
    EXPECT_EQ(afterFirst.mappingCount, 1u) << "stays cached after its use ends";
    EXPECT_EQ(afterFirst.inUseCount, 0u);

    Result<IommuDomain::MappingRef> second = d.mapBuffer(7, chunks, UINT64_MAX);
    ASSERT_TRUE(second);
    EXPECT_EQ((*second)->iova, iova);
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.misses, 1u);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_EQ(s.mappingCount, 1u);
    EXPECT_EQ(s.inUseCount, 1u);
    EXPECT_EQ(s.usedIovaBytes, afterFirst.usedIovaBytes);
    EXPECT_EQ(s.mappedBytes, afterFirst.mappedBytes);
}

TEST(IommuDomain, TwoDevicesInOneDomainShareOneMapping) {
    IommuDomain d(makeIommu(0, uint64_t{1} << 40));
    std::vector<PhysChunk> chunks = scatteredPages(32);
    // The narrow device maps first; the wide one admits its range too.
    Result<IommuDomain::MappingRef> narrow = d.mapBuffer(1, chunks, k32BitMask);
    Result<IommuDomain::MappingRef> wide = d.mapBuffer(1, chunks, UINT64_MAX);
    ASSERT_TRUE(narrow && wide);
    EXPECT_EQ((*narrow)->iova, (*wide)->iova);
    EXPECT_EQ(&**narrow, &**wide);
    EXPECT_EQ(d.stats().hits, 1u);
    EXPECT_EQ(d.stats().mappingCount, 1u);
    std::vector<IommuMappingInfo> list = d.mappings();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].useCount, 2u);

    // The other way round the wide mapping lies above 4 GiB: the narrow
    // device needs its own, and later narrow devices share that one.
    Result<IommuDomain::MappingRef> wide2 = d.mapBuffer(2, chunks, UINT64_MAX);
    ASSERT_TRUE(wide2);
    ASSERT_GT((*wide2)->iova, k32BitMask);
    Result<IommuDomain::MappingRef> narrow2 = d.mapBuffer(2, chunks, k32BitMask);
    ASSERT_TRUE(narrow2);
    EXPECT_NE((*narrow2)->iova, (*wide2)->iova);
    EXPECT_LE((*narrow2)->iova + (*narrow2)->size - 1, k32BitMask);
    Result<IommuDomain::MappingRef> narrow3 = d.mapBuffer(2, chunks, k32BitMask);
    ASSERT_TRUE(narrow3);
    EXPECT_EQ((*narrow3)->iova, (*narrow2)->iova);
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.misses, 3u);
    EXPECT_EQ(s.hits, 2u);
    EXPECT_EQ(s.mappingCount, 3u);
}

TEST(IommuDomain, InUseMappingSurvivesIovaPressure) {
    // 1 MiB of IOVA: sixteen 64 KiB mappings.
    IommuDomain d(makeIommu(0x100000, 1 * MiB));
    Result<IommuDomain::MappingRef> held = d.mapBuffer(100, oneChunk(0x80000000, 64 * KiB), UINT64_MAX);
    ASSERT_TRUE(held);
    std::vector<uint64_t> iovaOf(16);
    for (uint64_t id = 1; id <= 15; ++id) {
        Result<IommuDomain::MappingRef> m = d.mapBuffer(id, oneChunk(0x90000000 + id * MiB, 64 * KiB), UINT64_MAX);
        ASSERT_TRUE(m) << m.error().toString();
        iovaOf[id] = (*m)->iova;
    } // every ref ends here: 15 cached, evictable mappings
    ASSERT_EQ(d.stats().usedIovaBytes, 1 * MiB);
    // Use buffer 1 again so buffer 2 becomes the least recently used.
    ASSERT_TRUE(d.mapBuffer(1, oneChunk(0x90000000 + 1 * MiB, 64 * KiB), UINT64_MAX));

    Result<IommuDomain::MappingRef> c = d.mapBuffer(200, oneChunk(0xa0000000, 64 * KiB), UINT64_MAX);
    ASSERT_TRUE(c) << c.error().toString();
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.evictions, 1u);
    // Buffer 2's mapping is gone and its IOVA now serves the new buffer.
    EXPECT_EQ((*c)->iova, iovaOf[2]);
    EXPECT_EQ(*d.translate(iovaOf[2]), 0xa0000000u);
    for (const IommuMappingInfo& info : d.mappings()) {
        EXPECT_NE(info.bufferId, 2u);
    }
    // Buffer 1, used more recently, is still cached.
    ASSERT_TRUE(d.mapBuffer(1, oneChunk(0x90000000 + 1 * MiB, 64 * KiB), UINT64_MAX));
    EXPECT_EQ(d.stats().hits, 2u);
    EXPECT_EQ(*d.translate((*held)->iova + 8), 0x80000008u);

    // Half the space at once: many evictions, never the held mappings.
    Result<IommuDomain::MappingRef> big = d.mapBuffer(300, oneChunk(0xb0000000, 512 * KiB), UINT64_MAX);
    ASSERT_TRUE(big) << big.error().toString();
    EXPECT_GE(d.stats().evictions, 1u + 6u);
    EXPECT_EQ(*d.translate((*held)->iova + 8), 0x80000008u);
    EXPECT_EQ(*d.translate((*c)->iova), 0xa0000000u);
    for (const IommuMappingInfo& info : d.mappings()) {
        EXPECT_TRUE(info.useCount > 0 || info.bufferId < 100) << info.bufferId;
    }

    // Only in-use mappings left once nothing more can be evicted.
    Result<IommuDomain::MappingRef> none = d.mapBuffer(400, oneChunk(0xc0000000, 512 * KiB), UINT64_MAX);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOMEM);
    s = d.stats();
    EXPECT_EQ(s.mappingCount, 3u);
    EXPECT_EQ(s.inUseCount, 3u);
    EXPECT_EQ(*d.translate((*held)->iova), 0x80000000u);
}

TEST(IommuDomain, EvictionSkipsMappingsAboveTheLimit) {
    // 8 MiB of IOVA at 0; the narrow device sees only the low 4 MiB.
    IommuDomain d(makeIommu(0, 8 * MiB));
    const uint64_t narrowLimit = 4 * MiB - 1;
    for (uint64_t id = 1; id <= 8; ++id) {
        ASSERT_TRUE(d.mapBuffer(id, oneChunk(0x80000000 + id * 2 * MiB, 1 * MiB), UINT64_MAX));
    }
    ASSERT_EQ(d.stats().usedIovaBytes, 8 * MiB);
    // The least recently used mappings (ids 1..4) sit high (top-down), out of
    // the narrow device's reach: evicting them would not help.
    Result<IommuDomain::MappingRef> m = d.mapBuffer(9, oneChunk(0xf0000000, 1 * MiB), narrowLimit);
    ASSERT_TRUE(m) << m.error().toString();
    EXPECT_LE((*m)->iova + (*m)->size - 1, narrowLimit);
    EXPECT_EQ(d.stats().evictions, 1u);
    std::vector<IommuMappingInfo> list = d.mappings();
    size_t high = 0;
    for (const IommuMappingInfo& info : list)
        high += info.iova >= 4 * MiB ? 1 : 0;
    EXPECT_EQ(high, 4u);
}

TEST(IommuDomain, FailedMapLeavesNothingBehind) {
    IommuDomain d(makeIommu(0x100000, 1 * MiB));
    Result<IommuDomain::MappingRef> a = d.mapBuffer(1, scatteredPages(128), UINT64_MAX);
    ASSERT_TRUE(a);
    ASSERT_TRUE(d.mapBuffer(2, oneChunk(0x90000000, 256 * KiB), UINT64_MAX)); // cached, unused
    IommuDomainStats before = d.stats();

    // Larger than the aperture: fails at once and evicts nothing.
    Result<IommuDomain::MappingRef> huge = d.mapBuffer(3, oneChunk(0xa0000000, 2 * MiB), UINT64_MAX);
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code(), ENOMEM);
    // Below the aperture.
    Result<IommuDomain::MappingRef> low = d.mapBuffer(3, oneChunk(0xa0000000, 4 * KiB), 0xfffff);
    ASSERT_FALSE(low);
    EXPECT_EQ(low.error().code(), ENOMEM);
    // Bad storage.
    Result<IommuDomain::MappingRef> empty = d.mapBuffer(3, {}, UINT64_MAX);
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code(), EINVAL);
    Result<IommuDomain::MappingRef> unaligned = d.mapBuffer(3, oneChunk(0xa0000800, 4 * KiB), UINT64_MAX);
    ASSERT_FALSE(unaligned);
    EXPECT_EQ(unaligned.error().code(), EINVAL);
    Result<IommuDomain::MappingRef> partial = d.mapBuffer(3, oneChunk(0xa0000000, 6 * KiB), UINT64_MAX);
    ASSERT_FALSE(partial);
    EXPECT_EQ(partial.error().code(), EINVAL);

    IommuDomainStats after = d.stats();
    EXPECT_EQ(after.mappedBytes, before.mappedBytes);
    EXPECT_EQ(after.usedIovaBytes, before.usedIovaBytes);
    EXPECT_EQ(after.mappingCount, before.mappingCount);
    EXPECT_EQ(after.evictions, 0u);
    EXPECT_EQ(after.misses, before.misses);

    // With every mapping in use, a map that does not fit fails and leaves
    // the domain as it was.
    Result<IommuDomain::MappingRef> pin = d.mapBuffer(2, oneChunk(0x90000000, 256 * KiB), UINT64_MAX);
    ASSERT_TRUE(pin);
    before = d.stats();
    Result<IommuDomain::MappingRef> full = d.mapBuffer(4, oneChunk(0xb0000000, 512 * KiB), UINT64_MAX);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code(), ENOMEM);
    after = d.stats();
    EXPECT_EQ(after.mappedBytes, before.mappedBytes);
    EXPECT_EQ(after.usedIovaBytes, before.usedIovaBytes);
    EXPECT_EQ(after.mappingCount, before.mappingCount);
    EXPECT_EQ(after.evictions, 0u);
    EXPECT_EQ(d.mappings().size(), 2u);
}

TEST(IommuDomain, ReleaseFreesTheIovaSpace) {
    IommuDomain d(makeIommu(0, 1 * GiB));
    const IommuDomainStats baseline = d.stats();
    std::vector<uint64_t> iovas;
    for (uint64_t id = 1; id <= 3; ++id) {
        Result<IommuDomain::MappingRef> m = d.mapBuffer(id, scatteredPages(8 * id, id * 0x1000000), UINT64_MAX);
        ASSERT_TRUE(m);
        iovas.push_back((*m)->iova);
        // A second, narrower mapping of the same buffer.
        Result<IommuDomain::MappingRef> low = d.mapBuffer(id, scatteredPages(8 * id, id * 0x1000000), 0xffffff);
        ASSERT_TRUE(low);
        iovas.push_back((*low)->iova);
    }
    ASSERT_GT(d.stats().usedIovaBytes, baseline.usedIovaBytes);
    ASSERT_EQ(d.stats().mappingCount, 6u);
    for (uint64_t id = 1; id <= 3; ++id) {
        EXPECT_EQ(d.releaseBuffer(id), 0u);
    }
    EXPECT_EQ(d.releaseBuffer(99), 0u) << "unknown buffers are fine";
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.usedIovaBytes, baseline.usedIovaBytes);
    EXPECT_EQ(s.mappedBytes, 0u);
    EXPECT_EQ(s.mappingCount, 0u);
    for (uint64_t iova : iovas) {
        Result<uint64_t> r = d.translate(iova);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EFAULT);
    }
    // Mapping again is a miss.
    ASSERT_TRUE(d.mapBuffer(1, scatteredPages(8, 0x1000000), UINT64_MAX));
    EXPECT_EQ(d.stats().misses, 7u);
    EXPECT_EQ(d.stats().hits, 0u);
}

TEST(IommuDomain, ReleaseWhileInUseOrphansTheMappingUntilItsLastUse) {
    IommuDomain d(makeIommu(0, 1 * GiB));
    Result<IommuDomain::MappingRef> old = d.mapBuffer(5, oneChunk(0x80000000, 64 * KiB), UINT64_MAX);
    ASSERT_TRUE(old);
    uint64_t oldIova = (*old)->iova;
    EXPECT_EQ(d.releaseBuffer(5), 1u);
    EXPECT_EQ(*d.translate(oldIova), 0x80000000u) << "not yanked from under its user";
    ASSERT_EQ(d.mappings().size(), 1u);
    EXPECT_TRUE(d.mappings()[0].orphaned);

    // The buffer's new storage gets a new mapping, not the orphan.
    Result<IommuDomain::MappingRef> fresh = d.mapBuffer(5, oneChunk(0x90000000, 64 * KiB), UINT64_MAX);
    ASSERT_TRUE(fresh);
    EXPECT_NE((*fresh)->iova, oldIova);
    EXPECT_EQ(d.stats().hits, 0u);

    old->reset();
    EXPECT_FALSE(d.translate(oldIova));
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.mappingCount, 1u);
    EXPECT_EQ(s.usedIovaBytes, 64 * KiB);
}

TEST(IommuDomain, MappingRefMovesAndResets) {
    IommuDomain d(makeIommu(0, 1 * GiB));
    Result<IommuDomain::MappingRef> m = d.mapBuffer(1, oneChunk(0x80000000, 4 * KiB), UINT64_MAX);
    ASSERT_TRUE(m);
    IommuDomain::MappingRef a = std::move(*m);
    EXPECT_FALSE(*m);
    EXPECT_TRUE(a);
    EXPECT_EQ(a.domain(), &d);
    IommuDomain::MappingRef b;
    b = std::move(a);
    EXPECT_FALSE(a);
    EXPECT_EQ(d.mappings()[0].useCount, 1u);
    Result<IommuDomain::MappingRef> again = d.mapBuffer(1, oneChunk(0x80000000, 4 * KiB), UINT64_MAX);
    ASSERT_TRUE(again);
    EXPECT_EQ(d.mappings()[0].useCount, 2u);
    b = std::move(*again); // drops b's own use
    EXPECT_EQ(d.mappings()[0].useCount, 1u);
    b.reset();
    EXPECT_EQ(d.mappings()[0].useCount, 0u);
    EXPECT_EQ(d.stats().inUseCount, 0u);
}

TEST(IommuDomain, TranslateRunAndFaultCounter) {
    IommuDomain d(makeIommu(0, 1 * GiB));
    std::vector<PhysChunk> chunks = {{0x80000000, 8 * KiB}, {0x90000000, 4 * KiB}};
    Result<IommuDomain::MappingRef> m = d.mapBuffer(1, chunks, UINT64_MAX);
    ASSERT_TRUE(m);
    Result<PhysChunk> run = d.translateRun((*m)->iova + 4 * KiB);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->address, 0x80001000u);
    EXPECT_EQ(run->size, 4 * KiB);
    EXPECT_EQ(d.stats().faults, 0u);
    EXPECT_FALSE(d.translate((*m)->end()));
    EXPECT_EQ(d.stats().faults, 0u) << "translate alone does not count";
    d.recordFault();
    d.recordFault();
    EXPECT_EQ(d.stats().faults, 2u);
}

TEST(IommuDomains, DevicesNamingTheSameIommuShareOneDomain) {
    Platform p;
    p.iommus = {Iommu{"smmu-media", 4 * KiB, 0, uint64_t{1} << 32}, Iommu{"smmu-gpu", 64 * KiB, 0, 1 * GiB}};
    Device camera{"camera", "", {}, "smmu-media"};
    Device encoder{"encoder", "", {}, "smmu-media"};
    Device gpu{"gpu", "", {}, "smmu-gpu"};
    Device display{"display", "", {}, std::nullopt};
    IommuDomains domains(p);
    ASSERT_EQ(domains.all().size(), 2u);
    ASSERT_NE(domains.forDevice(camera), nullptr);
    EXPECT_EQ(domains.forDevice(camera), domains.forDevice(encoder));
    EXPECT_NE(domains.forDevice(camera), domains.forDevice(gpu));
    EXPECT_EQ(domains.forDevice(display), nullptr);
    EXPECT_EQ(domains.find("smmu-gpu")->pageSize(), 64 * KiB);
    EXPECT_EQ(domains.find("smmu-gpu")->apertureSize(), 1 * GiB);
    EXPECT_EQ(domains.find("nope"), nullptr);

    // Camera and encoder share the mapping through their common domain.
    std::vector<PhysChunk> chunks = scatteredPages(4);
    Result<IommuDomain::MappingRef> a = domains.forDevice(camera)->mapBuffer(1, chunks, UINT64_MAX);
    Result<IommuDomain::MappingRef> b = domains.forDevice(encoder)->mapBuffer(1, chunks, UINT64_MAX);
    ASSERT_TRUE(a && b);
    EXPECT_EQ((*a)->iova, (*b)->iova);
    EXPECT_EQ(domains.find("smmu-media")->stats().hits, 1u);
}

TEST(IommuDomain, ConcurrentMapAndUnmapEndAtBaseline) {
    IommuDomain d(makeIommu(0, 16 * MiB));
    constexpr int kThreads = 4;
    constexpr int kRounds = 2000;
    constexpr uint64_t kShared = 4;
    std::atomic<int> errors{0};
    auto chunksOf = [](uint64_t id) { return scatteredPages(id % 16 + 1, 0x100000000 + id * 0x100000); };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::vector<IommuDomain::MappingRef> held;
            for (int r = 0; r < kRounds; ++r) {
                // Own buffers (ids 100+) and shared ones (ids 1..kShared).
                uint64_t own = 100 + static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(r % 40);
                uint64_t shared = 1 + static_cast<uint64_t>(r) % kShared;
                uint64_t limit = (r % 3 == 0) ? 8 * MiB - 1 : UINT64_MAX;
                for (uint64_t id : {own, shared}) {
                    std::vector<PhysChunk> chunks = chunksOf(id);
                    Result<IommuDomain::MappingRef> m = d.mapBuffer(id, chunks, limit);
                    if (!m) {
                        ++errors;
                        continue;
                    }
                    Result<uint64_t> phys = d.translate((*m)->iova + 4 * KiB * (chunks.size() - 1));
                    if (!phys || *phys != chunks.back().address)
                        ++errors;
                    held.push_back(std::move(*m));
                }
                if (held.size() > 6)
                    held.erase(held.begin(), held.begin() + 4);
                if (r % 40 == 39) {
                    held.clear();
                    for (uint64_t k = 0; k < 40; ++k)
                        d.releaseBuffer(100 + static_cast<uint64_t>(t) * 1000 + k);
                }
            }
        });
    }
    for (std::thread& th : threads)
        th.join();
    EXPECT_EQ(errors.load(), 0);
    for (uint64_t id = 1; id <= kShared; ++id) {
        EXPECT_EQ(d.releaseBuffer(id), 0u);
    }
    IommuDomainStats s = d.stats();
    EXPECT_EQ(s.mappingCount, 0u);
    EXPECT_EQ(s.usedIovaBytes, 0u);
    EXPECT_EQ(s.mappedBytes, 0u);
    EXPECT_GT(s.hits, 0u);
    EXPECT_EQ(s.hits + s.misses, static_cast<uint64_t>(kThreads) * kRounds * 2);
}

} // namespace
} // namespace cenalloc
