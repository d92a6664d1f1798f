// SPDX-License-Identifier: MIT
// Tests of driver facts on device trees: cited rows, class defaults marked assumed, classification, groups.
#include <cenalloc/platform_sources.h>

#include <cenalloc/units.h>

#include "platform/compat_table.h"
#include "support/dtb.h"

namespace cenalloc {
namespace {

using dtbtest::FdtWriter;
using dtbtest::Loaded;
using dtbtest::loadFixture;

const Device& device(const Platform& p, std::string_view name) {
    const Device* d = p.findDevice(name);
    if (!d) {
        ADD_FAILURE() << "no device " << name;
        static const Device none;
        return none;
    }
    return *d;
}

bool mentions(const std::vector<std::string>& sentences, std::string_view part) {
    for (const std::string& s : sentences)
        if (s.find(part) != std::string::npos)
            return true;
    return false;
}

// One simple bus at 0 holding @p nodes (name, compatible), 2 GiB of RAM at
// 0 and 4 GiB at 4 GiB.
Result<Platform> loadNodes(std::initializer_list<std::pair<const char*, const char*>> nodes,
                           std::vector<std::string>* warnings = nullptr) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {2}).cells("#size-cells", {2});
    w.begin("memory@0").string("device_type", "memory");
    w.cells("reg", {0, 0, 0, 0x80000000, 1, 0, 1, 0}).end();
    w.begin("soc").string("compatible", "simple-bus").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.flag("ranges");
    uint32_t reg = 0x1000;
    for (const auto& [name, compatible] : nodes) {
        w.begin(name).string("compatible", compatible).cells("reg", {reg, 0x100}).end();
        reg += 0x1000;
    }
    w.end().end();
    std::vector<std::byte> blob = w.finish();
    return loadDeviceTree(blob, "nodes.dtb", nullptr, warnings);
}

// Engines seen wrong on real boards, each with the row that now describes
// it: drm_gem_dma displays and dma-contig decoders without an IOMMU need
// one contiguous buffer.
TEST(DtbFacts, CitedRowsDescribeTheEnginesOfManyVendors) {
    struct Case {
        const char* compatible;
        uint32_t maxSegmentCount;
        const char* file; // the Linux file the row cites
    };
    const Case cases[] = {
        {"amlogic,meson-g12a-vpu", 1, "drivers/gpu/drm/meson/meson_drv.c"},
        {"amlogic,g12a-vdec", 1, "drivers/staging/media/meson/vdec/vdec.c"},
        {"ti,am65x-dss", 1, "drivers/gpu/drm/tidss/tidss_drv.c"},
        {"ti,j721e-dss", 1, "drivers/gpu/drm/tidss/tidss_drv.c"},
        {"rockchip,rk3588-av1-vpu", 1, "drivers/media/platform/verisilicon/hantro_drv.c"},
        {"allwinner,sun50i-a64-de2-mixer-0", 1, "drivers/gpu/drm/sun4i/sun4i_drv.c"},
        {"allwinner,sun50i-h6-video-engine", 1, "cedrus"},
        {"brcm,bcm2835-txp", 1, "drivers/gpu/drm/vc4/vc4_txp.c"},
        {"rockchip,rk3399-rga", 0, "drivers/media/platform/rockchip/rga/rga.c"},
        {"brcm,bcm2835-vchiq", 0, "vchiq_arm.c"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.compatible);
        Result<Platform> p = loadNodes({{"engine@1000", c.compatible}});
        ASSERT_TRUE(p) << p.error().toString();
        const Device& d = device(*p, "engine");
        EXPECT_EQ(d.constraints.maxSegmentCount, c.maxSegmentCount);
        EXPECT_NE(d.factSource.find(c.compatible), std::string::npos) << d.factSource;
        EXPECT_NE(d.factSource.find(c.file), std::string::npos) << d.factSource;
        EXPECT_TRUE(d.assumedFacts.empty()) << d.assumedFacts.front();
    }
}

// Every exact row cites the Linux source it encodes.
TEST(DtbFacts, EveryExactRowCitesALinuxFile) {
    for (const CompatEntry& e : compatTable()) {
        if (!isExactRow(e) || e.cls == DeviceClass::PcieHost)
            continue;
        SCOPED_TRACE(e.compatible);
        bool cited = e.why.find("drivers/") != std::string_view::npos;
        EXPECT_TRUE(cited) << e.why;
    }
}

