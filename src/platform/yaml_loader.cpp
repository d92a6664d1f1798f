// SPDX-License-Identifier: MIT
// The YAML platform loader: schema checks with "<source>:<line>: <problem>" errors.
#include <cenalloc/platform.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <initializer_list>
#include <map>
#include <span>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

#include "base/file.h"

namespace cenalloc {

namespace {

using KeyList = std::span<const std::string_view>;

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

const char* typeName(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
    }
    return "an undefined node";
}

std::string joinKeys(KeyList keys) {
    std::string out;
    for (std::string_view k : keys) {
        if (!out.empty())
            out += ", ";
        out += k;
    }
    return out;
}

bool contains(KeyList keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
}

std::string_view trim(std::string_view s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && space(s.back()))
        s.remove_suffix(1);
    return s;
}

// Plain integers (masks, bit counts, access bits): decimal or 0x-hex, no
// size suffix, so "dma_mask: 4G" is refused instead of silently meaning 2^32.
Result<uint64_t> parseNumber(std::string_view text) {
    std::string_view s = trim(text);
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
    if (ec == std::errc::result_out_of_range)
        return Error(ERANGE, fmt::format("'{}' does not fit in 64 bits", text));
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return Error(EINVAL, fmt::format("'{}' is not a number (expected e.g. 32 or 0xffffffff)", text));
    return value;
}

Result<bool> parseBool(std::string_view text) {
    std::string lower;
    for (char c : trim(text))
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "true" || lower == "yes" || lower == "on")
        return true;
    if (lower == "false" || lower == "no" || lower == "off")
        return false;
    return Error(EINVAL, fmt::format("'{}' is not a boolean (expected true or false)", text));
}

