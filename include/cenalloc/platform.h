// SPDX-License-Identifier: MIT
// The platform model: memory banks, reserved regions, IOMMUs and DMA devices.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/result.h>

namespace cenalloc {

inline constexpr uint64_t kNoLimit = UINT64_MAX;
/// What Linux assumes when a driver sets no dma_parms (dma_get_max_seg_size).
inline constexpr uint64_t kDefaultMaxSegmentSize = 64 * 1024;
/// Every access bit set: the device reaches every kind of memory.
inline constexpr uint64_t kAllAccess = UINT64_MAX;

/// A device's DMA limits, as Linux spreads them over dma_mask,
/// coherent_dma_mask and dma_parms (shared/DESIGN.md sections 1 and 2).
struct DmaConstraints {
    /// Highest address the device reaches for streaming DMA (inclusive):
    /// DMA_BIT_MASK(n), or any lower limit a bus window imposes (Linux's
    /// bus_dma_limit); 0 is invalid.
    uint64_t dmaMask = kNoLimit;
    /// The same for coherent (dma_alloc_coherent) memory.
    uint64_t coherentDmaMask = kNoLimit;
    /// Largest scatter-gather segment the device takes, in bytes.
    uint64_t maxSegmentSize = kDefaultMaxSegmentSize;
    /// A segment may not cross an address where (addr & ~mask) changes.
    uint64_t segmentBoundaryMask = kNoLimit;
    /// Most segments per mapping; 0 = unlimited, 1 = contiguous only.
    uint32_t maxSegmentCount = 0;
    /// Required alignment of the buffer's DMA address (power of two).
    uint64_t alignment = 4096;
    /// The device needs physically contiguous memory (implied by maxSegmentCount == 1).
    bool contiguous = false;
    /// The device snoops CPU caches; false means cache maintenance is needed.
    bool coherent = true;
    /// Opaque platform bits: kinds of memory the device can reach (secure,
    /// a particular bank port, ...). A heap serves the device only when the
    /// heap's bits and these share at least one bit.
    uint64_t accessBits = kAllAccess;

