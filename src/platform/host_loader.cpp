// SPDX-License-Identifier: MIT
// The host loader: a platform from what the running Linux system exposes in /sys, /proc and /dev.
//
// Nothing is guessed: a source that cannot be read goes into
// HostReport::notLearned with the reason, and the platform is built from the
// rest. What sysfs does not expose at all (PCI segment limits, an IOMMU's
// aperture when the driver does not publish it) is stated there too, with
// the value the model uses instead.
//
// On a device-tree machine the live tree is read with the --dtb loader and
// then checked against what only the running kernel knows: the RAM it uses
// (/proc/iomem, which wins over memory nodes a bootloader or the UEFI
// memory map overrode), where it put its CMA areas (debugfs, meminfo,
// cma=: platform/host_cma.cpp), and which devices it created, bound and
// grouped behind IOMMUs (platform/host_devicetree.cpp).
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/dtb_details.h"
#include "platform/host_cma.h"
#include "platform/host_devicetree.h"
#include "platform/host_pci.h"
#include "platform/host_procfs.h"
#include "platform/host_sysfs.h"

namespace cenalloc {

namespace {

namespace fs = std::filesystem;
using host::listDirectory;
using host::parseUnsigned;
using host::readText;
using host::trim;

std::string banksText(const std::vector<MemoryBank>& banks) {
    std::vector<std::string> parts;
    for (const MemoryBank& b : banks)
        parts.push_back(fmt::format("{:#x}..{:#x}", b.base, b.end()));
    return fmt::format("{}", fmt::join(parts, ", "));
}

bool sameBanks(const std::vector<MemoryBank>& a, const std::vector<MemoryBank>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const MemoryBank& x, const MemoryBank& y) { return x.base == y.base && x.size == y.size; });
}

std::vector<host::Range> rangesOf(const std::vector<MemoryBank>& banks) {
    std::vector<host::Range> out;
    for (const MemoryBank& b : banks)
        out.push_back({b.base, b.end() - 1});
    return out;
}

class HostLoader {
public:
    HostLoader(const HostPaths& paths, const Overlay* overlay, HostReport& report)
        : paths_(paths), overlay_(overlay), report_(report) {}

    Result<Platform> run();

private:
    void learned(std::string line) { report_.learned.push_back(std::move(line)); }
    void notLearned(std::string line) { report_.notLearned.push_back(std::move(line)); }

    void readProcFacts();
    std::optional<Platform> readDeviceTree();
    std::optional<Platform> loadLiveTree(std::span<const std::byte> blob, const host::LiveTreeSource& source,
                                         const std::vector<std::string>& skipped, std::string* error);
    std::vector<MemoryBank> iomemBanks();
    std::vector<MemoryBank> readMemoryBlocks();
    void readDmaHeaps();

    const HostPaths& paths_;
    const Overlay* overlay_;
    HostReport& report_;
    std::set<std::string> overlayMatched_; // overlay name entries a PCI function matched

    // What /proc and debugfs say, read once.
    std::optional<host::Iomem> iomem_;
    std::string iomemProblem_; // why iomem_ tells nothing
    host::CmaFacts cma_;
    DeviceTreeDetails details_;
};

void HostLoader::readProcFacts() {
    fs::path iomemPath = paths_.proc / "iomem";
    if (Result<std::string> text = readText(iomemPath); !text) {
        iomemProblem_ = fmt::format("cannot read {}: {}", iomemPath.string(), text.error().message());
    } else {
        iomem_ = host::parseIomem(*text);
        if (iomem_->hidden())
            iomemProblem_ =
                fmt::format("{} shows every address as 0 to users without CAP_SYS_ADMIN", iomemPath.string());
        else if (iomem_->systemRam.empty())
            iomemProblem_ = fmt::format("{} has no \"System RAM\" line", iomemPath.string());
    }
    if (Result<std::string> text = readText(paths_.proc / "meminfo"))
        cma_.meminfo = host::parseMeminfoCma(*text);
    if (Result<std::string> text = readText(paths_.proc / "cmdline"))
        cma_.parameter = host::parseCmaParameter(*text);
    long page = ::sysconf(_SC_PAGESIZE);
    cma_.debugfs =
        host::readCmaDebugfs(paths_.sys / "kernel/debug", page > 0 ? static_cast<uint64_t>(page) : kPageSize);
}

