// SPDX-License-Identifier: MIT
// ServiceClient: one client's operations on the service (allocate, import, attach, map, CPU access, bufinfo).
#include "service/service.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <linux/dma-buf.h>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "heaps/heap_request.h"
#include "heaps/kernel_heap.h"
#include "service/service_state.h"

namespace cenalloc {

namespace {

// Open begin_cpu_access brackets one session may hold on one buffer.
constexpr size_t kMaxOpenCpuAccess = 1024;
// Attachments and mappings one session may hold: each costs the daemon
// memory, and a client that only ever attaches must hit a limit.
constexpr size_t kMaxAttachments = 4096;
constexpr size_t kMaxMappings = 4096;

} // namespace

ServiceClient::~ServiceClient() {
    service_->disconnect(id_);
}

Result<std::vector<HeapInfo>> ServiceClient::heaps() {
    service_->observe();
    service_->reap();
    return service_->heapInfos();
}

Result<ServiceBuffer> ServiceClient::allocate(std::string_view heapName, uint64_t length, uint32_t fdFlags,
                                              uint64_t heapFlags) {
    Service& s = *service_;
    std::shared_ptr<Heap> heap = s.context_->findHeap(heapName);
    if (!heap)
        return Error(ENOENT, fmt::format("no heap '{}'", heapName));
    if (!trusted_ && !s.config_.allows(heapName, peer_))
        return Error(EACCES, fmt::format("uid {} may not allocate from heap '{}'", peer_.uid, heapName));
    // Validated here only to know the size to charge; Context::allocate
    // is still the one place that validates for the allocation itself.
    auto aligned = validateHeapRequest(heap->properties(), length, fdFlags, heapFlags);
    if (!aligned)
        return aligned.error().withContext(fmt::format("allocating from heap '{}'", heapName));
    // More than the heap can ever hold is ENOMEM before anything is
    // reserved, charged or sized from the client's number.
    if (uint64_t capacity = heap->properties().capacity; capacity != 0 && *aligned > capacity)
        return Error(ENOMEM, fmt::format("{} is more than heap '{}' can ever hold ({})", formatSize(*aligned), heapName,
                                         formatSize(capacity)));
    if (auto ok = s.reserve(id_, peer_.uid, *aligned); !ok)
        return ok.error();
    // Storage of buffers that died is returned when the kernel's event is
    // read: read it first when the heap might otherwise look too full, and
    // every so often so that dead buffers never pile up (in-process there
    // is no event loop to read them).
    if (heap->properties().contiguous || heap->freeBytes() < *aligned || s.reapDue())
        s.reap();
    auto buffer = s.context_->allocate(heapName, length, fdFlags, heapFlags);
    if (!buffer) {
        s.unreserve(peer_.uid, *aligned);
        return buffer.error();
    }
    auto adopted = s.adopt(id_, std::move(*buffer), *aligned, fdFlags & O_ACCMODE);
    if (!adopted)
        s.unreserve(peer_.uid, *aligned);
    return adopted;
}

Result<ServiceBuffer> ServiceClient::create(uint64_t size, std::string_view name, CpuAccess cpuAccess) {
    Service& s = *service_;
    Context::HeapFilter filter;
    if (!trusted_)
        filter = [&](const HeapProperties& heap) { return s.config_.allows(heap.name, peer_); };
    auto aligned = alignUpChecked(size, kPageSize);
    if (size == 0 || !aligned || name.size() > kBufferNameMax)
        return s.context_->create(size, name, cpuAccess, filter).error(); // the one place that says why
    // More than any heap the client may use can ever hold is ENOMEM now,
    // before anything is reserved or made (its storage would come from
    // one of them at the first map); a heap of unknown capacity (a host
    // kernel heap) may hold anything.
    uint64_t largest = 0;
    for (const auto& heap : s.context_->heaps()) {
        const HeapProperties& p = heap->properties();
        if (!filter || filter(p))
            largest = p.capacity == 0 ? kUnlimited : std::max(largest, p.capacity);
        if (largest == kUnlimited)
            break;
    }
    if (*aligned > largest)
        return Error(ENOMEM, fmt::format("{} is more than any heap this client may use can ever hold ({} at most)",
                                         formatSize(*aligned), formatSize(largest)));
    if (auto ok = s.reserve(id_, peer_.uid, *aligned); !ok)
        return ok.error();
    if (s.reapDue())
        s.reap();
    auto buffer = s.context_->create(size, name, cpuAccess, filter);
    if (!buffer) {
        s.unreserve(peer_.uid, *aligned);
        return buffer.error();
    }
    auto adopted = s.adopt(id_, std::move(*buffer), *aligned, O_RDWR);
    if (!adopted)
        s.unreserve(peer_.uid, *aligned);
    return adopted;
}

Result<uint64_t> ServiceClient::import(BorrowedFd fd) {
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    s.claimLocked(*client, *entry);
    return entry->buffer->id();
}

Result<void> ServiceClient::release(BorrowedFd fd) {
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    uint64_t id = entry->buffer->id();
    if (!client->claims.contains(id))
        return Error(ENOENT, fmt::format("this session does not use buffer {}", id));
    s.dropClaimLocked(*client, id);
    return {};
}

Result<uint64_t> ServiceClient::attach(BorrowedFd fd, std::string_view deviceName) {
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    auto device = s.context_->device(deviceName);
    if (!device)
        return device.error();
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    Service::ClientState& c = *client;
    if (c.attachments.size() >= kMaxAttachments)
        return Error(ENOSPC, fmt::format("this session holds {} attachments, the most it may", c.attachments.size()));
    uint64_t bufferId = entry->buffer->id();
    auto attachment = entry->buffer->attach(**device);
    if (!attachment)
        return attachment.error();
    Service::Claim& claim = s.claimLocked(c, *entry);
    uint64_t id = c.nextAttachment++;
    c.attachments.emplace(id, Service::AttachmentRecord{bufferId, std::move(*attachment), {}});
    claim.attachments.insert(id);
    return id;
}

Result<void> ServiceClient::detach(uint64_t attachment) {
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.attachmentLocked(id_, attachment);
    if (!target)
        return target.error();
    auto [c, record] = *target;
    if (!record->mappings.empty())
        return Error(EBUSY, fmt::format("attachment {} still has {} mapping(s): unmap them first", attachment,
                                        record->mappings.size()));
    if (auto claim = c->claims.find(record->buffer); claim != c->claims.end())
        claim->second.attachments.erase(attachment);
    c->attachments.erase(attachment);
    return {};
}

Result<SessionMapping> ServiceClient::map(uint64_t attachment, DmaDirection direction) {
    Service& s = *service_;
    std::unique_lock lock(s.mutex_);
    auto target = s.attachmentLocked(id_, attachment);
    if (!target)
        return target.error();
    // The first map of a deferred buffer allocates: storage of buffers
    // that died must be back in the heaps by then (reap() waits for a
    // concurrent reap's too), and anything may change meanwhile.
    if (!s.entries_.at(target->record->buffer)->buffer->hasStorage()) {
        lock.unlock();
        s.reap();
        lock.lock();
        target = s.attachmentLocked(id_, attachment);
        if (!target)
            return target.error();
    }
    auto [c, record] = *target;
    if (c->mappings.size() >= kMaxMappings)
        return Error(ENOSPC, fmt::format("this session holds {} mappings, the most it may", c->mappings.size()));
    auto mapping = record->attachment.map(direction);
    if (!mapping)
        return mapping.error();
    SessionMapping out;
    out.id = c->nextMapping++;
    out.direction = direction;
    out.segments = mapping->segments();
    record->mappings.insert(out.id);
    c->mappings.emplace(out.id, Service::MappingRecord{attachment, std::move(*mapping)});
    return out;
}

Result<void> ServiceClient::unmap(uint64_t mapping) {
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto client = s.clientLocked(id_);
    if (!client)
        return client.error();
    Service::ClientState& c = **client;
    auto it = c.mappings.find(mapping);
    if (it == c.mappings.end())
        return Error(ENOENT, fmt::format("no mapping {} in this session", mapping));
    c.attachments.at(it->second.attachment).mappings.erase(mapping);
    c.mappings.erase(it);
    return {};
}

Result<void> ServiceClient::beginCpuAccess(BorrowedFd fd, uint32_t flags) {
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    auto& brackets = s.claimLocked(*client, *entry).cpuAccess;
    // Each open bracket costs the daemon memory: a client that only ever
    // begins must hit a limit, not exhaust the service.
    if (brackets.size() >= kMaxOpenCpuAccess)
        return Error(EBUSY, fmt::format("{} cpu accesses are already open on buffer {} in this session",
                                        brackets.size(), entry->buffer->id()));
    // The service holds no fd of a host kernel dma-buf: the kernel does its
    // cache maintenance through the caller's.
    if (entry->buffer->inHostKernel())
        if (auto synced = syncDmaBuf(fd, DMA_BUF_SYNC_START | flags); !synced)
            return synced.error();
    auto guard = entry->buffer->beginCpuAccess(flags);
    if (!guard)
        return guard.error();
    brackets.emplace_back(flags, std::move(*guard));
    return {};
}

Result<void> ServiceClient::endCpuAccess(BorrowedFd fd, uint32_t flags) {
    if (flags == 0 || (flags & ~uint32_t{kSyncReadWrite}))
        return Error(EINVAL, fmt::format("sync flags {:#x}: need read and/or write and nothing else", flags));
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    uint64_t id = entry->buffer->id();
    auto claim = client->claims.find(id);
    if (claim != client->claims.end()) {
        auto& brackets = claim->second.cpuAccess;
        for (auto it = brackets.rbegin(); it != brackets.rend(); ++it) {
            if (it->first == flags) {
                brackets.erase(std::next(it).base()); // ends the bracket
                if (entry->buffer->inHostKernel())
                    return syncDmaBuf(fd, DMA_BUF_SYNC_END | flags);
                return {};
            }
        }
    }
    return Error(EINVAL, fmt::format("no cpu access with flags {:#x} is open on buffer {} in this session", flags, id));
}

Result<void> ServiceClient::setName(BorrowedFd fd, std::string_view name) {
    auto key = inodeOf(fd);
    if (!key)
        return key.error();
    Service& s = *service_;
    std::lock_guard lock(s.mutex_);
    auto target = s.targetLocked(id_, *key, fd.get());
    if (!target)
        return target.error();
    auto [client, entry] = *target;
    // A host kernel dma-buf keeps its name in the kernel too (its fdinfo).
    if (entry->buffer->inHostKernel())
        if (auto named = setDmaBufName(fd, name); !named)
            return named.error();
    return entry->buffer->setName(name);
}

Result<std::vector<BufferInfo>> ServiceClient::bufinfo() {
    Service& s = *service_;
    s.observe();
    std::vector<std::shared_ptr<Buffer>> visible;
    {
        std::lock_guard lock(s.mutex_);
        s.reapLocked();
        auto client = s.clientLocked(id_);
        if (!client)
            return client.error();
        for (const auto& [id, entry] : s.entries_)
            if (s.visibleLocked(**client, id))
                visible.push_back(entry->buffer);
    }
    std::vector<BufferInfo> out;
    out.reserve(visible.size());
    for (const auto& buffer : visible) {
        out.push_back(buffer->info());
        // Not counting the reference `visible` holds for this call.
        out.back().references = std::max(0L, out.back().references - 1);
    }
    return out;
}

Result<AllocatorStats> ServiceClient::stats(bool resetWatermark) {
    if (resetWatermark && !trusted_ && peer_.uid != 0)
        return Error(EPERM, fmt::format("uid {} may not reset the watermarks (root only)", peer_.uid));
    Service& s = *service_;
    s.observe();
    s.reap();
    if (resetWatermark)
        for (const auto& heap : s.context_->heaps())
            heap->resetWatermark();
    AllocatorStats stats;
    stats.heaps = s.heapInfos();
    stats.domains = s.context_->domainStats();
    stats.liveBuffers = s.context_->liveBuffers();
    stats.lifetimeBugs = s.context_->lifetimeBugs();
    {
        std::lock_guard lock(s.mutex_);
        auto client = s.clientLocked(id_);
        if (!client)
            return client.error();
        ServiceLimits& l = stats.limits;
        if (auto usage = s.usage_.find(peer_.uid); usage != s.usage_.end()) {
            l.heldBytes = usage->second.bytes;
            l.heldBuffers = usage->second.buffers;
        }
        l.quotaBytes = (*client)->quota.bytes;
        l.quotaBuffers = (*client)->quota.buffers;
        l.trackedBuffers = s.chargedBuffers_;
        l.maxBuffers = s.watchLimit_;
        l.rootReserve = s.watchReserve_;
    }
    return stats;
}

} // namespace cenalloc
