// SPDX-License-Identifier: MIT
// Tests of the device tree loader on dtc-compiled fixtures: memory, windows, IOMMUs, status, reserved memory, names.
#include <cenalloc/platform_sources.h>

#include <cerrno>

#include <cenalloc/units.h>

#include "support/dtb.h"

namespace cenalloc {
namespace {

using dtbtest::FdtWriter;
using dtbtest::Loaded;
using dtbtest::loadFixture;
using dtbtest::warned;

uint64_t bits(unsigned n) {
    return n >= 64 ? kNoLimit : (uint64_t{1} << n) - 1;
}

const Device& device(const Platform& p, std::string_view name) {
    const Device* d = p.findDevice(name);
    if (!d) {
        ADD_FAILURE() << "no device " << name;
        static const Device none;
        return none;
    }
    return *d;
}

TEST(DtbLoader, MemoryNodesBecomeBanksTrimmedToPages) {
    CENALLOC_REQUIRE_FIXTURE("memory");
    Loaded l = loadFixture("memory");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    EXPECT_EQ(p.name, "cenalloc,test-memory");
    EXPECT_NE(p.description.find("memory fixture"), std::string::npos);
    EXPECT_EQ(p.source, dtbtest::fixturePath("memory"));
    // Two entries of one node are two banks; the /memreserve/ at 1 GiB is cut
    // out; the disabled and the empty node add nothing; the unaligned one is
    // trimmed inward.
    ASSERT_EQ(p.memory.size(), 3u);
    EXPECT_EQ(p.memory[0].base, 0x40010000u);
    EXPECT_EQ(p.memory[0].end(), 0x80000000u);
    EXPECT_EQ(p.memory[1].base, 0x80001000u);
    EXPECT_EQ(p.memory[1].end(), 0x90000000u);
    EXPECT_EQ(p.memory[2].base, 0x100000000u);
    EXPECT_EQ(p.memory[2].size, 2 * GiB);
    EXPECT_EQ(p.memory[2].name, "ram-100000000");
    EXPECT_TRUE(p.regions.empty());
    EXPECT_TRUE(validatePlatform(p));
    // No CMA pool: the loader says where the kernel's would come from.
    EXPECT_TRUE(warned(l.warnings, {"no CMA pool", "cma_size"}));
}

TEST(DtbLoader, NoRamIsEnodataNamingTheOverlay) {
    CENALLOC_REQUIRE_FIXTURE("no_memory");
    Loaded l = loadFixture("no_memory");
    ASSERT_FALSE(l.platform);
    EXPECT_EQ(l.platform.error().code(), ENODATA);
    EXPECT_NE(l.platform.error().message().find("no ram"), std::string::npos);
    EXPECT_NE(l.platform.error().message().find("overlay"), std::string::npos);
}

TEST(DtbLoader, DmaRangesNarrowTheMaskAtEveryLevel) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Loaded l = loadFixture("dma_ranges");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    struct Case {
        const char* device;
        uint64_t mask;
        const char* why;
    };
    const Case cases[] = {
        {"dma-controller", bits(32), "no dma-ranges: the kernel's 32-bit default for platform devices"},
        {"ethernet@2000", bits(40), "no dma-ranges: the driver's 40-bit mask"},
        {"ethernet@3000", bits(40), "an empty dma-ranges maps 1:1"},
        {"display", bits(30), "bus 0xc000_0000 is CPU 0, 1 GiB"},
        {"camera", bits(29), "an inner bus keeps only 512 MiB of that GiB"},
        {"ethernet@6000", 0xbfffffff, "a 3 GiB window is an address limit, not rounded to a power of two"},
        {"pcie", bits(31), "the root complex's own 2 GiB window"},
        {"usb@0.0", bits(31), "a PCI function is bounded by its root complex's window"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.device);
        const Device& d = device(p, c.device);
        EXPECT_EQ(d.constraints.dmaMask, c.mask) << c.why;
        EXPECT_EQ(d.constraints.coherentDmaMask, c.mask) << c.why;
    }
}

TEST(DtbLoader, AWindowNoMaskCanExpressSkipsTheDeviceWithAWarning) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Loaded l = loadFixture("dma_ranges");
    ASSERT_TRUE(l.platform);
    // offset-bus/sub-bus maps the device to CPU 1..2 GiB while RAM starts at 0.
    for (const Device& d : l.platform->devices)
        EXPECT_EQ(d.description.find("/offset-bus/"), std::string::npos) << d.name;
    EXPECT_TRUE(warned(l.warnings, {"/offset-bus/sub-bus/ethernet@1,0", "skipped"}));
}

