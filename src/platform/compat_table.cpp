// SPDX-License-Identifier: MIT
// The compatible table: DMA facts from Linux drivers, the DMA-master rule and IOMMU input sizes, as data.
#include "platform/compat_table.h"

#include <fnmatch.h>
#include <string>

namespace cenalloc {

namespace {

using C = DeviceClass;
constexpr uint64_t kAnySize = 0xffffffff; // dma_set_max_seg_size(dev, UINT_MAX)

// A row that only names a class of DMA master, with the kernel's defaults.
constexpr CompatEntry glob(std::string_view pattern, DeviceClass cls) {
    return {pattern, cls, 0, 0, 0, 0, {}};
}

// Exact rows first: they carry what drivers ask for. Numbers are only given
// where the driver states them; everything else keeps Linux's defaults
// (32-bit mask from of_dma_configure, 64 KiB segments, any segment count).
// maxSegmentCount 1 marks engines that take one DMA address per buffer:
// scanout engines, videobuf2-dma-contig queues and drivers that program
// only the first address of a mapped sg table. Behind an IOMMU that is one
// I/O virtual range; without one it is physically contiguous memory. Such
// an engine reads the whole buffer from that address, so its segment size
// is the buffer's: maxSegmentSize is "any".
constexpr CompatEntry kTable[] = {
    // Broadcom BCM2711 / BCM2835 (Raspberry Pi)
    {"brcm,bcm2711-hvs", C::Display, 0, kAnySize, 1, 0, "vc4 scans out drm_gem_dma (CMA) buffers, one block per plane"},
    {"brcm,bcm2835-hvs", C::Display, 0, kAnySize, 1, 0, "vc4 scans out drm_gem_dma (CMA) buffers, one block per plane"},
    {"brcm,bcm2835-v3d", C::Gpu, 0, kAnySize, 1, 0, "vc4's V3D renders into drm_gem_dma (CMA) buffers"},
    {"brcm,2711-v3d", C::Gpu, 0, kAnySize, 0, 0, "v3d maps shmem pages page by page through its own MMU"},
    {"brcm,bcm2835-dma", C::DmaEngine, 0, 0x3fffffff, 0, 0,
     "bcm2835-dma: dma_set_max_seg_size(dev, 0x3fffffff), the 30-bit length field"},
    {"brcm,bcm2711-genet-v5", C::Ethernet, 40, 0, 0, 0, "bcmgenet: dma_set_mask_and_coherent(DMA_BIT_MASK(40))"},
    {"brcm,bcm2711-pcie", C::PcieHost, 64, 0, 0, 0,
     "stands for the PCI functions behind it, whose drivers set 64-bit masks; the bridge's dma-ranges bound them"},
    // Rockchip RK3399
    {"rockchip,rk3399-vop-big", C::Display, 0, kAnySize, 1, 0,
     "rockchip_drm: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"rockchip,rk3399-vop-lit", C::Display, 0, kAnySize, 1, 0,
     "rockchip_drm: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"rockchip,rk3399-cif-isp", C::Camera, 0, kAnySize, 1, 0, "rkisp1 queues use videobuf2-dma-contig"},
    {"rockchip,rk3399-vpu", C::VideoCodec, 0, kAnySize, 1, 0, "hantro queues use videobuf2-dma-contig"},
    {"rockchip,rk3399-vdec", C::VideoCodec, 0, kAnySize, 1, 0, "rkvdec queues use videobuf2-dma-contig"},
    {"rockchip,rk3399-mali", C::Gpu, 40, kAnySize, 0, 0,
     "panfrost: mask of the GPU MMU's physical address width (40 bits on Midgard); pages mapped by its MMU"},
    // Qualcomm SDM845
    {"qcom,sdm845-mdss", C::Display, 0, kAnySize, 1, 0,
     "msm: dma_set_max_seg_size(UINT_MAX); a plane is scanned out from one DMA address"},
    {"qcom,sdm845-venus-v2", C::VideoCodec, 0, kAnySize, 1, 0,
     "venus programs the first DMA address of a buffer (venus_helper_vb2_buf_init) and sets "
     "dma_set_max_seg_size(DMA_BIT_MASK(32))"},
    {"qcom,sdm845-camss", C::Camera, 0, kAnySize, 1, 0,
     "camss programs the first DMA address of each plane (video_buf_init): one contiguous DMA range per plane"},
    {"qcom,adreno-630.2", C::Gpu, 0, kAnySize, 0, 0, "the Adreno GPU maps pages through its own SMMU context"},
    // NXP i.MX8M
    {"nxp,imx8mq-dcss", C::Display, 0, kAnySize, 1, 0, "imx-dcss scans out drm_gem_dma buffers"},
    {"fsl,imx8mq-lcdif", C::Display, 0, kAnySize, 1, 0, "mxsfb scans out drm_gem_dma buffers"},
    {"fsl,imx6sx-lcdif", C::Display, 0, kAnySize, 1, 0, "mxsfb scans out drm_gem_dma buffers"},
    {"fsl,imx28-lcdif", C::Display, 0, kAnySize, 1, 0, "mxsfb scans out drm_gem_dma buffers"},
    {"fsl,imx8mp-lcdif", C::Display, 0, kAnySize, 1, 0, "imx-lcdif scans out drm_gem_dma buffers"},
    {"vivante,gc", C::Gpu, 0, kAnySize, 0, 0, "etnaviv maps shmem pages through the GPU's own MMU"},
    {"nxp,imx8mq-vpu-g1", C::VideoCodec, 0, kAnySize, 1, 0, "hantro queues use videobuf2-dma-contig"},
    {"nxp,imx8mq-vpu-g2", C::VideoCodec, 0, kAnySize, 1, 0, "hantro queues use videobuf2-dma-contig"},
    {"nxp,imx8mm-vpu-g1", C::VideoCodec, 0, kAnySize, 1, 0, "hantro queues use videobuf2-dma-contig"},
    {"fsl,imx8mq-csi", C::Camera, 0, kAnySize, 1, 0, "imx7-media-csi queues use videobuf2-dma-contig"},
    {"fsl,imx8mm-csi", C::Camera, 0, kAnySize, 1, 0, "imx7-media-csi queues use videobuf2-dma-contig"},
    {"fsl,imx7-csi", C::Camera, 0, kAnySize, 1, 0, "imx7-media-csi queues use videobuf2-dma-contig"},

    // Globs: the DMA-master classes, with the kernel's defaults. Order
    // matters where two could match ("arm,mali-dp*" before "arm,mali-*").
    glob("rockchip,*-vop*", C::Display),
    glob("brcm,*-hvs", C::Display),
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
    glob("nxp,imx8m*-vpu-g[12]", C::VideoCodec),
    glob("rockchip,*-vpu", C::VideoCodec),
    glob("rockchip,*-vdec", C::VideoCodec),
    glob("qcom,*-venus*", C::VideoCodec),
    glob("amlogic,*-vdec", C::VideoCodec),
    glob("allwinner,*-video-engine", C::VideoCodec),
    glob("allwinner,*-vpu-g2", C::VideoCodec),
    glob("nvidia,tegra*-nvdec", C::VideoCodec),
    glob("nvidia,tegra*-nvenc", C::VideoCodec),
    glob("mediatek,*-vcodec-*", C::VideoCodec),
    glob("fsl,imx*-csi", C::Camera),
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
};
constexpr std::string_view kMasterBusDeviceTypes[] = {"pci", "pciex"};
constexpr std::string_view kBusCompatibles[] = {"simple-bus", "simple-mfd", "simple-pm-bus", "arm,amba-bus", "isa"};
constexpr std::string_view kNonDeviceRoots[] = {"/reserved-memory",  "/cpus",          "/chosen",
                                                "/aliases",          "/__symbols__",   "/__fixups__",
                                                "/__local_fixups__", "/__overrides__", "/thermal-zones"};

// An IOMMU's input address size bounds the I/O virtual addresses it can
// translate: the top of the aperture cenalloc gives it.
constexpr IommuEntry kIommus[] = {
    {"arm,smmu-v3", 48, "arm-smmu-v3: stage-1 input size of 48 bits with 4 KiB pages"},
    {"arm,mmu-500", 48, "arm-smmu: stage-1 input size (va_size) of 48 bits with 4 KiB pages"},
    {"qcom,*-smmu-500", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits"},
    {"qcom,*smmu-v2", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits"},
    {"qcom,adreno-smmu", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits"},
    {"marvell,ap806-smmu-500", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits"},
    {"nvidia,*-smmu", 48, "arm-smmu (MMU-500): stage-1 input size of 48 bits"},
    {"arm,smmu-v2", 48, "arm-smmu (SMMUv2): stage-1 input size of 48 bits"},
    {"arm,smmu-v1", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input"},
    {"arm,mmu-400", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input"},
    {"arm,mmu-401", 32, "arm-smmu (SMMUv1): 32-bit stage-1 input"},
    {"rockchip,iommu", 32, "rockchip-iommu: domain aperture DMA_BIT_MASK(32)"},
    {"rockchip,rk3568-iommu", 32, "rockchip-iommu: domain aperture DMA_BIT_MASK(32)"},
    {"allwinner,sun50i-h6-iommu", 32, "sun50i-iommu: 32-bit aperture"},
    {"qcom,msm-iommu-v1", 32, "qcom_iommu: 32-bit aperture"},
    {"qcom,msm8916-iommu", 32, "qcom_iommu: 32-bit aperture"},
    {"renesas,ipmmu-*", 32, "ipmmu-vmsa: 32-bit I/O virtual addresses"},
    {"mediatek,*-m4u", 32, "mtk_iommu: 32-bit aperture"},
    {"samsung,exynos-sysmmu", 32, "exynos-iommu: 32-bit aperture"},
    {"nvidia,tegra*-mc", 32, "tegra-smmu (in the memory controller): 32-bit I/O virtual addresses"},
};

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

const CompatEntry* findCompat(std::span<const std::string_view> compatibles) {
    for (std::string_view c : compatibles)
        for (const CompatEntry& e : kTable)
            if (!isGlob(e.compatible) && e.compatible == c)
                return &e;
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

uint8_t iommuInputBits(std::span<const std::string_view> compatibles, bool* known) {
    for (std::string_view c : compatibles)
        for (const IommuEntry& e : kIommus)
            if (isGlob(e.compatible) ? globMatches(e.compatible, c) : e.compatible == c) {
                if (known)
                    *known = true;
                return e.inputBits;
            }
    if (known)
        *known = false;
    return 32;
}

} // namespace cenalloc