std::optional<Platform> HostLoader::loadLiveTree(std::span<const std::byte> blob, const host::LiveTreeSource& source,
                                                 const std::vector<std::string>& skipped, std::string* error) {
    // The overlay the tree is read with: the user's, plus what the kernel's
    // command line says (cma= makes the default CMA area "reserved", in place
    // of a linux,cma-default node, as the overlay's cma_size does).
    Overlay o = overlay_ ? *overlay_ : Overlay{};
    if (!overlay_)
        o.source = fmt::format("the running kernel ({})", paths_.proc.string());
    const host::CmaParameter* cmaParameter = cma_.parameter ? &*cma_.parameter : nullptr;
    if (cmaParameter && !o.cmaSize && cmaParameter->size > 0)
        o.cmaSize = cmaParameter->size;
    bool useOverlay = overlay_ || o.cmaSize;
    std::vector<MemoryBank> kernelRam = iomemBanks();

    size_t mark = report_.warnings.size();
    auto load = [&](const Overlay* with) {
        report_.warnings.resize(mark);
        details_ = {};
        return loadDeviceTreeDetailed(blob, source.path.string(), with, &report_.warnings, &details_);
    };
    Result<Platform> p = load(useOverlay ? &o : nullptr);
    if (!p && p.error().code() == ENODATA && o.memory.empty() && !kernelRam.empty()) {
        // No memory node with a size: the bootloader did not fill one in,
        // or an EFI boot took RAM from the UEFI memory map instead
        // (drivers/firmware/efi/efi-init.c reserve_regions).
        o.memory = kernelRam;
        p = load(&o);
        if (p)
            learned(fmt::format("memory: {} banks, {}, from /proc/iomem (System RAM and the no-map RAM the kernel "
                                "shows as \"reserved\"): the device tree has no memory node with a size",
                                kernelRam.size(), formatSize(p->totalMemory())));
    } else if (p && !kernelRam.empty()) {
        std::vector<MemoryBank> treeRam = host::banksOf(rangesOf(details_.ram));
        bool fromOverlay = overlay_ && !overlay_->memory.empty();
        if (sameBanks(treeRam, kernelRam)) {
            learned(fmt::format("memory: the {} RAM ({}) matches what the kernel uses (/proc/iomem)",
                                fromOverlay ? "overlay's" : "device tree's", banksText(treeRam)));
        } else if (fromOverlay) {
            report_.warnings.push_back(fmt::format("memory: the overlay's RAM ({}) differs from what the kernel uses "
                                                   "({}, /proc/iomem); the overlay's is modelled, as it asks",
                                                   banksText(treeRam), banksText(kernelRam)));
        } else {
            o.memory = kernelRam;
            p = load(&o);
            report_.warnings.push_back(fmt::format(
                "memory: the device tree's memory nodes ({}) differ from the RAM the kernel uses ({}, /proc/iomem: "
                "a bootloader that patched the tree, mem=, or a UEFI memory map): the kernel's is modelled",
                banksText(treeRam), banksText(kernelRam)));
        }
    } else if (p) {
        notLearned("memory: the device tree's memory nodes are not checked against the kernel's: " + iomemProblem_);
    }
    if (!p) {
        *error = p.error().message();
        return std::nullopt;
    }
    if (o.cmaSize && !(overlay_ && overlay_->cmaSize))
        learned(fmt::format("cma: cma={} on the kernel command line ({}): the default CMA area is 'reserved', in "
                            "place of any linux,cma-default node (kernel/dma/contiguous.c rmem_cma_setup)",
                            formatSize(*o.cmaSize), (paths_.proc / "cmdline").string()));
    learned(fmt::format("device tree: {} memory banks, {} reserved regions, {} IOMMUs, {} DMA masters from {} ({}{}{})",
                        p->memory.size(), p->regions.size(), p->iommus.size(), p->devices.size(), source.path.string(),
                        source.what, skipped.empty() ? "" : "; not from ", fmt::join(skipped, "; ")));
    return std::move(*p);
}