uint64_t maskOfBits(uint64_t bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

/// The key/value pairs of one YAML mapping, checked against the keys its
/// section allows.
struct Fields {
    /// What the mapping describes, for messages: "device 'gpu'", "devices[2]".
    std::string what;
    YAML::Node node;
    /// key -> (key node, value node); the key node carries the line of the key.
    std::map<std::string, std::pair<YAML::Node, YAML::Node>, std::less<>> byKey;

    const YAML::Node* value(std::string_view key) const {
        auto it = byKey.find(key);
        return it == byKey.end() ? nullptr : &it->second.second;
    }
    const YAML::Node& keyNode(std::string_view key) const { return byKey.find(key)->second.first; }
};

/// Where each list entry started, to put a line on errors found only once
/// the whole platform is assembled (overlaps, dangling references, ...).
struct EntryLines {
    YAML::Node memoryKey;
    std::vector<YAML::Node> memory, regions, iommus, devices, kernelHeaps;
};

class Loader {
public:
    explicit Loader(std::string_view source) : source_(source) {}

    Result<Platform> load(const YAML::Node& root) const;
    Error errorAt(const YAML::Node& node, std::string_view message) const;

private:
    Error fieldError(const Fields& f, std::string_view key, std::string_view problem) const;

    Result<Fields> readFields(const YAML::Node& node, std::string what, KeyList allowed) const;
    Result<void> requireKeys(const Fields& f, std::initializer_list<std::string_view> keys) const;
    Result<const YAML::Node*> scalar(const Fields& f, std::string_view key) const;
    Result<void> readString(const Fields& f, std::string_view key, std::string& out) const;
    Result<void> readSize(const Fields& f, std::string_view key, uint64_t& out) const;
    Result<void> readNumber(const Fields& f, std::string_view key, uint64_t& out) const;
    Result<void> readBool(const Fields& f, std::string_view key, bool& out) const;
    Result<void> readMask(const Fields& f, std::string_view maskKey, std::string_view bitsKey,
                          std::optional<uint64_t>& out) const;
    Result<std::vector<YAML::Node>> readList(const Fields& top, std::string_view key) const;
    Result<Fields> readEntry(const YAML::Node& node, std::string_view section, size_t index, std::string_view noun,
                             KeyList allowed) const;

    Result<MemoryBank> readBank(const YAML::Node& node, size_t index) const;
    Result<ReservedRegion> readRegion(const YAML::Node& node, size_t index) const;
    Result<Iommu> readIommu(const YAML::Node& node, size_t index) const;
    Result<Device> readDevice(const YAML::Node& node, size_t index) const;
    Result<KernelHeapDescription> readKernelHeap(const YAML::Node& node, size_t index) const;
    Result<void> validate(const Platform& platform, const YAML::Node& root, const EntryLines& lines) const;

    std::string_view source_;
};

Error Loader::errorAt(const YAML::Node& node, std::string_view message) const {
    YAML::Mark mark = node.Mark();
    if (mark.is_null() || mark.line < 0)
        return Error(EINVAL, fmt::format("{}: {}", source_, message));
    return Error(EINVAL, fmt::format("{}:{}: {}", source_, mark.line + 1, message));
}

Error Loader::fieldError(const Fields& f, std::string_view key, std::string_view problem) const {
    const YAML::Node* v = f.value(key);
    // A value on its own line ("key:\n  - ...") is best reported where it is.
    return errorAt(v && v->IsDefined() && !v->IsNull() ? *v : f.keyNode(key),
                   fmt::format("{}: {}: {}", f.what, key, problem));
}

Result<Fields> Loader::readFields(const YAML::Node& node, std::string what, KeyList allowed) const {
    if (!node.IsMap())
        return errorAt(node, fmt::format("{}: expected a mapping, got {}", what, typeName(node)));
    Fields f{std::move(what), node, {}};
    for (auto it = node.begin(); it != node.end(); ++it) {
        // Copies: it-> yields a proxy that dies at the end of the expression.
        YAML::Node key = it->first;
        YAML::Node value = it->second;
        if (!key.IsScalar())
            return errorAt(key, fmt::format("{}: a key must be a plain word, got {}", f.what, typeName(key)));
        const std::string& name = key.Scalar();
        if (!contains(allowed, name))
            return errorAt(key,
                           fmt::format("{}: unknown key '{}' (allowed keys: {})", f.what, name, joinKeys(allowed)));
        // yaml-cpp keeps both copies of a repeated key; which one wins would
        // be an accident of its implementation, so refuse.
        if (!f.byKey.emplace(name, std::make_pair(key, value)).second)
            return errorAt(key, fmt::format("{}: key '{}' is given twice", f.what, name));
    }
    return f;
}

Result<void> Loader::requireKeys(const Fields& f, std::initializer_list<std::string_view> keys) const {
    for (std::string_view k : keys)
        if (!f.value(k))
            return errorAt(f.node, fmt::format("{}: missing required key '{}'", f.what, k));
    return {};
}

Result<const YAML::Node*> Loader::scalar(const Fields& f, std::string_view key) const {
    const YAML::Node* v = f.value(key);
    if (v && !v->IsScalar())
        return fieldError(f, key, fmt::format("expected a scalar, got {}", typeName(*v)));
    return v;
}

Result<void> Loader::readString(const Fields& f, std::string_view key, std::string& out) const {
    Result<const YAML::Node*> v = scalar(f, key);
    if (!v)
        return v.error();
    if (*v)
        out = (*v)->Scalar();
    return {};
}

Result<void> Loader::readSize(const Fields& f, std::string_view key, uint64_t& out) const {
    Result<const YAML::Node*> v = scalar(f, key);
    if (!v)
        return v.error();
    if (!*v)
        return {};
    Result<uint64_t> size = parseSize((*v)->Scalar());
    if (!size)
        return fieldError(f, key, size.error().message());
    out = *size;
    return {};
}

Result<void> Loader::readNumber(const Fields& f, std::string_view key, uint64_t& out) const {
    Result<const YAML::Node*> v = scalar(f, key);
    if (!v)
        return v.error();
    if (!*v)
        return {};
    Result<uint64_t> n = parseNumber((*v)->Scalar());
    if (!n)
        return fieldError(f, key, n.error().message());
    out = *n;
    return {};
}

Result<void> Loader::readBool(const Fields& f, std::string_view key, bool& out) const {
    Result<const YAML::Node*> v = scalar(f, key);
    if (!v)
        return v.error();
    if (!*v)
        return {};
    Result<bool> b = parseBool((*v)->Scalar());
    if (!b)
        return fieldError(f, key, b.error().message());
    out = *b;
    return {};
}

// A mask given either as a value ("dma_mask: 0xffffffff") or as a bit count
// ("dma_mask_bits: 32", Linux's DMA_BIT_MASK(32)).
Result<void> Loader::readMask(const Fields& f, std::string_view maskKey, std::string_view bitsKey,
                              std::optional<uint64_t>& out) const {
    if (f.value(maskKey) && f.value(bitsKey)) {
        // Blame whichever of the two comes second in the file.
        std::string_view later = f.keyNode(maskKey).Mark().pos > f.keyNode(bitsKey).Mark().pos ? maskKey : bitsKey;
        return fieldError(f, later, fmt::format("give either {} or {}, not both", maskKey, bitsKey));
    }
    if (f.value(bitsKey)) {
        uint64_t bits = 0;
        if (Result<void> r = readNumber(f, bitsKey, bits); !r)
            return r;
        if (bits == 0)
            return fieldError(f, bitsKey, "a mask of zero bits lets the device reach no memory");
        if (bits > 64)
            return fieldError(f, bitsKey, fmt::format("{} bits is more than the 64 an address has", bits));
        out = maskOfBits(bits);
    } else if (f.value(maskKey)) {
        uint64_t mask = 0;
        if (Result<void> r = readNumber(f, maskKey, mask); !r)
            return r;
        if (mask == 0)
            return fieldError(f, maskKey, "a mask of zero lets the device reach no memory");
        // A mask is an inclusive address limit: 2^n-1, or the end of a bus
        // window (0xbfffffff for 3 GiB), which ends a page.
        if (!isAddressLimit(mask))
            return fieldError(f, maskKey,
                              fmt::format("{:#x} is neither 2^n-1 nor the end of a page (use e.g. 0xffffffff, or "
                                          "0xbfffffff for a 3 GiB window)",
                                          mask));
        out = mask;
    }
    return {};
}

Result<std::vector<YAML::Node>> Loader::readList(const Fields& top, std::string_view key) const {
    const YAML::Node* v = top.value(key);
    std::vector<YAML::Node> items;
    // "regions:" with every entry commented out is an empty list, not an error.
    if (!v || v->IsNull())
        return items;
    if (!v->IsSequence())
        return fieldError(top, key, fmt::format("expected a list, got {}", typeName(*v)));
    for (auto it = v->begin(); it != v->end(); ++it)
        items.push_back(*it);
    return items;
}

Result<Fields> Loader::readEntry(const YAML::Node& node, std::string_view section, size_t index, std::string_view noun,
                                 KeyList allowed) const {
    // Name the entry by its name when it has a usable one, by position otherwise.
    std::string what = fmt::format("{}[{}]", section, index);
    if (node.IsMap()) {
        // A missing key yields an invalid node, on which anything but
        // IsDefined() throws.
        YAML::Node name = node["name"];
        if (name.IsDefined() && name.IsScalar())
            what = fmt::format("{} '{}'", noun, name.Scalar());
    }
    Result<Fields> f = readFields(node, std::move(what), allowed);
    if (!f)
        return f;
    if (Result<void> r = requireKeys(*f, {"name"}); !r)
        return r.error();
    return f;
}

Result<MemoryBank> Loader::readBank(const YAML::Node& node, size_t index) const {
    Result<Fields> f = readEntry(node, "memory", index, "memory bank", kBankKeys);
    if (!f)
        return f.error();
    if (Result<void> r = requireKeys(*f, {"base", "size"}); !r)
        return r.error();
    MemoryBank bank;
    if (Result<void> r = readString(*f, "name", bank.name); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "base", bank.base); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "size", bank.size); !r)
        return r.error();
    return bank;
}