TEST(DtbLoader, AWindowAboveRamFreeMemoryIsExpressedFromZero) {
    // RAM at 1..3 GiB and a bus whose child 0 is CPU 1 GiB: every byte of RAM
    // is reachable although the window does not start at 0.
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@40000000").string("device_type", "memory").cells("reg", {0x40000000, 0x80000000}).end();
    w.begin("bus").string("compatible", "simple-bus").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.flag("ranges").cells("dma-ranges", {0x0, 0x40000000, 0x80000000});
    w.begin("usb@1000").string("compatible", "generic-xhci").cells("reg", {0x1000, 0x100}).end();
    w.end().end();
    std::vector<std::byte> blob = w.finish();
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTree(blob, "offset.dtb", nullptr, &warnings);
    ASSERT_TRUE(p) << p.error().toString();
    // The highest reachable address is 3 GiB - 1, the limit as it is.
    EXPECT_EQ(device(*p, "usb").constraints.dmaMask, 0xbfffffffu);
}

TEST(DtbLoader, CoherencyComesFromTheNearestNodeThatSays) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Loaded l = loadFixture("dma_ranges");
    ASSERT_TRUE(l.platform);
    EXPECT_TRUE(device(*l.platform, "usb@7000").constraints.coherent);
    EXPECT_FALSE(device(*l.platform, "usb@8000").constraints.coherent);
    EXPECT_TRUE(device(*l.platform, "accel").constraints.coherent);
    // arm64's default: not coherent.
    EXPECT_FALSE(device(*l.platform, "display").constraints.coherent);
}

TEST(DtbLoader, TheMasterRuleTakesTableCompatiblesDmaCoherentAndPciFunctions) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Loaded l = loadFixture("dma_ranges");
    ASSERT_TRUE(l.platform);
    std::vector<std::string> names;
    for (const Device& d : l.platform->devices)
        names.push_back(d.name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names,
              (std::vector<std::string>{"accel", "camera", "display", "dma-controller", "ethernet@2000",
                                        "ethernet@3000", "ethernet@6000", "pcie", "usb@0.0", "usb@7000", "usb@8000"}));
    // Buses, a dma-coherent node without reg and an unknown compatible without
    // DMA properties are not masters; the PCI-PCI bridge is not either.
    for (const char* not_master : {"plain-bus", "coherent-bus", "dma-coherent-no-reg", "timer", "pci@0.0"})
        EXPECT_EQ(l.platform->findDevice(not_master), nullptr) << not_master;
}

TEST(DtbLoader, CompatibleTableSuppliesWhatTheTreeDoesNotCarry) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Loaded l = loadFixture("dma_ranges");
    ASSERT_TRUE(l.platform);
    // brcm,bcm2711-hvs scans out one contiguous buffer.
    const DmaConstraints& hvs = device(*l.platform, "display").constraints;
    EXPECT_EQ(hvs.maxSegmentCount, 1u);
    EXPECT_TRUE(hvs.needsContiguous());
    EXPECT_EQ(hvs.maxSegmentSize, 0xffffffffu);
    // Anything the table does not say keeps Linux's defaults.
    const DmaConstraints& pl330 = device(*l.platform, "dma-controller").constraints;
    EXPECT_EQ(pl330.maxSegmentSize, kDefaultMaxSegmentSize);
    EXPECT_EQ(pl330.maxSegmentCount, 0u);
    EXPECT_EQ(pl330.alignment, kPageSize);
    EXPECT_FALSE(pl330.needsContiguous());
    EXPECT_NE(device(*l.platform, "dma-controller").description.find("DMA engine arm,pl330 at /plain-bus"),
              std::string::npos);
}

