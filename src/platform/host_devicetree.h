// SPDX-License-Identifier: MIT
// The running system's device tree: the blob or directory it booted with, its devices in sysfs, their IOMMU groups.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <cenalloc/platform_sources.h>

#include "platform/dtb_details.h"

namespace cenalloc::host {

/// One place the live device tree may be read from.
struct LiveTreeSource {
    std::filesystem::path path;
    /// A flattened blob (/sys/firmware/fdt) rather than a directory tree.
    bool blob = false;
    /// For messages: "the flattened blob the kernel booted with".
    std::string what;
};

/// Where the live device tree is, best first: /sys/firmware/fdt (the blob
/// the kernel booted with, /memreserve/ entries included; root only:
/// drivers/of/fdt.c of_fdt_raw_init creates it S_IRUSR), /proc/device-tree
/// and /sys/firmware/devicetree/base (the unflattened tree as directories,
/// world-readable; drivers/of/base.c of_core_init links the first to the
/// second).
std::vector<LiveTreeSource> liveTreeSources(const HostPaths& paths);

/// Read @p source as a blob. Errors: the errno of an unreadable file or
/// directory entry (ENOENT when absent), with the path.
Result<std::vector<std::byte>> readLiveTree(const LiveTreeSource& source);

/// A device of the running system, as sysfs shows it.
struct SysfsDevice {
    /// Its sysfs directory, under HostPaths::sys.
    std::string path;
    /// The bound driver's name; empty when none.
    std::string driver;
};

/// The devices of /sys/bus/*/devices that have a device tree node (an
/// `of_node` link into /sys/firmware/devicetree/base: drivers/base/core.c
/// device_add_class_symlinks), by node path ("/soc/vop@ff900000"); a node
/// several devices share goes to the platform or AMBA bus's one.
std::map<std::string, SysfsDevice> readDeviceTreeDevices(const HostPaths& paths);

/// An IOMMU group of /sys/kernel/iommu_groups (drivers/iommu/iommu.c:
/// iommu_group_add_device links each member under devices/).
struct IommuGroupInfo {
    std::string name;
    /// The type of its default domain: "DMA", "DMA-FQ", "identity", "blocked", "unmanaged"; empty when unreadable.
    std::string type;
    /// The members' sysfs directories, as SysfsDevice::path.
    std::vector<std::string> devices;
};

/// The IOMMU groups; *@p error is 0 or the errno of listing the directory.
std::vector<IommuGroupInfo> readIommuGroups(const HostPaths& paths, int* error);

/// Give the device tree's devices in @p platform their sysfs path and
/// driver, and reconcile their IOMMU domains with the kernel's groups (the
/// groups win, with a warning, where they disagree). @p details names
/// each device's node.
void reconcileDeviceTreeDevices(Platform& platform, const DeviceTreeDetails& details, const HostPaths& paths,
                                HostReport& report);

} // namespace cenalloc::host
