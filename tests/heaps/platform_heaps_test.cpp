// SPDX-License-Identifier: MIT
// Tests of the heaps a platform offers: names, order and declared properties.
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/platform_heaps.h"

namespace cenalloc {
namespace {

constexpr uint64_t kDram = 0x40000000;
constexpr uint64_t kHigh = 0x100000000;
constexpr uint64_t kSecureBits = 0x2;

// 256 MiB below 4 GiB holding a 32 MiB CMA pool and a 16 MiB no-map
// carveout, and, with @p high, 64 MiB above 4 GiB.
Platform boardPlatform(bool high) {
    Platform p;
    p.name = "board";
    p.memory = {{.name = "dram", .base = kDram, .size = 256 * MiB}};
    if (high)
        p.memory.push_back({.name = "high", .base = kHigh, .size = 64 * MiB});
    p.regions = {
        {.name = "cma", .kind = RegionKind::Cma, .base = kDram + 128 * MiB, .size = 32 * MiB, .isDefault = true},
        {.name = "secure",
         .kind = RegionKind::Carveout,
         .base = kDram + 192 * MiB,
         .size = 16 * MiB,
         .noMap = true,
         .accessBits = kSecureBits},
    };
    EXPECT_TRUE(validatePlatform(p));
    return p;
}

std::vector<std::string> names(const std::vector<HeapProperties>& heaps) {
    std::vector<std::string> out;
    for (const HeapProperties& h : heaps)
        out.push_back(h.name);
    return out;
}

TEST(PlatformHeaps, NamesAndOrderWithMemoryAbove4G) {
    const Platform p = boardPlatform(true);
    auto memory = std::make_shared<PhysicalMemory>(p);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, memory);
    ASSERT_TRUE(heaps) << heaps.error().toString();
    std::vector<std::string> got;
    for (const auto& h : *heaps)
        got.push_back(h->name());
    const std::vector<std::string> expected = {"system", "system-uncached", "system-dma32", "system-uncached-dma32",
                                               "cma",    "secure"};
    EXPECT_EQ(got, expected);
    EXPECT_EQ(names(platformHeapProperties(p)), expected);
}

TEST(PlatformHeaps, NoDma32HeapsWithoutMemoryAbove4G) {
    const Platform p = boardPlatform(false);
    const std::vector<std::string> expected = {"system", "system-uncached", "cma", "secure"};
    EXPECT_EQ(names(platformHeapProperties(p)), expected);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_TRUE(heaps);
    EXPECT_EQ(heaps->size(), 4u);
}

TEST(PlatformHeaps, NoDma32HeapsWithOnlyMemoryAbove4G) {
    // A dma32 heap there would have nothing to hand out.
    Platform p;
    p.memory = {{.name = "high", .base = kHigh, .size = 64 * MiB}};
    ASSERT_TRUE(validatePlatform(p));
    const std::vector<std::string> expected = {"system", "system-uncached"};
    EXPECT_EQ(names(platformHeapProperties(p)), expected);
}

// A board's kernel has the vendor heaps its description names, no more:
// the answer to "which /dev/dma_heap node" must be a node that exists.
TEST(PlatformHeaps, VendorHeapsOnlyWhereTheBoardsKernelHasThem) {
    Platform p = boardPlatform(true);
    p.vendorHeaps = std::vector<std::string>{};
    ASSERT_TRUE(validatePlatform(p));
    EXPECT_EQ(names(platformHeapProperties(p)), (std::vector<std::string>{"system", "cma", "secure"}));
    p.vendorHeaps = std::vector<std::string>{"system-dma32", "system-uncached"};
    EXPECT_EQ(names(platformHeapProperties(p)),
              (std::vector<std::string>{"system", "system-uncached", "system-dma32", "cma", "secure"}));
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_TRUE(heaps);
    EXPECT_EQ(heaps->size(), 5u);
    p.vendorHeaps = std::vector<std::string>{"system-secure"};
    Result<void> bad = validatePlatform(p);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_NE(bad.error().message().find("system-secure"), std::string::npos);
}

// Which reserved regions are heaps: the kernel's (heap), a device's own
// pool (owners, a heap for them alone), never a restricted-dma-pool, and
// nothing for memory merely set aside.
TEST(PlatformHeaps, RegionsAreHeapsWhenTheKernelOrTheirOwnersAllocateFromThem) {
    Platform p = boardPlatform(false);
    p.devices.resize(2);
    p.devices[0].name = "dsp";
    p.devices[1].name = "wifi";
    p.regions[1].owners = {"dsp"};
    p.regions.push_back(
        {.name = "unused-pool", .kind = RegionKind::Cma, .base = kDram + 160 * MiB, .size = 16 * MiB, .heap = false});
    p.regions.push_back({.name = "wifi-bounce",
                         .kind = RegionKind::Carveout,
                         .base = kDram + 176 * MiB,
                         .size = 4 * MiB,
                         .owners = {"wifi"},
                         .restricted = true});
    p.devices[1].restrictedPool = "wifi-bounce";
    Result<void> valid = validatePlatform(p);
    ASSERT_TRUE(valid) << valid.error().toString();
    const std::vector<HeapProperties> heaps = platformHeapProperties(p);
    EXPECT_EQ(names(heaps), (std::vector<std::string>{"system", "system-uncached", "cma", "secure"}));
    EXPECT_TRUE(heaps[2].owners.empty());
    EXPECT_EQ(heaps[3].owners, std::vector<std::string>{"dsp"});
    Result<std::vector<std::shared_ptr<Heap>>> created = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_TRUE(created);
    EXPECT_EQ(created->size(), 4u);

    // Owners and pools must name what exists.
    p.regions[1].owners = {"nobody"};
    ASSERT_FALSE(validatePlatform(p));
    p.regions[1].owners = {"dsp"};
    p.devices[0].restrictedPool = "cma";
    Result<void> notRestricted = validatePlatform(p);
    ASSERT_FALSE(notRestricted);
    EXPECT_NE(notRestricted.error().message().find("no restricted-dma-pool"), std::string::npos);
}

TEST(PlatformHeaps, SystemHeapProperties) {
    const Platform p = boardPlatform(true);
    const std::vector<HeapProperties> props = platformHeapProperties(p);
    ASSERT_EQ(props.size(), 6u);
    const uint64_t general = 256 * MiB - 32 * MiB - 16 * MiB + 64 * MiB;
    const uint64_t generalBelow4G = 256 * MiB - 48 * MiB;
    struct Expect {
        const char* name;
        bool cached;
        uint64_t highest;
        uint64_t capacity;
    };
    const Expect expects[] = {
        {"system", true, kHigh + 64 * MiB - 1, general},
        {"system-uncached", false, kHigh + 64 * MiB - 1, general},
        {"system-dma32", true, 0xffffffff, generalBelow4G},
        {"system-uncached-dma32", false, 0xffffffff, generalBelow4G},
    };
    for (size_t i = 0; i < 4; ++i) {
        const HeapProperties& h = props[i];
        SCOPED_TRACE(h.name);
        EXPECT_EQ(h.name, expects[i].name);
        EXPECT_EQ(h.kind, HeapKind::System);
        EXPECT_EQ(h.cached, expects[i].cached);
        EXPECT_FALSE(h.contiguous);
        EXPECT_EQ(h.lowestAddress, kDram);
        EXPECT_EQ(h.highestAddress, expects[i].highest);
        EXPECT_EQ(h.capacity, expects[i].capacity);
        EXPECT_EQ(h.maxChunkSize, 1 * MiB);
        EXPECT_EQ(h.minChunkSize, 4 * KiB);
        EXPECT_EQ(h.chunkAlignment, 4 * KiB);
        EXPECT_EQ(h.accessBits, kAllAccess);
        EXPECT_EQ(h.validHeapFlags, 0u);
        EXPECT_FALSE(h.description.empty());
    }
    // Without high memory "system" ends where the DRAM bank does.
    const std::vector<HeapProperties> low = platformHeapProperties(boardPlatform(false));
    EXPECT_EQ(low[0].highestAddress, kDram + 256 * MiB - 1);
    EXPECT_EQ(low[0].capacity, generalBelow4G);
}

TEST(PlatformHeaps, RegionHeapProperties) {
    const Platform p = boardPlatform(true);
    const std::vector<HeapProperties> props = platformHeapProperties(p);
    ASSERT_EQ(props.size(), 6u);

    const HeapProperties& cma = props[4];
    EXPECT_EQ(cma.name, "cma");
    EXPECT_EQ(cma.kind, HeapKind::Cma);
    EXPECT_TRUE(cma.contiguous);
    EXPECT_TRUE(cma.cached);
    EXPECT_EQ(cma.lowestAddress, kDram + 128 * MiB);
    EXPECT_EQ(cma.highestAddress, kDram + 160 * MiB - 1);
    EXPECT_EQ(cma.maxChunkSize, 32 * MiB);
    EXPECT_EQ(cma.minChunkSize, 4 * KiB);
    EXPECT_EQ(cma.chunkAlignment, 4 * KiB);
    EXPECT_EQ(cma.capacity, 32 * MiB);
    EXPECT_EQ(cma.accessBits, kAllAccess);

    // A no-map carveout can only be mapped uncached by the CPU.
    const HeapProperties& secure = props[5];
    EXPECT_EQ(secure.name, "secure");
    EXPECT_EQ(secure.kind, HeapKind::Carveout);
    EXPECT_TRUE(secure.contiguous);
    EXPECT_FALSE(secure.cached);
    EXPECT_EQ(secure.lowestAddress, kDram + 192 * MiB);
    EXPECT_EQ(secure.highestAddress, kDram + 208 * MiB - 1);
    EXPECT_EQ(secure.capacity, 16 * MiB);
    EXPECT_EQ(secure.accessBits, kSecureBits);

    // A carveout in the linear map is cached.
    Platform mapped = p;
    mapped.regions[1].noMap = false;
    EXPECT_TRUE(platformHeapProperties(mapped)[5].cached);
}

TEST(PlatformHeaps, CreatedHeapsCarryTheSameProperties) {
    const Platform p = boardPlatform(true);
    const std::vector<HeapProperties> props = platformHeapProperties(p);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_TRUE(heaps);
    ASSERT_EQ(heaps->size(), props.size());
    for (size_t i = 0; i < props.size(); ++i) {
        const HeapProperties& h = (*heaps)[i]->properties();
        SCOPED_TRACE(h.name);
        EXPECT_EQ(h.name, props[i].name);
        EXPECT_EQ(h.kind, props[i].kind);
        EXPECT_EQ(h.lowestAddress, props[i].lowestAddress);
        EXPECT_EQ(h.highestAddress, props[i].highestAddress);
        EXPECT_EQ(h.contiguous, props[i].contiguous);
        EXPECT_EQ(h.cached, props[i].cached);
        EXPECT_EQ(h.capacity, props[i].capacity);
        EXPECT_EQ(h.accessBits, props[i].accessBits);
        // Nothing allocated yet: every heap has its whole capacity free.
        EXPECT_EQ((*heaps)[i]->freeBytes(), h.capacity);
    }
}

TEST(PlatformHeaps, RegionNamedLikeASystemHeapIsEinval) {
    Platform p = boardPlatform(true);
    p.regions[0].name = "system-dma32";
    ASSERT_TRUE(validatePlatform(p));
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_FALSE(heaps);
    EXPECT_EQ(heaps.error().code(), EINVAL);
    EXPECT_NE(heaps.error().message().find("system-dma32"), std::string::npos);
}

TEST(HeapKind, Names) {
    EXPECT_STREQ(heapKindName(HeapKind::System), "system");
    EXPECT_STREQ(heapKindName(HeapKind::Cma), "cma");
    EXPECT_STREQ(heapKindName(HeapKind::Carveout), "carveout");
}

} // namespace
} // namespace cenalloc
