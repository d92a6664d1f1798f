// SPDX-License-Identifier: MIT
// Tests that the example platforms load and have what their scenarios need.
#include <cenalloc/platform.h>

#include <string>

#include <cenalloc/units.h>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

constexpr uint64_t k1G = uint64_t{1} << 30;
constexpr uint64_t k4G = uint64_t{1} << 32;

std::string examplePath(const char* file) {
    return std::string(CENALLOC_SOURCE_DIR "/examples/platforms/") + file;
}

Platform loadExample(const char* file) {
    Result<Platform> p = loadPlatformFile(examplePath(file));
    EXPECT_TRUE(p) << (p ? "" : p.error().toString());
    return p ? std::move(p).value() : Platform{};
}

const ReservedRegion* defaultCma(const Platform& p) {
    for (const ReservedRegion& r : p.regions)
        if (r.isDefault)
            return &r;
    return nullptr;
}

bool insideABank(const Platform& p, uint64_t base, uint64_t end) {
    for (const MemoryBank& b : p.memory)
        if (base >= b.base && end <= b.end())
            return true;
    return false;
}

TEST(ExamplePlatforms, AllLoadAndValidate) {
    for (const char* file : {"phone-soc.yaml", "rpi4.yaml", "pc-x86.yaml"}) {
        SCOPED_TRACE(file);
        Result<Platform> p = loadPlatformFile(examplePath(file));
        ASSERT_TRUE(p) << p.error().toString();
        EXPECT_EQ(p->source, examplePath(file));
        EXPECT_FALSE(p->name.empty());
        EXPECT_FALSE(p->description.empty());
        EXPECT_FALSE(p->devices.empty());
        Result<void> valid = validatePlatform(*p);
        EXPECT_TRUE(valid) << valid.error().toString();
        for (const Device& d : p->devices) {
            SCOPED_TRACE(d.name);
            EXPECT_FALSE(d.description.empty());
        }
    }
}

TEST(ExamplePlatforms, PhoneSocHasSmmusForGpuIspCodecAndAContiguousDisplay) {
    Platform p = loadExample("phone-soc.yaml");
    EXPECT_EQ(p.name, "phone-soc");
    EXPECT_GE(p.totalMemory(), 8 * GiB);
    EXPECT_GT(p.memoryEnd(), k4G);

    for (const char* name : {"gpu", "isp", "codec"}) {
        SCOPED_TRACE(name);
        const Device* d = p.findDevice(name);
        ASSERT_NE(d, nullptr);
        ASSERT_TRUE(d->iommu.has_value());
        EXPECT_NE(p.findIommu(*d->iommu), nullptr);
        EXPECT_FALSE(d->constraints.needsContiguous());
    }

    const Device* display = p.findDevice("display");
    ASSERT_NE(display, nullptr);
    EXPECT_FALSE(display->iommu.has_value());
    EXPECT_TRUE(display->constraints.contiguous);
    EXPECT_EQ(display->constraints.maxSegmentCount, 1u);
    EXPECT_EQ(display->constraints.dmaMask, 0xffffffffu);

    // The display's only option: a default CMA pool it can address.
    const ReservedRegion* cma = defaultCma(p);
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->kind, RegionKind::Cma);
    EXPECT_LE(cma->end() - 1, display->constraints.dmaMask);
    EXPECT_NE(cma->accessBits & display->constraints.accessBits, 0u);
    EXPECT_TRUE(insideABank(p, cma->base, cma->end()));
    EXPECT_GE(cma->size, 64 * MiB);
}

TEST(ExamplePlatforms, Rpi4HasNoIommuAndItsCmaPoolIsBelow1G) {
    Platform p = loadExample("rpi4.yaml");
    EXPECT_EQ(p.name, "rpi4");
    EXPECT_TRUE(p.iommus.empty());
    for (const Device& d : p.devices) {
        SCOPED_TRACE(d.name);
        EXPECT_FALSE(d.iommu.has_value());
    }

    ASSERT_EQ(p.memory.size(), 2u);
    EXPECT_EQ(p.memory[0].base, 0u);
    EXPECT_EQ(p.memory[0].end(), 0x3b400000u);
    EXPECT_EQ(p.memory[1].base, 0x40000000u);
    EXPECT_EQ(p.memory[1].end(), 0xfc000000u);
    EXPECT_GE(p.memory[1].size, 2 * GiB);

    const ReservedRegion* cma = defaultCma(p);
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->kind, RegionKind::Cma);
    EXPECT_LE(cma->end(), k1G);

    // Display and camera reach only the first GiB and take one contiguous
    // buffer: the CMA pool is the one place that serves both.
    for (const char* name : {"hvs", "unicam"}) {
        SCOPED_TRACE(name);
        const Device* d = p.findDevice(name);
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(d->constraints.dmaMask, k1G - 1);
        EXPECT_TRUE(d->constraints.needsContiguous());
        EXPECT_LE(cma->end() - 1, d->constraints.dmaMask);
        EXPECT_LE(cma->size, d->constraints.maxSegmentSize);
    }
    const Device* dma = p.findDevice("dma");
    ASSERT_NE(dma, nullptr);
    EXPECT_EQ(dma->constraints.dmaMask, k1G - 1);
    // Some masters reach beyond the first GiB.
    const Device* genet = p.findDevice("genet");
    ASSERT_NE(genet, nullptr);
    EXPECT_GT(genet->constraints.dmaMask, p.memoryEnd() - 1);
}

TEST(ExamplePlatforms, PcX86HasOneThirtyTwoBitDeviceAndMemoryAbove4G) {
    Platform p = loadExample("pc-x86.yaml");
    EXPECT_EQ(p.name, "pc-x86");
    EXPECT_TRUE(p.iommus.empty());
    EXPECT_TRUE(p.regions.empty());

    uint64_t below4G = 0, above4G = 0;
    for (const MemoryBank& b : p.memory)
        (b.end() <= k4G ? below4G : above4G) += b.size;
    EXPECT_GE(below4G, 1 * GiB);
    EXPECT_GE(above4G, 8 * GiB);

    int thirtyTwoBit = 0;
    for (const Device& d : p.devices) {
        SCOPED_TRACE(d.name);
        EXPECT_FALSE(d.iommu.has_value());
        EXPECT_TRUE(d.constraints.coherent);
        EXPECT_FALSE(d.constraints.needsContiguous());
        if (d.constraints.dmaMask == k4G - 1)
            ++thirtyTwoBit;
        else
            EXPECT_GT(d.constraints.dmaMask, k4G - 1);
    }
    EXPECT_EQ(thirtyTwoBit, 1);
    const Device* capture = p.findDevice("capture");
    ASSERT_NE(capture, nullptr);
    EXPECT_EQ(capture->constraints.dmaMask, k4G - 1);
    for (const char* name : {"gpu", "nvme", "xhci"})
        EXPECT_NE(p.findDevice(name), nullptr) << name;
    const Device* nvme = p.findDevice("nvme");
    ASSERT_NE(nvme, nullptr);
    EXPECT_EQ(nvme->constraints.dmaMask, kNoLimit);
}

} // namespace
} // namespace cenalloc
