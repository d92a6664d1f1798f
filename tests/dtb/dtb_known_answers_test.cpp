// SPDX-License-Identifier: MIT
// Known allocation answers on real boards: for a pipeline of devices, is it satisfiable, from which heap, who
// allocates.
//
// One table, one entry per board, one row per pipeline. Each answer is the
// one a kernel engineer gives from the device tree and the drivers (not a
// copy of what cenalloc printed), and its comment gives the evidence: the
// device tree property or the driver fact behind it. Device names are the
// loader's (`cenalloc platform show`). Boards whose RAM the bootloader
// fills in get it from an overlay (a file of examples/overlays/ or inline
// YAML); `cma_size` stands for the kernel's cma= where the tree has no
// default CMA pool.
#include <cenalloc/context.h>
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "support/dtb_corpus.h"
#include "support/dtb.h"

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

/// A heap that must refuse a device because the pool is another device's
/// (it names the region in its memory-region).
struct PrivateRefusal {
    const char* heap;
    const char* device;
};

/// One pipeline's expected answer.
struct Pipeline {
    std::vector<std::string> devices;
    bool satisfiable = true;
    /// The chosen heap (its /dev/dma_heap name), when satisfiable.
    const char* heap = "";
    /// The chosen heap gives one physically contiguous chunk.
    bool contiguous = false;
    /// The device that should allocate (export) the buffer.
    const char* allocating = "";
    /// When unsatisfiable: the smallest set of devices no heap serves.
    std::vector<std::string> conflict{};
    std::vector<PrivateRefusal> privatePools{};
    const char* evidence = "";
    /// Set when cenalloc does not give this (right) answer yet: why not.
    /// The row is then expected to fail, so that fixing the cause makes
    /// the test say to remove the mark.
    const char* wrongToday = nullptr;
};

struct BoardAnswers {
    const char* vendor;
    const char* dtb;
    /// An example overlay file name, inline overlay YAML, or "".
    const char* overlay = "";
    std::vector<Pipeline> pipelines{};
};

// Overlays written inline: the RAM a bootloader fills in, and cma= for
// trees without a default CMA pool.
constexpr const char* kOdroidN2Ram = "memory:\n  - {base: 0x0, size: 4G}\n";         // 4 GiB board, DRAM at 0
constexpr const char* kQuartz64Ram = "memory:\n  - {base: 0x0, size: 0xf0000000}\n"; // 4 GiB, below the MMIO window
constexpr const char* kRb5Ram = "memory:\n  - {base: 0x80000000, size: 8G}\n";       // RB5: 8 GiB LPDDR5
constexpr const char* kPine64Ram = "memory:\n  - {base: 0x40000000, size: 2G}\n";    // A64/H6 DRAM at 1 GiB
constexpr const char* kPine64RamCma = "memory:\n  - {base: 0x40000000, size: 2G}\ncma_size: 256M\n";
constexpr const char* kLibrem5RamCma = "memory:\n  - {base: 0x40000000, size: 3G}\ncma_size: 256M\n";
constexpr const char* kCma256 = "cma_size: 256M\n"; // the tree has its RAM, but no CMA pool: cma=256M

