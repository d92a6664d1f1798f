// SPDX-License-Identifier: MIT
// The compatible table: DMA facts from Linux drivers, the DMA-master rule and IOMMU input sizes, as data.
#include "platform/compat_table.h"

#include <fnmatch.h>
#include <string>

namespace cenalloc {

namespace {

using C = DeviceClass;
constexpr uint64_t kAnySize = 0xffffffff; // dma_set_max_seg_size(dev, UINT_MAX)
// drivers/media/platform/qcom/venus/core.c: the venus_resources of SDM845,
// SC7180 and SM8250 set .dma_mask = 0xe0000000 - 1, which venus_probe
// passes to dma_set_mask_and_coherent: the codec's addresses end below
// 0xe0000000 (its firmware's upper bound of DMA addresses), not at 4 GiB.
constexpr uint64_t kVenusDmaLimit = 0xe0000000 - 1;

// A row that only names a class of DMA master, with the kernel's defaults.
constexpr CompatEntry glob(std::string_view pattern, DeviceClass cls) {
    return {pattern, cls, 0, 0, 0, 0, {}};
}

// A Qualcomm Venus codec row (SDM845 v2, SC7180, SM8250): its mask is the
// limit address kVenusDmaLimit, not a number of bits.
constexpr CompatEntry venus(std::string_view compatible) {
    CompatEntry e{compatible,
                  C::VideoCodec,
                  0,
                  kAnySize,
                  1,
                  0,
                  "drivers/media/platform/qcom/venus/core.c: venus_probe calls dma_set_mask_and_coherent(dev, "
                  "res->dma_mask), 0xe0000000 - 1 for this SoC, and dma_set_max_seg_size(dev, UINT_MAX); helpers.c: "
                  "venus_helper_vb2_buf_init programs the first DMA address of a buffer"};
    e.dmaLimit = kVenusDmaLimit;
    return e;
}

// Exact rows first: they carry what drivers ask for. Numbers are only given
// where the driver states them; everything else keeps Linux's defaults
// (32-bit mask from of_dma_configure, 64 KiB segments, any segment count).
// maxSegmentCount 1 marks engines that take one DMA address per buffer:
// scanout engines, videobuf2-dma-contig queues and drivers that program
// only the first address of a mapped sg table. Behind an IOMMU that is one
// I/O virtual range; without one it is physically contiguous memory. Such
// an engine reads the whole buffer from that address, so its segment size
// is the buffer's: maxSegmentSize is "any". Every row names the Linux file
// and the call it encodes; GPU masks the driver reads from the hardware
// (panfrost, panthor) cite the MMU_FEATURES value the SoC's GPU reports in
// the driver's own probe message.
constexpr CompatEntry kTable[] = {
    // Broadcom BCM2711 / BCM2835 (Raspberry Pi)
    {"brcm,bcm2711-hvs", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/vc4/vc4_drv.c: vc4 scans out drm_gem_dma (CMA) buffers, one block per plane"},
    {"brcm,bcm2835-hvs", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/vc4/vc4_drv.c: vc4 scans out drm_gem_dma (CMA) buffers, one block per plane"},
    {"brcm,bcm2835-txp", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/vc4/vc4_txp.c: the writeback connector writes a whole frame to the one DMA address of a "
     "vc4 (drm_gem_dma) framebuffer"},
    {"brcm,bcm2835-v3d", C::Gpu, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/vc4/vc4_bo.c: vc4's V3D renders into drm_gem_dma (CMA) buffers"},
    {"brcm,2711-v3d", C::Gpu, 0, kAnySize, 0, 0,
     "drivers/gpu/drm/v3d/v3d_drv.c: v3d_platform_drm_probe calls dma_set_max_seg_size(dev, UINT_MAX); "
     "v3d_mmu.c maps shmem pages page by page through the GPU's own MMU",
     0,
     "reaches 32 bits of address: v3d sets dma_set_mask_and_coherent(DMA_BIT_MASK(30 + V3D_MMU_PA_WIDTH)) from "
     "the GPU's V3D_MMU_DEBUG_INFO register, which cenalloc cannot read"},
    {"brcm,bcm2835-vchiq", C::Other, 32, 0, 0, 0,
     "drivers/staging/vc04_services/interface/vchiq_arm/vchiq_arm.c: vchiq_platform_init calls "
     "dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32)); bulk transfers are dma_map_sg page lists"},
    {"brcm,bcm2836-vchiq", C::Other, 32, 0, 0, 0,
     "drivers/staging/vc04_services/interface/vchiq_arm/vchiq_arm.c: vchiq_platform_init calls "
     "dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32)); bulk transfers are dma_map_sg page lists"},
    {"brcm,bcm2711-vchiq", C::Other, 32, 0, 0, 0,
     "drivers/staging/vc04_services/interface/vchiq_arm/vchiq_arm.c: vchiq_platform_init calls "
     "dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32)); bulk transfers are dma_map_sg page lists"},
    {"brcm,bcm2835-dma", C::DmaEngine, 0, 0x3fffffff, 0, 0,
     "drivers/dma/bcm2835-dma.c: dma_set_max_seg_size(dev, 0x3fffffff), the 30-bit length field"},
    {"brcm,bcm2711-genet-v5", C::Ethernet, 40, 0, 0, 0,
     "drivers/net/ethernet/broadcom/genet/bcmgenet.c: dma_set_mask_and_coherent(DMA_BIT_MASK(40))"},
    {"brcm,bcm2711-pcie", C::PcieHost, 64, 0, 0, 0,
     "stands for the PCI functions behind it, whose drivers set 64-bit masks; the bridge's dma-ranges bound them"},
    // Rockchip
    {"rockchip,rk3399-vop-big", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/rockchip/rockchip_drm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from "
     "one DMA address"},
    {"rockchip,rk3399-vop-lit", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/rockchip/rockchip_drm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from "
     "one DMA address"},
    {"rockchip,rk3566-vop", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/rockchip/rockchip_drm_drv.c: dma_set_max_seg_size(UINT_MAX); rockchip_drm_vop2.c scans a "
     "plane out from one DMA address"},
    {"rockchip,rk3568-vop", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/rockchip/rockchip_drm_drv.c: dma_set_max_seg_size(UINT_MAX); rockchip_drm_vop2.c scans a "
     "plane out from one DMA address"},
    {"rockchip,rk3588-vop", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/rockchip/rockchip_drm_drv.c: dma_set_max_seg_size(UINT_MAX); rockchip_drm_vop2.c scans a "
     "plane out from one DMA address"},
    {"rockchip,rk3399-cif-isp", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/rockchip/rkisp1/rkisp1-capture.c: queues use vb2_dma_contig_memops"},
    {"rockchip,px30-cif-isp", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/rockchip/rkisp1/rkisp1-capture.c: queues use vb2_dma_contig_memops"},
    {"rockchip,rk3399-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/rkvdec/rkvdec.c: queues use vb2_dma_contig_memops"},
    {"rockchip,rk3399-rga", C::TwoD, 0, 0, 0, 0,
     "drivers/media/platform/rockchip/rga/rga.c: queues use vb2_dma_sg_memops with __GFP_DMA32; the RGA maps the "
     "pages through its own page table, so scattered pages below 4 GiB do"},
    {"rockchip,rk3288-rga", C::TwoD, 0, 0, 0, 0,
     "drivers/media/platform/rockchip/rga/rga.c: queues use vb2_dma_sg_memops with __GFP_DMA32; the RGA maps the "
     "pages through its own page table, so scattered pages below 4 GiB do"},
    {"rockchip,rk3399-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panfrost/panfrost_gpu.c: dma_set_mask_and_coherent(DMA_BIT_MASK(PA bits of MMU_FEATURES)) "
     "and dma_set_max_seg_size(UINT_MAX); the RK3399's Mali-T860 reports MMU 0x2830 (40 bits)"},
    {"rockchip,rk3568-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panfrost/panfrost_gpu.c: dma_set_mask_and_coherent(DMA_BIT_MASK(PA bits of MMU_FEATURES)) "
     "and dma_set_max_seg_size(UINT_MAX); the RK3568's Mali-G52 reports MMU 0x2823 (40 bits)"},
    {"rockchip,rk3588-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panthor/panthor_gpu.c: dma_set_max_seg_size(UINT_MAX) and "
     "dma_set_mask_and_coherent(DMA_BIT_MASK(GPU_MMU_FEATURES_PA_BITS)); the RK3588's Mali-G610 reports MMU "
     "0x2830 (40 bits)"},
    // Hantro (verisilicon) decoders and encoders: Rockchip, NXP, Allwinner
    {"rockchip,rk3399-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,rk3328-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,rk3288-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,px30-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,rk3568-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,rk3568-vepu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"rockchip,rk3588-av1-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32)); the AV1 decoder has no iommus"},
    {"nxp,imx8mq-vpu", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"nxp,imx8mq-vpu-g1", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"nxp,imx8mq-vpu-g2", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"nxp,imx8mm-vpu-g1", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"allwinner,sun50i-h6-vpu-g2", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/verisilicon/hantro_drv.c: queues use vb2_dma_contig_memops, "
     "vb2_dma_contig_set_max_seg_size(DMA_BIT_MASK(32))"},
    // Qualcomm
    {"qcom,sdm845-mdss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/msm/msm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"qcom,sc7180-mdss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/msm/msm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"qcom,sc7280-mdss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/msm/msm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"qcom,sm8250-mdss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/msm/msm_drv.c: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    venus("qcom,sdm845-venus-v2"),
    venus("qcom,sc7180-venus"),
    venus("qcom,sm8250-venus"),
    {"qcom,sdm845-camss", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/qcom/camss/camss-video.c: camss programs the first DMA address of each plane "
     "(video_buf_init): one contiguous DMA range per plane"},
    {"qcom,adreno-630.2", C::Gpu, 0, kAnySize, 0, 0,
     "drivers/gpu/drm/msm/adreno: the Adreno GPU maps pages through its own SMMU context"},
    // NXP i.MX8M
    {"nxp,imx8mq-dcss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/imx/dcss/dcss-drv.c: imx-dcss scans out "
     "drm_gem_dma buffers"},
    {"fsl,imx8mq-lcdif", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/mxsfb/mxsfb_drv.c: scans out drm_gem_dma "
     "buffers"},
    {"fsl,imx6sx-lcdif", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/mxsfb/mxsfb_drv.c: scans out drm_gem_dma "
     "buffers"},
    {"fsl,imx28-lcdif", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/mxsfb/mxsfb_drv.c: scans out drm_gem_dma "
     "buffers"},
    {"fsl,imx8mp-lcdif", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/mxsfb/lcdif_drv.c: scans out drm_gem_dma "
     "buffers"},
    {"vivante,gc", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/etnaviv/etnaviv_drv.c: etnaviv_pdev_probe calls dma_set_mask(DMA_BIT_MASK(40)) and "
     "dma_set_coherent_mask(DMA_BIT_MASK(32)); shmem pages are mapped through the GPU's own MMU",
     32},
    {"fsl,imx8mq-csi", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/nxp/imx7-media-csi.c: queues use vb2_dma_contig_memops"},
    {"fsl,imx8mm-csi", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/nxp/imx7-media-csi.c: queues use vb2_dma_contig_memops"},
    {"fsl,imx7-csi", C::Camera, 0, kAnySize, 1, 0,
     "drivers/media/platform/nxp/imx7-media-csi.c: queues use vb2_dma_contig_memops"},
    // Amlogic
    {"amlogic,meson-gxbb-vpu", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/meson/meson_drv.c: DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE, drm_gem_dma buffers"},
    {"amlogic,meson-gxl-vpu", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/meson/meson_drv.c: DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE, drm_gem_dma buffers"},
    {"amlogic,meson-gxm-vpu", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/meson/meson_drv.c: DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE, drm_gem_dma buffers"},
    {"amlogic,meson-g12a-vpu", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/meson/meson_drv.c: DRM_GEM_DMA_DRIVER_OPS_WITH_DUMB_CREATE, drm_gem_dma buffers"},
    {"amlogic,gxbb-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/meson/vdec/vdec.c: m2m_queue_init gives both queues vb2_dma_contig_memops"},
    {"amlogic,gxl-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/meson/vdec/vdec.c: m2m_queue_init gives both queues vb2_dma_contig_memops"},
    {"amlogic,gxm-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/meson/vdec/vdec.c: m2m_queue_init gives both queues vb2_dma_contig_memops"},
    {"amlogic,g12a-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/meson/vdec/vdec.c: m2m_queue_init gives both queues vb2_dma_contig_memops"},
    {"amlogic,sm1-vdec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/meson/vdec/vdec.c: m2m_queue_init gives both queues vb2_dma_contig_memops"},
    // TI K3
    {"ti,k2g-dss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/tidss/tidss_drv.c: DRM_GEM_DMA_DRIVER_OPS (drm_gem_dma), one buffer per plane"},
    {"ti,am65x-dss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/tidss/tidss_drv.c: DRM_GEM_DMA_DRIVER_OPS (drm_gem_dma), one buffer per plane"},
    {"ti,j721e-dss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/tidss/tidss_drv.c: DRM_GEM_DMA_DRIVER_OPS (drm_gem_dma), one buffer per plane"},
    {"ti,am625-dss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/tidss/tidss_drv.c: in tidss_of_table; drm_gem_dma buffers, one per plane"},
    {"ti,am62a7-dss", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/tidss/tidss_drv.c: in tidss_of_table; drm_gem_dma buffers, one per plane"},
    {"img,img-axe", C::Gpu, 0, kAnySize, 0, 0,
     "drivers/gpu/drm/imagination/pvr_device.c: pvr_set_dma_info calls dma_set_max_seg_size(UINT_MAX); pages are "
     "mapped through the GPU's own MMU",
     0,
     "reaches 32 bits of address: pvr sets dma_set_mask(DMA_BIT_MASK(phys_bus_width)) from the firmware's "
     "device info, which cenalloc cannot read"},
    // Allwinner
    {"allwinner,sun50i-a64-de2-mixer-0", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/sun4i/sun4i_drv.c: DRM_GEM_DMA_DRIVER_OPS, the mixer scans out drm_gem_dma buffers"},
    {"allwinner,sun50i-a64-de2-mixer-1", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/sun4i/sun4i_drv.c: DRM_GEM_DMA_DRIVER_OPS, the mixer scans out drm_gem_dma buffers"},
    {"allwinner,sun8i-h3-de2-mixer-0", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/sun4i/sun4i_drv.c: DRM_GEM_DMA_DRIVER_OPS, the mixer scans out drm_gem_dma buffers"},
    {"allwinner,sun50i-h6-de3-mixer-0", C::Display, 0, kAnySize, 1, 0,
     "drivers/gpu/drm/sun4i/sun4i_drv.c: DRM_GEM_DMA_DRIVER_OPS, the mixer scans out drm_gem_dma buffers"},
    {"allwinner,sun50i-a64-video-engine", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/sunxi/cedrus/cedrus_video.c: queues use vb2_dma_contig_memops"},
    {"allwinner,sun50i-h5-video-engine", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/sunxi/cedrus/cedrus_video.c: queues use vb2_dma_contig_memops"},
    {"allwinner,sun50i-h6-video-engine", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/staging/media/sunxi/cedrus/cedrus_video.c: queues use vb2_dma_contig_memops"},
    // MediaTek
    {"mediatek,mt8173-vcodec-dec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/mediatek/vcodec/mtk_vcodec_dec.c: mtk_vcodec_dec_queue_init gives the queues "
     "vb2_dma_contig_memops"},
    {"mediatek,mt8183-vcodec-dec", C::VideoCodec, 0, kAnySize, 1, 0,
     "drivers/media/platform/mediatek/vcodec/mtk_vcodec_dec.c: mtk_vcodec_dec_queue_init gives the queues "
     "vb2_dma_contig_memops"},
    {"mediatek,mt8183-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panfrost/panfrost_gpu.c: dma_set_mask_and_coherent(DMA_BIT_MASK(PA bits of MMU_FEATURES)) "
     "and dma_set_max_seg_size(UINT_MAX); the MT8183's Mali-G72 reports MMU 0x2830 (40 bits)"},
    {"mediatek,mt8365-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panfrost/panfrost_gpu.c: dma_set_mask_and_coherent(DMA_BIT_MASK(PA bits of MMU_FEATURES)) "
     "and dma_set_max_seg_size(UINT_MAX); the MT8365's Mali-G52 reports MMU 0x2823 (40 bits)"},
    {"mediatek,mt8195-mali", C::Gpu, 40, kAnySize, 0, 0,
     "drivers/gpu/drm/panfrost/panfrost_gpu.c: dma_set_mask_and_coherent(DMA_BIT_MASK(PA bits of MMU_FEATURES)) "
     "and dma_set_max_seg_size(UINT_MAX); the MT8195's Mali-G57 reports MMU 0x2830 (40 bits)"},

    // Globs: the DMA-master classes, with the kernel's defaults. Order
    // matters where two could match ("arm,mali-dp*" before "arm,mali-*").
    glob("rockchip,*-vop", C::Display),
    glob("rockchip,*-vop-big", C::Display),
    glob("rockchip,*-vop-lit", C::Display),
    glob("brcm,*-hvs", C::Display),
    glob("brcm,*-txp", C::Display),
    glob("fsl,*-lcdif", C::Display),
    glob("nxp,*-dcss", C::Display),
    glob("qcom,mdss", C::Display),
    glob("qcom,*-mdss", C::Display),
    glob("allwinner,*-mixer-*", C::Display),
    glob("amlogic,meson-*-vpu", C::Display),
    glob("nvidia,tegra*-dc", C::Display),
    glob("ti,*-dss", C::Display),
    glob("arm,mali-dp*", C::Display),
    glob("arm,hdlcd", C::Display),
    glob("renesas,du-*", C::Display),
    glob("mediatek,*-disp-ovl*", C::Display),
    glob("st,stm32-ltdc", C::Display),
    glob("arm,mali-*", C::Gpu),
    glob("*-mali", C::Gpu),
    glob("qcom,adreno-[0-9]*", C::Gpu),
    glob("nvidia,g[kmp][0-9]*", C::Gpu),
    glob("brcm,*v3d", C::Gpu),
    glob("img,img-*", C::Gpu),
    glob("rockchip,*-rga", C::TwoD),
    glob("fsl,imx*-pxp", C::TwoD),
    glob("amlogic,*-ge2d", C::TwoD),
    glob("rockchip,*-rknn-core*", C::Npu),
    glob("brcm,*-vchiq", C::Other),
    glob("nxp,imx8m*-vpu-g[12]", C::VideoCodec),
    glob("rockchip,*-vpu", C::VideoCodec),
    glob("rockchip,*-vdec", C::VideoCodec),
    glob("qcom,*-venus*", C::VideoCodec),
    glob("amlogic,*-vdec", C::VideoCodec),
    glob("rockchip,*-av1-vpu", C::VideoCodec),
    glob("rockchip,*-vepu", C::VideoCodec),
    glob("nxp,imx8q*-vpu*", C::VideoCodec),
    glob("cnm,wave5*", C::VideoCodec),
    glob("*-wave521c", C::VideoCodec),
    glob("allwinner,*-video-engine", C::VideoCodec),
    glob("allwinner,*-vpu-g2", C::VideoCodec),
    glob("nvidia,tegra*-nvdec", C::VideoCodec),
    glob("nvidia,tegra*-nvenc", C::VideoCodec),
    glob("mediatek,*-vcodec-*", C::VideoCodec),
    glob("fsl,imx*-csi", C::Camera),
    glob("fsl,imx*-isi", C::Camera),
    glob("ti,j721e-csi2rx*", C::Camera),
    glob("rockchip,*-cif-isp", C::Camera),
    glob("qcom,*-camss", C::Camera),
    glob("allwinner,*-csi", C::Camera),
    glob("nvidia,tegra*-vi", C::Camera),
    glob("nvidia,tegra*-isp", C::Camera),
    glob("renesas,vin-*", C::Camera),
    glob("snps,dwc3", C::Usb),
    glob("snps,dwc2", C::Usb),
    glob("generic-xhci", C::Usb),
    glob("generic-ehci", C::Usb),
    glob("generic-ohci", C::Usb),
    glob("*-xhci", C::Usb),
    glob("*-ehci", C::Usb),
    glob("*-ohci", C::Usb),
    glob("*-musb", C::Usb),
    glob("brcm,bcm2835-usb", C::Usb),
    glob("fsl,imx*-usb", C::Usb),
    glob("cdns,usb3", C::Usb),
    glob("nvidia,tegra*-xusb", C::Usb),
    glob("pci-host-ecam-generic", C::PcieHost),
    glob("*-pcie", C::PcieHost),
    glob("*-pcie-rc", C::PcieHost),
    glob("*-pcie-host", C::PcieHost),
    glob("*-pcie-ecam", C::PcieHost),
    glob("qcom,pcie-*", C::PcieHost),
    glob("xlnx,nwl-pcie-*", C::PcieHost),
    glob("snps,dwmac*", C::Ethernet),
    glob("*-dwmac", C::Ethernet),
    glob("*-dwmac-*", C::Ethernet),
    glob("*-gmac", C::Ethernet),
    glob("*-emac", C::Ethernet),
    glob("*-emac[0-9]", C::Ethernet),
    glob("brcm,*-genet-v[0-9]*", C::Ethernet),
    glob("fsl,*-fec", C::Ethernet),
    glob("cdns,*gem", C::Ethernet),
    glob("cdns,macb", C::Ethernet),
    glob("renesas,etheravb-*", C::Ethernet),
    glob("apm,xgene*-[sx]genet", C::Ethernet),
    glob("*sdhci*", C::Storage),
    glob("*-usdhc", C::Storage),
    glob("*-esdhc", C::Storage),
    glob("fsl,esdhc", C::Storage),
    glob("snps,dw-mshc", C::Storage),
    glob("*-dw-mshc", C::Storage),
    glob("*-dwcmshc", C::Storage),
    glob("*-mmc", C::Storage),
    glob("*-emmc", C::Storage),
    glob("*-emmc2", C::Storage),
    glob("generic-ahci", C::Storage),
    glob("*-ahci", C::Storage),
    glob("*-ahci-v[0-9]", C::Storage),
    glob("*-ufshc", C::Storage),
    glob("qcom,ufshc", C::Storage),
    glob("jedec,ufs-*", C::Storage),
    glob("arm,pl330", C::DmaEngine),
    glob("arm,pl080", C::DmaEngine),
    glob("arm,pl081", C::DmaEngine),
    glob("*-dma", C::DmaEngine),
    glob("*-dmac", C::DmaEngine),
    glob("*-sdma", C::DmaEngine),
    glob("*-edma", C::DmaEngine),
    glob("*-qdma", C::DmaEngine),
    glob("*-apbdma", C::DmaEngine),
    glob("*-adma", C::DmaEngine),
    glob("*-dma-apbh", C::DmaEngine),
    glob("*-gpi-dma", C::DmaEngine),
    glob("*-udmap", C::DmaEngine),
    glob("*-bcdma", C::DmaEngine),
    glob("*-pktdma", C::DmaEngine),
    glob("*-dma-[0-9]*", C::DmaEngine),
    glob("xlnx,zynqmp-dpdma", C::DmaEngine),
    glob("qcom,bam-v[0-9]*", C::DmaEngine),
    glob("*-crypto", C::Crypto),
    glob("qcom,crypto-v[0-9]*", C::Crypto),
    glob("fsl,sec-v[0-9]*", C::Crypto),
};

constexpr MasterProperty kMasterProperties[] = {
    {"iommus", false, "a node that translates through an IOMMU does DMA"},
    {"iommu-map", false, "a PCI host bridge whose functions translate through an IOMMU"},
    {"dma-coherent", true, "a device that snoops the CPU caches does DMA"},
    {"memory-region", true,
     "a device given reserved memory for its DMA (of_reserved_mem_device_init; a remote processor's carveouts) "
     "does DMA"},
};
constexpr std::string_view kMasterBusDeviceTypes[] = {"pci", "pciex"};
constexpr std::string_view kBusCompatibles[] = {"simple-bus", "simple-mfd", "simple-pm-bus", "arm,amba-bus", "isa"};
constexpr std::string_view kNonDeviceRoots[] = {"/reserved-memory",  "/cpus",          "/chosen",
                                                "/aliases",          "/__symbols__",   "/__fixups__",
                                                "/__local_fixups__", "/__overrides__", "/thermal-zones"};

// An IOMMU's input address size bounds the I/O virtual addresses it can
// translate: the top of the aperture cenalloc gives it. The group rule is
// the driver's device_group op: arm-smmu (arm_smmu_device_group) puts two
// masters in one group only when they share a stream-map entry, which equal
// `iommus` specifiers give, and otherwise calls generic_device_group (a
// group per device); arm-smmu-v3 always calls generic_device_group (or
// pci_device_group). The drivers marked oneGroup hand every master the
// IOMMU instance's one group.
constexpr std::string_view kSmmuGroups =
    "drivers/iommu/arm/arm-smmu/arm-smmu.c: arm_smmu_device_group shares a group only between masters with a "
    "common stream-map entry, generic_device_group otherwise";
constexpr std::string_view kSmmuV3Groups =
    "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c: arm_smmu_device_group calls generic_device_group (a group per "
    "master) or pci_device_group";
constexpr IommuEntry kIommus[] = {
    {"arm,smmu-v3", 48, "arm-smmu-v3: stage-1 input size of 48 bits with 4 KiB pages", false, kSmmuV3Groups},
    {"arm,mmu-500", 48, "arm-smmu: stage-1 input size (va_size) of 48 bits with 4 KiB pages", false, kSmmuGroups},
    {"qcom,*-smmu-500", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"qcom,*smmu-v2", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"qcom,adreno-smmu", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"marvell,ap806-smmu-500", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"nvidia,*-smmu", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"arm,smmu-v2", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits", false, kSmmuGroups},
    {"arm,smmu-v1", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input", false, kSmmuGroups},
    {"arm,mmu-400", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input", false, kSmmuGroups},
    {"arm,mmu-401", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input", false, kSmmuGroups},
    {"rockchip,iommu", 32, "rockchip-iommu: domain aperture DMA_BIT_MASK(32)", true,
     "drivers/iommu/rockchip-iommu.c: rk_iommu_device_group returns iommu_group_ref_get(iommu->group), the "
     "instance's one group"},
    {"rockchip,rk3568-iommu", 32, "rockchip-iommu: domain aperture DMA_BIT_MASK(32)", true,
     "drivers/iommu/rockchip-iommu.c: rk_iommu_device_group returns iommu_group_ref_get(iommu->group), the "
     "instance's one group"},
    {"allwinner,sun50i-h6-iommu", 32, "sun50i-iommu: 32-bit aperture", true,
     "drivers/iommu/sun50i-iommu.c: sun50i_iommu_device_group returns iommu_group_ref_get(iommu->group), the "
     "instance's one group"},
    {"qcom,msm-iommu-v1", 32, "qcom_iommu: 32-bit aperture"},
    {"qcom,msm8916-iommu", 32, "qcom_iommu: 32-bit aperture"},
    {"renesas,ipmmu-*", 32, "ipmmu-vmsa: 32-bit I/O virtual addresses"},
    {"mediatek,*-m4u", 32, "mtk_iommu: 32-bit aperture", true,
     "drivers/iommu/mtk_iommu.c: mtk_iommu_device_group: \"All the client devices are in the same m4u "
     "iommu-group\" (one group per IOVA region; the SoCs with one region have one)"},
    {"samsung,exynos-sysmmu", 32, "exynos-iommu: 32-bit aperture"},
    {"nvidia,tegra*-mc", 32, "tegra-smmu (in the memory controller): 32-bit I/O virtual addresses"},
};

constexpr std::string_view kNonMasterCompatibles[] = {"syscon"};

// The conservative default of each class of engine: display, codec,
// camera/ISP and 2D engines take one DMA address per buffer unless a row
// says otherwise (drm_gem_dma and videobuf2-dma-contig are the common
// case), which without an IOMMU is one physically contiguous block. GPUs
// and NPUs map pages through their own MMU, so they get nothing beyond
// the kernel's defaults.
constexpr ClassDefault kDisplayDefault{1, kAnySize, "a display engine"};
constexpr ClassDefault kCodecDefault{1, kAnySize, "a video codec"};
constexpr ClassDefault kCameraDefault{1, kAnySize, "a camera/ISP engine"};
constexpr ClassDefault kTwoDDefault{1, kAnySize, "a 2D engine"};

bool isGlob(std::string_view pattern) {
    return pattern.find_first_of("*[?") != std::string_view::npos;
}

bool globMatches(std::string_view pattern, std::string_view text) {
    // fnmatch needs NUL-terminated strings; compatibles are short.
    return ::fnmatch(std::string(pattern).c_str(), std::string(text).c_str(), 0) == 0;
}

} // namespace

std::string_view deviceClassName(DeviceClass cls) {
    switch (cls) {
    case C::Display: return "display controller";
    case C::Gpu: return "GPU";
    case C::VideoCodec: return "video codec";
    case C::Camera: return "camera receiver";
    case C::TwoD: return "2D engine";
    case C::Npu: return "NPU";
    case C::Usb: return "USB controller";
    case C::PcieHost: return "PCIe host bridge";
    case C::PciFunction: return "PCI function";
    case C::Ethernet: return "ethernet controller";
    case C::Storage: return "storage controller";
    case C::DmaEngine: return "DMA engine";
    case C::Crypto: return "crypto engine";
    case C::Other: break;
    }
    return "DMA master";
}

std::span<const CompatEntry> compatTable() {
    return kTable;
}

const ClassDefault* classDefault(DeviceClass cls) {
    switch (cls) {
    case C::Display: return &kDisplayDefault;
    case C::VideoCodec: return &kCodecDefault;
    case C::Camera: return &kCameraDefault;
    case C::TwoD: return &kTwoDDefault;
    default: break;
    }
    return nullptr;
}

bool isExactRow(const CompatEntry& entry) {
    // glob() rows name a class only, some with a plain string ("snps,dwc3").
    return !isGlob(entry.compatible) && !entry.why.empty();
}

std::span<const std::string_view> nonMasterCompatibles() {
    return kNonMasterCompatibles;
}

const CompatEntry* findCompat(std::span<const std::string_view> compatibles) {
    for (std::string_view c : compatibles)
        for (const CompatEntry& e : kTable)
            if (!isGlob(e.compatible) && e.compatible == c)
                return &e;
    for (std::string_view c : compatibles)
        for (std::string_view register_block : kNonMasterCompatibles)
            if (c == register_block)
                return nullptr;
    for (std::string_view c : compatibles)
        for (const CompatEntry& e : kTable)
            if (isGlob(e.compatible) && globMatches(e.compatible, c))
                return &e;
    return nullptr;
}

std::span<const MasterProperty> masterProperties() {
    return kMasterProperties;
}

std::span<const std::string_view> masterBusDeviceTypes() {
    return kMasterBusDeviceTypes;
}

std::span<const std::string_view> busCompatibles() {
    return kBusCompatibles;
}

std::span<const std::string_view> nonDeviceRoots() {
    return kNonDeviceRoots;
}

std::span<const IommuEntry> iommuTable() {
    return kIommus;
}

const IommuEntry* findIommu(std::span<const std::string_view> compatibles) {
    for (std::string_view c : compatibles)
        for (const IommuEntry& e : kIommus)
            if (isGlob(e.compatible) ? globMatches(e.compatible, c) : e.compatible == c)
                return &e;
    return nullptr;
}

uint8_t iommuInputBits(std::span<const std::string_view> compatibles, bool* known) {
    const IommuEntry* e = findIommu(compatibles);
    if (known)
        *known = e != nullptr;
    return e ? e->inputBits : 32;
}

} // namespace cenalloc
