// SPDX-License-Identifier: MIT
// The host's PCI functions as DMA masters, and the IOMMU groups that translate for them, from sysfs.
#include "platform/host_pci.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sys/utsname.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/host_sysfs.h"
#include "platform/overlay_apply.h"

namespace cenalloc::host {

namespace fs = std::filesystem;

namespace {

uint64_t maskOfBits(uint64_t bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

struct PciClass {
    uint32_t code;  // base class << 8 | subclass
    uint32_t match; // bits of code that must equal
    const char* name;
};

constexpr PciClass kPciClasses[] = {
    {0x0108, 0xffff, "nvme"},          {0x0106, 0xffff, "sata"},    {0x0100, 0xff00, "storage"},
    {0x0200, 0xffff, "ethernet"},      {0x0200, 0xff00, "network"}, {0x0302, 0xffff, "3d"},
    {0x0300, 0xff00, "display"},       {0x0401, 0xffff, "audio"},   {0x0403, 0xffff, "audio"},
    {0x0400, 0xff00, "multimedia"},    {0x0500, 0xff00, "memory"},  {0x0600, 0xff00, "bridge"},
    {0x0700, 0xff00, "communication"}, {0x0806, 0xffff, "iommu"},   {0x0800, 0xff00, "system"},
    {0x0c03, 0xffff, "usb"},           {0x0c05, 0xffff, "smbus"},   {0x0c00, 0xff00, "serial-bus"},
    {0x0d00, 0xff00, "wireless"},      {0x1000, 0xff00, "crypto"},  {0x1100, 0xff00, "signal-processing"},
    {0x1200, 0xff00, "accelerator"},
};

const char* pciClassName(uint32_t classCode) {
    uint32_t code = classCode >> 8;
    for (const PciClass& c : kPciClasses)
        if ((code & c.match) == c.code)
            return c.name;
    return "device";
}

} // namespace

std::set<std::string> readPciFunctions(const HostPaths& paths, const Overlay* overlay, Platform& platform,
                                       HostReport& report) {
    auto learned = [&](std::string line) { report.learned.push_back(std::move(line)); };
    auto notLearned = [&](std::string line) { report.notLearned.push_back(std::move(line)); };
    std::set<std::string> matched;
    fs::path dir = paths.sys / "bus/pci/devices";
    int error = 0;
    std::vector<std::string> functions = listDirectory(dir, &error);
    if (error != 0) {
        notLearned(fmt::format("pci: cannot list {}: {}", dir.string(), std::strerror(error)));
        return matched;
    }
    size_t added = 0, bridges = 0;
    std::map<std::string, std::string> groupIommus; // group -> iommu name
    bool coherentArch = false;
    struct utsname u {};
    if (::uname(&u) == 0) {
        std::string_view machine = u.machine;
        // x86 PCI DMA snoops the CPU caches by architecture.
        coherentArch = machine == "x86_64" || machine == "i686" || machine == "i386";
    }
    bool noted = false;
    for (const std::string& bdf : functions) {
        fs::path f = dir / bdf;
        Result<std::string> classText = readText(f / "class");
        std::optional<uint64_t> classCode = classText ? parseUnsigned(*classText, 16) : std::nullopt;
        if (!classCode) {
            notLearned(fmt::format("pci {}: class unreadable", bdf));
            continue;
        }
        const char* cls = pciClassName(static_cast<uint32_t>(*classCode));
        // Bridges forward other functions' DMA; they do none themselves.
        if ((*classCode >> 16) == 0x06) {
            ++bridges;
            continue;
        }
        Result<std::string> maskText = readText(f / "dma_mask_bits");
        Result<std::string> coherentText = readText(f / "consistent_dma_mask_bits");
        // Assigned rather than initialised from a ?: expression, which GCC 12 wrongly thinks may leave them
        // uninitialised once parseUnsigned() is out of sight in another file.
        std::optional<uint64_t> bits;
        if (maskText)
            bits = parseUnsigned(*maskText, 10);
        std::optional<uint64_t> coherentBits;
        if (coherentText)
            coherentBits = parseUnsigned(*coherentText, 10);
        if (!bits || !coherentBits || *bits == 0 || *coherentBits == 0 || *bits > 64 || *coherentBits > 64) {
            notLearned(fmt::format("pci {}: dma_mask_bits or consistent_dma_mask_bits unreadable ({}); the function "
                                   "is left out",
                                   bdf,
                                   !maskText ? maskText.error().message()
                                             : (!coherentText ? coherentText.error().message() : "not a bit count")));
            continue;
        }
        Device d;
        d.name = fmt::format("{}-{}", bdf, cls);
        d.constraints.dmaMask = maskOfBits(*bits);
        d.constraints.coherentDmaMask = maskOfBits(*coherentBits);
        d.constraints.coherent = coherentArch;
        d.constraints.accessBits = kAllAccess;
        Result<std::string> vendor = readText(f / "vendor");
        Result<std::string> device = readText(f / "device");
        std::optional<std::string> driver = linkTarget(f / "driver");
        std::string ids = vendor && device
                              ? fmt::format("{}:{}", trim(*vendor).substr(std::min<size_t>(2, trim(*vendor).size())),
                                            trim(*device).substr(std::min<size_t>(2, trim(*device).size())))
                              : std::string("?");
        d.description =
            fmt::format("PCI {} ({} class {:#08x}), {}", ids, cls, *classCode,
                        driver ? "driver " + *driver : std::string("no driver bound: the PCI default masks"));
        d.sysfsPath = devicePath(paths.sys, f).value_or(f.string());
        d.driver = driver.value_or("");
        if (std::optional<std::string> group = linkTarget(f / "iommu_group")) {
            fs::path groupDir = paths.sys / "kernel/iommu_groups" / *group;
            Result<std::string> type = readText(groupDir / "type");
            std::string t = type ? std::string(trim(*type)) : std::string();
            if (t == "DMA" || t == "DMA-FQ") {
                auto it = groupIommus.find(*group);
                if (it == groupIommus.end()) {
                    Iommu iommu;
                    iommu.name = "iommu-group-" + *group;
                    iommu.pageSize = kPageSize;
                    iommu.apertureBase = kPageSize;
                    Result<std::string> cap = readText(f / "iommu/intel-iommu/cap");
                    std::optional<uint64_t> capValue = cap ? parseUnsigned(*cap, 16) : std::nullopt;
                    if (capValue) {
                        // VT-d MGAW (bits 21:16) + 1: the widest guest address it translates.
                        uint64_t mgaw = ((*capValue >> 16) & 0x3f) + 1;
                        iommu.apertureSize = maskOfBits(mgaw) - kPageSize + 1;
                        learned(fmt::format("iommu group {}: aperture of {} bits from the VT-d capability register",
                                            *group, mgaw));
                    } else {
                        iommu.apertureSize = kNoLimit - kPageSize + 1;
                        notLearned(fmt::format("iommu group {}: the IOMMU's aperture is not exposed in sysfs; only "
                                               "the devices' masks bound its I/O virtual addresses",
                                               *group));
                    }
                    platform.iommus.push_back(iommu);
                    it = groupIommus.emplace(*group, iommu.name).first;
                }
                d.iommu = it->second;
            } else if (t == "identity") {
                learned(
                    fmt::format("pci {}: iommu group {} is identity-mapped: DMA addresses are physical", bdf, *group));
            } else if (!type) {
                notLearned(fmt::format("pci {}: iommu group {} has no readable type ({}); modelled without the "
                                       "IOMMU, so its masks limit physical memory",
                                       bdf, *group, type.error().message()));
            } else {
                notLearned(fmt::format("pci {}: iommu group {} is of type '{}' (not the kernel's DMA API); left out",
                                       bdf, *group, t));
                continue;
            }
        }
        if (!noted) {
            notLearned("pci: segment limits (dma_parms) are not in sysfs: the PCI core's default of 64 KiB "
                       "segments is used");
            if (!coherentArch)
                notLearned("pci: coherency is not in sysfs on this architecture: functions are modelled as "
                           "non-coherent (cache maintenance needed), the safe side");
            noted = true;
        }
        if (overlay)
            for (const OverlayDevice& o : overlay->devices)
                if (o.name == d.name) {
                    matched.insert(o.name);
                    applyOverlayEntry(o, d);
                }
        bool removed = overlay && std::any_of(overlay->devices.begin(), overlay->devices.end(),
                                              [&](const auto& o) { return o.name == d.name && o.master == false; });
        if (removed)
            continue;
        if (platform.findDevice(d.name))
            continue;
        platform.devices.push_back(std::move(d));
        ++added;
    }
    learned(fmt::format("pci: {} function{} with their DMA masks from {} (bridges left out, as they do no DMA of "
                        "their own: {})",
                        added, added == 1 ? "" : "s", dir.string(), bridges));
    fs::path groups = paths.sys / "kernel/iommu_groups";
    std::vector<std::string> groupList = listDirectory(groups, &error);
    if (error != 0)
        notLearned(fmt::format("iommu groups: cannot list {}: {}", groups.string(), std::strerror(error)));
    else if (groupList.empty())
        learned(fmt::format("iommu groups: none in {}: every device does direct DMA", groups.string()));
    else
        learned(fmt::format("iommu groups: {} in {}, {} of them translating for a PCI function", groupList.size(),
                            groups.string(), groupIommus.size()));
    return matched;
}

} // namespace cenalloc::host
