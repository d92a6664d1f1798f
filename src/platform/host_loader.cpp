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
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

#include "platform/dt_directory.h"
#include "platform/overlay_apply.h"

namespace cenalloc {

namespace {

namespace fs = std::filesystem;

// sysfs attributes are a line; /proc/iomem is the largest file read here.
constexpr size_t kMaxFile = 4 * MiB;

Result<std::string> readText(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return Error(errno, std::strerror(errno));
    std::string text;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error(errno, std::strerror(errno));
        if (n == 0)
            break;
        text.append(buffer, static_cast<size_t>(n));
        if (text.size() > kMaxFile)
            return Error(EFBIG, "too large");
    }
    return text;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> parseUnsigned(std::string_view s, int base) {
    s = trim(s);
    if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s.remove_prefix(2);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return std::nullopt;
    return v;
}

std::vector<std::string> listDirectory(const fs::path& dir, int* error) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        *error = errno;
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..")
            out.push_back(std::move(name));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    *error = 0;
    return out;
}

std::optional<std::string> linkTarget(const fs::path& link) {
    char buffer[4096];
    ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1);
    if (n < 0)
        return std::nullopt;
    return fs::path(std::string(buffer, static_cast<size_t>(n))).filename().string();
}

uint64_t maskOfBits(uint64_t bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

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
    void readPci(Platform& platform);
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

void HostLoader::readPci(Platform& platform) {
    fs::path dir = paths_.sys / "bus/pci/devices";
    int error = 0;
    std::vector<std::string> functions = listDirectory(dir, &error);
    if (error != 0) {
        notLearned(fmt::format("pci: cannot list {}: {}", dir.string(), std::strerror(error)));
        return;
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
        std::optional<uint64_t> bits = maskText ? parseUnsigned(*maskText, 10) : std::nullopt;
        std::optional<uint64_t> coherentBits = coherentText ? parseUnsigned(*coherentText, 10) : std::nullopt;
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
        if (std::optional<std::string> group = linkTarget(f / "iommu_group")) {
            fs::path groupDir = paths_.sys / "kernel/iommu_groups" / *group;
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
        if (overlay_)
            for (const OverlayDevice& o : overlay_->devices)
                if (o.name == d.name) {
                    overlayMatched_.insert(o.name);
                    applyOverlayEntry(o, d);
                }
        bool removed = overlay_ && std::any_of(overlay_->devices.begin(), overlay_->devices.end(),
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
    fs::path groups = paths_.sys / "kernel/iommu_groups";
    std::vector<std::string> groupList = listDirectory(groups, &error);
    if (error != 0)
        notLearned(fmt::format("iommu groups: cannot list {}: {}", groups.string(), std::strerror(error)));
    else if (groupList.empty())
        learned(fmt::format("iommu groups: none in {}: every device does direct DMA", groups.string()));
    else
        learned(fmt::format("iommu groups: {} in {}, {} of them translating for a PCI function", groupList.size(),
                            groups.string(), groupIommus.size()));
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
    readPci(platform);
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
