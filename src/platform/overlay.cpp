// SPDX-License-Identifier: MIT
// Board overlays: YAML facts a device tree lacks (RAM, cma=, driver limits), with "<source>:<line>: ..." errors.
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

#include "base/file.h"
#include "platform/overlay_apply.h"

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

std::string joined(std::span<const std::string_view> keys) {
    std::string out;
    for (std::string_view k : keys) {
        if (!out.empty())
            out += ", ";
        out += k;
    }
    return out;
}

class Parser {
public:
    explicit Parser(std::string_view source) : source_(source) {}

    Result<Overlay> parse(const YAML::Node& root) const;

    Error at(const YAML::Node& node, std::string_view message) const {
        YAML::Mark mark = node.Mark();
        if (mark.is_null() || mark.line < 0)
            return Error(EINVAL, fmt::format("{}: {}", source_, message));
        return Error(EINVAL, fmt::format("{}:{}: {}", source_, mark.line + 1, message));
    }

private:
    using Map = std::map<std::string, std::pair<YAML::Node, YAML::Node>, std::less<>>;

    Result<Map> fields(const YAML::Node& node, std::string_view what, std::span<const std::string_view> allowed) const;
    Result<std::string> text(const Map& m, std::string_view key, std::string_view what) const;
    Result<uint64_t> size(const Map& m, std::string_view key, std::string_view what) const;
    Result<uint64_t> number(const Map& m, std::string_view key, std::string_view what) const;
    Result<bool> boolean(const Map& m, std::string_view key, std::string_view what) const;
    Result<std::optional<uint64_t>> mask(const Map& m, std::string_view maskKey, std::string_view bitsKey,
                                         std::string_view what) const;
    Result<MemoryBank> bank(const YAML::Node& node, size_t index) const;
    Result<OverlayDevice> device(const YAML::Node& node, size_t index) const;

    std::string_view source_;
};

Result<Parser::Map> Parser::fields(const YAML::Node& node, std::string_view what,
                                   std::span<const std::string_view> allowed) const {
    if (!node.IsMap())
        return at(node, fmt::format("{}: expected a mapping", what));
    Map m;
    for (auto it = node.begin(); it != node.end(); ++it) {
        YAML::Node key = it->first;
        YAML::Node value = it->second;
        if (!key.IsScalar())
            return at(key, fmt::format("{}: a key must be a plain word", what));
        const std::string& k = key.Scalar();
        if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            return at(key, fmt::format("{}: unknown key '{}' (allowed keys: {})", what, k, joined(allowed)));
        if (!m.emplace(k, std::make_pair(key, value)).second)
            return at(key, fmt::format("{}: key '{}' is given twice", what, k));
    }
    return m;
}

Result<std::string> Parser::text(const Map& m, std::string_view key, std::string_view what) const {
    const auto& [k, v] = m.find(key)->second;
    if (!v.IsScalar())
        return at(k, fmt::format("{}: {}: expected a scalar", what, key));
    return v.Scalar();
}

Result<uint64_t> Parser::size(const Map& m, std::string_view key, std::string_view what) const {
    Result<std::string> t = text(m, key, what);
    if (!t)
        return t.error();
    Result<uint64_t> v = parseSize(*t);
    if (!v)
        return at(m.find(key)->second.first, fmt::format("{}: {}: {}", what, key, v.error().message()));
    return *v;
}

Result<uint64_t> Parser::number(const Map& m, std::string_view key, std::string_view what) const {
    Result<std::string> t = text(m, key, what);
    if (!t)
        return t.error();
    std::string_view s = *t;
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return at(m.find(key)->second.first,
                  fmt::format("{}: {}: '{}' is not a number (expected e.g. 32 or 0xffffffff)", what, key, *t));
    return value;
}

Result<bool> Parser::boolean(const Map& m, std::string_view key, std::string_view what) const {
    Result<std::string> t = text(m, key, what);
    if (!t)
        return t.error();
    std::string lower;
    for (char c : *t)
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "true" || lower == "yes" || lower == "on")
        return true;
    if (lower == "false" || lower == "no" || lower == "off")
        return false;
    return at(m.find(key)->second.first, fmt::format("{}: {}: '{}' is not a boolean", what, key, *t));
}