TEST(DtbLoader, DevicesNamingOneIommuShareIt) {
    CENALLOC_REQUIRE_FIXTURE("iommus");
    Loaded l = loadFixture("iommus");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    // display, camera (two stream IDs), codec, "two" and the PCIe root
    // complex (iommu-map) all sit behind the SMMU: one I/O address space.
    for (const char* name : {"display", "camera", "video-codec", "two", "pcie"}) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(device(p, name).iommu.has_value());
        EXPECT_EQ(*device(p, name).iommu, "iommu@10000000");
    }
    ASSERT_TRUE(device(p, "vop").iommu.has_value());
    EXPECT_EQ(*device(p, "vop").iommu, "iommu@20000000");
    const Iommu* smmu = p.findIommu("iommu@10000000");
    ASSERT_NE(smmu, nullptr);
    EXPECT_EQ(smmu->pageSize, 4096u);
    EXPECT_EQ(smmu->apertureBase, 4096u);
    EXPECT_EQ(smmu->apertureBase + smmu->apertureSize, uint64_t{1} << 48) << "MMU-500: 48-bit input";
    const Iommu* rk = p.findIommu("iommu@20000000");
    ASSERT_NE(rk, nullptr);
    EXPECT_EQ(rk->apertureBase + rk->apertureSize, uint64_t{1} << 32) << "rockchip-iommu: 32-bit aperture";
    EXPECT_TRUE(warned(l.warnings, {"/two@8000", "2 IOMMUs"}));
}

TEST(DtbLoader, ADisabledOrUnresolvableIommuMeansDirectDma) {
    CENALLOC_REQUIRE_FIXTURE("iommus");
    Loaded l = loadFixture("iommus");
    ASSERT_TRUE(l.platform);
    const Platform& p = *l.platform;
    EXPECT_FALSE(device(p, "isp").iommu.has_value());
    EXPECT_EQ(p.findIommu("iommu@30000000"), nullptr);
    // Without its IOMMU the ISP's one-buffer queue needs physical contiguity.
    EXPECT_TRUE(device(p, "isp").constraints.needsContiguous());
    EXPECT_TRUE(warned(l.warnings, {"/iommu@30000000", "disabled"}));
    EXPECT_FALSE(device(p, "dangling").iommu.has_value());
    EXPECT_TRUE(warned(l.warnings, {"/dangling@6000", "unknown phandle 0x1234"}));
    // An IOMMU of an unknown type is kept, with the safe 32-bit aperture.
    ASSERT_TRUE(device(p, "npu").iommu.has_value());
    const Iommu* odd = p.findIommu(*device(p, "npu").iommu);
    ASSERT_NE(odd, nullptr);
    EXPECT_EQ(odd->apertureBase + odd->apertureSize, uint64_t{1} << 32);
    EXPECT_TRUE(warned(l.warnings, {"vendor,unknown-iommu"}));
}

TEST(DtbLoader, DisabledNodesAndEverythingBelowThemAreSkipped) {
    CENALLOC_REQUIRE_FIXTURE("disabled");
    Loaded l = loadFixture("disabled");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    std::vector<std::string> names;
    for (const Device& d : l.platform->devices)
        names.push_back(d.name);
    EXPECT_EQ(names, (std::vector<std::string>{"usb@3000", "usb@4000"}));
    // The disabled reserved region reserves nothing: the bank is whole.
    ASSERT_EQ(l.platform->memory.size(), 1u);
    EXPECT_EQ(l.platform->memory[0].size, GiB);
}

struct RegionCase {
    const char* name;
    RegionKind kind;
    uint64_t base;
    uint64_t size;
    bool noMap;
    bool isDefault;
    const char* why;
};

TEST(DtbLoader, ReservedMemoryBecomesPoolsCarveoutsAndHoles) {
    CENALLOC_REQUIRE_FIXTURE("reserved");
    Loaded l = loadFixture("reserved");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    const RegionCase cases[] = {
        {"linux,cma", RegionKind::Cma, 0xb0000000, 256 * MiB, false, true, "fixed reg, linux,cma-default"},
        {"dyn-cma", RegionKind::Cma, 0x7b000000, 64 * MiB, false, false,
         "top-down in its alloc-ranges, below the firmware region at 0x7f00_0000"},
        {"dyn-aligned", RegionKind::Cma, 0x78000000, 32 * MiB, false, false,
         "placed after dyn-cma, at its 64 MiB alignment"},
        {"anywhere", RegionKind::Cma, 0x13f000000, 16 * MiB, false, false, "no alloc-ranges: the top of RAM"},
        {"vpu@60000000", RegionKind::Carveout, 0x60000000, 128 * MiB, true, false, "no-map, named by the codec"},
        {"pool@a0000000", RegionKind::Carveout, 0xa0000000, 16 * MiB, true, false, "shared-dma-pool without reusable"},
        {"cam-cma@90000000", RegionKind::Cma, 0x90000000, 64 * MiB, false, false, "the camera's own pool"},
        {"pool@a6000800", RegionKind::Carveout, 0xa6001000, 8 * KiB, false, false, "trimmed to its whole pages"},
    };
    EXPECT_EQ(p.regions.size(), std::size(cases));
    for (const RegionCase& c : cases) {
        SCOPED_TRACE(c.name);
        const ReservedRegion* r = p.findRegion(c.name);
        ASSERT_NE(r, nullptr) << c.why;
        EXPECT_EQ(r->kind, c.kind) << c.why;
        EXPECT_EQ(r->base, c.base) << c.why;
        EXPECT_EQ(r->size, c.size) << c.why;
        EXPECT_EQ(r->noMap, c.noMap) << c.why;
        EXPECT_EQ(r->isDefault, c.isDefault) << c.why;
    }
    EXPECT_TRUE(validatePlatform(p));
}

