// SPDX-License-Identifier: MIT
// Board overlays: YAML facts a device tree lacks (RAM, cma=, driver limits), read with the YAML reader.
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <optional>
#include <span>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "base/file.h"
#include "base/try.h"
#include "platform/overlay_apply.h"
#include "platform/yaml_reader.h"

namespace cenalloc {

namespace {

constexpr std::string_view kTopKeys[] = {"name", "description", "memory", "cma_size", "kernel_heaps", "devices"};
// The vendor system heaps cenalloc models (Platform::vendorHeaps).
constexpr std::string_view kVendorHeaps[] = {"system-uncached", "system-dma32", "system-uncached-dma32"};
constexpr std::string_view kBankKeys[] = {"name", "base", "size"};
constexpr std::string_view kDeviceKeys[] = {"name",
                                            "compatible",
                                            "master",
                                            "description",
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

// Overlays are a few lines; anything this large is a mistake.
constexpr uint64_t kMaxOverlaySize = 1 * MiB;

Result<std::optional<uint64_t>> readMask(const yaml::Map& m, std::string_view maskKey, std::string_view bitsKey) {
    if (m.has(maskKey) && m.has(bitsKey))
        return m.errorAt(bitsKey, fmt::format("give either {} or {}, not both", maskKey, bitsKey));
    if (std::optional<yaml::Node> v = m.find(bitsKey)) {
        uint64_t bits = CENALLOC_TRY(v->as(yaml::number));
        if (bits == 0 || bits > 64)
            return v->error(fmt::format("{} is not between 1 and 64", bits));
        return std::optional<uint64_t>(bits == 64 ? kNoLimit : (uint64_t{1} << bits) - 1);
    }
    if (std::optional<yaml::Node> v = m.find(maskKey)) {
        uint64_t mask = CENALLOC_TRY(v->as(yaml::number));
        // An inclusive address limit (2^n-1 or a bus window's end) that ends a page.
        if (mask == 0 || !isAddressLimit(mask))
            return v->error(fmt::format("{:#x} is neither 2^n-1 with n > 0 nor the end of a page", mask));
        return std::optional<uint64_t>(mask);
    }
    return std::optional<uint64_t>();
}

Result<MemoryBank> readBank(const yaml::Node& node) {
    yaml::Map m = CENALLOC_TRY(node.map(kBankKeys));
    CENALLOC_CHECK(m.require({"base", "size"}));
    MemoryBank b;
    CENALLOC_CHECK(m.read("base", b.base, yaml::size));
    CENALLOC_CHECK(m.read("size", b.size, yaml::size));
    b.name = fmt::format("ram-{:x}", b.base);
    CENALLOC_CHECK(m.read("name", b.name, yaml::text));
    if (b.size == 0 || b.base % kPageSize || b.size % kPageSize || b.base > UINT64_MAX - b.size)
        return m.error("a bank must be non-empty, page-aligned and inside the 64-bit space");
    return b;
}

Result<OverlayDevice> readDevice(const yaml::Node& node) {
    yaml::Map entry = CENALLOC_TRY(node.map(kDeviceKeys));
    bool byName = entry.has("name");
    if (byName == entry.has("compatible"))
        return entry.error("give exactly one of 'name' and 'compatible'");
    OverlayDevice d;
    std::string& key = byName ? d.name : d.compatible;
    CENALLOC_CHECK(entry.read(byName ? "name" : "compatible", key, yaml::text));
    if (key.empty())
        return entry.error(fmt::format("the {} is empty", byName ? "name" : "compatible"));
    // Named after the device from here on: "device 'vpu': dma_mask: ...".
    yaml::Map m =
        entry.named(byName ? fmt::format("device '{}'", d.name) : fmt::format("compatible '{}'", d.compatible));

    CENALLOC_CHECK(m.read("master", d.master, yaml::boolean));
    if (byName && d.master == true)
        return m.find("master")->error("true needs a compatible (a named device is a master already)");
    CENALLOC_CHECK(m.read("description", d.description, yaml::text));
    d.dmaMask = CENALLOC_TRY(readMask(m, "dma_mask", "dma_mask_bits"));
    d.coherentDmaMask = CENALLOC_TRY(readMask(m, "coherent_dma_mask", "coherent_dma_mask_bits"));
    CENALLOC_CHECK(m.read("max_segment_size", d.maxSegmentSize, yaml::size));
    if (d.maxSegmentSize && *d.maxSegmentSize < kPageSize)
        return m.errorAt("max_segment_size",
                         fmt::format("max_segment_size {} is below the page size", *d.maxSegmentSize));
    CENALLOC_CHECK(m.read("segment_boundary_mask", d.segmentBoundaryMask, yaml::number));
    if (d.segmentBoundaryMask && (*d.segmentBoundaryMask < kPageSize - 1 ||
                                  (*d.segmentBoundaryMask != kNoLimit && !isPowerOfTwo(*d.segmentBoundaryMask + 1))))
        return m.errorAt("segment_boundary_mask", "segment_boundary_mask must be 2^n-1 and at least a page");
    std::optional<uint64_t> count;
    CENALLOC_CHECK(m.read("max_segment_count", count, yaml::number));
    if (count && *count > UINT32_MAX)
        return m.errorAt("max_segment_count", fmt::format("max_segment_count {} is more than {}", *count, UINT32_MAX));
    if (count)
        d.maxSegmentCount = static_cast<uint32_t>(*count);
    CENALLOC_CHECK(m.read("alignment", d.alignment, yaml::size));
    if (d.alignment && !isPowerOfTwo(*d.alignment))
        return m.errorAt("alignment", fmt::format("alignment {} is not a power of two", *d.alignment));
    CENALLOC_CHECK(m.read("contiguous", d.contiguous, yaml::boolean));
    CENALLOC_CHECK(m.read("coherent", d.coherent, yaml::boolean));
    CENALLOC_CHECK(m.read("access_bits", d.accessBits, yaml::number));
    if (d.accessBits && *d.accessBits == 0)
        return m.errorAt("access_bits", "access bits 0 reach no memory");
    return d;
}

Result<Overlay> readOverlay(const yaml::Node& root, std::string_view source) {
    Overlay o;
    o.source = std::string(source);
    if (root.isNull())
        return o; // an empty overlay changes nothing
    yaml::Map top = CENALLOC_TRY(root.map(kTopKeys));
    CENALLOC_CHECK(top.read("name", o.name, yaml::text));
    if (o.name && o.name->empty())
        return top.errorAt("name", "the platform name is empty");
    CENALLOC_CHECK(top.read("description", o.description, yaml::text));
    CENALLOC_CHECK(top.read("cma_size", o.cmaSize, yaml::size));
    if (o.cmaSize && (*o.cmaSize == 0 || *o.cmaSize % kPageSize))
        return top.errorAt("cma_size", "cma_size must be a non-zero number of pages");

    std::vector<yaml::Node> memory = CENALLOC_TRY(top.items("memory"));
    for (const yaml::Node& entry : memory) {
        MemoryBank b = CENALLOC_TRY(readBank(entry));
        for (const MemoryBank& other : o.memory) {
            if (other.name == b.name)
                return entry.error(fmt::format("bank '{}' is given twice", b.name));
            if (b.base < other.end() && other.base < b.end())
                return entry.error(fmt::format("overlaps bank '{}'", other.name));
        }
        o.memory.push_back(std::move(b));
    }
    for (const yaml::Node& h : CENALLOC_TRY(top.items("kernel_heaps", "a list of heap names"))) {
        if (!h.isScalar())
            return h.error("expected a heap name");
        const std::string& name = h.text();
        if (std::find(std::begin(kVendorHeaps), std::end(kVendorHeaps), name) == std::end(kVendorHeaps))
            return h.error(
                fmt::format("'{}' is not a vendor heap cenalloc models ({})", name, fmt::join(kVendorHeaps, ", ")));
        if (std::find(o.kernelHeaps.begin(), o.kernelHeaps.end(), name) != o.kernelHeaps.end())
            return h.error(fmt::format("'{}' is given twice", name));
        o.kernelHeaps.push_back(name);
    }
    for (const yaml::Node& entry : CENALLOC_TRY(top.items("devices"))) {
        OverlayDevice d = CENALLOC_TRY(readDevice(entry));
        for (const OverlayDevice& other : o.devices)
            if ((!d.name.empty() && other.name == d.name) ||
                (!d.compatible.empty() && other.compatible == d.compatible))
                return entry.error(fmt::format("'{}' has an entry already", d.name.empty() ? d.compatible : d.name));
        o.devices.push_back(std::move(d));
    }
    return o;
}

} // namespace

Result<Overlay> parseOverlayYaml(std::string_view text, std::string_view sourceName) {
    yaml::Node root = CENALLOC_TRY(yaml::parse(text, sourceName, "overlay", "an overlay"));
    return readOverlay(root, sourceName);
}

void applyOverlayEntry(const OverlayDevice& o, Device& d) {
    DmaConstraints& c = d.constraints;
    if (o.description)
        d.description = *o.description;
    if (o.dmaMask)
        c.dmaMask = c.coherentDmaMask = *o.dmaMask;
    if (o.coherentDmaMask)
        c.coherentDmaMask = *o.coherentDmaMask;
    if (o.maxSegmentSize)
        c.maxSegmentSize = *o.maxSegmentSize;
    if (o.segmentBoundaryMask)
        c.segmentBoundaryMask = *o.segmentBoundaryMask;
    if (o.maxSegmentCount)
        c.maxSegmentCount = *o.maxSegmentCount;
    if (o.alignment)
        c.alignment = *o.alignment;
    if (o.contiguous)
        c.contiguous = *o.contiguous;
    if (o.coherent)
        c.coherent = *o.coherent;
    if (o.accessBits)
        c.accessBits = *o.accessBits;
}

Result<Overlay> loadOverlayFile(const std::filesystem::path& path) {
    std::string text = CENALLOC_TRY(readFileLimited(path, kMaxOverlaySize, "an overlay"));
    return parseOverlayYaml(text, path.string());
}

} // namespace cenalloc
