// SPDX-License-Identifier: MIT
// Known answers of the device tree loader on real boards: classes, contiguity, masks, IOMMU groups, owners, heaps.
//
// One table, one row per board, each fact with its evidence (the device
// tree property or the driver fact behind it). Columns are optional and
// named (designated initializers), so rows can grow new ones: the
// allocation answers (heap, allocating device) go beside these.
#include <cenalloc/platform_sources.h>

#include <optional>
#include <set>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "support/dtb_corpus.h"
#include "support/dtb.h"

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

constexpr uint64_t kBits30 = 0x3fffffff;
constexpr uint64_t kBits32 = 0xffffffff;
constexpr uint64_t kBits40 = (uint64_t{1} << 40) - 1;

/// What the loader must say about one device. Unset fields are not checked.
struct DeviceFact {
    const char* device;
    /// A word of Device::description ("display controller", "GPU", ...).
    const char* cls = nullptr;
    /// One DMA address per buffer (maxSegmentCount 1).
    std::optional<bool> oneBuffer{};
    /// Without an IOMMU: physically contiguous memory (true), or any
    /// (false); with one, false.
    std::optional<bool> physicallyContiguous{};
    std::optional<uint64_t> dmaMask{};
    std::optional<uint64_t> coherentMask{};
    /// Behind an IOMMU (true) or doing direct DMA (false).
    std::optional<bool> iommu{};
    /// Device::iommuGroup ("" = the IOMMU's one group).
    const char* group = nullptr;
    /// Another device with the same I/O virtual address space, and one with
    /// a different one.
    const char* sameDomainAs = nullptr;
    const char* otherDomainThan = nullptr;
    /// Some fact is assumed (no row) or none is.
    std::optional<bool> assumed{};
    /// The Linux file the row cites (a part of Device::factSource).
    const char* cites = nullptr;
    /// The device tree property or driver fact behind the answer.
    const char* evidence = "";
};

/// What the loader must say about one reserved region.
struct RegionFact {
    const char* region;
    std::vector<std::string> owners{};
    bool heap = false;
    const char* evidence = "";
};

struct BoardFacts {
    const char* vendor;
    const char* dtb;
    /// An example overlay file name, inline overlay YAML, or "".
    const char* overlay = "";
    std::vector<DeviceFact> devices{};
    std::vector<RegionFact> regions{};
    /// The one CMA heap's name, or "" for none.
    const char* cmaHeap = "";
    const char* evidence = "";
};