Result<ReservedRegion> Loader::readRegion(const YAML::Node& node, size_t index) const {
    Result<Fields> f = readEntry(node, "regions", index, "reserved region", kRegionKeys);
    if (!f)
        return f.error();
    if (Result<void> r = requireKeys(*f, {"kind", "base", "size"}); !r)
        return r.error();
    ReservedRegion region;
    std::string kind;
    if (Result<void> r = readString(*f, "name", region.name); !r)
        return r.error();
    if (Result<void> r = readString(*f, "kind", kind); !r)
        return r.error();
    if (kind == "cma")
        region.kind = RegionKind::Cma;
    else if (kind == "carveout")
        region.kind = RegionKind::Carveout;
    else
        return fieldError(*f, "kind", fmt::format("'{}' is not a region kind (expected cma or carveout)", kind));
    if (Result<void> r = readSize(*f, "base", region.base); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "size", region.size); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "no_map", region.noMap); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "default", region.isDefault); !r)
        return r.error();
    if (Result<void> r = readNumber(*f, "access_bits", region.accessBits); !r)
        return r.error();
    // owners: the devices the region belongs to (they name it in their
    // memory-region); it is then nobody else's heap.
    if (const YAML::Node* owners = f->value("owners"); owners && !owners->IsNull()) {
        if (!owners->IsSequence())
            return fieldError(*f, "owners", fmt::format("expected a list of device names, got {}", typeName(*owners)));
        for (auto it = owners->begin(); it != owners->end(); ++it) {
            YAML::Node owner = *it;
            if (!owner.IsScalar() || owner.Scalar().empty())
                return errorAt(owner, fmt::format("{}: owners: expected a device name", f->what));
            if (std::find(region.owners.begin(), region.owners.end(), owner.Scalar()) != region.owners.end())
                return errorAt(owner, fmt::format("{}: owners: '{}' is given twice", f->what, owner.Scalar()));
            region.owners.push_back(owner.Scalar());
        }
    }
    region.heap = region.owners.empty();
    return region;
}

