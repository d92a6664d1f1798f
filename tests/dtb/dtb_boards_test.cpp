// SPDX-License-Identifier: MIT
// Known answers on real boards: what explain() chooses for buffers a kernel engineer would share, and why.
#include <cenalloc/context.h>
#include <cenalloc/platform_sources.h>

#include <cenalloc/units.h>

#include "support/dtb_corpus.h"
#include "support/dtb.h"

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

constexpr uint64_t k8M = 8 * MiB;

struct Board {
    Platform platform;
    std::vector<std::string> warnings;
    std::unique_ptr<Context> context;
};

// Loads @p dtb (relative to the dtb directory) with an example overlay.
// Skips with the reason when the blob is not there.
#define CENALLOC_LOAD_BOARD(board, dtb, overlay)                                                                       \
    Board board;                                                                                                       \
    do {                                                                                                               \
        if (std::string reason = dtbtest::dtbSkipReason(); !reason.empty())                                            \
            GTEST_SKIP() << reason;                                                                                    \
        std::string path = dtbtest::dtbPath(dtb);                                                                      \
        if (path.empty())                                                                                              \
            GTEST_SKIP() << dtb << " is not in " << dtbtest::dtbDirectory();                                           \
        std::optional<Overlay> o;                                                                                      \
        if (*(overlay)) {                                                                                              \
            Result<Overlay> r = loadOverlayFile(dtbtest::overlayPath(overlay));                                        \
            ASSERT_TRUE(r) << r.error().toString();                                                                    \
            o = std::move(*r);                                                                                         \
        }                                                                                                              \
        Result<Platform> p = loadDeviceTreeFile(path, o ? &*o : nullptr, &board.warnings);                             \
        ASSERT_TRUE(p) << p.error().toString();                                                                        \
        board.platform = std::move(*p);                                                                                \
        Result<std::unique_ptr<Context>> c = Context::create(board.platform);                                          \
        ASSERT_TRUE(c) << c.error().toString();                                                                        \
        board.context = std::move(*c);                                                                                 \
    } while (0)

Explanation explainOk(const Board& b, std::vector<std::string> devices, uint64_t size, CpuAccess cpu) {
    Result<Explanation> e = b.context->explain(devices, size, cpu);
    EXPECT_TRUE(e) << (e ? "" : e.error().toString());
    return e ? std::move(*e) : Explanation{};
}

const Device& device(const Board& b, std::string_view name) {
    const Device* d = b.platform.findDevice(name);
    if (!d) {
        ADD_FAILURE() << "no device " << name;
        static const Device none;
        return none;
    }
    return *d;
}

// Raspberry Pi 4 (BCM2711): no IOMMU; the legacy VideoCore bus maps bus
// 0xc000_0000 onto CPU 0 for one GiB only, so the display pipeline (HVS)
// and the legacy DMA engine reach only the first GiB; the firmware-filled
// RAM comes from examples/overlays/rpi4-4g.yaml.
TEST(Boards, RaspberryPi4LegacyMastersReachOnlyTheFirstGiB) {
    CENALLOC_LOAD_BOARD(b, "broadcom/bcm2711-rpi-4-b.dtb", "rpi4-4g.yaml");
    EXPECT_TRUE(b.platform.iommus.empty()) << "BCM2711 has no IOMMU in front of its DMA masters";
    for (const char* legacy : {"hvs", "dma", "mmc@7e340000"}) {
        SCOPED_TRACE(legacy);
        EXPECT_EQ(device(b, legacy).constraints.dmaMask, 0x3fffffffu) << "soc / emmc2bus dma-ranges: 1 GiB";
    }
    // GENET sits on scb (no window) and its driver sets 40 bits; the PCIe
    // root complex's own inbound window is 3 GiB: the limit is its last
    // address, not rounded down to a power of two.
    EXPECT_EQ(device(b, "ethernet").constraints.dmaMask, (uint64_t{1} << 40) - 1);
    EXPECT_EQ(device(b, "pcie").constraints.dmaMask, 0xbfffffffu);
    // The CMA pool: 64 MiB placed by alloc-ranges in the first GiB, at the
    // top of the firmware-trimmed low bank (0x3b40_0000 - 64 MiB).
    const ReservedRegion* cma = b.platform.findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_TRUE(cma->isDefault);
    EXPECT_EQ(cma->base, 0x37400000u);
    EXPECT_EQ(cma->size, 64 * MiB);
}

