// SPDX-License-Identifier: MIT
// The kernel's CMA areas as the running system shows them (debugfs, /proc/meminfo, cma=) and placed in a platform.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <cenalloc/platform_sources.h>

#include "platform/host_procfs.h"

namespace cenalloc::host {

/// One CMA area of debugfs `cma/<name>/` (mm/cma_debug.c).
struct CmaArea {
    std::string name;
    uint64_t base = 0;
    uint64_t size = 0;
    /// Pages allocated, in bytes; nullopt when `used` is unreadable.
    std::optional<uint64_t> used;
    uint64_t orderPerBit = 0;
};

/// What debugfs says about CMA: the areas, or why nothing.
struct CmaDebugfs {
    std::vector<CmaArea> areas;
    /// Empty when the areas were read; otherwise why not ("... is not mounted").
    std::string problem;
    /// Areas left out, with the reason each.
    std::vector<std::string> skipped;
};

/// Read the CMA areas under @p debugfs (the debugfs mount, /sys/kernel/debug) with pages of @p pageSize bytes.
CmaDebugfs readCmaDebugfs(const std::filesystem::path& debugfs, uint64_t pageSize);

/// Everything the running system says about its CMA areas.
struct CmaFacts {
    CmaDebugfs debugfs;
    std::optional<MeminfoCma> meminfo;
    /// cma= of /proc/cmdline.
    std::optional<CmaParameter> parameter;
    /// The RAM ranges the kernel reserved (/proc/iomem), to check regions against; empty when unknown.
    std::vector<Range> reserved;
};

/// On a device-tree platform: place the default CMA area where the kernel
/// put it, confirm or question the other CMA regions, and say so in
/// @p report. @p dynamicRegions are the regions the device tree loader
/// placed itself (DeviceTreeDetails::dynamicRegions).
void reconcileDeviceTreeCma(Platform& platform, const CmaFacts& facts, const std::set<std::string>& dynamicRegions,
                            HostReport& report);

/// On a platform without a device tree: model the kernel's default CMA
/// area ("reserved") when debugfs says where it is, else say why not.
void addHostCma(Platform& platform, const CmaFacts& facts, HostReport& report);

} // namespace cenalloc::host