Result<std::optional<uint64_t>> Parser::mask(const Map& m, std::string_view maskKey, std::string_view bitsKey,
                                             std::string_view what) const {
    bool hasMask = m.count(maskKey) != 0, hasBits = m.count(bitsKey) != 0;
    if (hasMask && hasBits)
        return at(m.find(bitsKey)->second.first,
                  fmt::format("{}: give either {} or {}, not both", what, maskKey, bitsKey));
    if (hasBits) {
        Result<uint64_t> bits = number(m, bitsKey, what);
        if (!bits)
            return bits.error();
        if (*bits == 0 || *bits > 64)
            return at(m.find(bitsKey)->second.first,
                      fmt::format("{}: {}: {} is not between 1 and 64", what, bitsKey, *bits));
        return std::optional<uint64_t>(*bits == 64 ? kNoLimit : (uint64_t{1} << *bits) - 1);
    }
    if (hasMask) {
        Result<uint64_t> v = number(m, maskKey, what);
        if (!v)
            return v.error();
        // An inclusive address limit (2^n-1 or a bus window's end) that ends a page.
        if (*v == 0 || !isAddressLimit(*v))
            return at(
                m.find(maskKey)->second.first,
                fmt::format("{}: {}: {:#x} is neither 2^n-1 with n > 0 nor the end of a page", what, maskKey, *v));
        return std::optional<uint64_t>(*v);
    }
    return std::optional<uint64_t>();
}

Result<MemoryBank> Parser::bank(const YAML::Node& node, size_t index) const {
    std::string what = fmt::format("memory[{}]", index);
    Result<Map> m = fields(node, what, kBankKeys);
    if (!m)
        return m.error();
    for (std::string_view key : {"base", "size"})
        if (!m->count(key))
            return at(node, fmt::format("{}: missing required key '{}'", what, key));
    MemoryBank b;
    Result<uint64_t> base = size(*m, "base", what);
    if (!base)
        return base.error();
    Result<uint64_t> length = size(*m, "size", what);
    if (!length)
        return length.error();
    b.base = *base;
    b.size = *length;
    if (m->count("name")) {
        Result<std::string> name = text(*m, "name", what);
        if (!name)
            return name.error();
        b.name = *name;
    } else {
        b.name = fmt::format("ram-{:x}", b.base);
    }
    if (b.size == 0 || b.base % kPageSize || b.size % kPageSize || b.base > UINT64_MAX - b.size)
        return at(node, fmt::format("{}: a bank must be non-empty, page-aligned and inside the 64-bit space", what));
    return b;
}