TEST(DtbLoader, FirmwareRegionsAreCutOutOfRamNotMadeHeaps) {
    CENALLOC_REQUIRE_FIXTURE("reserved");
    Loaded l = loadFixture("reserved");
    ASSERT_TRUE(l.platform);
    const Platform& p = *l.platform;
    auto inRam = [&](uint64_t address) {
        return std::any_of(p.memory.begin(), p.memory.end(),
                           [&](const MemoryBank& b) { return address >= b.base && address < b.end(); });
    };
    struct Hole {
        uint64_t address;
        const char* why;
    };
    for (const Hole& h : {Hole{0x40000000, "/memreserve/"}, Hole{0x7f000000, "firmware no-map region"},
                          Hole{0xa4000000, "ramoops: reserved for a driver that is no DMA master"},
                          Hole{0xa1000000, "a CMA pool the kernel refuses stays reserved"},
                          Hole{0xa2000000, "reusable + no-map stays reserved"},
                          Hole{0xa6000000, "the partial page of a trimmed region"}}) {
        SCOPED_TRACE(h.why);
        EXPECT_FALSE(inRam(h.address));
    }
    // Regions that are heaps stay inside RAM (the system heap skips them).
    EXPECT_TRUE(inRam(0xb0000000));
    for (const char* gone : {"fw@7f000000", "ramoops@a4000000", "misaligned@a1000000", "both@a2000000",
                             "outside@200000000", "overlap@b8000000", "too-big", "nothing"})
        EXPECT_EQ(p.findRegion(gone), nullptr) << gone;
    EXPECT_TRUE(warned(l.warnings, {"misaligned@a1000000", "2 MiB"}));
    EXPECT_TRUE(warned(l.warnings, {"both@a2000000", "reusable and no-map"}));
    EXPECT_TRUE(warned(l.warnings, {"too-big", "no free RAM"}));
    EXPECT_TRUE(warned(l.warnings, {"outside@200000000", "not inside one RAM bank"}));
    EXPECT_TRUE(warned(l.warnings, {"overlap@b8000000", "overlaps linux,cma"}));
    EXPECT_TRUE(warned(l.warnings, {"nothing", "neither reg nor size"}));
    // The overlap stays the default pool's memory: the pool is whole.
    EXPECT_EQ(p.findRegion("linux,cma")->size, 256 * MiB);
}

TEST(DtbLoader, MemoryRegionMakesARegionItsNamersOwn) {
    CENALLOC_REQUIRE_FIXTURE("reserved");
    Loaded l = loadFixture("reserved");
    ASSERT_TRUE(l.platform);
    const Platform& p = *l.platform;
    const ReservedRegion* vpu = p.findRegion("vpu@60000000");
    const ReservedRegion* cam = p.findRegion("cam-cma@90000000");
    ASSERT_TRUE(vpu && cam);
    // of_reserved_mem_device_init gives a region to the devices naming it.
    EXPECT_EQ(vpu->owners, (std::vector<std::string>{"video-codec"}));
    EXPECT_EQ(cam->owners, (std::vector<std::string>{"camera"}));
    EXPECT_FALSE(vpu->heap) << "a private carveout is nobody's heap";
    EXPECT_FALSE(cam->heap) << "a private CMA pool is nobody's heap";
    // The default CMA area is everyone's, and the one CMA heap.
    const ReservedRegion* cma = p.findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_TRUE(cma->owners.empty());
    EXPECT_TRUE(cma->heap);
    // Unowned pools other than the default are no heap either (cma_heap.c
    // adds the default area only).
    for (const char* name : {"dyn-cma", "dyn-aligned", "anywhere", "pool@a0000000", "pool@a6000800"}) {
        SCOPED_TRACE(name);
        ASSERT_NE(p.findRegion(name), nullptr);
        EXPECT_TRUE(p.findRegion(name)->owners.empty());
        EXPECT_FALSE(p.findRegion(name)->heap);
    }
    // Ownership replaces the old private access bits: every region and
    // every device keeps all access bits.
    for (const ReservedRegion& r : p.regions)
        EXPECT_EQ(r.accessBits, kAllAccess) << r.name;
    for (const Device& d : p.devices)
        EXPECT_EQ(d.constraints.accessBits, kAllAccess) << d.name;
}

