// SPDX-License-Identifier: MIT
// Platforms from real descriptions: device tree blobs, board overlays and the running host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// One entry of a board overlay: facts a device tree does not carry, for the
/// devices matched by name or by compatible string (exactly one of the two).
///
/// A `compatible` entry acts as a row of the built-in compatible table
/// (platform/compat_table.cpp) that takes precedence over it: it applies to
/// every device node whose compatible list contains the string, before the
/// bus windows of dma-ranges narrow the masks (so it states what the driver
/// asks for). A `name` entry applies last, to the device cenalloc named so,
/// and its values are final: the user's word wins over the device tree.
struct OverlayDevice {
    std::string name;
    std::string compatible;
    /// compatible: true makes matching nodes DMA masters, false removes them;
    /// name: false removes the device (true is refused: it is one already).
    std::optional<bool> master;
    std::optional<std::string> description;
    std::optional<uint64_t> dmaMask;
    std::optional<uint64_t> coherentDmaMask;
    std::optional<uint64_t> maxSegmentSize;
    std::optional<uint64_t> segmentBoundaryMask;
    std::optional<uint32_t> maxSegmentCount;
    std::optional<uint64_t> alignment;
    std::optional<bool> contiguous;
    std::optional<bool> coherent;
    std::optional<uint64_t> accessBits;
};

/// A board overlay: what a bootloader, a kernel command line or a driver
/// adds to a device tree. The YAML form is documented in
/// examples/overlays/README.md:
///
///     name: rpi4-4g                  # optional: renames the platform
///     description: ...               # optional
///     memory:                        # optional: replaces the /memory nodes
///       - {base: 0x0, size: 0x3b400000}
///       - {name: high, base: 0x40000000, size: 0xbc000000}
///     cma_size: 256M                 # optional: the kernel's cma= parameter
///     kernel_heaps: [system-uncached] # optional: the kernel's vendor heaps
///     devices:
///       - compatible: brcm,bcm2711-hvs
///         max_segment_count: 1
///       - name: v3d
///         dma_mask_bits: 32
///
/// Device keys are those of platform descriptions (dma_mask or
/// dma_mask_bits, coherent_dma_mask(_bits), max_segment_size,
/// segment_boundary_mask, max_segment_count, alignment, contiguous,
/// coherent, access_bits, description) plus `master`.
struct Overlay {
    /// Where it came from, for messages.
    std::string source;
    std::optional<std::string> name;
    std::optional<std::string> description;
    /// When non-empty, the RAM of the board instead of the device tree's
    /// /memory nodes (many device trees leave them for the bootloader to fill).
    std::vector<MemoryBank> memory;
    /// The kernel's cma= parameter: a default CMA pool of this size, placed
    /// as dma_contiguous_reserve() places it (top-down below the DMA zone
    /// limit). As in the kernel, it replaces a device tree pool marked
    /// linux,cma-default.
    std::optional<uint64_t> cmaSize;
    /// The vendor system heaps the board's kernel has beyond `system` and
    /// its default CMA heap (any of "system-uncached", "system-dma32",
    /// "system-uncached-dma32"): Platform::vendorHeaps. Without the key a
    /// device-tree board has none.
    std::vector<std::string> kernelHeaps;
    std::vector<OverlayDevice> devices;
};

/// Parse an overlay. Errors: EINVAL as "<source>:<line>: <problem>".
CENALLOC_EXPORT Result<Overlay> parseOverlayYaml(std::string_view text, std::string_view sourceName);

/// Read and parse an overlay file. Errors: as loadPlatformFile().
CENALLOC_EXPORT Result<Overlay> loadOverlayFile(const std::filesystem::path& path);

/// Interpret a flattened device tree (.dtb) as a platform.
///
/// What becomes what (each rule follows the Linux kernel; the details and
/// the places where cenalloc differs are documented in
/// src/platform/dtb_loader.cpp):
///  - memory: the `reg` of the root's children with device_type "memory"
///    that are available, one bank per entry, trimmed to pages; or the
///    overlay's banks.
///  - /reserved-memory: `shared-dma-pool` + `reusable` is a CMA pool
///    (`linux,cma-default` the default one), `shared-dma-pool` without
///    `reusable` a carveout, `restricted-dma-pool` a bounce pool, and any
///    other region with `no-map` that a DMA master names in `memory-region`
///    a carveout. A region masters name in `memory-region` is theirs
///    (ReservedRegion::owners; a restricted pool also sets each owner's
///    Device::restrictedPool). Only the default CMA area is a heap
///    (ReservedRegion::heap), named as Linux names it: the node's name, or
///    "reserved" for the overlay's cma_size. Every other reserved region is
///    firmware's: cut out of the RAM banks. Regions given by `size` are placed as the
///    kernel places them: top-down in the first `alloc-ranges` entry where
///    they fit, avoiding every region placed before.
///  - DMA masters: available nodes with `iommus` or `iommu-map`, nodes with
///    `reg` and `dma-coherent`, `memory-region` or a compatible the table
///    lists (a node whose compatibles include "syscon" is registers, not a
///    master), and the PCI functions described below a PCI bus.
///  - masks: the driver's mask (from the compatible table; the kernel's
///    32-bit default otherwise) carried through the `dma-ranges` of every
///    bus from the device to the root, as an inclusive address limit: the
///    last address below which the device reaches every byte of RAM, or
///    the end of its window when it reaches all RAM (a 3 GiB window is
///    0xbfffffff, not rounded to a power of two).
///  - IOMMUs: one per IOMMU node named by `iommus`; devices behind it share
///    an I/O virtual address space when they are in one IOMMU group
///    (Device::iommuGroup: equal stream IDs, or every master for IOMMU
///    drivers with one group per instance); 4 KiB pages; an aperture from
///    the first page to the input size of the IOMMU type.
///  - driver facts: the compatible table's row (Device::factSource), or
///    the conservative default of the engine's class, listed in
///    Device::assumedFacts.
///  - names: the node's label when the blob has __symbols__, otherwise the
///    node name, with the unit address or the path when needed to be
///    unique; commas become dots (names must survive `--devices a,b`).
///
/// Anything odd in a real device tree (a region that cannot be placed, an
/// unresolvable phandle, a window no mask can express) skips that one item
/// with a line in @p warnings (when given) rather than refusing the blob.
/// The result passes validatePlatform().
///
/// Errors: EINVAL for a blob libfdt does not accept (fdt_check_header /
/// fdt_check_full) or one nested deeper than the kernel's 64 levels,
/// "<source>: ..."; ENODATA when it describes no RAM and the overlay gives
/// none either; EINVAL when an overlay entry would make the platform
/// invalid.
CENALLOC_EXPORT Result<Platform> loadDeviceTree(std::span<const std::byte> blob, std::string_view sourceName,
                                                const Overlay* overlay = nullptr,
                                                std::vector<std::string>* warnings = nullptr);

