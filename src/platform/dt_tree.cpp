// SPDX-License-Identifier: MIT
// Validating and indexing a flattened device tree with libfdt.
#include "platform/dt_tree.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <libfdt.h>

#include "base/try.h"

namespace cenalloc {

const DtProperty* DtNode::find(std::string_view property) const {
    for (const DtProperty& p : properties)
        if (p.name == property)
            return &p;
    return nullptr;
}

std::string_view DtNode::baseName() const {
    return name.substr(0, name.find('@'));
}

std::string_view DtNode::unitAddress() const {
    size_t at = name.find('@');
    return at == std::string_view::npos ? std::string_view() : name.substr(at + 1);
}

namespace {

Error refuse(std::string_view source, std::string_view what, int fdtError) {
    return Error(EINVAL,
                 fmt::format("{}: not a valid flattened device tree: {} ({})", source, what, fdt_strerror(fdtError)));
}

bool statusOkay(const DtNode& node) {
    const DtProperty* status = node.find("status");
    if (!status)
        return true;
    std::optional<std::string_view> s = dtString(status);
    return s && (*s == "okay" || *s == "ok");
}

// Walk the structure block tag by tag with 64-bit arithmetic before libfdt
// walks it. libfdt 1.6.1 computes the next tag's offset in int: a property
// length near 2^31 wraps it backwards, and fdt_check_full() then loops
// forever (found by fuzz/dtb_fuzz.cpp; dtc 1.6.1 crashes on the same blob).
// Every step here moves strictly forward inside the block, so this ends.
Result<void> checkStructure(const void* fdt, size_t size, std::string_view source) {
    auto bad = [&](std::string_view what) {
        return Error(EINVAL, fmt::format("{}: not a valid flattened device tree: {}", source, what));
    };
    const auto* bytes = static_cast<const unsigned char*>(fdt);
    auto be32 = [&](uint64_t at) {
        return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) | (uint32_t{bytes[at + 2]} << 8) |
               uint32_t{bytes[at + 3]};
    };
    uint64_t total = std::min<uint64_t>(fdt_totalsize(fdt), size);
    uint64_t structStart = fdt_off_dt_struct(fdt);
    uint64_t structSize = fdt_version(fdt) >= 17 ? fdt_size_dt_struct(fdt) : total - std::min(total, structStart);
    uint64_t stringsStart = fdt_off_dt_strings(fdt), stringsSize = fdt_size_dt_strings(fdt);
    if (structStart > total || structSize > total - structStart || stringsStart > total ||
        stringsSize > total - stringsStart)
        return bad("a block lies outside the blob");
    uint64_t end = structStart + structSize;
    uint64_t at = structStart;
    int depth = 0;
    for (;;) {
        if (at % 4 != 0 || end - at < 4 || at > end)
            return bad("the structure block ends without FDT_END");
        uint32_t tag = be32(at);
        switch (tag) {
        case FDT_BEGIN_NODE: {
            uint64_t name = at + 4;
            uint64_t nul = name;
            while (nul < end && bytes[nul] != 0)
                ++nul;
            if (nul >= end)
                return bad("a node name runs past the structure block");
            at = (nul + 1 + 3) & ~uint64_t{3};
            if (++depth > kDtMaxDepth)
                return Error(EINVAL, fmt::format("{}: nodes are nested deeper than {} levels", source, kDtMaxDepth));
            break;
        }
        case FDT_PROP: {
            if (end - at < 12)
                return bad("a property header runs past the structure block");
            uint64_t length = be32(at + 4), nameOffset = be32(at + 8);
            if (length > end - at - 12)
                return bad("a property value runs past the structure block");
            if (nameOffset >= stringsSize)
                return bad("a property name lies outside the strings block");
            const void* nul = std::memchr(bytes + stringsStart + nameOffset, 0, stringsSize - nameOffset);
            if (!nul)
                return bad("a property name is not terminated");
            if (depth == 0)
                return bad("a property outside any node");
            at = (at + 12 + length + 3) & ~uint64_t{3};
            break;
        }
        case FDT_END_NODE:
            if (--depth < 0)
                return bad("more node ends than node beginnings");
            at += 4;
            break;
        case FDT_NOP: at += 4; break;
        case FDT_END:
            if (depth != 0)
                return bad("FDT_END inside a node");
            return {};
        default: return bad(fmt::format("unknown tag {:#x} at offset {:#x}", tag, at - structStart));
        }
    }
}

} // namespace

