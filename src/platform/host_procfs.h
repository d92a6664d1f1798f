// SPDX-License-Identifier: MIT
// Parsers of what /proc says about memory: /proc/iomem, /proc/meminfo's CMA lines and the cma= boot parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <cenalloc/platform.h>

namespace cenalloc::host {

/// An inclusive physical address range.
struct Range {
    uint64_t first = 0;
    uint64_t last = 0;
    bool operator==(const Range&) const = default;
};

/// What /proc/iomem says about RAM.
struct Iomem {
    /// Top-level "System RAM" lines: RAM the kernel maps and manages.
    std::vector<Range> systemRam;
    /// Top-level "reserved" lines: on the device-tree architectures, RAM
    /// the kernel knows but does not map, memblock's no-map regions
    /// (arch/arm64/kernel/setup.c request_standard_resources: "reserved";
    /// arch/riscv/kernel/setup.c init_resources: "Reserved"). On x86 the
    /// top-level "Reserved" lines are e820's, not RAM: the host loader
    /// uses this list on device-tree hosts only.
    std::vector<Range> noMap;
    /// "reserved" lines nested in System RAM: memblock's reservations
    /// (arm64: arch/arm64/kernel/setup.c reserve_memblock_reserved_regions;
    /// riscv names them "Reserved", newer kernels "Reserved-memblock") -
    /// the kernel image, the initrd, the device tree, CMA areas and
    /// reserved-memory regions that stay mapped.
    std::vector<Range> reserved;
    /// Lines seen, and those showing 0-0 (the kernel hides addresses from
    /// users without CAP_SYS_ADMIN).
    size_t ramLines = 0;
    size_t hiddenLines = 0;

    /// Every address reads 0: nothing can be learned.
    bool hidden() const { return ramLines > 0 && hiddenLines == ramLines; }
    /// The RAM the kernel knows: System RAM and no-map RAM, merged.
    std::vector<Range> ram() const;
};

/// Parse /proc/iomem's text. Malformed lines are skipped.
Iomem parseIomem(std::string_view text);

/// Sort and merge overlapping or touching ranges.
std::vector<Range> mergeRanges(std::vector<Range> ranges);

/// Page-aligned banks from ranges, trimmed inward, merged when touching, named "ram-<base>".
std::vector<MemoryBank> banksOf(std::vector<Range> ranges);

/// The CMA lines of /proc/meminfo, in bytes.
struct MeminfoCma {
    uint64_t total = 0;
    std::optional<uint64_t> free;
};

/// CmaTotal (and CmaFree) of /proc/meminfo's text; nullopt without a CmaTotal line (a kernel without CONFIG_CMA).
std::optional<MeminfoCma> parseMeminfoCma(std::string_view text);

/// The kernel's cma= parameter (kernel/dma/contiguous.c early_cma):
/// cma=size[@base[-limit]]. Without a limit the area is fixed at base.
struct CmaParameter {
    uint64_t size = 0;
    std::optional<uint64_t> base;
    std::optional<uint64_t> limit;
    /// base + size == limit: dma_contiguous_reserve places it exactly at base.
    bool fixed() const { return base && limit && *base + size == *limit; }
};

/// The last cma= of a kernel command line (early parameters are applied in
/// order, so the last one wins); nullopt when there is none or it does
/// not parse.
std::optional<CmaParameter> parseCmaParameter(std::string_view cmdline);

/// The kernel's memparse(): a number (0x hex, leading 0 octal, decimal)
/// with an optional K, M, G, T, P or E suffix; @p text is advanced past it.
std::optional<uint64_t> memparse(std::string_view& text);

} // namespace cenalloc::host