// GPU masks as the drivers set them from the GPU MMU's physical address
// width (panfrost, panthor) or as a constant (etnaviv 40 bits streaming,
// 32 bits coherent), not a blanket 32 bits.
TEST(DtbFacts, GpuMasksAreTheDriversNotABlanket32Bits) {
    struct Case {
        const char* compatible;
        uint64_t dmaMask;
        uint64_t coherentMask;
    };
    const uint64_t b40 = (uint64_t{1} << 40) - 1, b32 = 0xffffffff;
    const Case cases[] = {
        {"rockchip,rk3588-mali", b40, b40},
        {"rockchip,rk3399-mali", b40, b40},
        {"mediatek,mt8183-mali", b40, b40},
        {"vivante,gc", b40, b32},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.compatible);
        Result<Platform> p = loadNodes({{"gpu@1000", c.compatible}});
        ASSERT_TRUE(p) << p.error().toString();
        const Device& d = device(*p, "gpu");
        EXPECT_EQ(d.constraints.dmaMask, c.dmaMask);
        EXPECT_EQ(d.constraints.coherentDmaMask, c.coherentMask);
        EXPECT_EQ(d.constraints.maxSegmentCount, 0u) << "pages through the GPU's own MMU";
    }
    // The AM62's PowerVR: the driver reads its mask from the firmware, so
    // the row says what it assumes.
    Result<Platform> p = loadNodes({{"gpu@1000", "img,img-axe"}});
    ASSERT_TRUE(p);
    const Device& pvr = device(*p, "gpu");
    EXPECT_NE(pvr.description.find("GPU"), std::string::npos) << pvr.description;
    EXPECT_EQ(pvr.constraints.dmaMask, b32);
    EXPECT_TRUE(mentions(pvr.assumedFacts, "phys_bus_width")) << "the mask is assumed, and says why";
    // The Raspberry Pi 4's V3D: drivers/gpu/drm/v3d/v3d_drv.c
    // v3d_platform_drm_probe reads the mask from the GPU
    // (DMA_BIT_MASK(30 + V3D_MMU_PA_WIDTH) of V3D_MMU_DEBUG_INFO), so the
    // 32 bits are assumed and said to be; dma_set_max_seg_size(UINT_MAX).
    Result<Platform> rpi = loadNodes({{"gpu@1000", "brcm,2711-v3d"}});
    ASSERT_TRUE(rpi);
    const Device& v3d = device(*rpi, "gpu");
    EXPECT_EQ(v3d.constraints.dmaMask, b32);
    EXPECT_EQ(v3d.constraints.maxSegmentSize, b32);
    EXPECT_EQ(v3d.constraints.maxSegmentCount, 0u);
    EXPECT_TRUE(mentions(v3d.assumedFacts, "V3D_MMU_PA_WIDTH")) << "the mask is assumed, and says why";
    EXPECT_NE(v3d.factSource.find("v3d_drv.c"), std::string::npos) << v3d.factSource;
}

// Venus's mask is a limit address, not a number of bits:
// drivers/media/platform/qcom/venus/core.c venus_probe calls
// dma_set_mask_and_coherent(dev, core->res->dma_mask), and the resources of
// SDM845 (v2), SC7180 and SM8250 set .dma_mask = 0xe0000000 - 1. It also
// sets dma_set_max_seg_size(dev, UINT_MAX) and, through helpers.c
// venus_helper_vb2_buf_init, takes one DMA address per buffer.
TEST(DtbFacts, VenusMaskIsTheDriversLimitAddress) {
    for (const char* compatible : {"qcom,sdm845-venus-v2", "qcom,sc7180-venus", "qcom,sm8250-venus"}) {
        SCOPED_TRACE(compatible);
        Result<Platform> p = loadNodes({{"video-codec@1000", compatible}});
        ASSERT_TRUE(p) << p.error().toString();
        const Device& d = device(*p, "video-codec");
        EXPECT_EQ(d.constraints.dmaMask, 0xdfffffffu);
        EXPECT_EQ(d.constraints.coherentDmaMask, 0xdfffffffu);
        EXPECT_EQ(d.constraints.maxSegmentSize, 0xffffffffu);
        EXPECT_EQ(d.constraints.maxSegmentCount, 1u);
        EXPECT_NE(d.factSource.find("venus/core.c"), std::string::npos) << d.factSource;
        EXPECT_TRUE(d.assumedFacts.empty()) << d.assumedFacts.front();
    }
}

