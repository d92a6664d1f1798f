// SPDX-License-Identifier: MIT
// Tests of the built-in reference platform the demo and other tests rely on.
#include <cenalloc/platform.h>

#include <cenalloc/units.h>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

constexpr uint64_t k4G = uint64_t{1} << 32;

TEST(DefaultPlatform, LoadsFromTheBuiltinText) {
    const Platform& p = defaultPlatform();
    EXPECT_EQ(p.name, "cenalloc-reference");
    EXPECT_EQ(p.source, "<builtin>");
    EXPECT_FALSE(p.description.empty());
    Result<void> valid = validatePlatform(p);
    EXPECT_TRUE(valid) << valid.error().toString();
}

TEST(DefaultPlatform, IsParsedOnceAndShared) {
    EXPECT_EQ(&defaultPlatform(), &defaultPlatform());
}

TEST(DefaultPlatform, TextParsesToTheSamePlatform) {
    Result<Platform> parsed = parsePlatformYaml(defaultPlatformYaml(), "<builtin>");
    ASSERT_TRUE(parsed) << parsed.error().toString();
    const Platform& p = defaultPlatform();
    EXPECT_EQ(parsed->name, p.name);
    ASSERT_EQ(parsed->devices.size(), p.devices.size());
    for (size_t i = 0; i < p.devices.size(); ++i) {
        SCOPED_TRACE(p.devices[i].name);
        EXPECT_EQ(parsed->devices[i].constraints, p.devices[i].constraints);
        EXPECT_EQ(parsed->devices[i].iommu, p.devices[i].iommu);
    }
}

TEST(DefaultPlatform, HasTwoBanksOneAbove4G) {
    const Platform& p = defaultPlatform();
    ASSERT_EQ(p.memory.size(), 2u);
    EXPECT_EQ(p.memory[0].name, "dram-low");
    EXPECT_EQ(p.memory[0].base, 0x40000000u);
    EXPECT_EQ(p.memory[0].size, 2 * GiB);
    EXPECT_EQ(p.memory[1].name, "dram-high");
    EXPECT_EQ(p.memory[1].base, 0x880000000u);
    EXPECT_EQ(p.memory[1].size, 2 * GiB);
    EXPECT_EQ(p.totalMemory(), 4 * GiB);
    EXPECT_GT(p.memoryEnd(), k4G);
    EXPECT_LE(p.memory[0].end(), k4G);
}

TEST(DefaultPlatform, HasADefaultCmaPoolAndASecureCarveout) {
    const Platform& p = defaultPlatform();
    ASSERT_EQ(p.regions.size(), 2u);

    const ReservedRegion* cma = p.findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->kind, RegionKind::Cma);
    EXPECT_EQ(cma->base, 0xb0000000u);
    EXPECT_EQ(cma->size, 256 * MiB);
    EXPECT_TRUE(cma->isDefault);
    EXPECT_FALSE(cma->noMap);
    EXPECT_EQ(cma->accessBits, kAllAccess);
    EXPECT_LE(cma->end(), k4G);

    const ReservedRegion* vpu = p.findRegion("vpu-carveout");
    ASSERT_NE(vpu, nullptr);
    EXPECT_EQ(vpu->kind, RegionKind::Carveout);
    EXPECT_EQ(vpu->base, 0xa8000000u);
    EXPECT_EQ(vpu->size, 128 * MiB);
    EXPECT_TRUE(vpu->noMap);
    EXPECT_FALSE(vpu->isDefault);
    EXPECT_EQ(vpu->accessBits, 0x2u);
}

TEST(DefaultPlatform, HasAGpuSmmuAndA40BitMediaSmmu) {
    const Platform& p = defaultPlatform();
    ASSERT_EQ(p.iommus.size(), 2u);
    const Iommu* gpu = p.findIommu("gpu-smmu");
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ(gpu->pageSize, 4096u);
    EXPECT_EQ(gpu->apertureBase, 0x100000u);
    EXPECT_EQ(gpu->apertureSize, 0xfff00000u);
    const Iommu* media = p.findIommu("media-smmu");
    ASSERT_NE(media, nullptr);
    EXPECT_EQ(media->pageSize, 4096u);
    EXPECT_EQ(media->apertureBase, 0x100000u);
    EXPECT_EQ(media->apertureSize, 0xfffff00000u);
    EXPECT_EQ(media->apertureBase + media->apertureSize, uint64_t{1} << 40);
}

TEST(DefaultPlatform, DevicesHaveTheDocumentedConstraints) {
    struct Expected {
        const char* name;
        const char* iommu; // nullptr: none
        int maskBits;
        uint64_t maxSegmentSize;
        uint32_t maxSegmentCount;
        bool contiguous;
        bool coherent;
        uint64_t accessBits;
    };
    const Expected table[] = {
        {"gpu", "gpu-smmu", 40, 0xffffffff, 0, false, true, 0x1},
        {"isp", "media-smmu", 32, kDefaultMaxSegmentSize, 0, false, false, 0x1},
        {"codec", "media-smmu", 36, kDefaultMaxSegmentSize, 0, false, false, 0x3},
        {"display", nullptr, 32, 0xffffffff, 1, true, false, 0x1},
        {"camera", nullptr, 32, kDefaultMaxSegmentSize, 64, false, false, 0x1},
        {"usb", nullptr, 32, kDefaultMaxSegmentSize, 0, false, true, 0x1},
    };
    const Platform& p = defaultPlatform();
    ASSERT_EQ(p.devices.size(), std::size(table));
    for (const Expected& e : table) {
        SCOPED_TRACE(e.name);
        const Device* d = p.findDevice(e.name);
        ASSERT_NE(d, nullptr);
        const DmaConstraints& c = d->constraints;
        if (e.iommu)
            EXPECT_EQ(d->iommu, std::optional<std::string>(e.iommu));
        else
            EXPECT_EQ(d->iommu, std::nullopt);
        uint64_t mask = (uint64_t{1} << e.maskBits) - 1;
        EXPECT_EQ(c.dmaMask, mask);
        EXPECT_EQ(c.coherentDmaMask, mask);
        EXPECT_EQ(c.maxSegmentSize, e.maxSegmentSize);
        EXPECT_EQ(c.maxSegmentCount, e.maxSegmentCount);
        EXPECT_EQ(c.contiguous, e.contiguous);
        EXPECT_EQ(c.needsContiguous(), e.contiguous);
        EXPECT_EQ(c.coherent, e.coherent);
        EXPECT_EQ(c.accessBits, e.accessBits);
        EXPECT_EQ(c.segmentBoundaryMask, kNoLimit);
        EXPECT_EQ(c.alignment, 4096u);
        EXPECT_FALSE(d->description.empty());
    }
}

TEST(DefaultPlatform, OnlyTheCodecReachesTheSecureCarveout) {
    const Platform& p = defaultPlatform();
    const ReservedRegion* vpu = p.findRegion("vpu-carveout");
    const ReservedRegion* cma = p.findRegion("linux,cma");
    ASSERT_NE(vpu, nullptr);
    ASSERT_NE(cma, nullptr);
    for (const Device& d : p.devices) {
        SCOPED_TRACE(d.name);
        EXPECT_EQ((d.constraints.accessBits & vpu->accessBits) != 0, d.name == "codec");
        EXPECT_NE(d.constraints.accessBits & cma->accessBits, 0u);
    }
}

} // namespace
} // namespace cenalloc
