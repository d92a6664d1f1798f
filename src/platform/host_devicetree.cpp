// SPDX-License-Identifier: MIT
// The running system's device tree: the blob or directory it booted with, its devices in sysfs, their IOMMU groups.
#include "platform/host_devicetree.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/file.h"
#include "platform/dt_directory.h"
#include "platform/host_sysfs.h"

namespace cenalloc::host {

namespace fs = std::filesystem;

namespace {

// The largest blob read, as for --dtb (dtb_interpreter.h kMaxBlobSize).
constexpr uint64_t kMaxLiveBlob = 16 * MiB;

// Buses whose devices are the device tree's own nodes (of_platform_populate
// creates platform and AMBA devices); other buses' devices may share a node
// with one of them.
constexpr std::string_view kNodeBuses[] = {"platform", "amba"};

int busRank(const std::string& bus) {
    for (size_t i = 0; i < std::size(kNodeBuses); ++i)
        if (bus == kNodeBuses[i])
            return static_cast<int>(i);
    return static_cast<int>(std::size(kNodeBuses));
}

bool translating(const std::string& type) {
    return type == "DMA" || type == "DMA-FQ";
}

} // namespace

std::vector<LiveTreeSource> liveTreeSources(const HostPaths& paths) {
    return {
        {paths.sys / "firmware/fdt", true, "the flattened blob the kernel booted with"},
        {paths.proc / "device-tree", false, "the kernel's unflattened tree"},
        {paths.sys / "firmware/devicetree/base", false, "the kernel's unflattened tree"},
    };
}

Result<std::vector<std::byte>> readLiveTree(const LiveTreeSource& source) {
    struct stat st {};
    if (::stat(source.path.c_str(), &st) != 0)
        return Error(errno, fmt::format("{}: {}", source.path.string(), std::strerror(errno)));
    if (!source.blob) {
        if (!S_ISDIR(st.st_mode))
            return Error(ENOTDIR, fmt::format("{}: not a directory", source.path.string()));
        return readDeviceTreeDirectory(source.path);
    }
    // A sysfs binary attribute: its size is the blob's (of_fdt_raw_init).
    Result<std::string> text = readFileLimited(source.path, kMaxLiveBlob, "a device tree blob");
    if (!text)
        return text.error();
    const std::byte* p = reinterpret_cast<const std::byte*>(text->data());
    return std::vector<std::byte>(p, p + text->size());
}

std::map<std::string, SysfsDevice> readDeviceTreeDevices(const HostPaths& paths) {
    std::map<std::string, std::pair<int, SysfsDevice>> found; // node -> (bus rank, device)
    int error = 0;
    for (const std::string& bus : listDirectory(paths.sys / "bus", &error)) {
        fs::path dir = paths.sys / "bus" / bus / "devices";
        int busError = 0;
        for (const std::string& name : listDirectory(dir, &busError)) {
            std::optional<std::string> node = linkText(dir / name / "of_node");
            if (!node)
                continue;
            // "../../../firmware/devicetree/base/soc/vop@ff900000"
            static constexpr std::string_view kBase = "devicetree/base";
            size_t at = node->find(kBase);
            if (at == std::string::npos)
                continue;
            // The root node's link ends at "base" (a ?: rather than an
            // assignment of "/", which GCC 12 warns about wrongly).
            std::string nodePath =
                at + kBase.size() < node->size() ? node->substr(at + kBase.size()) : std::string(1, '/');
            std::optional<std::string> path = devicePath(paths.sys, dir / name);
            if (!path)
                continue;
            SysfsDevice d;
            d.path = *path;
            d.driver = linkTarget(dir / name / "driver").value_or("");
            int rank = busRank(bus);
            auto it = found.find(nodePath);
            if (it == found.end() || rank < it->second.first ||
                (rank == it->second.first && d.path < it->second.second.path))
                found[nodePath] = {rank, std::move(d)};
        }
    }
    std::map<std::string, SysfsDevice> out;
    for (auto& [node, entry] : found)
        out.emplace(node, std::move(entry.second));
    return out;
}

std::vector<IommuGroupInfo> readIommuGroups(const HostPaths& paths, int* error) {
    std::vector<IommuGroupInfo> out;
    fs::path dir = paths.sys / "kernel/iommu_groups";
    for (const std::string& name : listDirectory(dir, error)) {
        IommuGroupInfo g;
        g.name = name;
        Result<std::string> type = readText(dir / name / "type");
        if (type)
            g.type = std::string(trim(*type));
        int membersError = 0;
        for (const std::string& member : listDirectory(dir / name / "devices", &membersError))
            if (std::optional<std::string> path = devicePath(paths.sys, dir / name / "devices" / member))
                g.devices.push_back(*path);
        out.push_back(std::move(g));
    }
    // Numeric order, as the kernel numbers them.
    std::sort(out.begin(), out.end(), [](const IommuGroupInfo& a, const IommuGroupInfo& b) {
        return a.name.size() != b.name.size() ? a.name.size() < b.name.size() : a.name < b.name;
    });
    return out;
}

void reconcileDeviceTreeDevices(Platform& platform, const DeviceTreeDetails& details, const HostPaths& paths,
                                HostReport& report) {
    auto learned = [&](std::string line) { report.learned.push_back(std::move(line)); };
    auto notLearned = [&](std::string line) { report.notLearned.push_back(std::move(line)); };
    auto warn = [&](std::string line) { report.warnings.push_back(std::move(line)); };

    std::map<std::string, SysfsDevice> byNode = readDeviceTreeDevices(paths);
    size_t matched = 0, bound = 0;
    std::vector<std::string> missing;
    for (Device& d : platform.devices) {
        auto path = details.devicePaths.find(d.name);
        if (path == details.devicePaths.end())
            continue;
        auto it = byNode.find(path->second);
        if (it == byNode.end()) {
            missing.push_back(d.name);
            continue;
        }
        d.sysfsPath = it->second.path;
        d.driver = it->second.driver;
        ++matched;
        bound += d.driver.empty() ? 0 : 1;
    }
    learned(fmt::format("sysfs: {} of the device tree's {} DMA masters have a device in {} ({} with a driver bound)",
                        matched, details.devicePaths.size(), (paths.sys / "bus/*/devices").string(), bound));
    if (!missing.empty())
        notLearned(fmt::format("sysfs: no device has the node of {} (no device created for it: no bus driver, or "
                               "not populated yet)",
                               fmt::join(missing, ", ")));

    int error = 0;
    std::vector<IommuGroupInfo> groups = readIommuGroups(paths, &error);
    if (error != 0) {
        notLearned(fmt::format("iommu groups: cannot list {}: {}; the device tree's IOMMU groups are modelled",
                               (paths.sys / "kernel/iommu_groups").string(), std::strerror(error)));
        return;
    }
    std::map<std::string, const IommuGroupInfo*> groupOf; // sysfs path -> group
    for (const IommuGroupInfo& g : groups)
        for (const std::string& member : g.devices)
            groupOf[member] = &g;

    // The partition the device tree gives (IOMMU domain) against the
    // kernel's (group): where they differ, the kernel's is the truth.
    std::map<std::string, std::set<std::string>> liveOfDomain, domainsOfGroup;
    std::vector<Device*> grouped;
    for (Device& d : platform.devices) {
        if (d.sysfsPath.empty() || !details.devicePaths.count(d.name))
            continue;
        auto g = groupOf.find(d.sysfsPath);
        const IommuGroupInfo* group = g == groupOf.end() ? nullptr : g->second;
        if (group && translating(group->type)) {
            if (!d.iommu) {
                // The tree names no IOMMU, yet the kernel translates.
                std::string name = "iommu-group-" + group->name;
                if (!platform.findIommu(name)) {
                    Iommu iommu;
                    iommu.name = name;
                    iommu.pageSize = kPageSize;
                    iommu.apertureBase = kPageSize;
                    iommu.apertureSize = kNoLimit - kPageSize + 1;
                    platform.iommus.push_back(iommu);
                }
                warn(fmt::format("iommu groups: {} is in the kernel's translating group {}, but the device tree "
                                 "names no IOMMU for it: modelled behind {} (an aperture sysfs does not give)",
                                 d.name, group->name, name));
                d.iommu = name;
                d.iommuGroup.clear();
                continue;
            }
            liveOfDomain[iommuDomainName(d)].insert(group->name);
            domainsOfGroup[group->name].insert(iommuDomainName(d));
            grouped.push_back(&d);
        } else if (group && group->type == "identity" && d.iommu) {
            warn(fmt::format("iommu groups: {}'s group {} is identity-mapped (DMA addresses are physical): "
                             "modelled without its IOMMU {}",
                             d.name, group->name, *d.iommu));
            d.iommu.reset();
            d.iommuGroup.clear();
        } else if (group && d.iommu) {
            notLearned(fmt::format("iommu groups: {}'s group {} is of type '{}' (its driver, or VFIO, manages the "
                                   "I/O addresses): modelled as the device tree says",
                                   d.name, group->name, group->type.empty() ? "unreadable" : group->type));
        } else if (!group && d.iommu && !d.driver.empty()) {
            warn(fmt::format("iommu groups: {} is bound to {} but in no IOMMU group, though the device tree puts "
                             "it behind {}: the kernel does direct DMA for it, and so does the model",
                             d.name, d.driver, *d.iommu));
            d.iommu.reset();
            d.iommuGroup.clear();
        } else if (!group && d.iommu) {
            notLearned(fmt::format("iommu groups: {} is in no IOMMU group yet (no driver bound: the kernel joins "
                                   "a device to its group when a driver probes it): modelled as the device tree "
                                   "says",
                                   d.name));
        }
    }
    std::vector<std::string> disagreements;
    for (const auto& [domain, live] : liveOfDomain)
        if (live.size() > 1)
            disagreements.push_back(fmt::format("{} is split over groups {}", domain, fmt::join(live, ", ")));
    for (const auto& [group, domains] : domainsOfGroup)
        if (domains.size() > 1)
            disagreements.push_back(fmt::format("group {} joins {}", group, fmt::join(domains, ", ")));
    if (disagreements.empty()) {
        learned(fmt::format("iommu groups: {} in {}; the {} device-tree masters in translating groups are grouped as "
                            "the device tree's IOMMU specifiers say",
                            groups.size(), (paths.sys / "kernel/iommu_groups").string(), grouped.size()));
        return;
    }
    for (Device* d : grouped)
        d->iommuGroup = "group-" + groupOf[d->sysfsPath]->name;
    warn(fmt::format("iommu groups: the kernel groups devices otherwise than the device tree's IOMMU specifiers "
                     "({}): the kernel's groups are modelled",
                     fmt::join(disagreements, "; ")));
}

} // namespace cenalloc::host