TEST(DtbLoader, RestrictedDmaPoolIsTheBouncePoolOfItsOwners) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@40000000").string("device_type", "memory").cells("reg", {0x40000000, 0x40000000}).end();
    w.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).flag("ranges");
    w.begin("wifi-pool@50000000").string("compatible", "restricted-dma-pool");
    w.cells("reg", {0x50000000, 0x400000}).cells("phandle", {1}).end();
    w.begin("bad-pool@51000000").string("compatible", "restricted-dma-pool").flag("no-map");
    w.cells("reg", {0x51000000, 0x400000}).cells("phandle", {2}).end();
    w.end();
    w.begin("soc").string("compatible", "simple-bus").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.flag("ranges");
    w.begin("wifi@1000").string("compatible", "generic-xhci").cells("reg", {0x1000, 0x100});
    w.cells("memory-region", {1}).end();
    w.begin("usb@2000").string("compatible", "generic-xhci").cells("reg", {0x2000, 0x100}).end();
    w.end().end();
    std::vector<std::byte> blob = w.finish();
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTree(blob, "restricted.dtb", nullptr, &warnings);
    ASSERT_TRUE(p) << p.error().toString();
    const ReservedRegion* pool = p->findRegion("wifi-pool@50000000");
    ASSERT_NE(pool, nullptr);
    EXPECT_TRUE(pool->restricted);
    EXPECT_FALSE(pool->heap) << "a bounce pool is never a heap";
    EXPECT_EQ(pool->owners, (std::vector<std::string>{"wifi"}));
    EXPECT_EQ(device(*p, "wifi").restrictedPool, "wifi-pool@50000000");
    EXPECT_TRUE(device(*p, "usb").restrictedPool.empty());
    // rmem_swiotlb_setup refuses a no-map restricted pool.
    EXPECT_EQ(p->findRegion("bad-pool@51000000"), nullptr);
    EXPECT_TRUE(warned(warnings, {"bad-pool@51000000", "restricted-dma-pool"}));
    EXPECT_TRUE(validatePlatform(*p));
}

TEST(DtbLoader, ReservedMemoryWithCellsOtherThanTheRootsIsIgnoredLikeTheKernelDoes) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
    w.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0, 0, 0x80000000}).end();
    w.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).flag("ranges");
    w.begin("linux,cma").string("compatible", "shared-dma-pool").flag("reusable").flag("linux,cma-default");
    w.cells("reg", {0x10000000, 0x10000000}).end();
    w.end().end();
    std::vector<std::byte> blob = w.finish();
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTree(blob, "cells.dtb", nullptr, &warnings);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(p->regions.empty());
    EXPECT_TRUE(warned(warnings, {"/reserved-memory is ignored"}));
}

TEST(DtbLoader, NamesUseLabelsThenNodeNamesThenPaths) {
    CENALLOC_REQUIRE_FIXTURE("symbols");
    Loaded l = loadFixture("symbols");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    std::vector<std::string> names;
    for (const Device& d : l.platform->devices)
        names.push_back(d.name);
    EXPECT_EQ(names, (std::vector<std::string>{"hvs", "v3d", "ethernet", "mmc@4000", "mmc@5000", "/soc/dma@6000",
                                               "/soc/usb@7000", "/bus-a/sata@0.1", "/bus-b/sata@0.1"}));
    for (const std::string& n : names)
        EXPECT_EQ(n.find(','), std::string::npos) << "names must survive --devices a,b";
}