// An engine of a known class with no row gets its class's conservative
// default, and the device says it was assumed.
TEST(DtbFacts, ClassDefaultsAreConservativeAndMarkedAssumed) {
    Result<Platform> p = loadNodes({{"display@1000", "nvidia,tegra999-dc"},
                                    {"codec@2000", "mediatek,mt9999-vcodec-dec"},
                                    {"camera@3000", "renesas,vin-r8a7799"},
                                    {"scaler@4000", "fsl,imx99-pxp"},
                                    {"gpu@5000", "arm,mali-t999"},
                                    {"usb@6000", "generic-xhci"}});
    ASSERT_TRUE(p) << p.error().toString();
    for (const char* name : {"display", "codec", "camera", "scaler"}) {
        SCOPED_TRACE(name);
        const Device& d = device(*p, name);
        EXPECT_EQ(d.constraints.maxSegmentCount, 1u);
        EXPECT_TRUE(d.constraints.needsContiguous());
        EXPECT_EQ(d.constraints.maxSegmentSize, 0xffffffffu) << "segment size is the buffer's";
        EXPECT_TRUE(d.factSource.empty());
        ASSERT_EQ(d.assumedFacts.size(), 1u);
        EXPECT_NE(d.assumedFacts[0].find("needs one contiguous buffer"), std::string::npos) << d.assumedFacts[0];
        EXPECT_NE(d.assumedFacts[0].find("without an IOMMU and no driver row"), std::string::npos);
    }
    EXPECT_NE(device(*p, "display").assumedFacts[0].find("a display engine"), std::string::npos);
    // A GPU maps pages through its own MMU; its mask is the assumption.
    const Device& gpu = device(*p, "gpu");
    EXPECT_EQ(gpu.constraints.maxSegmentCount, 0u);
    EXPECT_TRUE(mentions(gpu.assumedFacts, "a GPU with no driver row"));
    // USB is described by the kernel's own defaults: nothing is assumed.
    EXPECT_TRUE(device(*p, "usb").assumedFacts.empty());
    EXPECT_EQ(device(*p, "usb").constraints.maxSegmentCount, 0u);
}

// An overlay entry states the facts: what it sets is no longer assumed.
TEST(DtbFacts, AnOverlayEntryReplacesTheAssumption) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@0").string("device_type", "memory").cells("reg", {0, 0x40000000}).end();
    w.begin("display@1000").string("compatible", "nvidia,tegra999-dc").cells("reg", {0x1000, 0x100}).end();
    w.end();
    std::vector<std::byte> blob = w.finish();
    Result<Overlay> o =
        parseOverlayYaml("devices:\n  - compatible: nvidia,tegra999-dc\n    max_segment_count: 4\n", "board.yaml");
    ASSERT_TRUE(o);
    Result<Platform> p = loadDeviceTree(blob, "d.dtb", &*o);
    ASSERT_TRUE(p) << p.error().toString();
    const Device& d = device(*p, "display");
    EXPECT_EQ(d.constraints.maxSegmentCount, 4u);
    EXPECT_TRUE(d.assumedFacts.empty());
    EXPECT_EQ(d.factSource, "board.yaml: compatible nvidia,tegra999-dc");
}

// A system controller is registers, not a DMA master, whatever its name
// looks like; the engines missed before are found.
TEST(DtbFacts, ClassificationKnowsSysconsAndTheEnginesMissedBefore) {
    Result<Platform> p = loadNodes({{"syscon@1000", "rockchip,rk3588-vop-grf"},
                                    {"rga@2000", "rockchip,rk3568-rga"},
                                    {"gpu@3000", "img,img-axe"},
                                    {"txp@4000", "brcm,bcm2835-txp"},
                                    {"mailbox@5000", "brcm,bcm2711-vchiq"},
                                    {"vop@6000", "rockchip,rk3588-vop"}});
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->findDevice("syscon"), nullptr) << "rockchip,rk3588-vop-grf is a syscon";
    EXPECT_NE(device(*p, "rga").description.find("2D engine"), std::string::npos);
    EXPECT_NE(device(*p, "gpu").description.find("GPU"), std::string::npos);
    EXPECT_NE(device(*p, "txp").description.find("display controller"), std::string::npos);
    EXPECT_NE(p->findDevice("mailbox"), nullptr);
    EXPECT_NE(device(*p, "vop").description.find("display controller"), std::string::npos);
    // The syscon compatible stops globs even with a display-like first string.
    std::vector<std::string_view> grf{"rockchip,rk3588-vop-grf", "syscon"};
    EXPECT_EQ(findCompat(grf), nullptr);
}