const std::vector<BoardFacts>& boards() {
    static const std::vector<BoardFacts> table = {
        {.vendor = "Broadcom",
         .dtb = "broadcom/bcm2711-rpi-4-b.dtb",
         .overlay = "rpi4-4g.yaml",
         .devices =
             {
                 {.device = "hvs",
                  .cls = "display controller",
                  .oneBuffer = true,
                  .physicallyContiguous = true,
                  .dmaMask = kBits30,
                  .iommu = false,
                  .assumed = false,
                  .cites = "vc4",
                  .evidence = "/soc dma-ranges = <0xc0000000 0x0 0x0 0x40000000>: 1 GiB; vc4 uses drm_gem_dma"},
                 {.device = "txp",
                  .cls = "display controller",
                  .oneBuffer = true,
                  .dmaMask = kBits30,
                  .cites = "vc4_txp.c",
                  .evidence = "the writeback engine writes one drm_gem_dma framebuffer"},
                 {.device = "pcie",
                  .dmaMask = 0xbfffffff,
                  .evidence = "pcie@7d500000 dma-ranges: 3 GiB inbound window, an address limit"},
                 {.device = "ethernet",
                  .physicallyContiguous = false,
                  .dmaMask = kBits40,
                  .evidence = "/scb has no dma-ranges; bcmgenet sets DMA_BIT_MASK(40)"},
                 {.device = "mailbox",
                  .dmaMask = kBits30,
                  .cites = "vchiq_arm.c",
                  .evidence = "vchiq: DMA_BIT_MASK(32), narrowed by the 1 GiB /soc window"},
                 {.device = "gpu", .cls = "GPU", .physicallyContiguous = false, .evidence = "v3d's own MMU"},
             },
         .regions = {{.region = "linux,cma", .heap = true, .evidence = "linux,cma { linux,cma-default; }"}},
         .cmaHeap = "linux,cma",
         .evidence = "no IOMMU on BCM2711"},
        {.vendor = "Rockchip",
         .dtb = "rockchip/rk3399-rockpro64.dtb",
         .overlay = "rk3399-rockpro64-4g.yaml",
         .devices =
             {
                 {.device = "vop@ff900000",
                  .oneBuffer = true,
                  .physicallyContiguous = false,
                  .iommu = true,
                  .group = "",
                  .otherDomainThan = "vop@ff8f0000",
                  .cites = "rockchip_drm_drv.c",
                  .evidence = "iommus = <&vopb_mmu>; rk_iommu_device_group: one group per IOMMU instance"},
                 {.device = "rga",
                  .cls = "2D engine",
                  .oneBuffer = false,
                  .physicallyContiguous = false,
                  .iommu = false,
                  .cites = "rga.c",
                  .evidence = "no iommus; rga maps vb2_dma_sg pages through its own table"},
                 {.device = "gpu",
                  .cls = "GPU",
                  .dmaMask = kBits40,
                  .coherentMask = kBits40,
                  .assumed = false,
                  .cites = "panfrost_gpu.c",
                  .evidence = "Mali-T860 MMU_FEATURES 0x2830: 40 PA bits"},
                 {.device = "video-codec@ff660000",
                  .oneBuffer = true,
                  .iommu = true,
                  .cites = "rkvdec",
                  .evidence = "rkvdec: vb2_dma_contig behind vdec_mmu"},
             },
         .evidence = "no reserved memory in the tree: the CMA area would come from cma="},
        {.vendor = "Rockchip",
         .dtb = "rockchip/rk3566-quartz64-a.dtb",
         .overlay = "memory:\n  - {base: 0x0, size: 0xf0000000}\n",
         .devices =
             {
                 {.device = "vop",
                  .oneBuffer = true,
                  .iommu = true,
                  .group = "",
                  .cites = "rockchip_drm_vop2.c",
                  .evidence = "rockchip,rk3566-vop behind its own rockchip-iommu"},
                 {.device = "gpu",
                  .dmaMask = kBits40,
                  .cites = "panfrost_gpu.c",
                  .evidence = "Mali-G52 MMU_FEATURES 0x2823: 40 PA bits"},
                 {.device = "video-codec@fdea0400",
                  .oneBuffer = true,
                  .iommu = true,
                  .otherDomainThan = "vop",
                  .cites = "hantro_drv.c",
                  .evidence = "hantro on its own IOMMU instance"},
             }},
        {.vendor = "Amlogic",
         .dtb = "amlogic/meson-g12b-odroid-n2.dtb",
         .overlay = "memory:\n  - {base: 0x0, size: 4G}\n",
         .devices =
             {
                 {.device = "vpu",
                  .cls = "display controller",
                  .oneBuffer = true,
                  .physicallyContiguous = true,
                  .iommu = false,
                  .cites = "meson_drv.c",
                  .evidence = "no IOMMU; DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE"},
                 {.device = "video-decoder",
                  .cls = "video codec",
                  .physicallyContiguous = true,
                  .cites = "meson/vdec/vdec.c",
                  .evidence = "no IOMMU; vb2_dma_contig_memops"},
                 {.device = "gpu",
                  .cls = "GPU",
                  .physicallyContiguous = false,
                  .assumed = true,
                  .evidence = "amlogic,meson-g12a-mali: no row with the G52's MMU_FEATURES for this SoC"},
                 {.device = "ethernet", .physicallyContiguous = false, .assumed = false, .evidence = "dwmac"},
             },
         .regions = {{.region = "linux,cma", .heap = true, .evidence = "linux,cma-default, 256 MiB"}},
         .cmaHeap = "linux,cma"},
        {.vendor = "Amlogic",
         .dtb = "amlogic/meson-gxl-s905x-libretech-cc.dtb",
         .devices =
             {
                 {.device = "vpu",
                  .physicallyContiguous = true,
                  .cites = "meson_drv.c",
                  .evidence = "amlogic,meson-gxl-vpu, drm_gem_dma"},
                 {.device = "video-codec",
                  .physicallyContiguous = true,
                  .cites = "meson/vdec/vdec.c",
                  .evidence = "amlogic,gxl-vdec, vb2_dma_contig"},
             },
         .regions = {{.region = "linux,cma", .heap = true}},
         .cmaHeap = "linux,cma"},
        {.vendor = "NXP",
         .dtb = "freescale/imx8mq-evk.dtb",
         .overlay = "imx8mq-evk-cma.yaml",
         .devices =
             {
                 {.device = "lcd-controller",
                  .physicallyContiguous = true,
                  .cites = "mxsfb",
                  .evidence = "no IOMMU on i.MX8MQ; mxsfb uses drm_gem_dma"},
                 {.device = "video-codec@38300000",
                  .physicallyContiguous = true,
                  .cites = "hantro_drv.c",
                  .evidence = "nxp,imx8mq-vpu-g1: vb2_dma_contig"},
                 {.device = "gpu",
                  .physicallyContiguous = false,
                  .dmaMask = kBits32,
                  .coherentMask = kBits32,
                  .evidence = "etnaviv asks 40 bits, but /soc@0 dma-ranges ends at 4 GiB"},
             },
         .regions = {{.region = "reserved", .heap = true, .evidence = "cma=256M: dma_contiguous_reserve names it"}},
         .cmaHeap = "reserved"},
        {.vendor = "NXP",
         .dtb = "freescale/imx8mp-evk.dtb",
         .devices = {{.device = "gpu@38000000",
                      .cls = "GPU",
                      .dmaMask = kBits40,
                      .coherentMask = kBits32,
                      .cites = "etnaviv_drv.c",
                      .evidence = "etnaviv: dma_set_mask(40), dma_set_coherent_mask(32); no /soc window"}}},
        {.vendor = "NXP",
         .dtb = "freescale/imx8mm-evk.dtb",
         .devices = {{.device = "video-codec@38300000",
                      .physicallyContiguous = true,
                      .cites = "hantro_drv.c",
                      .evidence = "nxp,imx8mm-vpu-g1, no IOMMU"}}},
        {.vendor = "Qualcomm",
         .dtb = "qcom/sdm845-db845c.dtb",
         .overlay = "sdm845-db845c.yaml",
         .devices =
             {
                 {.device = "mdss",
                  .oneBuffer = true,
                  .physicallyContiguous = false,
                  .iommu = true,
                  .group = "sid-0x880.0x8",
                  .otherDomainThan = "video-codec",
                  .cites = "msm_drv.c",
                  .evidence = "iommus = <&apps_smmu 0x880 0x8>; arm_smmu_device_group: a group per stream"},
                 {.device = "video-codec",
                  .group = "sid-0x10a0.0x8",
                  .otherDomainThan = "camss",
                  .evidence = "iommus = <&apps_smmu 0x10a0 0x8>"},
                 {.device = "usb@a600000",
                  .cls = "USB controller",
                  .oneBuffer = false,
                  .iommu = true,
                  .otherDomainThan = "mdss",
                  .evidence = "dwc3 takes any number of segments; its own stream ID"},
                 {.device = "gpu", .iommu = true, .otherDomainThan = "mdss", .evidence = "adreno_smmu"},
             },
         .regions =
             {
                 {.region = "venus@95800000", .owners = {"video-codec"}, .evidence = "venus memory-region"},
                 {.region = "framebuffer@9d400000", .owners = {"mdss"}, .evidence = "mdss memory-region"},
                 {.region = "wlan-msa@8df00000", .owners = {"wifi"}, .evidence = "wifi memory-region"},
             }},
        {.vendor = "Qualcomm",
         .dtb = "qcom/sc7180-trogdor-lazor-r1.dtb",
         .overlay = "memory:\n  - {base: 0x80000000, size: 4G}\n",
         .devices =
             {
                 {.device = "mdss", .oneBuffer = true, .iommu = true, .cites = "msm_drv.c"},
                 {.device = "video-codec",
                  .oneBuffer = true,
                  .otherDomainThan = "mdss",
                  .cites = "venus",
                  .evidence = "qcom,sc7180-venus"},
             },
         .regions = {{.region = "memory@8f600000", .owners = {"video-codec"}, .evidence = "venus memory-region"}}},
        {.vendor = "Qualcomm",
         .dtb = "qcom/qrb5165-rb5.dtb",
         .overlay = "memory:\n  - {base: 0x80000000, size: 8G}\n",
         .devices = {{.device = "mdss", .oneBuffer = true, .cites = "msm_drv.c"},
                     {.device = "video-codec", .oneBuffer = true, .cites = "venus"}},
         .regions = {{.region = "memory@86e00000", .owners = {"video-codec"}}}},
        {.vendor = "TI",
         .dtb = "ti/k3-j721e-sk.dtb",
         .devices = {{.device = "dss",
                      .cls = "display controller",
                      .physicallyContiguous = true,
                      .iommu = false,
                      .cites = "tidss_drv.c",
                      .evidence = "no iommus; tidss uses drm_gem_dma"}},
         .regions =
             {
                 {.region = "r5f-memory@a0100000",
                  .owners = {"r5f@41000000"},
                  .evidence = "the MCU R5F names it in memory-region"},
                 {.region = "c66-memory@a6100000", .owners = {"dsp@4d80800000"}, .evidence = "C66x DSP carveout"},
                 {.region = "c71-memory@a8100000", .owners = {"dsp@64800000"}, .evidence = "C71x DSP carveout"},
             }},
        {.vendor = "TI",
         .dtb = "ti/k3-am654-base-board.dtb",
         .regions = {{.region = "r5f-dma-memory@a0000000", .owners = {"r5f@41000000"}}}},
        {.vendor = "Allwinner",
         .dtb = "allwinner/sun50i-a64-pine64-plus.dtb",
         .overlay = "memory:\n  - {base: 0x40000000, size: 2G}\n",
         .devices =
             {
                 {.device = "mixer@100000",
                  .cls = "display controller",
                  .physicallyContiguous = true,
                  .cites = "sun4i_drv.c",
                  .evidence = "DE2 mixer, no IOMMU on A64"},
                 {.device = "video-codec",
                  .physicallyContiguous = true,
                  .cites = "cedrus",
                  .evidence = "cedrus: vb2_dma_contig"},
                 {.device = "gpu", .cls = "GPU", .assumed = true, .evidence = "Mali-400 (lima): no row"},
             }},
        {.vendor = "Allwinner",
         .dtb = "allwinner/sun50i-h6-pine-h64.dtb",
         .overlay = "memory:\n  - {base: 0x40000000, size: 2G}\n",
         .devices =
             {
                 {.device = "mixer",
                  .oneBuffer = true,
                  .physicallyContiguous = false,
                  .iommu = true,
                  .group = "",
                  .sameDomainAs = "video-codec",
                  .cites = "sun4i_drv.c",
                  .evidence = "iommus = <&iommu 0>; sun50i_iommu_device_group: one group"},
                 {.device = "video-codec-g2", .iommu = true, .sameDomainAs = "mixer", .cites = "hantro_drv.c"},
             }},
    };
    return table;
}

