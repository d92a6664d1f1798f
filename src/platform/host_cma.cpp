// SPDX-License-Identifier: MIT
// The kernel's CMA areas as the running system shows them (debugfs, /proc/meminfo, cma=) and placed in a platform.
//
// Linux names its CMA areas, and debugfs shows each in a directory of that
// name (mm/cma_debug.c cma_debugfs_add_one: debugfs_create_dir(cma->name)
// under "cma"; older kernels named it "cma-<name>" or "cma-<index>") holding base_pfn, count (pages), order_per_bit and
// used (pages allocated). Since 6.15 an area may span ranges (ranges/<n>/) and base_pfn is a link to ranges/0/base_pfn.
// The names: a reserved-memory node's name (kernel/dma/contiguous.c rmem_cma_setup passes rmem->name to
// cma_init_reserved_mem), and "reserved" for the default area of cma= or
// CONFIG_CMA_SIZE_MBYTES (dma_contiguous_reserve_area calls
// cma_declare_contiguous(..., "reserved", ...)). A cma= on the command
// line makes the kernel skip a linux,cma-default node (rmem_cma_setup:
// "bypass %s node, using cmdline CMA params instead").
#include "platform/host_cma.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/host_sysfs.h"

namespace cenalloc::host {

namespace fs = std::filesystem;

namespace {

std::string rangeText(uint64_t base, uint64_t size) {
    return fmt::format("{:#x}..{:#x}", base, base + size);
}

const CmaArea* findArea(const CmaDebugfs& d, std::string_view name) {
    for (const CmaArea& a : d.areas)
        if (a.name == name || a.name == "cma-" + std::string(name))
            return &a;
    return nullptr;
}

std::string usedText(const CmaArea& a) {
    return a.used ? fmt::format(", {} in use", formatSize(*a.used)) : std::string();
}

// Move @p region to [base, base + size) when that lies in one bank and
// overlaps no other region; otherwise say why not.
std::optional<std::string> moveRegion(Platform& platform, ReservedRegion& region, uint64_t base, uint64_t size) {
    bool inBank = std::any_of(platform.memory.begin(), platform.memory.end(),
                              [&](const MemoryBank& b) { return base >= b.base && base + size <= b.end(); });
    if (!inBank)
        return std::string("it does not lie inside one RAM bank of the model");
    for (const ReservedRegion& other : platform.regions)
        if (&other != &region && base < other.end() && other.base < base + size)
            return fmt::format("it would overlap {}", other.name);
    region.base = base;
    region.size = size;
    return std::nullopt;
}

bool covered(const std::vector<Range>& ranges, uint64_t base, uint64_t size) {
    for (const Range& r : ranges)
        if (r.first <= base && base + size - 1 <= r.last)
            return true;
    return false;
}

} // namespace

CmaDebugfs readCmaDebugfs(const fs::path& debugfs, uint64_t pageSize) {
    CmaDebugfs out;
    fs::path dir = debugfs / "cma";
    int error = 0;
    std::vector<std::string> names = listDirectory(dir, &error);
    if (error != 0) {
        int rootError = 0;
        std::vector<std::string> root = listDirectory(debugfs, &rootError);
        if (rootError == EACCES || error == EACCES)
            out.problem = fmt::format("{}: {} (debugfs is readable by root only)", dir.string(), std::strerror(EACCES));
        else if (rootError != 0 || root.empty())
            out.problem = fmt::format("debugfs is not mounted at {}", debugfs.string());
        else
            out.problem =
                fmt::format("{}: {} (a kernel without CONFIG_CMA_DEBUGFS)", dir.string(), std::strerror(error));
        return out;
    }
    for (const std::string& name : names) {
        fs::path area = dir / name;
        Result<std::string> basePfn = readText(area / "base_pfn");
        Result<std::string> count = readText(area / "count");
        // Assigned rather than initialised from a ?: expression, which GCC 12
        // wrongly thinks may leave them uninitialised (as in host_pci.cpp).
        std::optional<uint64_t> pfn;
        if (basePfn)
            pfn = parseUnsigned(*basePfn, 10);
        std::optional<uint64_t> pages;
        if (count)
            pages = parseUnsigned(*count, 10);
        if (!pfn || !pages || *pages == 0 || *pfn > UINT64_MAX / pageSize || *pages > UINT64_MAX / pageSize ||
            *pfn * pageSize > UINT64_MAX - *pages * pageSize) {
            out.skipped.push_back(fmt::format("cma area {}: base_pfn or count unreadable ({})", name,
                                              !basePfn ? basePfn.error().message()
                                                       : (!count ? count.error().message() : "not a page count")));
            continue;
        }
        int rangesError = 0;
        std::vector<std::string> ranges = listDirectory(area / "ranges", &rangesError);
        if (rangesError == 0 && ranges.size() > 1) {
            out.skipped.push_back(fmt::format("cma area {}: spans {} separate ranges ({}), not one region", name,
                                              ranges.size(), (area / "ranges").string()));
            continue;
        }
        CmaArea a;
        a.name = name;
        a.base = *pfn * pageSize;
        a.size = *pages * pageSize;
        Result<std::string> used = readText(area / "used");
        if (std::optional<uint64_t> u = used ? parseUnsigned(*used, 10) : std::nullopt; u && *u <= *pages)
            a.used = *u * pageSize;
        Result<std::string> order = readText(area / "order_per_bit");
        if (std::optional<uint64_t> o = order ? parseUnsigned(*order, 10) : std::nullopt)
            a.orderPerBit = *o;
        out.areas.push_back(std::move(a));
    }
    return out;
}

void reconcileDeviceTreeCma(Platform& platform, const CmaFacts& facts, const std::set<std::string>& dynamicRegions,
                            HostReport& report) {
    auto learned = [&](std::string line) { report.learned.push_back(std::move(line)); };
    auto notLearned = [&](std::string line) { report.notLearned.push_back(std::move(line)); };
    auto warn = [&](std::string line) { report.warnings.push_back(std::move(line)); };
    const CmaDebugfs& d = facts.debugfs;
    for (const std::string& s : d.skipped)
        notLearned(s);
    std::set<std::string> matched;
    for (ReservedRegion& r : platform.regions) {
        if (r.kind != RegionKind::Cma)
            continue;
        bool dynamic = dynamicRegions.count(r.name) != 0;
        const CmaArea* a = findArea(d, r.name);
        if (a)
            matched.insert(a->name);
        std::string what = r.isDefault ? "the default CMA area" : "a CMA pool";
        if (a && a->base == r.base && a->size == r.size) {
            learned(fmt::format("cma: {} ({}): {} at {}{}, as debugfs {} confirms", r.name, what, formatSize(r.size),
                                rangeText(r.base, r.size), usedText(*a), a->name));
            continue;
        }
        if (a) {
            uint64_t oldBase = r.base, oldSize = r.size;
            if (std::optional<std::string> why = moveRegion(platform, r, a->base, a->size)) {
                warn(fmt::format("cma: {}: the kernel put it at {} (debugfs {}), the model at {}, and it cannot move "
                                 "there: {}; the model keeps the device tree's place",
                                 r.name, rangeText(a->base, a->size), a->name, rangeText(oldBase, oldSize), *why));
            } else if (dynamic) {
                learned(fmt::format("cma: {} ({}): {} at {}{}, where the kernel put it (debugfs {}); the device "
                                    "tree gives only its size and allowed ranges (the loader's estimate was {})",
                                    r.name, what, formatSize(r.size), rangeText(r.base, r.size), usedText(*a), a->name,
                                    rangeText(oldBase, oldSize)));
            } else {
                warn(fmt::format("cma: {}: the device tree puts it at {}, the kernel at {} (debugfs {}); modelled "
                                 "where the kernel put it",
                                 r.name, rangeText(oldBase, oldSize), rangeText(r.base, r.size), a->name));
            }
            continue;
        }
        if (!d.problem.empty() && dynamic && r.name == "reserved" && facts.parameter && facts.parameter->fixed() &&
            facts.parameter->size == r.size) {
            // cma=size@base: dma_contiguous_reserve puts it exactly there.
            uint64_t oldBase = r.base;
            if (std::optional<std::string> why = moveRegion(platform, r, *facts.parameter->base, r.size))
                warn(fmt::format("cma: reserved: cma= puts it at {:#x}, which the model cannot: {}; modelled at {}",
                                 *facts.parameter->base, *why, rangeText(oldBase, r.size)));
            else
                learned(fmt::format("cma: reserved (the default CMA area): {} at {}, fixed there by cma=...@{:#x}",
                                    formatSize(r.size), rangeText(r.base, r.size), r.base));
            continue;
        }
        if (!d.problem.empty()) {
            if (dynamic)
                notLearned(fmt::format("cma: {} ({}) is modelled at {}, the loader's estimate of the kernel's "
                                       "top-down placement, not confirmed: {}",
                                       r.name, what, rangeText(r.base, r.size), d.problem));
            continue;
        }
        warn(fmt::format("cma: {}: debugfs has no CMA area of that name, so the kernel did not set it up (the "
                         "model keeps it as the device tree describes it)",
                         r.name));
    }

    // The default area without a node: CONFIG_CMA_SIZE_MBYTES (cma= came
    // in through the overlay's cma_size and is a region already).
    bool hasDefault = std::any_of(platform.regions.begin(), platform.regions.end(),
                                  [](const ReservedRegion& r) { return r.kind == RegionKind::Cma && r.isDefault; });
    const CmaArea* reserved = findArea(d, "reserved");
    if (!hasDefault && reserved && !matched.count(reserved->name)) {
        ReservedRegion region;
        region.name = "reserved";
        region.kind = RegionKind::Cma;
        region.isDefault = true;
        region.heap = true;
        platform.regions.push_back(region);
        if (std::optional<std::string> why =
                moveRegion(platform, platform.regions.back(), reserved->base, reserved->size)) {
            platform.regions.pop_back();
            warn(fmt::format("cma: the kernel's default area 'reserved' ({} at {}, debugfs) is not modelled: {}",
                             formatSize(reserved->size), rangeText(reserved->base, reserved->size), *why));
        } else {
            // The device tree loader's advice to give cma_size is answered.
            std::erase_if(report.warnings,
                          [](const std::string& w) { return w.starts_with("no CMA pool in the device tree"); });
            learned(fmt::format("cma: reserved (the default CMA area, from the kernel's configuration, not the "
                                "device tree): {} at {}{} (debugfs {})",
                                formatSize(reserved->size), rangeText(reserved->base, reserved->size),
                                usedText(*reserved), reserved->name));
        }
        matched.insert(reserved->name);
    }
    std::vector<std::string> others;
    for (const CmaArea& a : d.areas)
        if (!matched.count(a.name))
            others.push_back(fmt::format("{} ({} at {:#x})", a.name, formatSize(a.size), a.base));
    if (!others.empty())
        learned(fmt::format("cma: other areas of the kernel, not modelled (no region names them): {}",
                            fmt::join(others, ", ")));

    uint64_t modelled = 0;
    for (const ReservedRegion& r : platform.regions)
        if (r.kind == RegionKind::Cma)
            modelled += r.size;
    // Without debugfs, the total is all there is to check against.
    if (!d.problem.empty() && facts.meminfo && facts.meminfo->total == modelled) {
        learned(fmt::format("cma: CmaTotal of /proc/meminfo ({}) equals the CMA regions modelled",
                            formatSize(facts.meminfo->total)));
    } else if (!d.problem.empty() && facts.meminfo) {
        warn(fmt::format("cma: the kernel has {} of CMA (CmaTotal of /proc/meminfo), the model {}: some CMA area is "
                         "missing from the model or was not set up by the kernel",
                         formatSize(facts.meminfo->total), formatSize(modelled)));
    }

    // The kernel reserved every region it set up (memblock): a region in
    // no reserved range of /proc/iomem is not where the model says.
    if (!facts.reserved.empty())
        for (const ReservedRegion& r : platform.regions)
            if (r.kind == RegionKind::Cma && !covered(facts.reserved, r.base, r.size))
                warn(fmt::format("cma: {} at {} is not reserved memory in /proc/iomem: the kernel did not put it "
                                 "there",
                                 r.name, rangeText(r.base, r.size)));
}

void addHostCma(Platform& platform, const CmaFacts& facts, HostReport& report) {
    const CmaDebugfs& d = facts.debugfs;
    if (!facts.meminfo && d.areas.empty())
        return; // a kernel without CONFIG_CMA
    for (const std::string& s : d.skipped)
        report.notLearned.push_back(s);
    std::string cmdline =
        facts.parameter ? fmt::format(" (cma={} on the command line)", formatSize(facts.parameter->size)) : "";
    const CmaArea* area = findArea(d, "reserved");
    if (!area) {
        if (facts.meminfo && facts.meminfo->total != 0)
            report.notLearned.push_back(fmt::format(
                "cma: the kernel has {} of CMA (CmaTotal){}, but not where: {}; the default CMA area is not "
                "modelled",
                formatSize(facts.meminfo->total), cmdline,
                d.problem.empty() ? "debugfs shows no area named 'reserved'" : d.problem));
        return;
    }
    ReservedRegion region;
    region.name = "reserved";
    region.kind = RegionKind::Cma;
    region.isDefault = true;
    region.heap = true;
    platform.regions.push_back(region);
    if (std::optional<std::string> why = moveRegion(platform, platform.regions.back(), area->base, area->size)) {
        platform.regions.pop_back();
        report.notLearned.push_back(fmt::format("cma: the kernel's default area ({} at {}, debugfs {}) is not "
                                                "modelled: {}",
                                                formatSize(area->size), rangeText(area->base, area->size), area->name,
                                                *why));
        return;
    }
    report.learned.push_back(fmt::format("cma: reserved (the default CMA area{}): {} at {}{}, from debugfs {}", cmdline,
                                         formatSize(area->size), rangeText(area->base, area->size), usedText(*area),
                                         area->name));
}

} // namespace cenalloc::host