// Display + GPU on the Pi 4: the HVS scans out one physically contiguous
// buffer through a 30-bit window. A kernel engineer allocates such a buffer
// from the CMA pool (vc4 uses drm_gem_dma, i.e. CMA, for exactly this), and
// the display should allocate it: its limits are the tightest.
TEST(Boards, RaspberryPi4DisplayAndGpuShareACmaBuffer) {
    CENALLOC_LOAD_BOARD(b, "broadcom/bcm2711-rpi-4-b.dtb", "rpi4-4g.yaml");
    Explanation e = explainOk(b, {"hvs", "gpu"}, k8M, CpuAccess::Rare);
    ASSERT_TRUE(e.satisfiable) << (e.conflict ? e.conflict->reason : "");
    EXPECT_EQ(e.heap, "linux,cma");
    EXPECT_EQ(e.allocatingDevice, "hvs");
    for (const HeapExplanation& h : e.heaps) {
        if (h.name.rfind("system", 0) == 0) {
            // The kernel's system heap hands out pages anywhere in RAM,
            // beyond the HVS's first GiB (and scattered besides).
            EXPECT_EQ(h.combined.refusal(), Refusal::AboveAddressLimit) << h.name;
        }
    }
}

// The GENET MAC alone reaches all RAM with scatter-gather: the system heap.
// A mainline kernel has no system-uncached heap, so that is the answer
// however rarely the CPU looks; a board kernel that has one (the overlay
// says so) gets it when the CPU barely touches the buffer.
TEST(Boards, RaspberryPi4EthernetAloneUsesTheSystemHeap) {
    CENALLOC_LOAD_BOARD(b, "broadcom/bcm2711-rpi-4-b.dtb", "rpi4-4g.yaml");
    EXPECT_EQ(explainOk(b, {"ethernet"}, k8M, CpuAccess::Often).heap, "system");
    EXPECT_EQ(explainOk(b, {"ethernet"}, k8M, CpuAccess::None).heap, "system");
    EXPECT_FALSE(b.context->findHeap("system-uncached")) << "no such node on a mainline kernel";
    b.platform.vendorHeaps = std::vector<std::string>{"system-uncached"};
    Result<std::unique_ptr<Context>> vendor = Context::create(b.platform);
    ASSERT_TRUE(vendor) << vendor.error().toString();
    b.context = std::move(*vendor);
    EXPECT_EQ(explainOk(b, {"ethernet"}, k8M, CpuAccess::None).heap, "system-uncached");
}

