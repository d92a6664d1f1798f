// SPDX-License-Identifier: MIT
// The host's PCI functions as DMA masters, and the IOMMU groups that translate for them, from sysfs.
#pragma once

#include <set>
#include <string>

#include <cenalloc/platform_sources.h>

namespace cenalloc::host {

/// Add the PCI functions under @p paths.sys (bridges aside) to @p platform as devices with their DMA masks, and
/// the IOMMU groups that translate for them as its IOMMUs; apply @p overlay's entries naming them (when given).
/// What was and was not learned goes to @p report. Returns the names of the overlay entries a function matched.
std::set<std::string> readPciFunctions(const HostPaths& paths, const Overlay* overlay, Platform& platform,
                                       HostReport& report);

} // namespace cenalloc::host