Result<Iommu> Loader::readIommu(const YAML::Node& node, size_t index) const {
    Result<Fields> f = readEntry(node, "iommus", index, "iommu", kIommuKeys);
    if (!f)
        return f.error();
    Iommu iommu;
    if (Result<void> r = readString(*f, "name", iommu.name); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "page_size", iommu.pageSize); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "aperture_base", iommu.apertureBase); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "aperture_size", iommu.apertureSize); !r)
        return r.error();
    return iommu;
}

Result<Device> Loader::readDevice(const YAML::Node& node, size_t index) const {
    Result<Fields> f = readEntry(node, "devices", index, "device", kDeviceKeys);
    if (!f)
        return f.error();
    Device device;
    DmaConstraints& c = device.constraints;
    if (Result<void> r = readString(*f, "name", device.name); !r)
        return r.error();
    if (Result<void> r = readString(*f, "description", device.description); !r)
        return r.error();
    if (f->value("iommu")) {
        std::string iommu;
        if (Result<void> r = readString(*f, "iommu", iommu); !r)
            return r.error();
        device.iommu = std::move(iommu);
    }
    if (Result<void> r = readString(*f, "iommu_group", device.iommuGroup); !r)
        return r.error();
    std::optional<uint64_t> dmaMask, coherentMask;
    if (Result<void> r = readMask(*f, "dma_mask", "dma_mask_bits", dmaMask); !r)
        return r.error();
    if (Result<void> r = readMask(*f, "coherent_dma_mask", "coherent_dma_mask_bits", coherentMask); !r)
        return r.error();
    c.dmaMask = dmaMask.value_or(kNoLimit);
    // As in Linux, a driver that sets only the streaming mask gets the same
    // coherent mask (dma_set_mask_and_coherent is the common call).
    c.coherentDmaMask = coherentMask.value_or(c.dmaMask);
    if (Result<void> r = readSize(*f, "max_segment_size", c.maxSegmentSize); !r)
        return r.error();
    if (Result<void> r = readNumber(*f, "segment_boundary_mask", c.segmentBoundaryMask); !r)
        return r.error();
    uint64_t count = c.maxSegmentCount;
    if (Result<void> r = readNumber(*f, "max_segment_count", count); !r)
        return r.error();
    if (count > UINT32_MAX)
        return fieldError(*f, "max_segment_count", fmt::format("{} is more than {}", count, UINT32_MAX));
    c.maxSegmentCount = static_cast<uint32_t>(count);
    if (Result<void> r = readSize(*f, "alignment", c.alignment); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "contiguous", c.contiguous); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "coherent", c.coherent); !r)
        return r.error();
    if (Result<void> r = readNumber(*f, "access_bits", c.accessBits); !r)
        return r.error();
    return device;
}

