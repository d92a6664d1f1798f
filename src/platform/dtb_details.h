// SPDX-License-Identifier: MIT
// What the device tree loader knows beyond the platform it returns: node paths, the RAM before reserved memory.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/platform_sources.h>

namespace cenalloc {

/// Facts of one interpretation that the host loader compares with the
/// running system (platform/host_loader.cpp).
struct DeviceTreeDetails {
    /// Device name -> the path of its node ("/soc/display@ff900000").
    std::map<std::string, std::string> devicePaths;
    /// The RAM the interpretation started from: the memory nodes' ranges
    /// (or the overlay's banks), trimmed to pages, before any reserved
    /// memory was cut out.
    std::vector<MemoryBank> ram;
    /// The reserved regions placed by `size` (dynamic placement: the
    /// loader's top-down estimate of where the kernel put them) and the
    /// overlay's cma_size area; regions with a `reg` are not listed.
    std::set<std::string> dynamicRegions;
};

/// loadDeviceTree() that also fills @p details (when given). Errors: as loadDeviceTree().
Result<Platform> loadDeviceTreeDetailed(std::span<const std::byte> blob, std::string_view sourceName,
                                        const Overlay* overlay, std::vector<std::string>* warnings,
                                        DeviceTreeDetails* details);

} // namespace cenalloc