    /// Contiguity is required, by the flag or by a one-segment limit.
    bool needsContiguous() const { return contiguous || maxSegmentCount == 1; }
    bool operator==(const DmaConstraints&) const = default;
};

/// A bank of RAM in the physical address space.
struct MemoryBank {
    std::string name;
    uint64_t base = 0;
    uint64_t size = 0;
    uint64_t end() const { return base + size; }
};

enum class RegionKind {
    Cma,      ///< a reusable contiguous pool ("shared-dma-pool", reusable)
    Carveout, ///< memory set aside for devices only
};

/// Memory reserved out of a bank at boot.
struct ReservedRegion {
    std::string name;
    RegionKind kind = RegionKind::Cma;
    uint64_t base = 0;
    uint64_t size = 0;
    /// Not in the kernel's linear map: the CPU can map it only uncached.
    bool noMap = false;
    /// The default CMA pool ("linux,cma-default").
    bool isDefault = false;
    /// Access bits of the memory (see DmaConstraints::accessBits).
    uint64_t accessBits = kAllAccess;
    /// The devices that name the region in their `memory-region`: it is
    /// theirs alone (a per-device pool or carveout, which the kernel hands
    /// to that device's dma_alloc_* calls only), never a heap for other
    /// devices. Empty: a general region.
    std::vector<std::string> owners{};
    /// A restricted-dma-pool: its owners bounce every DMA through it
    /// (swiotlb), so it is a bounce buffer, never a heap.
    bool restricted = false;
    /// The board's kernel hands the region out as a dma-buf heap
    /// (/dev/dma_heap/<name>): the default CMA area on a device-tree board,
    /// every unowned region of a modelled platform. A region that is neither
    /// that nor owned is memory set aside that no heap hands out.
    bool heap = true;
    uint64_t end() const { return base + size; }
};

/// An IOMMU: devices behind one share an I/O virtual address space.
struct Iommu {
    std::string name;
    uint64_t pageSize = 4096;
    uint64_t apertureBase = 0;
    uint64_t apertureSize = uint64_t{1} << 32;
};

/// A DMA master.
struct Device {
    std::string name;
    std::string description;
    DmaConstraints constraints;
    /// Name of the IOMMU the device sits behind, if any.
    std::optional<std::string> iommu;
    /// The IOMMU group inside `iommu`: devices behind one IOMMU share an I/O
    /// virtual address space only when their groups are equal, as Linux
    /// puts masters with the same stream ID in one iommu_group and gives
    /// every group its own default domain. Empty: the IOMMU's one group.
    std::string iommuGroup{};
    /// The restricted-dma-pool region every DMA of the device bounces
    /// through (swiotlb); empty when none. Such a device never touches a
    /// shared buffer's memory itself: the kernel copies.
    std::string restrictedPool{};
    /// Where the driver facts came from: the citation of the compatible
    /// row that supplied them; empty when none did.
    std::string factSource{};
    /// Facts assumed rather than read from the device tree or a cited row,
    /// each in words ("needs one contiguous buffer: a display engine without
    /// an IOMMU and no driver row"): what a user should confirm.
    std::vector<std::string> assumedFacts{};
    /// The running host's device this one is (--host only): its sysfs
    /// directory ("/sys/devices/platform/ff900000.display"); empty when
    /// the platform was not read from a running system or the kernel
    /// created no device for it.
    std::string sysfsPath{};
    /// The driver bound to that device (the `driver` link's name,
    /// "rockchip-vop"); empty when none is bound or sysfsPath is empty.
    std::string driver{};
};

/// The I/O virtual address space @p device maps in: its IOMMU's name, then
/// ":" and its group when it has one; empty without an IOMMU.
CENALLOC_EXPORT std::string iommuDomainName(const Device& device);

/// What the platform says about one of the host kernel's dma-heaps
/// (/dev/dma_heap/<name>) that the kernel cannot tell: used for the heap
/// "kernel:<name>" when the host has it, ignored otherwise.
struct KernelHeapDescription {
    /// The kernel's name for the heap: "system", "linux,cma", "reserved".
    std::string name;
    std::string description;
    /// Every buffer is physically contiguous (a CMA heap).
    bool contiguous = false;
    /// CPU mappings are cached.
    bool cached = true;
    /// Bytes the heap can hand out; 0 = unknown.
    uint64_t size = 0;
};

/// The machine model. Plain data: every loader returns one that has passed
/// validatePlatform().
struct CENALLOC_EXPORT Platform {
    std::string name;
    std::string description;
    /// Where the description came from (file path or "<builtin>").
    std::string source;
    std::vector<MemoryBank> memory;
    std::vector<ReservedRegion> regions;
    std::vector<Iommu> iommus;
    std::vector<Device> devices;
    /// Host kernel heaps described (see KernelHeapDescription).
    std::vector<KernelHeapDescription> kernelHeaps;
    /// The vendor system heaps the board's kernel has beyond `system`
    /// (any of "system-uncached", "system-dma32", "system-uncached-dma32"),
    /// or std::nullopt for all of them (a modelled platform). A platform
    /// from a device tree has only those its overlay names (`kernel_heaps`).
    /// A platform that lists them (even none) describes a board's kernel:
    /// its heaps stand for /dev/dma_heap nodes, which take no address
    /// limit (HeapProperties::honoursAddressLimit).
    std::optional<std::vector<std::string>> vendorHeaps{};

    const Device* findDevice(std::string_view name) const;
    const Iommu* findIommu(std::string_view name) const;
    const ReservedRegion* findRegion(std::string_view name) const;
    const KernelHeapDescription* findKernelHeap(std::string_view name) const;
    uint64_t totalMemory() const;
    /// Highest RAM address + 1.
    uint64_t memoryEnd() const;
};

/// Check the model's invariants: non-empty names, no duplicates, banks and
/// regions non-overlapping, regions inside a bank, page-aligned, masks
/// non-zero, IOMMU references resolvable, kernel heap names usable as file
/// names in /dev/dma_heap. Errors: EINVAL naming the problem.
CENALLOC_EXPORT Result<void> validatePlatform(const Platform& platform);

/// Parse a YAML platform description. @p sourceName prefixes every error
/// message together with the line: "board.yaml:12: unknown key 'dma_msk'".
CENALLOC_EXPORT Result<Platform> parsePlatformYaml(std::string_view text, std::string_view sourceName);

/// Read and parse a YAML file. Errors: ENOENT etc. for an unreadable file,
/// EINVAL for a bad description.
CENALLOC_EXPORT Result<Platform> loadPlatformFile(const std::filesystem::path& path);

/// The platform compiled into the library, used when none is given.
CENALLOC_EXPORT const Platform& defaultPlatform();

/// The YAML text of the built-in platform.
CENALLOC_EXPORT std::string_view defaultPlatformYaml();

} // namespace cenalloc
