// SPDX-License-Identifier: MIT
// The host loader: a platform from what the running Linux system exposes in /sys, /proc and /dev.
//
// Nothing is guessed: a source that cannot be read goes into
// HostReport::notLearned with the reason, and the platform is built from the
// rest. What sysfs does not expose at all (PCI segment limits, an IOMMU's
// aperture when the driver does not publish it) is stated there too, with
// the value the model uses instead.
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/dt_directory.h"
#include "platform/host_pci.h"
#include "platform/host_sysfs.h"

namespace cenalloc {

namespace {

namespace fs = std::filesystem;
using host::listDirectory;
using host::parseUnsigned;
using host::readText;
using host::trim;

// Page-aligned banks from byte ranges (inclusive), trimmed inward.
std::vector<MemoryBank> banksOf(std::vector<std::pair<uint64_t, uint64_t>> ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<MemoryBank> banks;
    for (auto [first, last] : ranges) {
        std::optional<uint64_t> base = alignUpChecked(first, kPageSize);
        uint64_t end = last == UINT64_MAX ? UINT64_MAX & ~(kPageSize - 1) : (last + 1) & ~(kPageSize - 1);
        if (!base || *base >= end)
            continue;
        if (!banks.empty() && *base <= banks.back().end()) {
            banks.back().size = std::max(banks.back().end(), end) - banks.back().base;
            continue;
        }
        banks.push_back({fmt::format("ram-{:x}", *base), *base, end - *base});
    }
    return banks;
}

class HostLoader {
public:
    HostLoader(const HostPaths& paths, const Overlay* overlay, HostReport& report)
        : paths_(paths), overlay_(overlay), report_(report) {}

    Result<Platform> run();

private:
    void learned(std::string line) { report_.learned.push_back(std::move(line)); }
    void notLearned(std::string line) { report_.notLearned.push_back(std::move(line)); }

    std::optional<Platform> readDeviceTree();
    std::vector<MemoryBank> readIomem();
    std::vector<MemoryBank> readMemoryBlocks();
    void readDmaHeaps();
    void readCma();

    const HostPaths& paths_;
    const Overlay* overlay_;
    HostReport& report_;
    std::set<std::string> overlayMatched_; // overlay name entries a PCI function matched
};

std::optional<Platform> HostLoader::readDeviceTree() {
    fs::path base = paths_.sys / "firmware/devicetree/base";
    struct stat st {};
    if (::stat(base.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        notLearned(fmt::format("device tree: {} is absent, so this host was not booted with a device tree (ACPI "
                               "or a VM): no SoC memory map, reserved memory or bus windows to read",
                               base.string()));
        return std::nullopt;
    }
    Result<std::vector<std::byte>> blob = readDeviceTreeDirectory(base);
    if (!blob) {
        notLearned("device tree: " + blob.error().message());
        return std::nullopt;
    }
    Result<Platform> p = loadDeviceTree(*blob, base.string(), overlay_, &report_.warnings);
    if (!p) {
        notLearned("device tree: " + p.error().message());
        return std::nullopt;
    }
    learned(fmt::format("device tree: {} memory banks, {} reserved regions, {} IOMMUs, {} DMA masters from {}",
                        p->memory.size(), p->regions.size(), p->iommus.size(), p->devices.size(), base.string()));
    return std::move(*p);
}

std::vector<MemoryBank> HostLoader::readIomem() {
    fs::path path = paths_.proc / "iomem";
    Result<std::string> text = readText(path);
    if (!text) {
        notLearned(fmt::format("memory: cannot read {}: {}", path.string(), text.error().message()));
        return {};
    }
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    size_t lines = 0, hidden = 0;
    std::string_view rest = *text;
    while (!rest.empty()) {
        size_t nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        // Top-level entries only: nested ones (indented) are parts of them.
        if (line.empty() || line.front() == ' ')
            continue;
        size_t colon = line.find(" : ");
        size_t dash = line.find('-');
        if (colon == std::string_view::npos || dash == std::string_view::npos || dash > colon)
            continue;
        if (trim(line.substr(colon + 3)) != "System RAM")
            continue;
        std::optional<uint64_t> first = parseUnsigned(line.substr(0, dash), 16);
        std::optional<uint64_t> last = parseUnsigned(line.substr(dash + 1, colon - dash - 1), 16);
        if (!first || !last || *last < *first)
            continue;
        ++lines;
        if (*first == 0 && *last == 0) {
            ++hidden;
            continue;
        }
        ranges.emplace_back(*first, *last);
    }
    if (lines > 0 && hidden == lines) {
        notLearned(fmt::format("memory: {} shows every address as 0 to users without CAP_SYS_ADMIN", path.string()));
        return {};
    }
    std::vector<MemoryBank> banks = banksOf(std::move(ranges));
    if (banks.empty()) {
        notLearned(fmt::format("memory: {} has no \"System RAM\" line", path.string()));
        return {};
    }
    uint64_t total = 0;
    for (const MemoryBank& b : banks)
        total += b.size;
    learned(fmt::format("memory: {} banks, {}, from the \"System RAM\" lines of {}", banks.size(), formatSize(total),
                        path.string()));
    return banks;
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
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
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
        ranges.emplace_back(*i * *block, *i * *block + *block - 1);
    }
    std::vector<MemoryBank> banks = banksOf(std::move(ranges));
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

void HostLoader::readCma() {
    fs::path path = paths_.proc / "meminfo";
    Result<std::string> text = readText(path);
    if (!text)
        return;
    size_t at = text->find("CmaTotal:");
    if (at == std::string::npos)
        return;
    std::string_view line = std::string_view(*text).substr(at + 9);
    line = line.substr(0, line.find('\n'));
    line = trim(line);
    if (line.size() > 3 && line.substr(line.size() - 3) == " kB")
        line.remove_suffix(3);
    std::optional<uint64_t> kb = parseUnsigned(line, 10);
    if (!kb || *kb == 0)
        return;
    notLearned(fmt::format("cma: the kernel has a CMA area of {} (CmaTotal in {}), but sysfs does not say where, "
                           "so it is not modelled",
                           formatSize(*kb * KiB), path.string()));
}

Result<Platform> HostLoader::run() {
    std::optional<Platform> dt = readDeviceTree();
    Platform platform;
    if (dt) {
        platform = std::move(*dt);
    } else {
        if (overlay_ && !overlay_->memory.empty()) {
            platform.memory = overlay_->memory;
            learned(fmt::format("memory: {} banks from the overlay {}", platform.memory.size(), overlay_->source));
        } else {
            platform.memory = readIomem();
            if (platform.memory.empty())
                platform.memory = readMemoryBlocks();
        }
        if (overlay_ && overlay_->cmaSize)
            report_.warnings.push_back("overlay cma_size applies to device tree platforms only; ignored");
        readCma();
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
