// SPDX-License-Identifier: MIT
// Data the device tree loader needs that device trees do not carry, keyed by compatible string.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace cenalloc {

/// What kind of DMA master a compatible names (for descriptions).
enum class DeviceClass {
    Display,
    Gpu,
    VideoCodec,
    Camera,
    TwoD,
    Npu,
    Usb,
    PcieHost,
    PciFunction,
    Ethernet,
    Storage,
    DmaEngine,
    Crypto,
    Other,
};

/// "display controller", "GPU", ...
std::string_view deviceClassName(DeviceClass cls);

/// One row of the compatible table: what a driver for this compatible asks
/// of the DMA API (its dma_set_mask and dma_set_max_seg_size calls, the
/// videobuf2/DRM memory type it uses). Zero fields mean the kernel default.
///
/// `compatible` is an exact string, or a glob with '*' (fnmatch) that only
/// says the node is a DMA master of that class; exact rows also carry
/// constraints. Lookups try the node's compatible strings in order (most
/// specific first) and take the first row that matches one, exact rows
/// before globs, as the kernel's of_match_device prefers the first string.
struct CompatEntry {
    std::string_view compatible;
    DeviceClass cls = DeviceClass::Other;
    /// The driver's dma_set_mask_and_coherent(DMA_BIT_MASK(n)); 0: the 32
    /// bits of_dma_configure() gives a platform device.
    uint8_t dmaMaskBits = 0;
    /// Largest segment (dma_set_max_seg_size); 0: 64 KiB, Linux's default.
    uint64_t maxSegmentSize = 0;
    /// 1 for engines that take one DMA address per buffer (scanout, a
    /// videobuf2-dma-contig queue); 0: unlimited.
    uint32_t maxSegmentCount = 0;
    /// Required DMA address alignment; 0: a page.
    uint64_t alignment = 0;
    /// Where the numbers come from (driver and call), for people.
    std::string_view why;
    /// The driver's coherent mask when it differs from the streaming one
    /// (dma_set_coherent_mask); 0: the same as dmaMaskBits.
    uint8_t coherentMaskBits = 0;
    /// A fact the row cannot state, taken from the class default and said
    /// in words (a mask the driver reads from the hardware at probe time);
    /// empty when the row states everything.
    std::string_view assumed{};
    /// The driver's mask when it is a limit address rather than a number
    /// of bits (dma_set_mask_and_coherent(dev, 0xe0000000 - 1)), for both
    /// masks; 0: the masks dmaMaskBits and coherentMaskBits give.
    uint64_t dmaLimit = 0;
};

/// What an engine of a class gets when no exact row describes it: the
/// conservative default of its class (shared/DESIGN.md section 5).
struct ClassDefault {
    /// 1: one DMA address per buffer (contiguous without an IOMMU); 0: any.
    uint32_t maxSegmentCount = 0;
    /// 0: Linux's default 64 KiB.
    uint64_t maxSegmentSize = 0;
    /// The engine, in words, for the sentence that says what was assumed
    /// ("a display engine").
    std::string_view what;
};

/// The class default for @p cls, or nullptr for classes whose drivers the
/// kernel's own defaults describe (USB, PCIe, ethernet, storage, DMA
/// engines, crypto, unknown masters).
const ClassDefault* classDefault(DeviceClass cls);

/// The table. Every exact row names its source in `why`.
std::span<const CompatEntry> compatTable();

/// The row for a node with @p compatibles (most specific first): the exact
/// row of the first string that has one, otherwise the first glob matching
/// the first string any glob matches, otherwise nullptr. A node that is a
/// system controller (one of its compatibles is in nonMasterCompatibles())
/// matches no glob: "rockchip,rk3588-vop-grf" is registers, not a display.
const CompatEntry* findCompat(std::span<const std::string_view> compatibles);

/// True for a row that states driver facts (an exact compatible with a
/// citation), false for a row that only names a class (a glob, or a plain
/// string without a citation).
bool isExactRow(const CompatEntry& entry);

/// Compatibles of register blocks that do no DMA ("syscon"): a node listing
/// one is matched by no class glob.
std::span<const std::string_view> nonMasterCompatibles();

/// A property that makes a node a DMA master (part of the DMA-master rule).
struct MasterProperty {
    std::string_view property;
    /// Only on a node with `reg` that is not a bus: a bus's dma-coherent is
    /// inherited by its children, it does no DMA itself.
    bool onDeviceOnly;
    std::string_view why;
};

/// The DMA-master rule, as data: an available node is a master when it has
/// one of these properties, when it has `reg`, is no bus and has a
/// compatible the table lists, or when it is a PCI function below a PCI bus.
std::span<const MasterProperty> masterProperties();

/// device_type values of buses whose children are DMA masters by nature:
/// every PCI function may master the bus ("pci", "pciex").
std::span<const std::string_view> masterBusDeviceTypes();

/// Compatibles of buses: never masters themselves ("simple-bus", ...).
std::span<const std::string_view> busCompatibles();

/// Nodes under these top-level paths are never masters.
std::span<const std::string_view> nonDeviceRoots();

/// An IOMMU type's input address size, the upper end of its aperture, and
/// how its driver forms IOMMU groups.
struct IommuEntry {
    std::string_view compatible; ///< exact or glob
    uint8_t inputBits;
    std::string_view why;
    /// The driver's device_group op puts every master of one IOMMU instance
    /// in one group (one I/O virtual address space for all of them).
    /// false: masters share a group only when their `iommus` specifiers
    /// (stream IDs) are equal, as arm-smmu's arm_smmu_device_group and
    /// generic_device_group do.
    bool oneGroup = false;
    /// The device_group behaviour, cited.
    std::string_view groupWhy{};
};

std::span<const IommuEntry> iommuTable();
/// The row for an IOMMU node's compatible list, or nullptr.
const IommuEntry* findIommu(std::span<const std::string_view> compatibles);
/// The input bits for an IOMMU node's compatible list; 32 when no row
/// matches (the smallest of the common ones, so no IOVA is assumed that
/// the hardware could not translate).
uint8_t iommuInputBits(std::span<const std::string_view> compatibles, bool* known = nullptr);

} // namespace cenalloc
