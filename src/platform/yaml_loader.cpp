// SPDX-License-Identifier: MIT
// The YAML platform loader: the schema of a platform description, read with the YAML reader.
#include <cenalloc/platform.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <optional>
#include <span>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/file.h"
#include "base/try.h"
#include "platform/yaml_reader.h"

namespace cenalloc {

namespace {

constexpr std::string_view kTopKeys[] = {"name",   "description", "memory",      "regions",
                                         "iommus", "devices",     "kernel_heaps"};
constexpr std::string_view kBankKeys[] = {"name", "base", "size"};
constexpr std::string_view kRegionKeys[] = {"name",   "kind",    "base",        "size",
                                            "no_map", "default", "access_bits", "owners"};
constexpr std::string_view kKernelHeapKeys[] = {"name", "description", "contiguous", "cached", "size"};
constexpr std::string_view kIommuKeys[] = {"name", "page_size", "aperture_base", "aperture_size"};
constexpr std::string_view kDeviceKeys[] = {"name",
                                            "description",
                                            "iommu",
                                            "iommu_group",
                                            "dma_mask",
                                            "dma_mask_bits",
                                            "coherent_dma_mask",
                                            "coherent_dma_mask_bits",
                                            "max_segment_size",
                                            "segment_boundary_mask",
                                            "max_segment_count",
                                            "alignment",
                                            "contiguous",
                                            "coherent",
                                            "access_bits"};

// A description is read whole; anything this large is not one (and reading
// /dev/zero by mistake must not exhaust memory).
constexpr uint64_t kMaxFileSize = 16 * MiB;

uint64_t maskOfBits(uint64_t bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

// A mask given either as a value ("dma_mask: 0xffffffff") or as a bit count
// ("dma_mask_bits: 32", Linux's DMA_BIT_MASK(32)).
Result<void> readMask(const yaml::Map& f, std::string_view maskKey, std::string_view bitsKey,
                      std::optional<uint64_t>& out) {
    if (f.has(maskKey) && f.has(bitsKey)) {
        // Blame whichever of the two comes second in the file.
        return f.find(f.later(maskKey, bitsKey))
            ->error(fmt::format("give either {} or {}, not both", maskKey, bitsKey));
    }
    if (std::optional<yaml::Node> v = f.find(bitsKey)) {
        uint64_t bits = CENALLOC_TRY(v->as(yaml::number));
        if (bits == 0)
            return v->error("a mask of zero bits lets the device reach no memory");
        if (bits > 64)
            return v->error(fmt::format("{} bits is more than the 64 an address has", bits));
        out = maskOfBits(bits);
    } else if (std::optional<yaml::Node> m = f.find(maskKey)) {
        uint64_t mask = CENALLOC_TRY(m->as(yaml::number));
        if (mask == 0)
            return m->error("a mask of zero lets the device reach no memory");
        // A mask is an inclusive address limit: 2^n-1, or the end of a bus
        // window (0xbfffffff for 3 GiB), which ends a page.
        if (!isAddressLimit(mask))
            return m->error(fmt::format("{:#x} is neither 2^n-1 nor the end of a page (use e.g. 0xffffffff, or "
                                        "0xbfffffff for a 3 GiB window)",
                                        mask));
        out = mask;
    }
    return {};
}

// An entry of a section, checked against its keys and named by its name when
// it has a usable one ("device 'cam'"), by position otherwise ("devices[2]").
Result<yaml::Map> readEntry(const yaml::Node& node, std::string_view noun, std::span<const std::string_view> allowed) {
    yaml::Node entry = node;
    if (std::optional<yaml::Node> name = node.peek("name"); name && name->isScalar())
        entry = node.named(fmt::format("{} '{}'", noun, name->text()));
    yaml::Map f = CENALLOC_TRY(entry.map(allowed));
    CENALLOC_CHECK(f.require({"name"}));
    return f;
}

Result<MemoryBank> readBank(const yaml::Node& node) {
    yaml::Map f = CENALLOC_TRY(readEntry(node, "memory bank", kBankKeys));
    CENALLOC_CHECK(f.require({"base", "size"}));
    MemoryBank bank;
    CENALLOC_CHECK(f.read("name", bank.name, yaml::text));
    CENALLOC_CHECK(f.read("base", bank.base, yaml::size));
    CENALLOC_CHECK(f.read("size", bank.size, yaml::size));
    return bank;
}

Result<ReservedRegion> readRegion(const yaml::Node& node) {
    yaml::Map f = CENALLOC_TRY(readEntry(node, "reserved region", kRegionKeys));
    CENALLOC_CHECK(f.require({"kind", "base", "size"}));
    ReservedRegion region;
    std::string kind;
    CENALLOC_CHECK(f.read("name", region.name, yaml::text));
    CENALLOC_CHECK(f.read("kind", kind, yaml::text));
    if (kind == "cma")
        region.kind = RegionKind::Cma;
    else if (kind == "carveout")
        region.kind = RegionKind::Carveout;
    else
        return f.find("kind")->error(fmt::format("'{}' is not a region kind (expected cma or carveout)", kind));
    CENALLOC_CHECK(f.read("base", region.base, yaml::size));
    CENALLOC_CHECK(f.read("size", region.size, yaml::size));
    CENALLOC_CHECK(f.read("no_map", region.noMap, yaml::boolean));
    CENALLOC_CHECK(f.read("default", region.isDefault, yaml::boolean));
    CENALLOC_CHECK(f.read("access_bits", region.accessBits, yaml::number));
    // owners: the devices the region belongs to (they name it in their
    // memory-region); it is then nobody else's heap.
    for (const yaml::Node& owner : CENALLOC_TRY(f.items("owners", "a list of device names"))) {
        if (!owner.isScalar() || owner.text().empty())
            return owner.error("expected a device name");
        if (std::find(region.owners.begin(), region.owners.end(), owner.text()) != region.owners.end())
            return owner.error(fmt::format("'{}' is given twice", owner.text()));
        region.owners.push_back(owner.text());
    }
    region.heap = region.owners.empty();
    return region;
}

Result<Iommu> readIommu(const yaml::Node& node) {
    yaml::Map f = CENALLOC_TRY(readEntry(node, "iommu", kIommuKeys));
    Iommu iommu;
    CENALLOC_CHECK(f.read("name", iommu.name, yaml::text));
    CENALLOC_CHECK(f.read("page_size", iommu.pageSize, yaml::size));
    CENALLOC_CHECK(f.read("aperture_base", iommu.apertureBase, yaml::size));
    CENALLOC_CHECK(f.read("aperture_size", iommu.apertureSize, yaml::size));
    return iommu;
}

Result<Device> readDevice(const yaml::Node& node) {
    yaml::Map f = CENALLOC_TRY(readEntry(node, "device", kDeviceKeys));
    Device device;
    DmaConstraints& c = device.constraints;
    CENALLOC_CHECK(f.read("name", device.name, yaml::text));
    CENALLOC_CHECK(f.read("description", device.description, yaml::text));
    CENALLOC_CHECK(f.read("iommu", device.iommu, yaml::text));
    CENALLOC_CHECK(f.read("iommu_group", device.iommuGroup, yaml::text));
    std::optional<uint64_t> dmaMask, coherentMask;
    CENALLOC_CHECK(readMask(f, "dma_mask", "dma_mask_bits", dmaMask));
    CENALLOC_CHECK(readMask(f, "coherent_dma_mask", "coherent_dma_mask_bits", coherentMask));
    c.dmaMask = dmaMask.value_or(kNoLimit);
    // As in Linux, a driver that sets only the streaming mask gets the same
    // coherent mask (dma_set_mask_and_coherent is the common call).
    c.coherentDmaMask = coherentMask.value_or(c.dmaMask);
    CENALLOC_CHECK(f.read("max_segment_size", c.maxSegmentSize, yaml::size));
    CENALLOC_CHECK(f.read("segment_boundary_mask", c.segmentBoundaryMask, yaml::number));
    uint64_t count = c.maxSegmentCount;
    CENALLOC_CHECK(f.read("max_segment_count", count, yaml::number));
    if (count > UINT32_MAX)
        return f.find("max_segment_count")->error(fmt::format("{} is more than {}", count, UINT32_MAX));
    c.maxSegmentCount = static_cast<uint32_t>(count);
    CENALLOC_CHECK(f.read("alignment", c.alignment, yaml::size));
    CENALLOC_CHECK(f.read("contiguous", c.contiguous, yaml::boolean));
    CENALLOC_CHECK(f.read("coherent", c.coherent, yaml::boolean));
    CENALLOC_CHECK(f.read("access_bits", c.accessBits, yaml::number));
    return device;
}

Result<KernelHeapDescription> readKernelHeap(const yaml::Node& node) {
    yaml::Map f = CENALLOC_TRY(readEntry(node, "kernel heap", kKernelHeapKeys));
    KernelHeapDescription heap;
    CENALLOC_CHECK(f.read("name", heap.name, yaml::text));
    CENALLOC_CHECK(f.read("description", heap.description, yaml::text));
    CENALLOC_CHECK(f.read("contiguous", heap.contiguous, yaml::boolean));
    CENALLOC_CHECK(f.read("cached", heap.cached, yaml::boolean));
    CENALLOC_CHECK(f.read("size", heap.size, yaml::size));
    return heap;
}

/// The entries of one section, read in order, and the nodes they came from
/// (to put a line on errors found only once the whole platform is assembled:
/// overlaps, dangling references, ...).
template <typename T>
Result<std::vector<yaml::Node>> readSection(const yaml::Map& top, std::string_view key,
                                            Result<T> (*read)(const yaml::Node&), std::vector<T>& out) {
    std::vector<yaml::Node> entries = CENALLOC_TRY(top.items(key));
    for (const yaml::Node& entry : entries)
        out.push_back(CENALLOC_TRY(read(entry)));
    return entries;
}

// The first k entries of the platform, in the order memory, regions, iommus,
// devices, kernel heaps (the order in which each may refer to the ones before
// it).
Platform prefixOf(const Platform& p, size_t k) {
    Platform out;
    out.name = p.name;
    auto take = [&k](const auto& from, auto& to) {
        size_t n = std::min(k, from.size());
        to.assign(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(n));
        k -= n;
    };
    take(p.memory, out.memory);
    take(p.regions, out.regions);
    take(p.iommus, out.iommus);
    take(p.devices, out.devices);
    take(p.kernelHeaps, out.kernelHeaps);
    // Owners name devices listed after the regions: a prefix keeps only
    // those it has (the loader checks the others itself, at their line).
    for (ReservedRegion& r : out.regions)
        std::erase_if(r.owners, [&](const std::string& owner) { return !out.findDevice(owner); });
    return out;
}

/// Where each entry of the platform came from, section by section in the order of prefixOf().
struct EntryLines {
    std::vector<yaml::Node> memory, regions, iommus, devices, kernelHeaps;
};

// validatePlatform() knows what is wrong but not where. Every check it makes
// can only start failing as entries are added, so the first entry whose
// addition makes a prefix invalid is the one to blame: binary-search for it
// and put that entry's line on the message.
Result<void> validate(const Platform& p, const yaml::Node& memoryKey, const EntryLines& lines) {
    Result<void> whole = validatePlatform(p);
    if (whole)
        return {};
    if (p.memory.empty())
        return memoryKey.errorHere(whole.error().message());

    size_t total = p.memory.size() + p.regions.size() + p.iommus.size() + p.devices.size() + p.kernelHeaps.size();
    size_t lo = 1, hi = total; // invariant: the prefix of hi entries is invalid
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (validatePlatform(prefixOf(p, mid)))
            lo = mid + 1;
        else
            hi = mid;
    }
    Result<void> first = validatePlatform(prefixOf(p, lo));
    size_t index = lo - 1;
    const yaml::Node* where = nullptr;
    for (const std::vector<yaml::Node>* section :
         {&lines.memory, &lines.regions, &lines.iommus, &lines.devices, &lines.kernelHeaps}) {
        if (index < section->size()) {
            where = &(*section)[index];
            break;
        }
        index -= section->size();
    }
    assert(where && !first);
    return where->errorHere(first.error().message());
}

Result<Platform> load(const yaml::Node& root, std::string_view source) {
    if (root.isNull())
        return Error(EINVAL, fmt::format("{}:1: the description is empty", source));
    yaml::Map top = CENALLOC_TRY(root.map(kTopKeys));
    CENALLOC_CHECK(top.require({"name", "memory"}));

    Platform platform;
    platform.source = std::string(source);
    CENALLOC_CHECK(top.read("name", platform.name, yaml::text));
    if (platform.name.empty())
        return top.find("name")->error("the platform name is empty");
    CENALLOC_CHECK(top.read("description", platform.description, yaml::text));

    // Sections are read in dependency order, whatever their order in the file.
    EntryLines lines;
    lines.memory = CENALLOC_TRY(readSection(top, "memory", readBank, platform.memory));
    lines.regions = CENALLOC_TRY(readSection(top, "regions", readRegion, platform.regions));
    lines.iommus = CENALLOC_TRY(readSection(top, "iommus", readIommu, platform.iommus));
    lines.devices = CENALLOC_TRY(readSection(top, "devices", readDevice, platform.devices));
    // Region owners refer forward to devices: checked here, at the owner.
    for (size_t i = 0; i < platform.regions.size(); ++i)
        for (const std::string& owner : platform.regions[i].owners)
            if (!platform.findDevice(owner)) {
                const yaml::Node& entry = lines.regions[i];
                return entry.peek("owners").value_or(entry).errorHere(fmt::format(
                    "reserved region '{}' belongs to unknown device '{}'", platform.regions[i].name, owner));
            }
    lines.kernelHeaps = CENALLOC_TRY(readSection(top, "kernel_heaps", readKernelHeap, platform.kernelHeaps));

    CENALLOC_CHECK(validate(platform, *top.find("memory"), lines));
    return platform;
}

} // namespace

Result<Platform> parsePlatformYaml(std::string_view text, std::string_view sourceName) {
    yaml::Node root = CENALLOC_TRY(yaml::parse(text, sourceName, "platform", "a platform description"));
    return load(root, sourceName);
}

Result<Platform> loadPlatformFile(const std::filesystem::path& path) {
    std::string text = CENALLOC_TRY(readFileLimited(path, kMaxFileSize, "a platform description"));
    return parsePlatformYaml(text, path.string());
}

} // namespace cenalloc