// SDM845 (DragonBoard 845c): the display (MDSS), the camera (CAMSS) and the
// video codec (Venus) all sit behind the application SMMU (apps_smmu), but
// with different stream IDs (iommus = <&apps_smmu 0x880 0x8>, <0x808 0x0>,
// <0x10a0 0x8>), so arm_smmu_device_group puts each in a group of its own
// and each gets its own I/O virtual address space and mapping. Each needs
// one contiguous DMA range per buffer, which its SMMU context builds from
// scattered pages: a kernel engineer uses the system heap (the only one
// besides CMA a mainline kernel has).
TEST(Boards, Sdm845DevicesBehindTheAppsSmmuHaveADomainEachAndUseTheSystemHeap) {
    CENALLOC_LOAD_BOARD(b, "qcom/sdm845-db845c.dtb", "sdm845-db845c.yaml");
    const Device& mdss = device(b, "mdss");
    ASSERT_TRUE(mdss.iommu.has_value());
    for (const char* name : {"camss", "video-codec", "ufshc", "usb@a600000"}) {
        SCOPED_TRACE(name);
        EXPECT_EQ(device(b, name).iommu, mdss.iommu) << "behind the same apps_smmu";
    }
    // The GPU has its own SMMU (adreno_smmu): another address space.
    ASSERT_TRUE(device(b, "gpu").iommu.has_value());
    EXPECT_NE(device(b, "gpu").iommu, mdss.iommu);
    const Iommu* smmu = b.platform.findIommu(*mdss.iommu);
    ASSERT_NE(smmu, nullptr);
    EXPECT_EQ(smmu->apertureBase + smmu->apertureSize, uint64_t{1} << 48) << "MMU-500: 48-bit input";

    Explanation e = explainOk(b, {"mdss", "camss", "video-codec"}, k8M, CpuAccess::Rare);
    ASSERT_TRUE(e.satisfiable) << (e.conflict ? e.conflict->reason : "");
    EXPECT_EQ(e.heap, "system");
    ASSERT_EQ(e.constraints.iovaSpaces().size(), 3u) << "three stream IDs: three IOMMU groups";
    for (const IovaSpace& space : e.constraints.iovaSpaces())
        EXPECT_EQ(space.iommu.rfind(*mdss.iommu + ":", 0), 0u) << space.iommu;
    EXPECT_NE(e.constraints.findMapping("mdss")->domain, e.constraints.findMapping("camss")->domain);
    EXPECT_EQ(explainOk(b, {"mdss", "camss", "video-codec"}, k8M, CpuAccess::Often).heap, "system");
}

// The firmware regions of SDM845 are cut out of RAM, and a region a master
// names (Venus's firmware memory) belongs to that master: its owners, and
// no heap (the lead's matching refuses it to other devices by name).
TEST(Boards, Sdm845FirmwareMemoryIsNoHeapForOtherDevices) {
    CENALLOC_LOAD_BOARD(b, "qcom/sdm845-db845c.dtb", "sdm845-db845c.yaml");
    EXPECT_GT(b.platform.memory.size(), 3u) << "the modem, ADSP, ... carve-outs split the RAM";
    int venus = 0;
    for (const ReservedRegion& r : b.platform.regions) {
        if (r.name.rfind("venus", 0) != 0)
            continue;
        ++venus;
        EXPECT_EQ(r.owners, (std::vector<std::string>{"video-codec"})) << "venus firmware memory is Venus's alone";
        EXPECT_FALSE(r.heap);
        // Other devices are refused it, by name.
        Explanation e = explainOk(b, {"mdss"}, k8M, CpuAccess::Rare);
        for (const HeapExplanation& h : e.heaps)
            if (h.name == r.name) {
                EXPECT_EQ(h.combined.refusal(), Refusal::PrivatePool);
                EXPECT_EQ(h.owners, r.owners);
            }
    }
    EXPECT_EQ(venus, 1);
}

// RK3399 (RockPro64): both display controllers (VOP big and little) sit
// behind IOMMUs of their own, as does the video decoder; the Mali GPU
// translates through its own MMU. Nobody needs physical contiguity: a
// scanout + decode buffer comes from the system heap, even though each VOP
// takes a single DMA address per plane.
TEST(Boards, Rk3399DisplayControllersBehindTheirOwnIommus) {
    CENALLOC_LOAD_BOARD(b, "rockchip/rk3399-rockpro64.dtb", "rk3399-rockpro64-4g.yaml");
    const Device& big = device(b, "vop@ff900000");
    const Device& little = device(b, "vop@ff8f0000");
    ASSERT_TRUE(big.iommu.has_value());
    ASSERT_TRUE(little.iommu.has_value());
    EXPECT_NE(big.iommu, little.iommu) << "each VOP has its own IOMMU";
    EXPECT_EQ(big.constraints.maxSegmentCount, 1u) << "one DMA address per plane";
    const Iommu* mmu = b.platform.findIommu(*big.iommu);
    ASSERT_NE(mmu, nullptr);
    EXPECT_EQ(mmu->apertureBase + mmu->apertureSize, uint64_t{1} << 32) << "rockchip-iommu: 32-bit IOVAs";

    Explanation e = explainOk(b, {"vop@ff900000", "video-codec@ff660000", "gpu"}, k8M, CpuAccess::Rare);
    ASSERT_TRUE(e.satisfiable) << (e.conflict ? e.conflict->reason : "");
    EXPECT_EQ(e.heap, "system");
    EXPECT_EQ(e.constraints.iovaSpaces().size(), 2u) << "the VOP's and the decoder's IOMMUs";
    EXPECT_FALSE(e.constraints.physical().needsContiguous());
}