Result<KernelHeapDescription> Loader::readKernelHeap(const YAML::Node& node, size_t index) const {
    Result<Fields> f = readEntry(node, "kernel_heaps", index, "kernel heap", kKernelHeapKeys);
    if (!f)
        return f.error();
    KernelHeapDescription heap;
    if (Result<void> r = readString(*f, "name", heap.name); !r)
        return r.error();
    if (Result<void> r = readString(*f, "description", heap.description); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "contiguous", heap.contiguous); !r)
        return r.error();
    if (Result<void> r = readBool(*f, "cached", heap.cached); !r)
        return r.error();
    if (Result<void> r = readSize(*f, "size", heap.size); !r)
        return r.error();
    return heap;
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

// validatePlatform() knows what is wrong but not where. Every check it makes
// can only start failing as entries are added, so the first entry whose
// addition makes a prefix invalid is the one to blame: binary-search for it
// and put that entry's line on the message.
Result<void> Loader::validate(const Platform& p, const YAML::Node& root, const EntryLines& lines) const {
    Result<void> whole = validatePlatform(p);
    if (whole)
        return {};
    if (p.memory.empty())
        return errorAt(lines.memoryKey.IsDefined() ? lines.memoryKey : root, whole.error().message());

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
    const YAML::Node* where = nullptr;
    for (const std::vector<YAML::Node>* section :
         {&lines.memory, &lines.regions, &lines.iommus, &lines.devices, &lines.kernelHeaps}) {
        if (index < section->size()) {
            where = &(*section)[index];
            break;
        }
        index -= section->size();
    }
    assert(where && !first);
    return errorAt(*where, first.error().message());
}