TEST(DtbLoader, WithoutSymbolsNamesComeFromNodes) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Loaded l = loadFixture("board");
    ASSERT_TRUE(l.platform);
    for (const char* name : {"hvs", "dma", "isp", "ethernet", "gpu"})
        EXPECT_NE(l.platform->findDevice(name), nullptr) << name;
    EXPECT_NE(l.platform->findIommu("iommu"), nullptr);
}

TEST(DtbLoader, BoardFixtureMatchesTheRaspberryPi4Layout) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Loaded l = loadFixture("board");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    // The CMA pool goes to the top of alloc-ranges (the first GiB), which is
    // the end of the first bank: 0x3b40_0000 - 64 MiB.
    const ReservedRegion* cma = p.findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->base, 0x37400000u);
    EXPECT_EQ(cma->size, 64 * MiB);
    EXPECT_TRUE(cma->isDefault);
    EXPECT_EQ(device(p, "hvs").constraints.dmaMask, bits(30));
    EXPECT_EQ(device(p, "dma").constraints.dmaMask, bits(30));
    EXPECT_EQ(device(p, "dma").constraints.maxSegmentSize, 0x3fffffffu);
    EXPECT_EQ(device(p, "ethernet").constraints.dmaMask, bits(40));
    EXPECT_EQ(device(p, "gpu").constraints.dmaMask, bits(32));
    EXPECT_TRUE(l.warnings.empty()) << l.warnings.front();
}

TEST(DtbLoader, FileErrorsCarryTheirErrno) {
    Result<Platform> missing = loadDeviceTreeFile("/nonexistent/x.dtb");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    Result<Platform> dir = loadDeviceTreeFile("/");
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), EISDIR);
    Result<Platform> yaml = loadDeviceTreeFile(std::string(CENALLOC_SOURCE_DIR) + "/examples/platforms/rpi4.yaml");
    ASSERT_FALSE(yaml);
    EXPECT_EQ(yaml.error().code(), EINVAL);
    EXPECT_NE(yaml.error().message().find("not a valid flattened device tree"), std::string::npos);
}

TEST(DtbLoader, OddPropertyValuesNeverFailTheWholeBlob) {
    // Every DMA property with a value of the wrong shape: the loader skips
    // what it cannot read and keeps the rest.
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0x40000000, 0x7}).end();
    w.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).flag("ranges");
    w.begin("a").string("compatible", "shared-dma-pool").flag("reusable").cells("size", {0, 1}).end();
    w.begin("b").string("compatible", "shared-dma-pool").cells("size", {0x100000}).cells("alignment", {3}).end();
    w.begin("c").string("compatible", "shared-dma-pool").cells("size", {0x100000}).bytes("alloc-ranges", {1}).end();
    w.end();
    w.begin("bus").string("compatible", "simple-bus").cells("#address-cells", {9}).flag("ranges");
    w.cells("dma-ranges", {1, 2, 3});
    w.begin("usb@1").string("compatible", "generic-xhci").cells("reg", {1}).end();
    w.end();
    w.begin("bus2").string("compatible", "simple-bus").flag("ranges").cells("dma-ranges", {0, 0, 0x1000, 7});
    w.begin("usb@2").string("compatible", "generic-ehci").cells("reg", {2, 1}).bytes("iommus", {1, 2}).end();
    w.begin("usb@3").string("compatible", "generic-ohci").cells("reg", {3, 1}).cells("memory-region", {99}).end();
    w.end();
    w.begin("mmu").cells("#iommu-cells", {100}).cells("phandle", {5}).end();
    w.begin("usb@4").string("compatible", "generic-xhci").cells("reg", {4, 1}).cells("iommus", {5, 1, 2}).end();
    w.begin("__symbols__").bytes("broken", {'/', 'x'}).string("usbx", "/usb@4").end();
    w.end();
    std::vector<std::byte> blob = w.finish();
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTree(blob, "odd.dtb", nullptr, &warnings);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(p->regions.empty());
    EXPECT_EQ(p->findDevice("usb@1"), nullptr) << "its bus's cells are malformed";
    EXPECT_NE(p->findDevice("usbx"), nullptr) << "label from __symbols__";
    EXPECT_FALSE(warnings.empty());
    EXPECT_TRUE(validatePlatform(*p));
}

} // namespace
} // namespace cenalloc