// i.MX8MQ EVK: no IOMMU at all. The LCDIF scans out one contiguous buffer
// and the Hantro G1 decoder uses videobuf2-dma-contig; the Vivante GPU maps
// pages through its own MMU. A display + GPU + decoder buffer must be
// physically contiguous below 4 GiB: CMA. The upstream tree has no CMA
// pool (the kernel's comes from cma= or the kernel config), so without one
// nothing serves it, and explain says which device makes it so.
TEST(Boards, Imx8mqEvkDisplayGpuCodecNeedsTheCmaPool) {
    {
        CENALLOC_LOAD_BOARD(bare, "freescale/imx8mq-evk.dtb", "");
        EXPECT_TRUE(bare.platform.iommus.empty());
        Explanation e = explainOk(bare, {"lcd-controller", "gpu", "video-codec@38300000"}, k8M, CpuAccess::Rare);
        EXPECT_FALSE(e.satisfiable);
        ASSERT_TRUE(e.conflict.has_value());
        EXPECT_EQ(e.conflict->devices, (std::vector<std::string>{"lcd-controller"}))
            << "the display alone already needs contiguous memory no heap has";
    }
    CENALLOC_LOAD_BOARD(b, "freescale/imx8mq-evk.dtb", "imx8mq-evk-cma.yaml");
    // cma=256M: placed top-down below the DMA zone limit, here the end of RAM
    // at 4 GiB, and named "reserved" as dma_contiguous_reserve_area names it.
    const ReservedRegion* cma = b.platform.findRegion("reserved");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->end(), uint64_t{1} << 32);
    Explanation e = explainOk(b, {"lcd-controller", "gpu", "video-codec@38300000"}, k8M, CpuAccess::Rare);
    ASSERT_TRUE(e.satisfiable) << (e.conflict ? e.conflict->reason : "");
    EXPECT_EQ(e.heap, "reserved");
    EXPECT_EQ(e.allocatingDevice, "lcd-controller") << "the scanout engine's limits are the tightest";
}

// The CI-runnable stand-in for the Pi 4 (tests/dtb/fixtures/board.dts):
// the same answers without the download.
TEST(Boards, FixtureBoardGivesThePi4Answers) {
    CENALLOC_REQUIRE_FIXTURE("board");
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTreeFile(dtbtest::fixturePath("board"), nullptr, &warnings);
    ASSERT_TRUE(p) << p.error().toString();
    Result<std::unique_ptr<Context>> c = Context::create(*p);
    ASSERT_TRUE(c) << c.error().toString();
    std::vector<std::string> displayGpu{"hvs", "gpu"};
    Result<Explanation> e = (*c)->explain(displayGpu, k8M, CpuAccess::Rare);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->heap, "linux,cma") << "30-bit contiguous scanout: the CMA pool in the first GiB";
    EXPECT_EQ(e->allocatingDevice, "hvs");
    // The camera behind its IOMMU with the GPU: no contiguity needed in RAM.
    std::vector<std::string> cameraGpu{"isp", "gpu"};
    Result<Explanation> e2 = (*c)->explain(cameraGpu, k8M, CpuAccess::Often);
    ASSERT_TRUE(e2);
    EXPECT_EQ(e2->heap, "system");
    // A 128 MiB contiguous buffer does not fit the 64 MiB pool: unsatisfiable, naming the pool.
    Result<Explanation> big = (*c)->explain(displayGpu, 128 * MiB, CpuAccess::Rare);
    ASSERT_TRUE(big);
    EXPECT_FALSE(big->satisfiable);
}

} // namespace
} // namespace cenalloc