Result<DtTree> DtTree::parse(std::span<const std::byte> blob, std::string_view sourceName) {
    // libfdt reads the header fields before it can check the size, so a
    // buffer shorter than a header is refused here.
    if (blob.size() < sizeof(fdt_header))
        return Error(EINVAL, fmt::format("{}: not a valid flattened device tree: {} bytes is shorter than a header",
                                         sourceName, blob.size()));
    DtTree tree;
    // libfdt wants its blob aligned; a caller's span need not be.
    tree.storage_.resize((blob.size() + 7) / 8);
    std::memcpy(tree.storage_.data(), blob.data(), blob.size());
    const void* fdt = tree.storage_.data();

    if (int err = fdt_check_header(fdt); err != 0)
        return refuse(sourceName, "bad header", err);
    if (fdt_totalsize(fdt) > blob.size())
        return Error(EINVAL, fmt::format("{}: not a valid flattened device tree: the header claims {} bytes, the "
                                         "blob has {}",
                                         sourceName, fdt_totalsize(fdt), blob.size()));
    // Older layouts name nodes by full path and lack the strings size; the
    // kernel's unflattening code reads version 16 and later only.
    if (fdt_version(fdt) < 16)
        return Error(EINVAL, fmt::format("{}: not a valid flattened device tree: version {} is older than 16",
                                         sourceName, fdt_version(fdt)));
    CENALLOC_CHECK(checkStructure(fdt, blob.size(), sourceName));
    // The whole structure block, every property name and the nesting, so the
    // walk below only meets what libfdt considers well-formed.
    if (int err = fdt_check_full(fdt, blob.size()); err != 0)
        return refuse(sourceName, "bad structure", err);

    int reserves = fdt_num_mem_rsv(fdt);
    for (int i = 0; i < reserves; ++i) {
        DtMemReserve r;
        if (fdt_get_mem_rsv(fdt, i, &r.address, &r.size) == 0)
            tree.memReserve_.push_back(r);
    }

    std::vector<int> stack; // the open node at each depth
    int depth = -1;
    for (int offset = fdt_next_node(fdt, -1, &depth); offset >= 0 && depth >= 0;
         offset = fdt_next_node(fdt, offset, &depth)) {
        if (depth >= kDtMaxDepth)
            return Error(EINVAL, fmt::format("{}: nodes are nested deeper than {} levels", sourceName, kDtMaxDepth));
        // A second top-level node would have no parent; fdt_check_full
        // should not let one through, but the walk must not trust that.
        if (depth == 0 && !tree.nodes_.empty())
            break;
        if (depth > static_cast<int>(stack.size()))
            return refuse(sourceName, "a node skips a level", -FDT_ERR_BADSTRUCTURE);
        DtNode node;
        int nameLength = 0;
        const char* name = fdt_get_name(fdt, offset, &nameLength);
        if (!name || nameLength < 0)
            return refuse(sourceName, "unreadable node name", nameLength < 0 ? nameLength : -FDT_ERR_BADSTRUCTURE);
        node.name = std::string_view(name, static_cast<size_t>(nameLength));
        node.depth = depth;
        node.parent = depth == 0 ? -1 : stack[static_cast<size_t>(depth - 1)];
        int property = 0;
        fdt_for_each_property_offset(property, fdt, offset) {
            const char* propertyName = nullptr;
            int length = 0;
            const void* value = fdt_getprop_by_offset(fdt, property, &propertyName, &length);
            if (!value || !propertyName || length < 0)
                return refuse(sourceName, "unreadable property", length < 0 ? length : -FDT_ERR_BADSTRUCTURE);
            node.properties.push_back(
                {propertyName, std::span(static_cast<const std::byte*>(value), static_cast<size_t>(length))});
        }
        int index = static_cast<int>(tree.nodes_.size());
        if (node.parent >= 0)
            tree.nodes_[static_cast<size_t>(node.parent)].children.push_back(index);
        for (const char* key : {"phandle", "linux,phandle"}) {
            std::optional<uint32_t> phandle = dtU32(node.find(key));
            // 0 and ~0 are not phandles; the first node to claim one keeps it.
            if (phandle && *phandle != 0 && *phandle != UINT32_MAX)
                tree.phandles_.emplace(*phandle, index);
        }
        bool parentAvailable = node.parent < 0 || tree.available_[static_cast<size_t>(node.parent)];
        tree.available_.push_back(parentAvailable && statusOkay(node) ? 1 : 0);
        tree.nodes_.push_back(std::move(node));
        stack.resize(static_cast<size_t>(depth));
        stack.push_back(index);
    }
    if (tree.nodes_.empty())
        return refuse(sourceName, "no root node", -FDT_ERR_BADSTRUCTURE);
    return tree;
}