/// Read a .dtb file and interpret it. Errors: as loadPlatformFile() for the
/// file, then as loadDeviceTree().
CENALLOC_EXPORT Result<Platform> loadDeviceTreeFile(const std::filesystem::path& path, const Overlay* overlay = nullptr,
                                                    std::vector<std::string>* warnings = nullptr);

/// Where the host loader looks; tests point it at a fake tree. Everything
/// is read below these roots: the device tree at sys/firmware/fdt,
/// proc/device-tree or sys/firmware/devicetree/base, debugfs at
/// sys/kernel/debug.
struct HostPaths {
    std::filesystem::path sys = "/sys";
    std::filesystem::path proc = "/proc";
    std::filesystem::path dev = "/dev";
};

/// What the host loader learned, and what it could not learn and why.
/// Nothing unreadable is guessed: it is listed in notLearned instead.
struct HostReport {
    /// One line per fact source used: "memory: 3 banks, 24 GiB, from /proc/iomem".
    std::vector<std::string> learned;
    /// One line per thing that could not be read: "device tree: ... is absent".
    std::vector<std::string> notLearned;
    /// Names of the kernel's dma-buf heaps (/dev/dma_heap/*). They are not
    /// platform model objects (cenalloc models its own heaps); listed so a
    /// user can compare.
    std::vector<std::string> dmaHeaps;
    /// Warnings of the device tree interpretation, when there was one.
    std::vector<std::string> warnings;
};

/// Build a platform from the running Linux system.
///
/// With a device tree: the blob the kernel booted with (/sys/firmware/fdt,
/// root only), else the directory form (/proc/device-tree), read by the
/// --dtb loader; then what only the running kernel knows:
///  - RAM: /proc/iomem's "System RAM" and no-map "reserved" lines replace
///    memory nodes that are missing or differ (a warning says so);
///  - CMA: a cma= on /proc/cmdline makes the default area "reserved" (as an
///    overlay's cma_size); debugfs cma/<name>/base_pfn and count place each
///    CMA region where the kernel put it (a dynamically placed one moves
///    there; a static one that differs moves with a warning) and add a
///    default area that has no node; without debugfs, /proc/meminfo's
///    CmaTotal is checked against the model and the /proc/iomem
///    reservations against each CMA region;
///  - devices: each DMA master's sysfs directory and bound driver
///    (Device::sysfsPath, Device::driver), found through the `of_node`
///    links of /sys/bus/*/devices;
///  - IOMMU groups: /sys/kernel/iommu_groups/N/devices; where the kernel
///    groups masters otherwise than the device tree's stream IDs, the
///    kernel's groups are modelled (Device::iommuGroup "group-N"), and an
///    identity group, or a bound device in no group, does direct DMA.
/// Without one (x86, VMs): memory from /proc/iomem ("System RAM";
/// addresses read as 0 for non-root users) or /sys/devices/system/memory;
/// the default CMA area "reserved" when debugfs says where it is.
/// Always: PCI functions from /sys/bus/pci/devices (dma_mask_bits,
/// consistent_dma_mask_bits, iommu_group, driver), each named
/// "<domain:bus:dev.fn>-<class>"; an IOMMU per translating IOMMU group
/// (/sys/kernel/iommu_groups/N/type DMA or DMA-FQ); the kernel's dma-buf
/// heaps in the report.
/// Errors: ENODATA when no source of memory is readable (@p report says
/// why); EINVAL when the overlay makes the platform invalid.
CENALLOC_EXPORT Result<Platform> loadHostPlatform(HostReport* report = nullptr, const Overlay* overlay = nullptr,
                                                  const HostPaths& paths = {});

/// Where a platform comes from: at most one of a YAML description, a
/// device tree blob or the host (none: the built-in platform), and an
/// overlay only with a blob or the host.
struct PlatformSource {
    std::string yamlPath;
    std::string dtbPath;
    std::string overlayPath;
    bool host = false;

    /// Does it name a platform (else the built-in one, or a daemon's)?
    bool given() const { return !yamlPath.empty() || !dtbPath.empty() || host; }
};

/// Load the platform @p source names. @p notes (when given) receives the
/// warnings of a device tree and, for the host, what was and was not
/// learned. Errors: EINVAL for a contradictory source; otherwise those of
/// the loader used.
CENALLOC_EXPORT Result<Platform> loadPlatformSource(const PlatformSource& source,
                                                    std::vector<std::string>* notes = nullptr);

} // namespace cenalloc