const std::vector<BoardAnswers>& boards() {
    static const std::vector<BoardAnswers> table = {
        // Raspberry Pi 4: no IOMMU anywhere. /soc dma-ranges map bus
        // 0xc000_0000 onto the first GiB only, so the HVS (scanout), TXP
        // and dwc2 reach 30 bits; /scb has no window (GENET: its own
        // DMA_BIT_MASK(40)); the PCIe inbound window is 3 GiB. The
        // linux,cma-default pool (64 MiB) lies in the first GiB
        // (alloc-ranges), so every master here reaches it.
        {.vendor = "Broadcom",
         .dtb = "broadcom/bcm2711-rpi-4-b.dtb",
         .overlay = "rpi4-4g.yaml",
         .pipelines =
             {
                 {.devices = {"usb@0.0", "hvs"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "hvs",
                  .evidence = "VL805 xHCI behind pcie@7d500000 (3 GiB window): any number of 64 KiB segments, "
                              "it maps the CMA block piecewise; hvs: no iommus, vc4 scans out one drm_gem_dma "
                              "block through the 1 GiB /soc window"},
                 {.devices = {"ethernet", "hvs"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "hvs",
                  .evidence = "bcmgenet: DMA_BIT_MASK(40), scatter-gather; hvs: one drm_gem_dma block below 1 GiB"},
                 {.devices = {"usb@7e980000", "hvs"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "hvs",
                  .evidence = "dwc2 OTG under /soc: 30-bit window, 64 KiB default segments, any count"},
                 {.devices = {"hvs", "gpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "hvs",
                  .evidence = "v3d maps pages through its own MMU; the HVS needs the contiguous 30-bit block"},
                 {.devices = {"txp", "hvs"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "hvs",
                  .evidence = "writeback (vc4_txp) and scanout both take one drm_gem_dma buffer: equal limits, "
                              "the name breaks the tie"},
                 {.devices = {"ethernet"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "ethernet",
                  .evidence = "GENET alone: 40-bit mask reaches all 3.9 GiB, takes any number of segments"},
                 {.devices = {"usb@0.0"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "usb@0.0",
                  .evidence = "the VL805 reaches 3 GiB (pcie dma-ranges) of RAM ending at 0xfc00_0000; the kernel's "
                              "system heap (system_heap.c: alloc_pages without a zone) hands out pages above it, "
                              "which dma_map_sgtable bounces through swiotlb: no zero-copy. The CMA pool, in the "
                              "first GiB, is the heap whose memory it reaches entirely"},
             }},
        // Odroid-N2 (G12B): no IOMMU; the VPU (meson_drv: drm_gem_dma) and
        // the decoder (meson vdec: vb2_dma_contig) need one contiguous
        // block; linux,cma-default (256 MiB) in meson-g12-common.dtsi.
        {.vendor = "Amlogic",
         .dtb = "amlogic/meson-g12b-odroid-n2.dtb",
         .overlay = kOdroidN2Ram,
         .pipelines =
             {
                 {.devices = {"usb@ff500000", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "vpu",
                  .evidence = "usb@ff500000 is the G12 dwc3: 64 KiB default segments, any count; vpu: no iommus, "
                              "drm_gem_dma"},
                 {.devices = {"video-decoder", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "video-decoder",
                  .evidence = "decoder -> display: vdec CAPTURE buffers are vb2_dma_contig, exported to KMS; "
                              "equal limits, the decoder allocates"},
                 {.devices = {"ethernet", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "vpu",
                  .evidence = "dwmac-meson8b (stmmac): scatter-gather, 32-bit"},
                 {.devices = {"gpu", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "vpu",
                  .evidence = "Mali-G52 (panfrost) maps pages through its own MMU; the VPU needs the CMA block"},
             }},
        // Libretech CC (S905X, GXL): the same drivers as G12, 256 MiB
        // linux,cma-default in meson-gx.dtsi.
        {.vendor = "Amlogic",
         .dtb = "amlogic/meson-gxl-s905x-libretech-cc.dtb",
         .pipelines =
             {
                 {.devices = {"video-codec", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "video-codec",
                  .evidence = "amlogic,gxl-vdec (vb2_dma_contig) -> meson VPU (drm_gem_dma), no IOMMU"},
                 {.devices = {"usb@c9000000", "vpu"},
                  .heap = "linux,cma",
                  .contiguous = true,
                  .allocating = "vpu",
                  .evidence = "usb@c9000000 is the GXL dwc3 host: any number of 64 KiB segments"},
             }},
        // i.MX8MQ EVK booted with cma=256M: no IOMMU on the SoC; LCDIF
        // (mxsfb: drm_gem_dma) and the Hantro G1 (vb2_dma_contig) need one
        // contiguous block below the 4 GiB /soc@0 window.
        {.vendor = "NXP",
         .dtb = "freescale/imx8mq-evk.dtb",
         .overlay = "imx8mq-evk-cma.yaml",
         .pipelines =
             {
                 {.devices = {"usb", "video-codec@38300000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "video-codec@38300000",
                  .evidence = "dwc3 (fsl,imx8mq-dwc3): any number of 64 KiB segments maps the VPU's "
                              "vb2_dma_contig block; the cma= area is named 'reserved'"},
                 {.devices = {"usb", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "lcd-controller",
                  .evidence = "USB camera -> LCDIF scanout: mxsfb takes one drm_gem_dma block"},
                 {.devices = {"video-codec@38300000", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "lcd-controller",
                  .evidence = "decoder -> display: both one contiguous 32-bit buffer; equal limits, the name "
                              "breaks the tie"},
                 {.devices = {"ethernet", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "lcd-controller",
                  .evidence = "fec: scatter-gather; LCDIF: contiguous"},
                 {.devices = {"pcie@33800000", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "lcd-controller",
                  .evidence = "a PCIe endpoint maps any number of segments through the DesignWare root port"},
             }},
        {.vendor = "NXP",
         .dtb = "freescale/imx8mq-evk.dtb",
         .pipelines =
             {
                 {.devices = {"usb", "video-codec@38300000"},
                  .satisfiable = false,
                  .conflict = {"video-codec@38300000"},
                  .evidence = "without cma= the upstream tree has no CMA pool: the VPU (no IOMMU, vb2_dma_contig) "
                              "has no contiguous heap, whatever USB accepts"},
             }},
        // Librem 5 (i.MX8MQ) with its 3 GiB and cma=256M: the CSI bridge
        // (imx7-media-csi: vb2_dma_contig), the LCDIF (mxsfb: drm_gem_dma)
        // and no IOMMU: camera frames must be one contiguous block.
        {.vendor = "NXP",
         .dtb = "freescale/imx8mq-librem5-r4.dtb",
         .overlay = kLibrem5RamCma,
         .pipelines =
             {
                 {.devices = {"csi", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "csi",
                  .evidence = "camera -> display: csi@30a90000 (fsl,imx7-csi, status okay) captures into "
                              "vb2_dma_contig buffers, exported to KMS; equal limits, the camera allocates"},
                 {.devices = {"csi", "gpu", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "csi",
                  .evidence = "camera -> GPU -> display: etnaviv (GC7000L) maps pages through its own MMU and "
                              "does not loosen what CSI and LCDIF need"},
                 {.devices = {"usb@38100000", "lcd-controller"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "lcd-controller",
                  .evidence = "dwc3 (fsl,imx8mq-dwc3): any number of 64 KiB segments; the CMA block lies at "
                              "0xf000_0000, below the 4 GiB /soc@0 window"},
             }},
        // i.MX8MM EVK booted with cma=256M: no IOMMU; Hantro G1
        // (nxp,imx8mm-vpu-g1) is vb2_dma_contig.
        {.vendor = "NXP",
         .dtb = "freescale/imx8mm-evk.dtb",
         .overlay = kCma256,
         .pipelines =
             {
                 {.devices = {"usb", "video-codec@38300000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "video-codec@38300000",
                  .evidence = "chipidea USB: any number of segments; G1 needs one contiguous block"},
                 {.devices = {"gpu@38000000", "video-codec@38300000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "video-codec@38300000",
                  .evidence = "decoder -> GPU: etnaviv (GC7000) maps pages through its own MMU"},
             }},
        // i.MX8MP EVK: 6 GiB; the 3D (GC7000UL) and 2D (GC520) GPUs are
        // etnaviv: dma_set_mask(40) for streaming, own MMU.
        {.vendor = "NXP",
         .dtb = "freescale/imx8mp-evk.dtb",
         .pipelines =
             {
                 {.devices = {"gpu@38000000", "gpu@38008000"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "gpu@38000000",
                  .evidence = "3D -> 2D GPU: etnaviv streaming mask 40 bits covers all RAM (to 0x1c000_0000), "
                              "pages through the GPU MMU"},
             }},
        // DragonBoard 845c (SDM845): every multimedia master is behind an
        // arm-smmu with its own stream ID, so its own IOMMU group and IOVA
        // space; nobody needs physically contiguous memory, and the tree
        // has no default CMA pool.
        {.vendor = "Qualcomm",
         .dtb = "qcom/sdm845-db845c.dtb",
         .overlay = "sdm845-db845c.yaml",
         .pipelines =
             {
                 {.devices = {"usb@a600000", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .evidence = "usb_1_dwc3: iommus = <&apps_smmu 0x740 0>, any count; mdss: iommus = <&apps_smmu "
                              "0x880 0x8>, one IOVA range built by the SMMU from scattered pages"},
                 {.devices = {"compute-cb@1", "camss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "camss",
                  .evidence = "CDSP fastrpc compute-cb@1: iommus = <&apps_smmu 0x1401 0x30>, scatter-gather; "
                              "camss: "
                              "iommus = <&apps_smmu 0x808 0 ...>, one IOVA range per plane"},
                 {.devices = {"camss", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "camss",
                  .evidence = "camera -> display, both behind apps_smmu (separate streams)"},
                 {.devices = {"video-codec", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .privatePools = {{"venus@95800000", "mdss"}, {"framebuffer@9d400000", "video-codec"}},
                  .evidence = "decoder -> display: venus firmware memory is Venus's memory-region, the splash "
                              "framebuffer is mdss's: neither is a heap for the other"},
                 {.devices = {"gpu", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "gpu",
                  .evidence = "adreno behind its own adreno_smmu; mdss behind apps_smmu"},
                 {.devices = {"pci@1c00000", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .evidence = "PCIe0: iommu-map onto apps_smmu (0x1c10..), scatter-gather"},
             }},
        // RB5 (QRB5165 / SM8250): the same arrangement as SDM845.
        {.vendor = "Qualcomm",
         .dtb = "qcom/qrb5165-rb5.dtb",
         .overlay = kRb5Ram,
         .pipelines =
             {
                 {.devices = {"usb@a600000", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .evidence = "dwc3 and mdss on apps_smmu with their own stream IDs"},
                 {.devices = {"video-codec", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .privatePools = {{"memory@86e00000", "mdss"}},
                  .evidence = "venus (qcom,sm8250-venus) memory-region = <&video_mem>: not mdss's heap"},
                 {.devices = {"pci@1c00000", "mdss"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mdss",
                  .evidence = "PCIe0 behind apps_smmu: scatter-gather"},
             }},
        // J721E SK: tidss has no iommus (drm_gem_dma: one contiguous block);
        // the remote processors' carveouts are theirs (memory-region).
        {.vendor = "TI",
         .dtb = "ti/k3-j721e-sk.dtb",
         .pipelines =
             {
                 {.devices = {"dss"},
                  .satisfiable = false,
                  .conflict = {"dss"},
                  .privatePools = {{"r5f-memory@a0100000", "dss"},
                                   {"c66-memory@a6100000", "dss"},
                                   {"c71-memory@a8100000", "dss"}},
                  .evidence = "no default CMA pool in the tree and no cma=: the only contiguous memory is the "
                              "R5F/C66x/C71x carveouts, private to their remoteprocs"},
                 {.devices = {"r5f@41000000", "dss"},
                  .satisfiable = false,
                  .conflict = {"dss"},
                  .privatePools = {{"r5f-memory@a0100000", "dss"}},
                  .evidence = "sharing with the R5F does not open its carveout to the display"},
             }},
        {.vendor = "TI",
         .dtb = "ti/k3-j721e-sk.dtb",
         .overlay = kCma256,
         .pipelines =
             {
                 {.devices = {"usb@6000000", "dss"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "dss",
                  .evidence = "cdns3 xHCI: any number of 64 KiB segments; dss: drm_gem_dma"},
                 {.devices = {"ethernet", "dss"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "dss",
                  .evidence = "am65-cpsw-nuss (dma-coherent), scatter-gather"},
                 {.devices = {"pcie@2900000", "dss"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "dss",
                  .evidence = "j721e PCIe (dma-coherent): scatter-gather; the CMA area lies below 4 GiB"},
             }},
        // Pine64+ (A64): no IOMMU; DE2 mixer (sun4i_drv: drm_gem_dma) and
        // cedrus (vb2_dma_contig) need one contiguous block; no CMA node in
        // the tree.
        {.vendor = "Allwinner",
         .dtb = "allwinner/sun50i-a64-pine64-plus.dtb",
         .overlay = kPine64RamCma,
         .pipelines =
             {
                 {.devices = {"video-codec", "mixer@100000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "mixer@100000",
                  .evidence = "decoder -> display: cedrus and the DE2 mixer both one contiguous block; equal "
                              "limits, the name breaks the tie"},
                 {.devices = {"usb@1c1a000", "mixer@100000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "mixer@100000",
                  .evidence = "EHCI0: any number of segments"},
                 {.devices = {"ethernet", "mixer@100000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "mixer@100000",
                  .evidence = "dwmac-sun8i (stmmac): scatter-gather"},
                 {.devices = {"gpu", "mixer@100000"},
                  .heap = "reserved",
                  .contiguous = true,
                  .allocating = "mixer@100000",
                  .evidence = "Mali-400 (lima) maps pages through its own MMU"},
             }},
        {.vendor = "Allwinner",
         .dtb = "allwinner/sun50i-a64-pine64-plus.dtb",
         .overlay = kPine64Ram,
         .pipelines =
             {
                 {.devices = {"video-codec", "mixer@100000"},
                  .satisfiable = false,
                  .conflict = {"mixer@100000"},
                  .evidence = "without cma= there is no contiguous heap for the mixer"},
             }},
        // Pine H64 (H6): the mixer and both decoders are behind the one
        // sun50i IOMMU (sun50i_iommu_device_group: a single group).
        {.vendor = "Allwinner",
         .dtb = "allwinner/sun50i-h6-pine-h64.dtb",
         .overlay = kPine64Ram,
         .pipelines =
             {
                 {.devices = {"video-codec", "mixer"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mixer",
                  .evidence = "cedrus iommus = <&iommu 3>, mixer iommus = <&iommu 0>: IOVA-contiguous from pages"},
                 {.devices = {"video-codec-g2", "mixer"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "mixer",
                  .evidence = "Hantro G2 (VP9/HEVC) iommus = <&iommu 5>"},
                 {.devices = {"usb@5101000", "mixer"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "usb@5101000",
                  .evidence = "EHCI0: direct DMA, any count, 32-bit (all of the 2 GiB); mixer behind the IOMMU"},
                 {.devices = {"gpu", "mixer"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "gpu",
                  .evidence = "GPU -> display: Mali-T720 (panfrost) own MMU; the GPU allocates"},
             }},
        // RockPro64 (RK3399): VOPs and decoders behind rockchip-iommus, no
        // default CMA pool; every pipeline is served by scattered pages.
        {.vendor = "Rockchip",
         .dtb = "rockchip/rk3399-rockpro64.dtb",
         .overlay = "rk3399-rockpro64-4g.yaml",
         .pipelines =
             {
                 {.devices = {"video-codec@ff660000", "vop@ff900000"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "video-codec@ff660000",
                  .evidence = "rkvdec (vb2_dma_contig) behind vdec_mmu, VOP big behind vopb_mmu"},
                 {.devices = {"usb@fe900000", "vop@ff900000"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "usb@fe900000",
                  .evidence = "dwc3 (no iommus): direct, any number of 64 KiB segments; RAM ends below 4 GiB"},
                 {.devices = {"rga", "vop@ff900000"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "rga",
                  .evidence = "RGA: no iommus but vb2_dma_sg pages through its own MMU table"},
                 {.devices = {"pcie", "vop@ff900000"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "pcie",
                  .evidence = "rockchip PCIe: scatter-gather, direct DMA"},
             }},
        // Quartz64 model A (RK3566): VOP2 and Hantro behind their own
        // rockchip-iommus; GMAC1 and the Mali-G52 do direct DMA.
        {.vendor = "Rockchip",
         .dtb = "rockchip/rk3566-quartz64-a.dtb",
         .overlay = kQuartz64Ram,
         .pipelines =
             {
                 {.devices = {"video-codec@fdea0400", "vop"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "video-codec@fdea0400",
                  .evidence = "hantro behind vpu_mmu, VOP2 behind vop_mmu"},
                 {.devices = {"ethernet", "vop"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "ethernet",
                  .evidence = "stmmac GMAC: direct scatter-gather; RAM ends below 4 GiB"},
                 {.devices = {"gpu", "vop"},
                  .heap = "system",
                  .contiguous = false,
                  .allocating = "gpu",
                  .evidence = "GPU -> display: panfrost 40-bit own MMU"},
             }},
    };
    return table;
}

Result<Platform> loadBoard(const BoardAnswers& b, const std::string& path) {
    std::optional<Overlay> overlay;
    std::string o = b.overlay;
    if (!o.empty()) {
        Result<Overlay> r = o.find(':') != std::string::npos ? parseOverlayYaml(o, "board.yaml")
                                                             : loadOverlayFile(dtbtest::overlayPath(o));
        if (!r)
            return r.error();
        overlay = std::move(*r);
    }
    return loadDeviceTreeFile(path, overlay ? &*overlay : nullptr);
}

const HeapProperties* findHeap(const Context& c, const std::string& name) {
    for (const HeapProperties& h : c.heapProperties())
        if (h.name == name)
            return &h;
    return nullptr;
}

// The answer cenalloc gives agrees with @p p on satisfiability, heap and
// allocating device.
bool agrees(const Explanation& e, const Pipeline& p) {
    if (e.satisfiable != p.satisfiable)
        return false;
    if (!p.satisfiable)
        return true;
    return e.heap.value_or("") == p.heap && e.allocatingDevice.value_or("") == p.allocating;
}

void checkPipeline(const Context& c, const Pipeline& p) {
    SCOPED_TRACE(fmt::format("{} ({})", fmt::join(p.devices, ","), p.evidence));
    Result<Explanation> r = c.explain(p.devices, 8 * MiB, CpuAccess::Rare);
    ASSERT_TRUE(r) << r.error().toString();
    const Explanation& e = *r;
    if (p.wrongToday) {
        EXPECT_FALSE(agrees(e, p)) << "cenalloc now gives the right answer: remove wrongToday (" << p.wrongToday << ")";
        std::printf("known disagreement: %s: cenalloc says %s, the right answer is %s: %s\n",
                    fmt::format("{}", fmt::join(p.devices, ",")).c_str(), e.heap.value_or("(none)").c_str(), p.heap,
                    p.wrongToday);
        return;
    }
    ASSERT_EQ(e.satisfiable, p.satisfiable) << (e.conflict ? e.conflict->reason : "");
    if (p.satisfiable) {
        ASSERT_TRUE(e.heap.has_value());
        EXPECT_EQ(*e.heap, p.heap);
        const HeapProperties* h = findHeap(c, *e.heap);
        ASSERT_NE(h, nullptr);
        EXPECT_EQ(h->contiguous, p.contiguous) << *e.heap;
        EXPECT_EQ(e.allocatingDevice.value_or(""), p.allocating) << e.allocatingReason;
    } else {
        ASSERT_TRUE(e.conflict.has_value());
        EXPECT_EQ(e.conflict->devices, p.conflict) << e.conflict->reason;
    }
    for (const PrivateRefusal& pr : p.privatePools) {
        SCOPED_TRACE(fmt::format("private pool {} for {}", pr.heap, pr.device));
        auto heap =
            std::find_if(e.heaps.begin(), e.heaps.end(), [&](const HeapExplanation& h) { return h.name == pr.heap; });
        ASSERT_NE(heap, e.heaps.end());
        EXPECT_FALSE(heap->accepted);
        EXPECT_FALSE(heap->owners.empty());
        auto device = std::find(e.devices.begin(), e.devices.end(), pr.device);
        ASSERT_NE(device, e.devices.end());
        const HeapVerdict& v = heap->devices[static_cast<size_t>(device - e.devices.begin())];
        EXPECT_EQ(v.refusal(), Refusal::PrivatePool) << v.reason();
        EXPECT_NE(v.reason().find("private"), std::string::npos) << v.reason();
    }
}

TEST(DtbKnownAnswers, PipelinesOnRealBoardsGetTheKernelEngineersAnswer) {
    if (std::string reason = dtbtest::dtbSkipReason(); !reason.empty())
        GTEST_SKIP() << reason;
    std::set<std::string> vendors;
    std::set<std::string> dtbs;
    int pipelines = 0;
    for (const BoardAnswers& b : boards()) {
        SCOPED_TRACE(b.dtb);
        std::string path = dtbtest::dtbPath(b.dtb);
        if (path.empty()) {
            std::printf("skipped: %s is not in %s\n", b.dtb, dtbtest::dtbDirectory().c_str());
            continue;
        }
        Result<Platform> p = loadBoard(b, path);
        ASSERT_TRUE(p) << p.error().toString();
        Result<std::unique_ptr<Context>> c = Context::create(*p);
        ASSERT_TRUE(c) << c.error().toString();
        for (const Pipeline& pipeline : b.pipelines) {
            checkPipeline(**c, pipeline);
            ++pipelines;
        }
        vendors.insert(b.vendor);
        dtbs.insert(b.dtb);
    }
    if (pipelines == 0)
        GTEST_SKIP() << "none of the boards is in " << dtbtest::dtbDirectory();
    std::printf("%d pipelines on %zu boards of %zu vendors checked\n", pipelines, dtbs.size(), vendors.size());
}

// The corpus is as large as issue 12 asks: 30 pipelines, 12 boards, 7
// vendors (counted from the table, whether or not the blobs are here; rows
// marked wrongToday do not count).
TEST(DtbKnownAnswers, TheCorpusCoversThirtyPipelinesTwelveBoardsSevenVendors) {
    std::set<std::string> vendors;
    std::set<std::string> dtbs;
    size_t pipelines = 0;
    for (const BoardAnswers& b : boards()) {
        vendors.insert(b.vendor);
        dtbs.insert(b.dtb);
        pipelines += static_cast<size_t>(
            std::count_if(b.pipelines.begin(), b.pipelines.end(), [](const Pipeline& p) { return !p.wrongToday; }));
    }
    EXPECT_GE(pipelines, 30u);
    EXPECT_GE(dtbs.size(), 12u);
    EXPECT_GE(vendors.size(), 7u);
}

} // namespace
} // namespace cenalloc