Result<Platform> Loader::load(const YAML::Node& root) const {
    if (root.IsNull() || !root.IsDefined())
        return Error(EINVAL, fmt::format("{}:1: the description is empty", source_));
    Result<Fields> top = readFields(root, "platform", kTopKeys);
    if (!top)
        return top.error();
    if (!top->value("name"))
        return errorAt(root, "missing required key 'name'");
    if (!top->value("memory"))
        return errorAt(root, "missing required key 'memory'");

    Platform platform;
    platform.source = std::string(source_);
    if (Result<void> r = readString(*top, "name", platform.name); !r)
        return r.error();
    if (platform.name.empty())
        return fieldError(*top, "name", "the platform name is empty");
    if (Result<void> r = readString(*top, "description", platform.description); !r)
        return r.error();

    EntryLines lines;
    lines.memoryKey = top->keyNode("memory");
    // Sections are read in dependency order, whatever their order in the file.
    Result<std::vector<YAML::Node>> memory = readList(*top, "memory");
    if (!memory)
        return memory.error();
    for (size_t i = 0; i < memory->size(); ++i) {
        Result<MemoryBank> bank = readBank((*memory)[i], i);
        if (!bank)
            return bank.error();
        platform.memory.push_back(std::move(*bank));
    }
    lines.memory = std::move(*memory);

    Result<std::vector<YAML::Node>> regions = readList(*top, "regions");
    if (!regions)
        return regions.error();
    for (size_t i = 0; i < regions->size(); ++i) {
        Result<ReservedRegion> region = readRegion((*regions)[i], i);
        if (!region)
            return region.error();
        platform.regions.push_back(std::move(*region));
    }
    lines.regions = std::move(*regions);

    Result<std::vector<YAML::Node>> iommus = readList(*top, "iommus");
    if (!iommus)
        return iommus.error();
    for (size_t i = 0; i < iommus->size(); ++i) {
        Result<Iommu> iommu = readIommu((*iommus)[i], i);
        if (!iommu)
            return iommu.error();
        platform.iommus.push_back(std::move(*iommu));
    }
    lines.iommus = std::move(*iommus);

    Result<std::vector<YAML::Node>> devices = readList(*top, "devices");
    if (!devices)
        return devices.error();
    for (size_t i = 0; i < devices->size(); ++i) {
        Result<Device> device = readDevice((*devices)[i], i);
        if (!device)
            return device.error();
        platform.devices.push_back(std::move(*device));
    }
    lines.devices = std::move(*devices);
    // Region owners refer forward to devices: checked here, at the owner.
    for (size_t i = 0; i < platform.regions.size(); ++i)
        for (const std::string& owner : platform.regions[i].owners)
            if (!platform.findDevice(owner)) {
                const YAML::Node& entry = lines.regions[i];
                return errorAt(entry["owners"].IsDefined() ? entry["owners"] : entry,
                               fmt::format("reserved region '{}' belongs to unknown device '{}'",
                                           platform.regions[i].name, owner));
            }

    Result<std::vector<YAML::Node>> kernelHeaps = readList(*top, "kernel_heaps");
    if (!kernelHeaps)
        return kernelHeaps.error();
    for (size_t i = 0; i < kernelHeaps->size(); ++i) {
        Result<KernelHeapDescription> heap = readKernelHeap((*kernelHeaps)[i], i);
        if (!heap)
            return heap.error();
        platform.kernelHeaps.push_back(std::move(*heap));
    }
    lines.kernelHeaps = std::move(*kernelHeaps);

    if (Result<void> r = validate(platform, root, lines); !r)
        return r.error();
    return platform;
}

Error syntaxError(std::string_view source, const YAML::ParserException& e) {
    if (e.mark.is_null() || e.mark.line < 0)
        return Error(EINVAL, fmt::format("{}: yaml syntax error: {}", source, e.msg));
    return Error(EINVAL, fmt::format("{}:{}: yaml syntax error: {}", source, e.mark.line + 1, e.msg));
}

} // namespace

Result<Platform> parsePlatformYaml(std::string_view text, std::string_view sourceName) {
    // yaml-cpp reports errors by throwing; this is the boundary where they
    // become Results, for parsing and for any node access that might throw.
    try {
        std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
        Loader loader(sourceName);
        // A stray "---" at the end is harmless; a second platform is not.
        for (size_t i = 1; i < documents.size(); ++i)
            if (!documents[i].IsNull())
                return loader.errorAt(documents[i], "a platform description is one yaml document, found another here");
        return loader.load(documents.empty() ? YAML::Node() : documents.front());
    } catch (const YAML::ParserException& e) {
        return syntaxError(sourceName, e);
    } catch (const YAML::Exception& e) {
        // Only node accesses the loader does not guard could get here.
        return Error(EINVAL, fmt::format("{}: cannot read the description: {}", sourceName, e.what()));
    }
}

Result<Platform> loadPlatformFile(const std::filesystem::path& path) {
    auto text = readFileLimited(path, kMaxFileSize, "a platform description");
    if (!text)
        return text.error();
    return parsePlatformYaml(*text, path.string());
}

} // namespace cenalloc
