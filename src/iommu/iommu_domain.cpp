// SPDX-License-Identifier: MIT
// IOMMU domains: IOVA space, page table and the shared mapping cache.
#include "iommu/iommu_domain.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

IommuDomain::MappingRef& IommuDomain::MappingRef::operator=(MappingRef&& other) noexcept {
    if (this != &other) {
        reset();
        domain_ = std::exchange(other.domain_, nullptr);
        entry_ = std::exchange(other.entry_, nullptr);
    }
    return *this;
}

void IommuDomain::MappingRef::reset() {
    if (entry_ != nullptr)
        domain_->unuse(entry_);
    entry_ = nullptr;
    domain_ = nullptr;
}

IommuDomain::IommuDomain(const Iommu& iommu)
    : name_(iommu.name), iova_(iommu.apertureBase, iommu.apertureSize, iommu.pageSize), pageTable_(iommu.pageSize) {}

IommuDomain::~IommuDomain() {
    // A MappingRef outliving its domain would later touch freed memory.
    assert(inUse_.empty());
}

Result<IommuDomain::MappingRef> IommuDomain::mapBuffer(uint64_t bufferId, std::span<const PhysChunk> chunks,
                                                       uint64_t iovaLimit) {
    std::lock_guard lock(mutex_);

    // Hit: any mapping of the buffer that the caller's limit admits. A
    // buffer has one mapping per distinct limit class at most, so the chain
    // is short (usually one).
    if (auto it = byBuffer_.find(bufferId); it != byBuffer_.end()) {
        for (Entry* e = it->second; e != nullptr; e = e->nextOfBuffer) {
            if (e->mapping.iova + (e->mapping.size - 1) > iovaLimit)
                continue;
            assert(e->chunkCount == chunks.size() && !chunks.empty() && e->firstChunk == chunks[0].address);
            if (e->useCount++ == 0)
                inUse_.splice(inUse_.end(), idle_, e->self);
            ++hits_;
            return MappingRef(this, e);
        }
    }

    // Miss: validate (only here, so a hit stays O(1)), then reserve IOVA.
    if (chunks.empty())
        return Error(EINVAL, fmt::format("iommu '{}': buffer {} has no storage to map", name_, bufferId));
    uint64_t pageMask = pageTable_.pageSize() - 1;
    uint64_t total = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
        const PhysChunk& c = chunks[i];
        if (c.size == 0 || ((c.address | c.size) & pageMask) != 0)
            return Error(EINVAL, fmt::format("iommu '{}': chunk {} of buffer {} ({:#x} + {:#x}) is empty or not "
                                             "aligned to the iommu page size {:#x}",
                                             name_, i, bufferId, c.address, c.size, pageMask + 1));
        if (c.size > UINT64_MAX - total)
            return Error(EINVAL, fmt::format("iommu '{}': buffer {} is too large to map", name_, bufferId));
        total += c.size;
    }
    uint64_t reserve = iova_.reservedSize(total);
    if (reserve == 0 || reserve > iova_.windowBytes(iovaLimit))
        return Error(ENOMEM, fmt::format("iommu '{}': a {} mapping does not fit in the aperture [{:#x}, +{}) at or "
                                         "below {:#x}",
                                         name_, formatSize(total), iova_.base(), formatSize(iova_.size()), iovaLimit));

    Result<uint64_t> iova = iova_.allocate(total, iovaLimit);
    // Under pressure, evict cached mappings from the least recently used
    // end. One lying wholly above the limit frees nothing the request can
    // use, so it is skipped and stays cached.
    for (auto pos = idle_.end(); !iova && pos != idle_.begin();) {
        auto victim = std::prev(pos);
        if (victim->mapping.iova > iovaLimit) {
            pos = victim;
            continue;
        }
        destroy(*victim, idle_);
        ++evictions_;
        iova = iova_.allocate(total, iovaLimit);
    }
    if (!iova)
        return iova.error().withContext(fmt::format("iommu '{}'", name_));

    if (Result<void> mapped = pageTable_.mapScatter(*iova, chunks); !mapped) {
        // The allocator handed out a range that is still mapped: an internal
        // bug, but leave nothing behind.
        assert(false && "iova allocator returned a mapped range");
        iova_.free(*iova, total);
        return mapped.error().withContext(fmt::format("iommu '{}'", name_));
    }

    Entry& e = inUse_.emplace_back();
    e.self = std::prev(inUse_.end());
    e.mapping = IovaMapping{bufferId, *iova, total, reserve};
    e.useCount = 1;
    e.chunkCount = chunks.size();
    e.firstChunk = chunks[0].address;
    auto [slot, inserted] = byBuffer_.try_emplace(bufferId, &e);
    if (!inserted) {
        e.nextOfBuffer = slot->second;
        slot->second = &e;
    }
    ++misses_;
    return MappingRef(this, &e);
}

