// SPDX-License-Identifier: MIT
// A validated flattened device tree as an indexed tree of nodes and properties.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <cenalloc/result.h>

namespace cenalloc {

/// The kernel refuses to unflatten trees nested deeper than this (FDT_MAX_DEPTH).
inline constexpr int kDtMaxDepth = 64;

struct DtProperty {
    std::string_view name;
    /// The raw value, big-endian cells or strings; a view into DtTree's copy.
    std::span<const std::byte> value;
};

struct DtNode {
    /// "mmc@7e340000"; empty for the root.
    std::string_view name;
    int parent = -1;
    int depth = 0;
    std::vector<int> children;
    std::vector<DtProperty> properties;

    const DtProperty* find(std::string_view property) const;
    bool has(std::string_view property) const { return find(property) != nullptr; }
    /// The name without the unit address: "mmc".
    std::string_view baseName() const;
    /// The unit address: "7e340000", or empty.
    std::string_view unitAddress() const;
};

/// A /memreserve/ entry of the blob header.
struct DtMemReserve {
    uint64_t address = 0;
    uint64_t size = 0;
};

/// A device tree that libfdt accepted, copied and indexed. Node 0 is the
/// root; children follow their parents. Immutable once parsed.
class DtTree {
public:
    /// Check @p blob with fdt_check_header and fdt_check_full and index it.
    /// Errors: EINVAL "<source>: ..." for anything libfdt refuses, for a
    /// blob larger than @p blob claims, and for nesting deeper than
    /// kDtMaxDepth.
    static Result<DtTree> parse(std::span<const std::byte> blob, std::string_view sourceName);

    DtTree(DtTree&&) noexcept = default;
    DtTree& operator=(DtTree&&) noexcept = default;

    const std::vector<DtNode>& nodes() const { return nodes_; }
    const DtNode& node(int index) const { return nodes_[static_cast<size_t>(index)]; }
    const std::vector<DtMemReserve>& memReserve() const { return memReserve_; }

    /// "/soc/mmc@7e340000"; "/" for the root.
    std::string path(int node) const;
    /// The node a phandle names, or -1.
    int byPhandle(uint32_t phandle) const;
    /// The child of @p parent called @p name (full name), or -1.
    int child(int parent, std::string_view name) const;
    /// The node at an absolute path ("/soc/hvs@7e400000"), or -1.
    int byPath(std::string_view path) const;

    /// #address-cells / #size-cells that apply to the children of @p node:
    /// its own property or, as the kernel's of_bus_n_addr_cells does, the
    /// nearest ancestor's; 1 when none has one (OF_ROOT_NODE_*_CELLS_DEFAULT).
    /// nullopt for a value above 4 (FDT_MAX_NCELLS) or a malformed property.
    std::optional<int> addressCells(int node) const;
    std::optional<int> sizeCells(int node) const;

    /// The node and every ancestor have status "okay"/"ok" or none (the
    /// kernel's of_device_is_available, applied along the path).
    bool available(int node) const;

private:
    DtTree() = default;
    std::optional<int> cellsProperty(int node, std::string_view property) const;

    // The blob, copied into 8-byte aligned storage; DtProperty views point here.
    std::vector<uint64_t> storage_;
    std::vector<DtNode> nodes_;
    std::vector<DtMemReserve> memReserve_;
    std::unordered_map<uint32_t, int> phandles_;
    std::vector<signed char> available_; // per node: 1 available, 0 not
};

/// Readers of property values. They never read past the value and return
/// nullopt for one too short or too long for what is asked.

/// The cell at @p index of a value.
std::optional<uint32_t> dtCell(std::span<const std::byte> value, size_t index);
/// @p count cells at @p index as one number: count 0 is 0, 1..2 as usual,
/// above 2 only when the upper cells are zero (beyond 64 bits otherwise).
std::optional<uint64_t> dtNumber(std::span<const std::byte> value, size_t index, int count);
/// Number of whole cells in a value.
size_t dtCellCount(std::span<const std::byte> value);
/// A single u32 property value (exactly 4 bytes).
std::optional<uint32_t> dtU32(const DtProperty* property);
/// The strings of a string-list value; empty when the value is not
/// NUL-terminated.
std::vector<std::string_view> dtStrings(std::span<const std::byte> value);
/// The first string, or nullopt.
std::optional<std::string_view> dtString(const DtProperty* property);

} // namespace cenalloc