// Masters share an IOMMU domain only inside one IOMMU group: equal stream
// IDs on an SMMU (arm_smmu_device_group), every master on a Rockchip IOMMU
// (rk_iommu_device_group).
TEST(DtbFacts, IommuGroupsFollowStreamIdsAndTheDriversGroupRule) {
    CENALLOC_REQUIRE_FIXTURE("iommus");
    Loaded l = loadFixture("iommus");
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    const Platform& p = *l.platform;
    EXPECT_EQ(device(p, "display").iommuGroup, "sid-0x880");
    EXPECT_EQ(device(p, "writeback").iommuGroup, "sid-0x880") << "same stream ID, same group";
    EXPECT_EQ(device(p, "camera").iommuGroup, "sid-0x801");
    EXPECT_EQ(device(p, "camera-dma").iommuGroup, "sid-0x801") << "shares stream ID 0x802 with the camera";
    EXPECT_EQ(device(p, "video-codec").iommuGroup, "sid-0x10a0");
    EXPECT_NE(iommuDomainName(device(p, "display")), iommuDomainName(device(p, "video-codec")))
        << "different stream IDs on one SMMU: separate domains";
    EXPECT_EQ(iommuDomainName(device(p, "display")), iommuDomainName(device(p, "writeback")));
    EXPECT_EQ(device(p, "pcie").iommuGroup, "sid-0x1c10") << "iommu-map: its stream ID base";
    // rockchip-iommu: one group per instance.
    EXPECT_EQ(device(p, "vop").iommuGroup, "");
    EXPECT_EQ(device(p, "vop-lit").iommuGroup, "");
    EXPECT_EQ(iommuDomainName(device(p, "vop")), iommuDomainName(device(p, "vop-lit")));
    EXPECT_TRUE(validatePlatform(p));
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

// A remote processor names its carveouts in memory-region: it does DMA
// there (of_reserved_mem_device_init), so it is a master and owns them,
// though the table has no row for it.
TEST(DtbFacts, ARemoteProcessorNamingCarveoutsOwnsThem) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@80000000").string("device_type", "memory").cells("reg", {0x80000000, 0x40000000}).end();
    w.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).flag("ranges");
    w.begin("r5f-memory@a0000000").string("compatible", "shared-dma-pool").flag("no-map");
    w.cells("reg", {0xa0000000, 0x1000000}).cells("phandle", {1}).end();
    w.end();
    w.begin("r5f@41000000").string("compatible", "vendor,r5f").cells("reg", {0x41000000, 0x8000});
    w.cells("memory-region", {1}).end();
    w.begin("timer@1000").string("compatible", "vendor,timer").cells("reg", {0x1000, 0x100}).end();
    w.end();
    std::vector<std::byte> blob = w.finish();
    Result<Platform> p = loadDeviceTree(blob, "rproc.dtb");
    ASSERT_TRUE(p) << p.error().toString();
    ASSERT_NE(p->findDevice("r5f"), nullptr);
    EXPECT_EQ(p->findDevice("timer"), nullptr);
    const ReservedRegion* carveout = p->findRegion("r5f-memory@a0000000");
    ASSERT_NE(carveout, nullptr);
    EXPECT_EQ(carveout->owners, (std::vector<std::string>{"r5f"}));
    EXPECT_FALSE(carveout->heap);
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

// The default CMA heap has the name rmem_cma_setup gives the area: the
// reserved-memory node's full name, unit address included (fdt_get_name).
TEST(DtbFacts, TheDefaultCmaHeapIsNamedLikeItsNode) {
    FdtWriter w;
    w.begin("").cells("#address-cells", {1}).cells("#size-cells", {1});
    w.begin("memory@40000000").string("device_type", "memory").cells("reg", {0x40000000, 0x40000000}).end();
    w.begin("reserved-memory").cells("#address-cells", {1}).cells("#size-cells", {1}).flag("ranges");
    w.begin("linux,cma@50000000").string("compatible", "shared-dma-pool").flag("reusable").flag("linux,cma-default");
    w.cells("reg", {0x50000000, 0x4000000}).end();
    w.begin("other-cma@60000000").string("compatible", "shared-dma-pool").flag("reusable");
    w.cells("reg", {0x60000000, 0x4000000}).end();
    w.end().end();
    std::vector<std::byte> blob = w.finish();
    Result<Platform> p = loadDeviceTree(blob, "cma.dtb");
    ASSERT_TRUE(p) << p.error().toString();
    std::vector<std::string> heaps;
    for (const ReservedRegion& r : p->regions)
        if (r.heap)
            heaps.push_back(r.name);
    EXPECT_EQ(heaps, (std::vector<std::string>{"linux,cma@50000000"})) << "only the default area is a heap";
}

} // namespace
} // namespace cenalloc
