// SPDX-License-Identifier: MIT
// The device tree loader: memory, reserved memory, DMA windows, IOMMUs and DMA masters from a .dtb.
//
// Every rule follows what Linux 6.1 does with the same blob, except where a
// comment says otherwise:
//
// Memory (early_init_dt_scan_memory): root children with device_type
// "memory" that are available; `linux,usable-memory` before `reg`; root
// #address-cells/#size-cells; each entry one bank, trimmed inward to pages
// (early_init_dt_add_memory_arch); zero sizes skipped. Overlapping entries
// are merged. Many device trees leave /memory for the bootloader to fill
// (size 0 or no node): then an overlay must give the RAM, nothing is guessed.
//
// Reserved memory (fdt_scan_reserved_mem, fdt_init_reserved_mem): ignored
// whole when /reserved-memory lacks `ranges` or its cells differ from the
// root's, as the kernel does. /memreserve/ entries and every `reg` entry of
// an available child are reserved first; children with `size` are then
// placed in tree order, each top-down (memblock's default) in the first
// `alloc-ranges` entry with room (anywhere without one), aligned to
// `alignment`, and for CMA to 2 MiB (CMA_MIN_ALIGNMENT_BYTES: a pageblock
// of order 9 on arm64 with 4 KiB pages), avoiding everything reserved
// before. What becomes what:
//   shared-dma-pool + reusable        -> CMA pool (must be 2 MiB aligned and
//                                        not no-map, as rmem_cma_setup demands)
//   shared-dma-pool without reusable  -> carveout (dma_declare_coherent_memory)
//   restricted-dma-pool               -> a bounce pool (swiotlb), never a
//                                        heap (rmem_swiotlb_setup)
//   other no-map region that a master -> carveout
//     names in memory-region
//   anything else                     -> firmware's memory: cut out of the
//                                        banks, as the page allocator never
//                                        sees it
// A region a master names in memory-region is that master's (the kernel
// hands it to that device's dma_alloc_* calls only): its owners, unless it
// is the default CMA pool; the owners of a restricted pool bounce all their
// DMA through it (Device::restrictedPool). Only the default CMA area is a
// dma-buf heap (cma_heap.c adds dev_get_cma_area(NULL) only), named as
// rmem_cma_setup names it: the node's full name, unit address included.
// We do not know where the bootloader put the kernel image, initrd and the
// blob itself; top-down placement rarely meets them. The kernel's cma=
// (overlay cma_size) adds a default pool named "reserved"
// (dma_contiguous_reserve_area), placed as dma_contiguous_reserve does:
// top-down below arm64_dma_phys_limit, the DMA zone limit
// of_dma_get_max_cpu_address() derives from the lowest dma-ranges in the
// tree (at most 4 GiB above the start of RAM); like the kernel, it
// replaces a linux,cma-default node.
//
// DMA windows (of_dma_configure_id, of_dma_get_range): a device's reachable
// addresses start as its driver's mask, [0, mask], in its own bus's address
// space, and are carried through the dma-ranges of every ancestor up to the
// root: an entry maps child bus addresses onto the parent bus, addresses
// outside every entry are lost, an empty dma-ranges maps 1:1, and a missing
// one does not constrain (of_translate_one treats it as 1:1). The kernel
// takes the window's size only from the nearest non-empty dma-ranges and
// translates just its start through the levels above; cenalloc narrows at
// every level, which is what the hardware does and gives the same answer
// whenever the upper levels do not cut the window. A PCI host bridge's own
// dma-ranges apply to it (it stands for the functions behind it).
//
// Masks: cenalloc models DMA addresses as physical ones and a mask as an
// inclusive address limit (kernel: bus_dma_limit + dma_range_map). The
// limit is the last address below which the device reaches every byte of
// RAM, cut at the end of the window piece holding the last byte it
// reaches; when it reaches all RAM, the end of that piece. It is an
// address, not rounded to a power of two: a 3 GiB window gives
// 0xbfffffff (the Pi 4's PCIe inbound window), and ends a page. A window
// that does not start at 0 is fine when no RAM lies below it. When the
// window maps addresses 1:1 the driver's mask bounds it as well. A device
// whose limit would reach no RAM is skipped with a warning. Behind an
// IOMMU the same is done in the device's own address space (the IOVAs it
// emits), without RAM: the window's first piece must start at 0.
//
// IOMMUs (of_iommu_configure): `iommus` (phandle + #iommu-cells each) or,
// for PCI host bridges, `iommu-map`. Devices naming the same IOMMU node
// share one I/O virtual address space only inside one IOMMU group
// (iommu_group_get_for_dev gives each group its default domain): masters
// whose specifiers (stream IDs; the iommu-map's stream ID base for a host
// bridge) overlap share a group, as arm_smmu_device_group does, unless the
// IOMMU's driver puts every master of an instance in one group
// (rockchip-iommu, sun50i-iommu, mtk_iommu: compat_table.cpp). A disabled IOMMU leaves its devices
// doing direct DMA (of_iommu_xlate returns NO_IOMMU); an unresolvable
// phandle does too, with a warning. The aperture runs from the first page
// (iommu-dma never hands out IOVA 0) to the input size of the IOMMU type
// (compat_table.cpp), 4 KiB pages.
//
// Coherency (of_dma_is_coherent): `dma-coherent` or `dma-noncoherent` on
// the node or its nearest ancestor having one; non-coherent otherwise (the
// arm64 default).
//
// Names: the node's label from __symbols__ when there is one; otherwise the
// node name without unit address when unique among the devices, with it
// when that is unique, the path otherwise. Commas become dots so that names
// survive `--devices a,b`.
#include <cenalloc/platform_sources.h>