Result<OverlayDevice> Parser::device(const YAML::Node& node, size_t index) const {
    std::string what = fmt::format("devices[{}]", index);
    Result<Map> m = fields(node, what, kDeviceKeys);
    if (!m)
        return m.error();
    bool byName = m->count("name") != 0, byCompatible = m->count("compatible") != 0;
    if (byName == byCompatible)
        return at(node, fmt::format("{}: give exactly one of 'name' and 'compatible'", what));
    OverlayDevice d;
    Result<std::string> key = text(*m, byName ? "name" : "compatible", what);
    if (!key)
        return key.error();
    if (key->empty())
        return at(node, fmt::format("{}: the {} is empty", what, byName ? "name" : "compatible"));
    (byName ? d.name : d.compatible) = *key;
    what = byName ? fmt::format("device '{}'", d.name) : fmt::format("compatible '{}'", d.compatible);

    auto readBool = [&](std::string_view k, std::optional<bool>& out) -> Result<void> {
        if (!m->count(k))
            return {};
        Result<bool> v = boolean(*m, k, what);
        if (!v)
            return v.error();
        out = *v;
        return {};
    };
    auto readSize = [&](std::string_view k, std::optional<uint64_t>& out) -> Result<void> {
        if (!m->count(k))
            return {};
        Result<uint64_t> v = size(*m, k, what);
        if (!v)
            return v.error();
        out = *v;
        return {};
    };
    auto readNumber = [&](std::string_view k, std::optional<uint64_t>& out) -> Result<void> {
        if (!m->count(k))
            return {};
        Result<uint64_t> v = number(*m, k, what);
        if (!v)
            return v.error();
        out = *v;
        return {};
    };

    if (Result<void> r = readBool("master", d.master); !r)
        return r.error();
    if (byName && d.master == true)
        return at(m->find("master")->second.first,
                  fmt::format("{}: master: true needs a compatible (a named device is a master already)", what));
    if (m->count("description")) {
        Result<std::string> t = text(*m, "description", what);
        if (!t)
            return t.error();
        d.description = *t;
    }
    Result<std::optional<uint64_t>> dma = mask(*m, "dma_mask", "dma_mask_bits", what);
    if (!dma)
        return dma.error();
    d.dmaMask = *dma;
    Result<std::optional<uint64_t>> coherentMask = mask(*m, "coherent_dma_mask", "coherent_dma_mask_bits", what);
    if (!coherentMask)
        return coherentMask.error();
    d.coherentDmaMask = *coherentMask;
    if (Result<void> r = readSize("max_segment_size", d.maxSegmentSize); !r)
        return r.error();
    if (d.maxSegmentSize && *d.maxSegmentSize < kPageSize)
        return at(m->find("max_segment_size")->second.first,
                  fmt::format("{}: max_segment_size {} is below the page size", what, *d.maxSegmentSize));
    if (Result<void> r = readNumber("segment_boundary_mask", d.segmentBoundaryMask); !r)
        return r.error();
    if (d.segmentBoundaryMask && (*d.segmentBoundaryMask < kPageSize - 1 ||
                                  (*d.segmentBoundaryMask != kNoLimit && !isPowerOfTwo(*d.segmentBoundaryMask + 1))))
        return at(m->find("segment_boundary_mask")->second.first,
                  fmt::format("{}: segment_boundary_mask must be 2^n-1 and at least a page", what));
    std::optional<uint64_t> count;
    if (Result<void> r = readNumber("max_segment_count", count); !r)
        return r.error();
    if (count && *count > UINT32_MAX)
        return at(m->find("max_segment_count")->second.first,
                  fmt::format("{}: max_segment_count {} is more than {}", what, *count, UINT32_MAX));
    if (count)
        d.maxSegmentCount = static_cast<uint32_t>(*count);
    if (Result<void> r = readSize("alignment", d.alignment); !r)
        return r.error();
    if (d.alignment && !isPowerOfTwo(*d.alignment))
        return at(m->find("alignment")->second.first,
                  fmt::format("{}: alignment {} is not a power of two", what, *d.alignment));
    if (Result<void> r = readBool("contiguous", d.contiguous); !r)
        return r.error();
    if (Result<void> r = readBool("coherent", d.coherent); !r)
        return r.error();
    if (Result<void> r = readNumber("access_bits", d.accessBits); !r)
        return r.error();
    if (d.accessBits && *d.accessBits == 0)
        return at(m->find("access_bits")->second.first, fmt::format("{}: access bits 0 reach no memory", what));
    return d;
}