std::string DtTree::path(int index) const {
    if (index <= 0)
        return "/";
    std::vector<std::string_view> parts;
    for (int n = index; n > 0; n = node(n).parent)
        parts.push_back(node(n).name);
    std::string out;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        out += '/';
        out += *it;
    }
    return out;
}

int DtTree::byPhandle(uint32_t phandle) const {
    auto it = phandles_.find(phandle);
    return it == phandles_.end() ? -1 : it->second;
}

int DtTree::child(int parent, std::string_view name) const {
    for (int c : node(parent).children)
        if (node(c).name == name)
            return c;
    return -1;
}

int DtTree::byPath(std::string_view path) const {
    if (path.empty() || path.front() != '/')
        return -1;
    int current = 0;
    while (!path.empty()) {
        path.remove_prefix(1);
        size_t slash = path.find('/');
        std::string_view part = path.substr(0, slash);
        if (!part.empty()) {
            current = child(current, part);
            if (current < 0)
                return -1;
        }
        if (slash == std::string_view::npos)
            break;
        path.remove_prefix(slash);
    }
    return current;
}

std::optional<int> DtTree::cellsProperty(int index, std::string_view property) const {
    for (int n = index; n >= 0; n = node(n).parent) {
        const DtProperty* p = node(n).find(property);
        if (!p)
            continue;
        std::optional<uint32_t> v = dtU32(p);
        if (!v || *v > 4)
            return std::nullopt;
        return static_cast<int>(*v);
    }
    return 1;
}

std::optional<int> DtTree::addressCells(int index) const {
    return cellsProperty(index, "#address-cells");
}

std::optional<int> DtTree::sizeCells(int index) const {
    return cellsProperty(index, "#size-cells");
}

bool DtTree::available(int index) const {
    return available_[static_cast<size_t>(index)] != 0;
}

std::optional<uint32_t> dtCell(std::span<const std::byte> value, size_t index) {
    if (index >= value.size() / 4)
        return std::nullopt;
    const std::byte* p = value.data() + index * 4;
    return (std::to_integer<uint32_t>(p[0]) << 24) | (std::to_integer<uint32_t>(p[1]) << 16) |
           (std::to_integer<uint32_t>(p[2]) << 8) | std::to_integer<uint32_t>(p[3]);
}

std::optional<uint64_t> dtNumber(std::span<const std::byte> value, size_t index, int count) {
    if (count < 0 || index + static_cast<size_t>(count) > value.size() / 4)
        return std::nullopt;
    uint64_t out = 0;
    for (int i = 0; i < count; ++i) {
        uint32_t cell = *dtCell(value, index + static_cast<size_t>(i));
        if (i < count - 2 && cell != 0)
            return std::nullopt;
        out = (out << 32) | cell;
    }
    return out;
}

size_t dtCellCount(std::span<const std::byte> value) {
    return value.size() / 4;
}

std::optional<uint32_t> dtU32(const DtProperty* property) {
    if (!property || property->value.size() != 4)
        return std::nullopt;
    return dtCell(property->value, 0);
}

std::vector<std::string_view> dtStrings(std::span<const std::byte> value) {
    std::vector<std::string_view> out;
    if (value.empty() || value.back() != std::byte{0})
        return out;
    const char* p = reinterpret_cast<const char*>(value.data());
    size_t start = 0;
    for (size_t i = 0; i < value.size(); ++i) {
        if (p[i] == '\0') {
            out.emplace_back(p + start, i - start);
            start = i + 1;
        }
    }
    return out;
}

std::optional<std::string_view> dtString(const DtProperty* property) {
    if (!property)
        return std::nullopt;
    std::vector<std::string_view> strings = dtStrings(property->value);
    if (strings.empty())
        return std::nullopt;
    return strings.front();
}

} // namespace cenalloc