std::optional<Platform> HostLoader::readDeviceTree() {
    std::vector<std::string> problems;
    bool present = false, directorySeen = false;
    for (const host::LiveTreeSource& source : host::liveTreeSources(paths_)) {
        // /proc/device-tree is a link to /sys/firmware/devicetree/base:
        // one directory form is enough.
        if (!source.blob && directorySeen)
            continue;
        Result<std::vector<std::byte>> blob = host::readLiveTree(source);
        if (!blob && blob.error().code() == ENOENT)
            continue;
        present = true;
        directorySeen = directorySeen || !source.blob;
        if (!blob) {
            problems.push_back(blob.error().message());
            continue;
        }
        std::string error;
        if (std::optional<Platform> p = loadLiveTree(*blob, source, problems, &error))
            return p;
        problems.push_back(error);
    }
    if (!present)
        notLearned(fmt::format("device tree: {} and {} are absent, so this host was not booted with a device tree "
                               "(ACPI or a VM): no SoC memory map, reserved memory or bus windows to read",
                               (paths_.sys / "firmware/fdt").string(),
                               (paths_.sys / "firmware/devicetree/base").string()));
    for (const std::string& problem : problems)
        notLearned("device tree: " + problem);
    return std::nullopt;
}

// The RAM the kernel uses, as banks; empty (and iomemProblem_ says why) when /proc/iomem tells nothing.
std::vector<MemoryBank> HostLoader::iomemBanks() {
    if (!iomem_ || !iomemProblem_.empty())
        return {};
    return host::banksOf(iomem_->ram());
}

std::vector<MemoryBank> HostLoader::readMemoryBlocks() {
    fs::path dir = paths_.sys / "devices/system/memory";
    Result<std::string> blockText = readText(dir / "block_size_bytes");
    std::optional<uint64_t> block = blockText ? parseUnsigned(*blockText, 16) : std::nullopt;
    if (!block || *block == 0 || *block % kPageSize) {
        notLearned(
            fmt::format("memory: cannot read the memory block size from {}", (dir / "block_size_bytes").string()));
        return {};
    }
    int error = 0;
    std::vector<host::Range> ranges;
    for (const std::string& entry : listDirectory(dir, &error)) {
        if (entry.rfind("memory", 0) != 0 || entry.size() == 6)
            continue;
        Result<std::string> state = readText(dir / entry / "state");
        Result<std::string> index = readText(dir / entry / "phys_index");
        if (!state || !index || trim(*state) != "online")
            continue;
        std::optional<uint64_t> i = parseUnsigned(*index, 16);
        if (!i || *i > UINT64_MAX / *block - 1)
            continue;
        ranges.push_back({*i * *block, *i * *block + *block - 1});
    }
    std::vector<MemoryBank> banks = host::banksOf(std::move(ranges));
    if (banks.empty()) {
        notLearned(fmt::format("memory: no online memory block in {}", dir.string()));
        return {};
    }
    uint64_t total = 0;
    for (const MemoryBank& b : banks)
        total += b.size;
    learned(fmt::format("memory: {} banks, {}, from the online memory blocks of {} (block size {})", banks.size(),
                        formatSize(total), dir.string(), formatSize(*block)));
    return banks;
}

void HostLoader::readDmaHeaps() {
    fs::path dir = paths_.dev / "dma_heap";
    int error = 0;
    std::vector<std::string> heaps = listDirectory(dir, &error);
    if (error != 0) {
        notLearned(fmt::format("dma-buf heaps: {}: {} (a kernel without CONFIG_DMABUF_HEAPS, or a container "
                               "without the device nodes)",
                               dir.string(), std::strerror(error)));
        return;
    }
    report_.dmaHeaps = heaps;
    learned(fmt::format("dma-buf heaps: {} in {}{}{} (the kernel's; cenalloc models its own heaps)", heaps.size(),
                        dir.string(), heaps.empty() ? "" : ": ", fmt::join(heaps, ", ")));
}