Result<Overlay> Parser::parse(const YAML::Node& root) const {
    Overlay o;
    o.source = std::string(source_);
    if (!root.IsDefined() || root.IsNull())
        return o; // an empty overlay changes nothing
    Result<Map> top = fields(root, "overlay", kTopKeys);
    if (!top)
        return top.error();
    if (top->count("name")) {
        Result<std::string> t = text(*top, "name", "overlay");
        if (!t)
            return t.error();
        if (t->empty())
            return at(top->find("name")->second.first, "overlay: the platform name is empty");
        o.name = *t;
    }
    if (top->count("description")) {
        Result<std::string> t = text(*top, "description", "overlay");
        if (!t)
            return t.error();
        o.description = *t;
    }
    if (top->count("cma_size")) {
        Result<uint64_t> v = size(*top, "cma_size", "overlay");
        if (!v)
            return v.error();
        if (*v == 0 || *v % kPageSize)
            return at(top->find("cma_size")->second.first, "overlay: cma_size must be a non-zero number of pages");
        o.cmaSize = *v;
    }
    auto list = [&](std::string_view key) -> Result<std::vector<YAML::Node>> {
        std::vector<YAML::Node> items;
        auto it = top->find(key);
        if (it == top->end() || it->second.second.IsNull())
            return items;
        if (!it->second.second.IsSequence())
            return at(it->second.first, fmt::format("overlay: {}: expected a list", key));
        for (auto item = it->second.second.begin(); item != it->second.second.end(); ++item)
            items.push_back(*item);
        return items;
    };
    Result<std::vector<YAML::Node>> memory = list("memory");
    if (!memory)
        return memory.error();
    for (size_t i = 0; i < memory->size(); ++i) {
        Result<MemoryBank> b = bank((*memory)[i], i);
        if (!b)
            return b.error();
        for (const MemoryBank& other : o.memory) {
            if (other.name == b->name)
                return at((*memory)[i], fmt::format("memory[{}]: bank '{}' is given twice", i, b->name));
            if (b->base < other.end() && other.base < b->end())
                return at((*memory)[i], fmt::format("memory[{}]: overlaps bank '{}'", i, other.name));
        }
        o.memory.push_back(std::move(*b));
    }
    Result<std::vector<YAML::Node>> heaps = list("kernel_heaps");
    if (!heaps)
        return heaps.error();
    for (const YAML::Node& h : *heaps) {
        if (!h.IsScalar())
            return at(h, "overlay: kernel_heaps: expected heap names");
        const std::string& name = h.Scalar();
        if (std::find(std::begin(kVendorHeaps), std::end(kVendorHeaps), name) == std::end(kVendorHeaps))
            return at(h, fmt::format("overlay: kernel_heaps: '{}' is not a vendor heap cenalloc models ({})", name,
                                     joined(kVendorHeaps)));
        if (std::find(o.kernelHeaps.begin(), o.kernelHeaps.end(), name) != o.kernelHeaps.end())
            return at(h, fmt::format("overlay: kernel_heaps: '{}' is given twice", name));
        o.kernelHeaps.push_back(name);
    }
    Result<std::vector<YAML::Node>> devices = list("devices");
    if (!devices)
        return devices.error();
    for (size_t i = 0; i < devices->size(); ++i) {
        Result<OverlayDevice> d = device((*devices)[i], i);
        if (!d)
            return d.error();
        for (const OverlayDevice& other : o.devices)
            if ((!d->name.empty() && other.name == d->name) ||
                (!d->compatible.empty() && other.compatible == d->compatible))
                return at((*devices)[i], fmt::format("devices[{}]: '{}' has an entry already", i,
                                                     d->name.empty() ? d->compatible : d->name));
        o.devices.push_back(std::move(*d));
    }
    return o;
}

} // namespace

Result<Overlay> parseOverlayYaml(std::string_view text, std::string_view sourceName) {
    // yaml-cpp throws; this is where its exceptions become Results.
    try {
        std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
        Parser parser(sourceName);
        for (size_t i = 1; i < documents.size(); ++i)
            if (!documents[i].IsNull())
                return parser.at(documents[i], "an overlay is one yaml document, found another here");
        return parser.parse(documents.empty() ? YAML::Node() : documents.front());
    } catch (const YAML::ParserException& e) {
        if (e.mark.is_null() || e.mark.line < 0)
            return Error(EINVAL, fmt::format("{}: yaml syntax error: {}", sourceName, e.msg));
        return Error(EINVAL, fmt::format("{}:{}: yaml syntax error: {}", sourceName, e.mark.line + 1, e.msg));
    } catch (const YAML::Exception& e) {
        return Error(EINVAL, fmt::format("{}: cannot read the overlay: {}", sourceName, e.what()));
    }
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
    auto text = readFileLimited(path, kMaxOverlaySize, "an overlay");
    if (!text)
        return text.error();
    return parseOverlayYaml(*text, path.string());
}

} // namespace cenalloc