const Device* find(const Platform& p, const char* name) {
    const Device* d = p.findDevice(name);
    if (!d)
        ADD_FAILURE() << "no device " << name;
    return d;
}

void checkDevice(const Platform& p, const DeviceFact& f) {
    SCOPED_TRACE(fmt::format("{} ({})", f.device, f.evidence));
    const Device* d = find(p, f.device);
    if (!d)
        return;
    const DmaConstraints& c = d->constraints;
    if (f.cls) {
        EXPECT_NE(d->description.find(f.cls), std::string::npos) << d->description;
    }
    if (f.oneBuffer) {
        EXPECT_EQ(c.maxSegmentCount == 1, *f.oneBuffer);
    }
    if (f.physicallyContiguous) {
        EXPECT_EQ(c.needsContiguous() && !d->iommu, *f.physicallyContiguous);
    }
    if (f.dmaMask) {
        EXPECT_EQ(c.dmaMask, *f.dmaMask);
    }
    if (f.coherentMask) {
        EXPECT_EQ(c.coherentDmaMask, *f.coherentMask);
    }
    if (f.iommu) {
        EXPECT_EQ(d->iommu.has_value(), *f.iommu);
    }
    if (f.group) {
        EXPECT_EQ(d->iommuGroup, f.group);
    }
    if (f.sameDomainAs) {
        if (const Device* other = find(p, f.sameDomainAs)) {
            EXPECT_EQ(iommuDomainName(*d), iommuDomainName(*other));
        }
    }
    if (f.otherDomainThan) {
        if (const Device* other = find(p, f.otherDomainThan)) {
            EXPECT_NE(iommuDomainName(*d), iommuDomainName(*other));
        }
    }
    if (f.assumed) {
        EXPECT_EQ(!d->assumedFacts.empty(), *f.assumed);
    }
    if (f.cites) {
        EXPECT_NE(d->factSource.find(f.cites), std::string::npos) << d->factSource;
    }
}