Result<Platform> HostLoader::run() {
    readProcFacts();
    std::optional<Platform> dt = readDeviceTree();
    Platform platform;
    if (dt) {
        platform = std::move(*dt);
        if (cma_.parameter && cma_.parameter->size == 0) {
            // cma=0: no default area, and the node is bypassed too.
            auto& r = platform.regions;
            auto it = std::find_if(r.begin(), r.end(), [](const ReservedRegion& x) { return x.isDefault; });
            if (it != r.end()) {
                report_.warnings.push_back(fmt::format(
                    "cma: cma=0 on the kernel command line: the kernel has no default CMA area and bypasses {} "
                    "(kernel/dma/contiguous.c rmem_cma_setup); not modelled",
                    it->name));
                r.erase(it);
            }
        }
        if (iomem_ && iomemProblem_.empty())
            cma_.reserved = iomem_->reserved;
        host::reconcileDeviceTreeCma(platform, cma_, details_.dynamicRegions, report_);
        host::reconcileDeviceTreeDevices(platform, details_, paths_, report_);
    } else {
        if (overlay_ && !overlay_->memory.empty()) {
            platform.memory = overlay_->memory;
            learned(fmt::format("memory: {} banks from the overlay {}", platform.memory.size(), overlay_->source));
        } else if (!iomemProblem_.empty()) {
            notLearned("memory: " + iomemProblem_);
            platform.memory = readMemoryBlocks();
        } else {
            platform.memory = host::banksOf(iomem_->systemRam);
            learned(fmt::format("memory: {} banks, {}, from the \"System RAM\" lines of {}", platform.memory.size(),
                                formatSize(platform.totalMemory()), (paths_.proc / "iomem").string()));
        }
        if (overlay_ && overlay_->cmaSize)
            report_.warnings.push_back("overlay cma_size applies to device tree platforms only; ignored");
        if (!platform.memory.empty())
            host::addHostCma(platform, cma_, report_);
    }
    overlayMatched_ = host::readPciFunctions(paths_, overlay_, platform, report_);
    readDmaHeaps();
    if (platform.memory.empty())
        return Error(ENODATA,
                     "cannot learn the host's memory: " + fmt::format("{}", fmt::join(report_.notLearned, "; ")));

    struct utsname u {};
    std::string host = ::uname(&u) == 0 ? std::string(u.nodename) : std::string("host");
    if (!dt) {
        platform.name = overlay_ && overlay_->name ? *overlay_->name : "host-" + host;
        platform.description = overlay_ && overlay_->description
                                   ? *overlay_->description
                                   : fmt::format("the running host {} ({} {} {}), from /sys and /proc", host, u.sysname,
                                                 u.release, u.machine);
    }
    platform.source = "host";
    if (overlay_) {
        // The device tree loader knows only its own devices: drop its
        // complaint about entries that name a PCI function.
        auto& w = report_.warnings;
        w.erase(std::remove_if(w.begin(), w.end(),
                               [&](const std::string& line) {
                                   return std::any_of(
                                       overlay_->devices.begin(), overlay_->devices.end(), [&](const OverlayDevice& o) {
                                           return !o.name.empty() && platform.findDevice(o.name) &&
                                                  line.find("'" + o.name + "' matches no device") != std::string::npos;
                                       });
                               }),
                w.end());
        for (const OverlayDevice& o : overlay_->devices)
            if (!o.name.empty() && !overlayMatched_.count(o.name) && !dt)
                w.push_back(fmt::format("{}: the entry for device '{}' matches no device", overlay_->source, o.name));
    }
    if (Result<void> valid = validatePlatform(platform); !valid)
        return valid.error().withContext("host");
    return platform;
}

} // namespace

Result<Platform> loadHostPlatform(HostReport* report, const Overlay* overlay, const HostPaths& paths) {
    HostReport local;
    HostLoader loader(paths, overlay, report ? *report : local);
    return loader.run();
}

} // namespace cenalloc