#include "base/file.h"
#include "base/try.h"
#include "platform/dtb_interpreter.h"

namespace cenalloc {
namespace dtb {

Result<std::vector<RamBank>> Interpreter::readMemory() {
    std::vector<RamBank> banks;
    if (overlay_ && !overlay_->memory.empty()) {
        for (const MemoryBank& b : overlay_->memory)
            banks.push_back({b.name, {b.base, b.end() - 1}, false});
        std::sort(banks.begin(), banks.end(),
                  [](const RamBank& a, const RamBank& b) { return a.range.first < b.range.first; });
        return banks;
    }
    std::optional<int> ac = tree_.addressCells(0), sc = tree_.sizeCells(0);
    if (!ac || !sc)
        return Error(EINVAL, fmt::format("{}: the root's #address-cells or #size-cells is malformed", source_));
    std::vector<Interval> found;
    int nodes = 0;
    for (int child : tree_.node(0).children) {
        const DtNode& n = tree_.node(child);
        std::optional<std::string_view> type = dtString(n.find("device_type"));
        if (!type || *type != "memory" || !tree_.available(child))
            continue;
        ++nodes;
        const DtProperty* reg = n.find("linux,usable-memory");
        if (!reg)
            reg = n.find("reg");
        if (!reg)
            continue;
        size_t stride = static_cast<size_t>(*ac + *sc);
        size_t cells = dtCellCount(reg->value);
        if (stride == 0 || cells % stride != 0)
            warn(fmt::format("{}: reg is not a whole number of (address, size) entries; the rest is ignored",
                             tree_.path(child)));
        for (size_t i = 0; stride != 0 && i + stride <= cells; i += stride) {
            std::optional<uint64_t> base = dtNumber(reg->value, i, *ac);
            std::optional<uint64_t> size = dtNumber(reg->value, i + static_cast<size_t>(*ac), *sc);
            if (!base || !size) {
                warn(fmt::format("{}: a memory range beyond 64 bits is ignored", tree_.path(child)));
                continue;
            }
            if (*size == 0)
                continue;
            // early_init_dt_add_memory_arch: trim to whole pages.
            uint64_t last = *base > UINT64_MAX - (*size - 1) ? UINT64_MAX : *base + (*size - 1);
            std::optional<uint64_t> first = alignUpChecked(*base, kPageSize);
            uint64_t end = (last == UINT64_MAX ? UINT64_MAX - kPageSize + 1 : (last + 1)) & ~(kPageSize - 1);
            if (!first || *first >= end)
                continue;
            found.push_back({*first, end - 1});
        }
    }
    // Keep separate entries separate (a bank each) unless they overlap.
    std::sort(found.begin(), found.end(), [](const Interval& a, const Interval& b) { return a.first < b.first; });
    std::vector<Interval> merged;
    for (const Interval& i : found) {
        if (!merged.empty() && i.first <= merged.back().last) {
            merged.back().last = std::max(merged.back().last, i.last);
            continue;
        }
        merged.push_back(i);
    }
    for (const Interval& i : merged)
        banks.push_back({fmt::format("ram-{:x}", i.first), i, true});
    if (banks.empty())
        return Error(ENODATA,
                     fmt::format("{}: no ram: {} (the bootloader fills it in); give the banks in an overlay's memory "
                                 "list",
                                 source_,
                                 nodes == 0 ? "no available node has device_type \"memory\""
                                            : "the memory nodes have no range of non-zero size"));
    return banks;
}

void Interpreter::readLabels() {
    int symbols = tree_.child(0, "__symbols__");
    if (symbols < 0)
        return;
    for (const DtProperty& p : tree_.node(symbols).properties) {
        std::optional<std::string_view> path = dtString(&p);
        if (!path)
            continue;
        int node = tree_.byPath(*path);
        if (node > 0)
            labels_.emplace(node, std::string(p.name));
    }
}

const OverlayDevice* Interpreter::overlayFor(const std::vector<std::string_view>& compatibles) const {
    if (!overlay_)
        return nullptr;
    for (std::string_view c : compatibles)
        for (const OverlayDevice& d : overlay_->devices)
            if (!d.compatible.empty() && d.compatible == c)
                return &d;
    return nullptr;
}

void Interpreter::findMasters() {
    // Top-level subtrees that hold no devices (compat_table.cpp).
    std::vector<char> excluded(tree_.nodes().size(), 0);
    for (int child : tree_.node(0).children) {
        std::string path = "/" + std::string(tree_.node(child).name);
        std::string_view base = std::string_view(path).substr(0, path.find('@'));
        for (std::string_view root : nonDeviceRoots())
            if (base == root)
                excluded[static_cast<size_t>(child)] = 1;
    }
    auto buses = busCompatibles();
    for (size_t i = 1; i < tree_.nodes().size(); ++i) {
        int index = static_cast<int>(i);
        const DtNode& n = tree_.node(index);
        if (n.parent >= 0 && excluded[static_cast<size_t>(n.parent)])
            excluded[i] = 1;
        if (excluded[i] || !tree_.available(index) || n.has("#iommu-cells"))
            continue;
        Master m;
        m.node = index;
        m.compatibles = compatibles(index);
        m.overlayCompat = overlayFor(m.compatibles);
        if (m.overlayCompat)
            overlayUsed_.insert(m.overlayCompat);
        if (m.overlayCompat && m.overlayCompat->master == false)
            continue;
        bool isBus = std::any_of(m.compatibles.begin(), m.compatibles.end(), [&](std::string_view c) {
            return std::find(buses.begin(), buses.end(), c) != buses.end();
        });
        bool hasReg = n.has("reg");
        m.compat = findCompat(m.compatibles);
        bool master = m.overlayCompat && m.overlayCompat->master == true;
        for (const MasterProperty& rule : masterProperties())
            master = master || (n.has(rule.property) && (!rule.onDeviceOnly || (hasReg && !isBus)));
        if (hasReg && !isBus) {
            master = master || m.compat != nullptr;
            // A PCI function described below a PCI bus (not itself a bridge).
            if (n.parent > 0 && isPciBus(n.parent) && !isPciBus(index)) {
                master = true;
                if (!m.compat)
                    m.cls = DeviceClass::PciFunction;
            }
        }
        if (!master)
            continue;
        if (m.compat)
            m.cls = m.compat->cls;
        if (const DtProperty* regions = n.find("memory-region"))
            for (size_t c = 0; c < dtCellCount(regions->value); ++c) {
                int target = tree_.byPhandle(*dtCell(regions->value, c));
                if (target < 0)
                    warn(fmt::format("{}: memory-region names an unknown phandle {:#x}", tree_.path(index),
                                     *dtCell(regions->value, c)));
                else
                    m.memoryRegions.push_back(target);
            }
        resolveIommus(m);
        masters_.push_back(std::move(m));
    }
    for (auto [iommu, count] : disabledIommus_)
        warn(fmt::format("{}: this IOMMU is disabled, so the devices naming it ({}) do direct DMA, as the kernel "
                         "lets them",
                         tree_.path(iommu), count));
}

void Interpreter::resolveIommus(Master& m) {
    const DtNode& n = tree_.node(m.node);
    std::string path = tree_.path(m.node);
    std::vector<int> found;
    // Per IOMMU node, the specifiers naming it: the stream IDs that decide
    // the master's IOMMU group.
    std::map<int, std::vector<std::string>> specifiers;
    // iommus: <phandle specifier> with #iommu-cells specifier cells each.
    // iommu-map: <rid-base phandle iommu-base length>, always 4 cells
    // (of_map_id refuses anything else).
    auto parse = [&](const DtProperty* p, bool map) {
        size_t cells = dtCellCount(p->value);
        size_t i = 0;
        while (i + (map ? 3 : 0) < cells) {
            uint32_t phandle = *dtCell(p->value, map ? i + 1 : i);
            int target = tree_.byPhandle(phandle);
            if (target < 0) {
                warn(fmt::format("{}: {} names an unknown phandle {:#x}; the device does direct DMA", path, p->name,
                                 phandle));
                return false;
            }
            size_t stride = 4;
            if (!map) {
                std::optional<uint32_t> specifier = dtU32(tree_.node(target).find("#iommu-cells"));
                if (!specifier || *specifier > 16) {
                    warn(fmt::format("{}: {} names {}, which has no usable #iommu-cells; the device does direct DMA",
                                     path, p->name, tree_.path(target)));
                    return false;
                }
                stride = 1 + *specifier;
            }
            if (std::find(found.begin(), found.end(), target) == found.end())
                found.push_back(target);
            // iommus: the specifier cells; iommu-map: the stream ID base
            // (iommu-base) its requester IDs map to.
            std::string spec;
            size_t first = map ? i + 2 : i + 1, count = map ? 1 : stride - 1;
            for (size_t k = 0; k < count && first + k < cells; ++k)
                spec += fmt::format("{}{:#x}", k ? "." : "", *dtCell(p->value, first + k));
            specifiers[target].push_back(std::move(spec));
            i += stride;
        }
        return true;
    };
    bool ok = true;
    if (const DtProperty* p = n.find("iommus"))
        ok = parse(p, false);
    else if (const DtProperty* map = n.find("iommu-map"))
        ok = parse(map, true);
    if (!ok || found.empty())
        return;
    if (found.size() > 1)
        warn(fmt::format("{}: sits behind {} IOMMUs; cenalloc models the first, {}", path, found.size(),
                         tree_.path(found.front())));
    int iommu = found.front();
    if (!tree_.available(iommu)) {
        ++disabledIommus_[iommu];
        return;
    }
    m.iommuNode = iommu;
    m.iommuSpecifiers = std::move(specifiers[iommu]);
}

std::vector<MemoryBank> Interpreter::buildBanks(const std::vector<Interval>& holes) const {
    // Holes are cut at page granularity, rounded outward: a partial page
    // reserved is a page the page allocator never gets.
    std::vector<Interval> rounded;
    for (const Interval& h : holes) {
        uint64_t first = h.first & ~(kPageSize - 1);
        uint64_t last = h.last | (kPageSize - 1);
        rounded.push_back({first, last});
    }
    rounded = normalise(rounded);
    std::vector<MemoryBank> banks;
    for (const RamBank& bank : ram_) {
        std::vector<Interval> pieces = subtract(bank.range, rounded);
        for (const Interval& p : pieces) {
            MemoryBank b;
            if (bank.autoName)
                b.name = fmt::format("ram-{:x}", p.first);
            else if (pieces.size() == 1 && p.first == bank.range.first)
                b.name = bank.name;
            else
                b.name = fmt::format("{}-{:x}", bank.name, p.first);
            b.base = p.first;
            b.size = p.last - p.first + 1;
            banks.push_back(std::move(b));
        }
    }
    return banks;
}

bool Interpreter::coherent(int node) const {
    for (int n = node; n >= 0; n = tree_.node(n).parent) {
        if (tree_.node(n).has("dma-coherent"))
            return true;
        if (tree_.node(n).has("dma-noncoherent"))
            return false;
    }
    return false;
}

std::string Interpreter::nameOf(int node, const std::map<std::string, int>& baseCounts,
                                const std::map<std::string, int>& fullCounts) const {
    auto label = labels_.find(node);
    if (label != labels_.end())
        return cleanName(label->second);
    const DtNode& n = tree_.node(node);
    std::string base(n.baseName()), full(n.name);
    if (baseCounts.at(base) == 1)
        return cleanName(base);
    if (fullCounts.at(full) == 1)
        return cleanName(full);
    return cleanName(tree_.path(node));
}

void Interpreter::nameMasters() {
    std::map<std::string, int> baseCounts, fullCounts;
    for (const Master& m : masters_) {
        if (!m.kept)
            continue;
        ++baseCounts[std::string(tree_.node(m.node).baseName())];
        ++fullCounts[std::string(tree_.node(m.node).name)];
    }
    std::map<std::string, int> used;
    for (Master& m : masters_)
        if (m.kept) {
            m.name = nameOf(m.node, baseCounts, fullCounts);
            ++used[m.name];
        }
    // A label may equal another device's node name: fall back to paths.
    for (Master& m : masters_)
        if (m.kept && used[m.name] > 1)
            m.name = cleanName(tree_.path(m.node));
}

void Interpreter::describe(Platform& platform) const {
    platform.source = std::string(source_);
    std::string file = std::filesystem::path(std::string(source_)).filename().string();
    std::vector<std::string_view> rootCompat = compatibles(0);
    std::optional<std::string_view> model = dtString(tree_.node(0).find("model"));
    if (overlay_ && overlay_->name)
        platform.name = *overlay_->name;
    else if (!rootCompat.empty() && !rootCompat.front().empty())
        platform.name = std::string(rootCompat.front());
    else
        platform.name = std::filesystem::path(std::string(source_)).stem().string();
    if (platform.name.empty())
        platform.name = "device-tree";
    if (overlay_ && overlay_->description)
        platform.description = *overlay_->description;
    else
        platform.description = fmt::format("{} (device tree {})", model ? std::string(*model) : platform.name, file);
}

std::optional<DmaConstraints> Interpreter::constraintsOf(const Master& m, const std::vector<MemoryBank>& banks,
                                                         Facts& facts) {
    DmaConstraints c;
    // Only an exact row states driver facts; a glob names the class.
    const CompatEntry* row = m.compat && isExactRow(*m.compat) ? m.compat : nullptr;
    unsigned bits = row && row->dmaMaskBits ? row->dmaMaskBits : kDefaultDriverMaskBits;
    unsigned coherentBits = row && row->coherentMaskBits ? row->coherentMaskBits : bits;
    uint64_t driverMask = maskOfBits(bits), driverCoherent = maskOfBits(coherentBits);
    if (row && row->dmaLimit)
        driverMask = driverCoherent = row->dmaLimit;
    if (row) {
        if (row->maxSegmentSize)
            c.maxSegmentSize = row->maxSegmentSize;
        c.maxSegmentCount = row->maxSegmentCount;
        if (row->alignment)
            c.alignment = row->alignment;
        facts.source = fmt::format("{}: {}", row->compatible, row->why);
        if (!row->assumed.empty())
            facts.assumed.emplace_back(Facts::Kind::Mask, std::string(row->assumed));
    } else if (const ClassDefault* d = classDefault(m.cls)) {
        // The conservative default of the class, said to be assumed.
        c.maxSegmentCount = d->maxSegmentCount;
        if (d->maxSegmentSize)
            c.maxSegmentSize = d->maxSegmentSize;
        facts.assumed.emplace_back(
            Facts::Kind::Contiguity,
            m.iommuNode >= 0
                ? fmt::format("takes one DMA address per buffer (one I/O virtual range): {} with no driver row",
                              d->what)
                : fmt::format("needs one contiguous buffer: {} without an IOMMU and no driver row", d->what));
    } else if (m.cls == DeviceClass::Gpu || m.cls == DeviceClass::Npu) {
        facts.assumed.emplace_back(
            Facts::Kind::Mask,
            fmt::format("reaches 32 bits of address and maps scattered pages through its own MMU: {} with no "
                        "driver row",
                        m.cls == DeviceClass::Gpu ? "a GPU" : "an NPU"));
    }
    c.coherent = coherent(m.node);
    if (const OverlayDevice* o = m.overlayCompat) {
        // What the driver asks, before the bus windows narrow it. The
        // overlay's entry is a row: what it states is no longer assumed.
        facts.source = fmt::format("{}: compatible {}", overlay_->source, o->compatible);
        if (o->dmaMask || o->coherentDmaMask)
            facts.drop(Facts::Kind::Mask);
        if (o->maxSegmentCount || o->contiguous)
            facts.drop(Facts::Kind::Contiguity);
        if (o->dmaMask)
            driverMask = driverCoherent = *o->dmaMask;
        if (o->coherentDmaMask)
            driverCoherent = *o->coherentDmaMask;
        Device d;
        d.constraints = c;
        OverlayDevice rest = *o;
        rest.dmaMask.reset();
        rest.coherentDmaMask.reset();
        rest.description.reset();
        applyOverlayEntry(rest, d);
        c = d.constraints;
    }
    std::optional<uint64_t> mask = windowMask(m, driverMask, banks);
    std::optional<uint64_t> coherentMask = driverCoherent == driverMask ? mask : windowMask(m, driverCoherent, banks);
    if (!mask || !coherentMask)
        return std::nullopt;
    c.dmaMask = *mask;
    c.coherentDmaMask = *coherentMask;
    return c;
}

std::map<int, std::string> Interpreter::buildIommus(Platform& platform) {
    std::vector<int> nodes;
    for (const Master& m : masters_)
        if (m.kept && m.iommuNode >= 0 && std::find(nodes.begin(), nodes.end(), m.iommuNode) == nodes.end())
            nodes.push_back(m.iommuNode);
    std::map<std::string, int> baseCounts, fullCounts;
    for (int n : nodes) {
        ++baseCounts[std::string(tree_.node(n).baseName())];
        ++fullCounts[std::string(tree_.node(n).name)];
    }
    std::map<int, std::string> names;
    std::set<std::string> taken;
    for (int n : nodes) {
        std::string name = nameOf(n, baseCounts, fullCounts);
        if (!taken.insert(name).second) {
            name = cleanName(tree_.path(n));
            taken.insert(name);
        }
        names[n] = name;
        bool known = false;
        std::vector<std::string_view> compat = compatibles(n);
        uint8_t inputBits = iommuInputBits(compat, &known);
        if (!known)
            warn(fmt::format("{}: an IOMMU of a type cenalloc does not know ({}); its aperture is taken as 32 bits",
                             tree_.path(n), compat.empty() ? std::string_view("no compatible") : compat.front()));
        Iommu iommu;
        iommu.name = name;
        iommu.pageSize = kPageSize;
        iommu.apertureBase = kPageSize;
        iommu.apertureSize = maskOfBits(inputBits) + 1 - kPageSize;
        platform.iommus.push_back(std::move(iommu));
    }
    return names;
}

std::map<const Master*, std::string> Interpreter::iommuGroups() const {
    // Masters behind one IOMMU share a group when they share a specifier
    // (arm_smmu_device_group joins the group of a stream-map entry it
    // finds taken), transitively; IOMMUs whose driver has one group for
    // all masters leave the group empty.
    std::vector<const Master*> members;
    for (const Master& m : masters_)
        if (m.kept && m.iommuNode >= 0)
            members.push_back(&m);
    std::vector<size_t> parent(members.size());
    for (size_t i = 0; i < parent.size(); ++i)
        parent[i] = i;
    auto root = [&](size_t i) {
        while (parent[i] != i)
            i = parent[i] = parent[parent[i]];
        return i;
    };
    std::map<std::pair<int, std::string>, size_t> owner;
    for (size_t i = 0; i < members.size(); ++i)
        for (const std::string& spec : members[i]->iommuSpecifiers) {
            auto [it, inserted] = owner.try_emplace({members[i]->iommuNode, spec}, i);
            if (!inserted)
                parent[root(i)] = root(it->second);
        }
    // A group is named by the smallest specifier of its members.
    std::map<size_t, std::string> names;
    for (size_t i = 0; i < members.size(); ++i)
        for (const std::string& spec : members[i]->iommuSpecifiers) {
            std::string& name = names[root(i)];
            if (name.empty() || spec < name)
                name = spec;
        }
    std::map<const Master*, std::string> groups;
    for (size_t i = 0; i < members.size(); ++i) {
        const IommuEntry* e = findIommu(compatibles(members[i]->iommuNode));
        if (e && e->oneGroup)
            continue;
        const std::string& name = names[root(i)];
        if (!name.empty())
            groups[members[i]] = "sid-" + name;
    }
    return groups;
}

void Interpreter::assignOwners(Platform& platform) const {
    // A region a kept device names in memory-region is that device's
    // (of_reserved_mem_device_init gives it to that device's dma_alloc_*
    // calls only); a restricted-dma-pool is where all its DMA bounces.
    for (const Master& m : masters_) {
        if (!m.kept)
            continue;
        Device* d = nullptr;
        for (Device& candidate : platform.devices)
            if (candidate.name == m.name)
                d = &candidate;
        if (!d)
            continue;
        for (int node : m.memoryRegions) {
            auto r =
                std::find_if(regions_.begin(), regions_.end(), [&](const ReservedNode& n) { return n.node == node; });
            if (r == regions_.end())
                continue;
            ReservedRegion* region = nullptr;
            for (ReservedRegion& candidate : platform.regions)
                if (candidate.name == r->name)
                    region = &candidate;
            if (!region || region->isDefault)
                continue;
            if (std::find(region->owners.begin(), region->owners.end(), d->name) == region->owners.end())
                region->owners.push_back(d->name);
            if (region->restricted && d->restrictedPool.empty())
                d->restrictedPool = region->name;
        }
    }
}

Result<Platform> Interpreter::run() {
    ram_ = CENALLOC_TRY(readMemory());
    readLabels();
    findMasters();
    readReservedMemory();
    classifyRegions();
    if (overlay_ && overlay_->cmaSize)
        addCmdlineCma();
    std::vector<MemoryBank> banks = settleRegions();
    if (banks.empty())
        return Error(ENODATA, fmt::format("{}: no ram left once the reserved memory is taken out", source_));

    Platform platform;
    describe(platform);
    platform.memory = banks;
    for (const ReservedNode& r : regions_) {
        if (!r.placed || r.use == RegionUse::Hole)
            continue;
        ReservedRegion region;
        region.name = r.name;
        region.kind = r.use == RegionUse::Cma ? RegionKind::Cma : RegionKind::Carveout;
        region.base = r.base;
        region.size = r.size;
        region.noMap = r.use == RegionUse::Carveout && r.noMap;
        region.isDefault = r.use == RegionUse::Cma && r.isDefault;
        region.restricted = r.restricted;
        region.heap = r.heap;
        platform.regions.push_back(std::move(region));
    }
    platform.vendorHeaps = overlay_ ? overlay_->kernelHeaps : std::vector<std::string>{};
    bool anyCma = std::any_of(platform.regions.begin(), platform.regions.end(),
                              [](const ReservedRegion& r) { return r.kind == RegionKind::Cma; });
    if (!anyCma && !reservedMemoryIgnored_)
        warn("no CMA pool in the device tree: the kernel's default pool then comes from cma= or "
             "CONFIG_CMA_SIZE_MBYTES; give cma_size in an overlay to model it");

    // Devices: constraints first (a device that reaches no RAM is dropped
    // before names are chosen), then names and IOMMUs, then the overlay's
    // name entries, which are final.
    std::map<const Master*, DmaConstraints> constraints;
    std::map<const Master*, Facts> facts;
    for (Master& m : masters_) {
        std::optional<DmaConstraints> c = constraintsOf(m, banks, facts[&m]);
        if (c)
            constraints[&m] = *c;
        else
            m.kept = false;
    }
    nameMasters();
    std::map<int, std::string> iommuNames = buildIommus(platform);
    std::map<const Master*, std::string> groups = iommuGroups();
    for (Master& m : masters_) {
        if (!m.kept)
            continue;
        Device d;
        d.name = m.name;
        d.constraints = constraints[&m];
        std::string compat = m.compatibles.empty() ? std::string("no compatible") : std::string(m.compatibles.front());
        d.description = fmt::format("{} {} at {}", deviceClassName(m.cls), compat, tree_.path(m.node));
        if (m.iommuNode >= 0) {
            d.iommu = iommuNames[m.iommuNode];
            d.iommuGroup = groups[&m];
        }
        Facts& f = facts[&m];
        if (overlay_) {
            for (const OverlayDevice& o : overlay_->devices) {
                if (o.name.empty() || o.name != d.name)
                    continue;
                overlayUsed_.insert(&o);
                if (o.master == false) {
                    m.kept = false;
                } else {
                    applyOverlayEntry(o, d);
                    // The user's word is a fact, not an assumption.
                    if (o.dmaMask || o.coherentDmaMask)
                        f.drop(Facts::Kind::Mask);
                    if (o.maxSegmentCount || o.contiguous)
                        f.drop(Facts::Kind::Contiguity);
                }
            }
        }
        d.factSource = f.source;
        for (auto& [kind, sentence] : f.assumed)
            d.assumedFacts.push_back(sentence);
        if (m.kept)
            platform.devices.push_back(std::move(d));
    }
    assignOwners(platform);
    if (details_) {
        for (const Master& m : masters_)
            if (m.kept && platform.findDevice(m.name))
                details_->devicePaths[m.name] = tree_.path(m.node);
        for (const RamBank& b : ram_)
            details_->ram.push_back({b.name, b.range.first, b.range.last - b.range.first + 1});
        for (const ReservedNode& r : regions_)
            if (r.dynamic && platform.findRegion(r.name))
                details_->dynamicRegions.insert(r.name);
    }
    if (overlay_)
        for (const OverlayDevice& o : overlay_->devices)
            if (!overlayUsed_.count(&o))
                warn(fmt::format("{}: the entry for {} '{}' matches no device", overlay_->source,
                                 o.name.empty() ? "compatible" : "device", o.name.empty() ? o.compatible : o.name));

    if (Result<void> valid = validatePlatform(platform); !valid)
        return valid.error().withContext(std::string(source_));
    return platform;
}

} // namespace dtb

Result<Platform> loadDeviceTreeDetailed(std::span<const std::byte> blob, std::string_view sourceName,
                                        const Overlay* overlay, std::vector<std::string>* warnings,
                                        DeviceTreeDetails* details) {
    DtTree tree = CENALLOC_TRY(DtTree::parse(blob, sourceName));
    dtb::Interpreter interpreter(tree, sourceName, overlay, warnings, details);
    return interpreter.run();
}

Result<Platform> loadDeviceTree(std::span<const std::byte> blob, std::string_view sourceName, const Overlay* overlay,
                                std::vector<std::string>* warnings) {
    return loadDeviceTreeDetailed(blob, sourceName, overlay, warnings, nullptr);
}

Result<Platform> loadDeviceTreeFile(const std::filesystem::path& path, const Overlay* overlay,
                                    std::vector<std::string>* warnings) {
    std::string text = CENALLOC_TRY(readFileLimited(path, dtb::kMaxBlobSize, "a device tree blob"));
    auto bytes = std::as_bytes(std::span(text.data(), text.size()));
    return loadDeviceTree(bytes, path.string(), overlay, warnings);
}

} // namespace cenalloc
