// SPDX-License-Identifier: MIT
// The device-tree interpreter shared by dtb_loader.cpp and dtb_reserved_memory.cpp.
#pragma once

#include <cenalloc/platform_sources.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <unistd.h>
#include <fmt/format.h>
#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>
#include "base/file.h"
#include "platform/compat_table.h"
#include "platform/dtb_details.h"
#include "platform/dt_tree.h"
#include "platform/overlay_apply.h"

namespace cenalloc::dtb {

constexpr uint64_t kCmaMinAlignment = 2 * MiB;
constexpr unsigned kDefaultDriverMaskBits = 32;
// A window is cut into pieces by the entries of each level; real trees
// have a handful. A blob that multiplies them beyond this is refused for
// that device rather than allowed to grow without bound.
constexpr size_t kMaxWindowPieces = 256;
constexpr uint64_t kMaxBlobSize = 16 * MiB;

inline uint64_t maskOfBits(unsigned bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

// Inclusive interval.
struct Interval {
    uint64_t first = 0;
    uint64_t last = 0;
};

// Part of a device's DMA window: device addresses [dev, dev + extent] reach
// bus (finally CPU) addresses [addr, addr + extent].
struct Piece {
    uint64_t dev = 0;
    uint64_t addr = 0;
    uint64_t extent = 0;
};

// [first, last] minus the sorted, disjoint @p holes.
inline std::vector<Interval> subtract(Interval whole, const std::vector<Interval>& holes) {
    std::vector<Interval> out;
    uint64_t cursor = whole.first;
    bool done = false;
    for (const Interval& h : holes) {
        if (h.last < cursor || h.first > whole.last)
            continue;
        if (h.first > cursor)
            out.push_back({cursor, h.first - 1});
        if (h.last >= whole.last) {
            done = true;
            break;
        }
        cursor = h.last + 1;
    }
    if (!done && cursor <= whole.last)
        out.push_back({cursor, whole.last});
    return out;
}

// Sort and merge overlapping or touching intervals.
inline std::vector<Interval> normalise(std::vector<Interval> v) {
    std::sort(v.begin(), v.end(), [](const Interval& a, const Interval& b) { return a.first < b.first; });
    std::vector<Interval> out;
    for (const Interval& i : v) {
        if (!out.empty() && (i.first <= out.back().last || i.first == out.back().last + 1)) {
            out.back().last = std::max(out.back().last, i.last);
            continue;
        }
        out.push_back(i);
    }
    return out;
}

// [first, last] lies inside the union of the normalised @p set.
inline bool covered(const std::vector<Interval>& set, uint64_t first, uint64_t last) {
    for (const Interval& i : set)
        if (i.first <= first && first <= i.last)
            return last <= i.last;
    return false;
}

inline std::string cleanName(std::string_view name) {
    std::string out(name);
    std::replace(out.begin(), out.end(), ',', '.');
    return out;
}

struct RamBank {
    std::string name;
    Interval range;
    /// Named "ram-<base>" by the loader: pieces are named by their own base.
    bool autoName = false;
};

enum class RegionUse {
    Cma,
    Carveout,
    Hole,
};

struct ReservedNode {
    int node = -1;
    std::string name;
    bool placed = false; // has an address (static, or dynamic and placed)
    uint64_t base = 0;
    uint64_t size = 0;
    bool noMap = false;
    bool reusable = false;
    bool pool = false; // shared-dma-pool
    bool isDefault = false;
    /// Placed by `size` (or the overlay's cma_size), not by `reg`.
    bool dynamic = false;
    /// restricted-dma-pool: its users bounce every DMA through it.
    bool restricted = false;
    /// The default CMA area of the board's kernel: its one CMA dma-heap.
    bool heap = false;
    RegionUse use = RegionUse::Hole;
};

struct Master {
    int node = -1;
    std::vector<std::string_view> compatibles;
    const CompatEntry* compat = nullptr;
    const OverlayDevice* overlayCompat = nullptr;
    DeviceClass cls = DeviceClass::Other;
    int iommuNode = -1;
    /// The `iommus` specifiers (or iommu-map stream ID bases) naming
    /// iommuNode, each as text: what decides the master's IOMMU group.
    std::vector<std::string> iommuSpecifiers;
    std::vector<int> memoryRegions;
    std::string name;
    bool kept = true;
};

// Where a device's driver facts came from, for Device::factSource and
// Device::assumedFacts.
struct Facts {
    enum class Kind { Contiguity, Mask };
    std::string source;
    std::vector<std::pair<Kind, std::string>> assumed;
    void drop(Kind kind) {
        std::erase_if(assumed, [&](const auto& a) { return a.first == kind; });
    }
};

class Interpreter {
public:
    Interpreter(const DtTree& tree, std::string_view source, const Overlay* overlay, std::vector<std::string>* warnings,
                DeviceTreeDetails* details = nullptr)
        : tree_(tree), source_(source), overlay_(overlay), warnings_(warnings), details_(details) {}

    Result<Platform> run();

private:
    void warn(std::string message) {
        if (warnings_)
            warnings_->push_back(std::move(message));
    }

    std::vector<std::string_view> compatibles(int node) const {
        const DtProperty* p = tree_.node(node).find("compatible");
        return p ? dtStrings(p->value) : std::vector<std::string_view>{};
    }
    bool isPciBus(int node) const {
        std::optional<std::string_view> type = dtString(tree_.node(node).find("device_type"));
        if (!type)
            return false;
        auto types = masterBusDeviceTypes();
        return std::find(types.begin(), types.end(), *type) != types.end();
    }

    Result<std::vector<RamBank>> readMemory();
    void readLabels();
    void findMasters();
    void resolveIommus(Master& m);
    void readReservedMemory();
    void placeDynamic(ReservedNode& r, uint64_t size, uint64_t align, const std::vector<Interval>& ranges);
    std::optional<uint64_t> placeTopDown(uint64_t size, uint64_t align, Interval range) const;
    void classifyRegions();
    void addCmdlineCma();
    std::vector<MemoryBank> buildBanks(const std::vector<Interval>& holes) const;
    uint64_t dmaZoneLimit();
    std::optional<std::vector<Piece>> window(int start, uint64_t driverMask, const std::string& who,
                                             bool quiet = false);
    std::optional<uint64_t> windowMask(const Master& m, uint64_t driverMask, const std::vector<MemoryBank>& banks);
    bool coherent(int node) const;
    void nameMasters();
    std::vector<MemoryBank> settleRegions();
    void describe(Platform& platform) const;
    std::optional<DmaConstraints> constraintsOf(const Master& m, const std::vector<MemoryBank>& banks, Facts& facts);
    std::map<int, std::string> buildIommus(Platform& platform);
    std::map<const Master*, std::string> iommuGroups() const;
    void assignOwners(Platform& platform) const;
    std::string nameOf(int node, const std::map<std::string, int>& baseCounts,
                       const std::map<std::string, int>& fullCounts) const;
    const OverlayDevice* overlayFor(const std::vector<std::string_view>& compatibles) const;

    const DtTree& tree_;
    std::string_view source_;
    const Overlay* overlay_;
    std::vector<std::string>* warnings_;
    DeviceTreeDetails* details_;

    std::vector<RamBank> ram_;
    std::vector<Interval> reserved_; // everything memblock would have reserved, for placement
    std::vector<Interval> holes_;    // reserved memory that is not a heap
    std::vector<ReservedNode> regions_;
    std::vector<Master> masters_;
    std::map<int, std::string> labels_; // node -> label
    std::set<const OverlayDevice*> overlayUsed_;
    bool reservedMemoryIgnored_ = false;
    std::map<int, int> disabledIommus_; // IOMMU node -> masters naming it
};

} // namespace cenalloc::dtb