TEST(DtbKnownFacts, TheLoaderGivesTheKnownAnswersOnRealBoards) {
    if (std::string reason = dtbtest::dtbSkipReason(); !reason.empty())
        GTEST_SKIP() << reason;
    std::set<std::string> vendors;
    int checked = 0;
    for (const BoardFacts& b : boards()) {
        SCOPED_TRACE(fmt::format("{} ({})", b.dtb, b.evidence));
        std::string path = dtbtest::dtbPath(b.dtb);
        if (path.empty()) {
            std::printf("skipped: %s is not in %s\n", b.dtb, dtbtest::dtbDirectory().c_str());
            continue;
        }
        std::optional<Overlay> overlay;
        std::string o = b.overlay;
        if (!o.empty()) {
            Result<Overlay> r = o.find(':') != std::string::npos ? parseOverlayYaml(o, "board.yaml")
                                                                 : loadOverlayFile(dtbtest::overlayPath(o));
            ASSERT_TRUE(r) << r.error().toString();
            overlay = std::move(*r);
        }
        Result<Platform> p = loadDeviceTreeFile(path, overlay ? &*overlay : nullptr);
        ASSERT_TRUE(p) << p.error().toString();
        for (const DeviceFact& f : b.devices)
            checkDevice(*p, f);
        for (const RegionFact& f : b.regions) {
            SCOPED_TRACE(fmt::format("region {} ({})", f.region, f.evidence));
            const ReservedRegion* r = p->findRegion(f.region);
            ASSERT_NE(r, nullptr);
            EXPECT_EQ(r->owners, f.owners);
            EXPECT_EQ(r->heap, f.heap);
        }
        // Exactly one CMA heap on a device-tree board, or none.
        std::vector<std::string> heaps;
        for (const ReservedRegion& r : p->regions)
            if (r.heap)
                heaps.push_back(r.name);
        EXPECT_EQ(heaps,
                  std::string(b.cmaHeap).empty() ? std::vector<std::string>{} : std::vector<std::string>{b.cmaHeap});
        EXPECT_EQ(p->vendorHeaps, std::vector<std::string>{}) << "no kernel_heaps: the board kernel has none";
        vendors.insert(b.vendor);
        ++checked;
    }
    if (checked == 0)
        GTEST_SKIP() << "none of the boards is in " << dtbtest::dtbDirectory();
    std::printf("%d boards of %zu vendors checked\n", checked, vendors.size());
}

} // namespace
} // namespace cenalloc