void IommuDomain::unuse(Entry* entry) {
    std::lock_guard lock(mutex_);
    assert(entry->useCount > 0);
    if (--entry->useCount != 0)
        return;
    if (!entry->indexed) {
        destroy(*entry, inUse_);
        return;
    }
    // Most recently used goes to the front; eviction takes from the back.
    idle_.splice(idle_.begin(), inUse_, entry->self);
}

void IommuDomain::unlink(Entry& entry) {
    auto it = byBuffer_.find(entry.mapping.bufferId);
    assert(it != byBuffer_.end());
    Entry** link = &it->second;
    while (*link != &entry)
        link = &(*link)->nextOfBuffer;
    *link = entry.nextOfBuffer;
    if (it->second == nullptr)
        byBuffer_.erase(it);
}

void IommuDomain::destroy(Entry& entry, std::list<Entry>& owner) {
    [[maybe_unused]] uint64_t unmapped = pageTable_.unmap(entry.mapping.iova, entry.mapping.size);
    assert(unmapped == entry.mapping.size);
    iova_.free(entry.mapping.iova, entry.mapping.size);
    if (entry.indexed)
        unlink(entry);
    owner.erase(entry.self);
}

size_t IommuDomain::releaseBuffer(uint64_t bufferId) {
    std::lock_guard lock(mutex_);
    auto it = byBuffer_.find(bufferId);
    if (it == byBuffer_.end())
        return 0;
    Entry* e = it->second;
    byBuffer_.erase(it);
    size_t orphaned = 0;
    while (e != nullptr) {
        Entry* next = e->nextOfBuffer;
        e->nextOfBuffer = nullptr;
        e->indexed = false;
        if (e->useCount == 0) {
            destroy(*e, idle_);
        } else {
            // Destroyed by unuse() when its last user lets go.
            ++orphaned;
        }
        e = next;
    }
    return orphaned;
}

Result<uint64_t> IommuDomain::translate(uint64_t iova) const {
    std::lock_guard lock(mutex_);
    return pageTable_.translate(iova);
}

Result<PhysChunk> IommuDomain::translateRun(uint64_t iova) const {
    std::lock_guard lock(mutex_);
    return pageTable_.translateRun(iova);
}

void IommuDomain::recordFault() {
    std::lock_guard lock(mutex_);
    ++faults_;
}

IommuDomainStats IommuDomain::stats() const {
    std::lock_guard lock(mutex_);
    IommuDomainStats s;
    s.name = name_;
    s.pageSize = pageTable_.pageSize();
    s.apertureBase = iova_.base();
    s.apertureSize = iova_.size();
    s.hits = hits_;
    s.misses = misses_;
    s.evictions = evictions_;
    s.faults = faults_;
    s.usedIovaBytes = iova_.usedBytes();
    s.cachedIovaBytes = iova_.cachedBytes();
    s.mappedBytes = pageTable_.mappedBytes();
    s.mappingCount = inUse_.size() + idle_.size();
    s.inUseCount = inUse_.size();
    return s;
}

std::vector<IommuMappingInfo> IommuDomain::mappings() const {
    std::lock_guard lock(mutex_);
    std::vector<IommuMappingInfo> out;
    out.reserve(inUse_.size() + idle_.size());
    for (const std::list<Entry>* list : {&inUse_, &idle_}) {
        for (const Entry& e : *list)
            out.push_back(IommuMappingInfo{e.mapping.bufferId, e.mapping.iova, e.mapping.size, e.mapping.iovaSize,
                                           e.useCount, !e.indexed});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.iova < b.iova; });
    return out;
}

IommuDomains::IommuDomains(const Platform& platform) {
    domains_.reserve(platform.iommus.size());
    for (const Iommu& iommu : platform.iommus)
        domains_.push_back(std::make_unique<IommuDomain>(iommu));
}

IommuDomain* IommuDomains::find(std::string_view iommuName) const {
    for (const std::unique_ptr<IommuDomain>& d : domains_) {
        if (d->name() == iommuName)
            return d.get();
    }
    return nullptr;
}

IommuDomain* IommuDomains::forDevice(const Device& device) const {
    return device.iommu ? find(*device.iommu) : nullptr;
}

} // namespace cenalloc
