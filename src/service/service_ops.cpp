// SPDX-License-Identifier: MIT
// The service's per-client operations (allocate, import, attach, map, CPU access, bufinfo), each locking for itself.
#include "service/service.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <linux/dma-buf.h>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "base/try.h"
#include "heaps/kernel_heap.h"
#include "service/service_state.h"

namespace cenalloc {

namespace {

// Open begin_cpu_access brackets one session may hold on one buffer, and
// on all its buffers together (it may claim every buffer it has an fd of).
constexpr size_t kMaxOpenCpuAccess = 1024;
constexpr size_t kMaxOpenCpuAccessPerSession = 4096;
// Mappings one session may hold: each costs the daemon memory, and a
// client that only ever maps must hit a limit (attachments: service_moves.cpp).
constexpr size_t kMaxMappings = 4096;
// And what they hold, which grows with the buffer: the device keeps every
// segment of a mapping and the storage's chunks (DmaDevice::addMapping),
// some 100 bytes each. A 1 GiB buffer of 1 MiB chunks on a device of 64 KiB
// segments is 17408 of them. Per session, and per uid over all its
// sessions (a uid has up to max_clients_per_uid of them).
constexpr uint64_t kMaxMappedPieces = 65536;
constexpr uint64_t kMaxMappedPiecesPerUid = 4 * kMaxMappedPieces;

} // namespace

template <typename Make>
Result<ServiceBuffer> Service::makeCharged(ClientId client, uint64_t bytes, bool reapFirst, uint32_t accessMode,
                                           Make make) {
    Reservation reservation = CENALLOC_TRY(reserve(client, bytes));
    // Storage of buffers that died is returned when the kernel's event is
    // read: read it first when the heap might otherwise look too full, and
    // every so often so that dead buffers never pile up (in-process there
    // is no event loop to read them).
    if (reapFirst || reapDue())
        reap();
    std::shared_ptr<Buffer> buffer = CENALLOC_TRY(make());
    return adopt(client, std::move(reservation), std::move(buffer), accessMode);
}

Result<std::vector<HeapInfo>> Service::heaps(ClientId) {
    // Any client, even one disconnected meanwhile, may see the heaps.
    observe();
    reap();
    return heapInfos();
}

Result<ServiceBuffer> Service::allocate(ClientId client, const AllocRequest& request) {
    const auto [peer, trusted] = CENALLOC_TRY(peerOf(client));
    // Access first, then the heap and its flags: a restricted heap exists
    // (checkServiceConfig), and its flags are nobody's business but its
    // users'.
    if (!trusted && !config_.allows(request.heap(), peer))
        return Error(EACCES, fmt::format("uid {} may not allocate from heap '{}'", peer.uid, request.heap()));
    std::shared_ptr<Heap> heap = CENALLOC_TRY(context_->heapFor(request));
    const uint64_t aligned = request.alignedLength();
    // More than the heap can ever hold is ENOMEM before anything is
    // reserved, charged or sized from the client's number.
    if (uint64_t capacity = heap->properties().capacity; capacity != 0 && aligned > capacity)
        return Error(ENOMEM, fmt::format("{} is more than heap '{}' can ever hold ({})", formatSize(aligned),
                                         request.heap(), formatSize(capacity)));
    const bool reapFirst = heap->properties().contiguous || heap->freeBytes() < aligned;
    return makeCharged(client, aligned, reapFirst, request.accessMode(), [&] { return context_->allocate(request); });
}

Result<ServiceBuffer> Service::create(ClientId client, const CreateRequest& request) {
    const auto [peer, trusted] = CENALLOC_TRY(peerOf(client));
    Context::HeapFilter filter;
    if (!trusted)
        filter = [this, peer = peer](const HeapProperties& heap) { return config_.allows(heap.name, peer); };
    // More than any heap the client may use can ever hold is ENOMEM now,
    // before anything is reserved or made (its storage would come from
    // one of them at the first map); a heap of unknown capacity (a host
    // kernel heap) may hold anything.
    uint64_t largest = 0;
    for (const auto& heap : context_->heaps()) {
        const HeapProperties& p = heap->properties();
        if (!filter || filter(p))
            largest = p.capacity == 0 ? kUnlimited : std::max(largest, p.capacity);
        if (largest == kUnlimited)
            break;
    }
    const uint64_t aligned = request.alignedSize();
    if (aligned > largest)
        return Error(ENOMEM, fmt::format("{} is more than any heap this client may use can ever hold ({} at most)",
                                         formatSize(aligned), formatSize(largest)));
    return makeCharged(client, aligned, false, O_RDWR, [&] { return context_->create(request, filter); });
}

Result<ServiceBuffer> Service::allocateFor(ClientId client, const AllocForRequest& request, AllocForChoice& choice) {
    const auto [peer, trusted] = CENALLOC_TRY(peerOf(client));
    Context::HeapFilter filter;
    if (!trusted)
        filter = [this, peer = peer](const HeapProperties& heap) { return config_.allows(heap.name, peer); };
    // The size was checked against every heap that serves the devices
    // (explain's capacity rule) before any heap allocates it.
    return makeCharged(client, request.alignedSize(), false, request.fdFlags() & O_ACCMODE,
                       [&]() -> Result<std::shared_ptr<Buffer>> {
                           AllocatedFor allocated = CENALLOC_TRY(context_->allocateFor(request, filter));
                           choice = std::move(allocated.choice);
                           return std::move(allocated.buffer);
                       });
}

Result<uint64_t> Service::import(ClientId clientId, BorrowedFd fd) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    claimLocked(*client, *entry);
    return entry->buffer->id();
}

Result<void> Service::release(ClientId clientId, BorrowedFd fd) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    uint64_t id = entry->buffer->id();
    if (!client->claims.contains(id))
        return Error(ENOENT, fmt::format("this session does not use buffer {}", id));
    dropClaimLocked(*client, id);
    return {};
}

Result<void> Service::detach(ClientId clientId, uint64_t attachment) {
    std::lock_guard lock(mutex_);
    auto [c, record] = CENALLOC_TRY(attachmentLocked(clientId, attachment));
    if (!record->mappings.empty())
        return Error(EBUSY, fmt::format("attachment {} still has {} mapping(s): unmap them first", attachment,
                                        record->mappings.size()));
    if (auto claim = c->claims.find(record->buffer); claim != c->claims.end())
        claim->second.attachments.erase(attachment);
    c->attachments.erase(attachment);
    usage_[c->peer.uid].attachments -= 1;
    settleLocked(clientId, attachment);
    return {};
}

Result<SessionMapping> Service::map(ClientId clientId, uint64_t attachment, DmaDirection direction) {
    std::unique_lock lock(mutex_);
    auto target = attachmentLocked(clientId, attachment);
    if (!target)
        return target.error();
    // The first map of a deferred buffer allocates: storage of buffers
    // that died must be back in the heaps by then (reap() waits for a
    // concurrent reap's too), and anything may change meanwhile.
    if (!entries_.at(target->record->buffer)->buffer->hasStorage()) {
        lock.unlock();
        reap();
        lock.lock();
        target = attachmentLocked(clientId, attachment);
        if (!target)
            return target.error();
    }
    auto [c, record] = *target;
    if (c->mappings.size() >= kMaxMappings)
        return Error(ENOSPC, fmt::format("this session holds {} mappings, the most it may", c->mappings.size()));
    Attachment::Mapping mapping = CENALLOC_TRY(record->attachment.map(direction));
    // Known once mapped; a mapping past the bound is undone as it goes.
    const uint64_t pieces = mapping.segments().size() + entries_.at(record->buffer)->buffer->chunks().size();
    if (c->mappedPieces + pieces > kMaxMappedPieces)
        return Error(ENOSPC, fmt::format("this session's mappings hold {} segments and chunks, {} more would pass "
                                         "the most they may ({})",
                                         c->mappedPieces, pieces, kMaxMappedPieces));
    Usage& usage = usage_[c->peer.uid];
    if (!c->trusted && usage.mappedPieces + pieces > kMaxMappedPiecesPerUid)
        return Error(ENOSPC, fmt::format("the mappings of uid {} hold {} segments and chunks, {} more would pass the "
                                         "most they may ({})",
                                         c->peer.uid, usage.mappedPieces, pieces, kMaxMappedPiecesPerUid));
    SessionMapping out;
    out.id = c->nextMapping++;
    out.direction = direction;
    out.segments = mapping.segments();
    record->mappings.insert(out.id);
    c->mappings.emplace(out.id, MappingRecord{attachment, std::move(mapping), pieces});
    c->mappedPieces += pieces;
    usage.mappedPieces += pieces;
    // A demoted importer's live mappings hold the storage, as a static one's.
    if (record->demoted && !record->servicePin && record->attachment.pin())
        record->servicePin = true;
    return out;
}

Result<void> Service::unmap(ClientId clientId, uint64_t mapping) {
    std::lock_guard lock(mutex_);
    ClientState& c = *CENALLOC_TRY(clientLocked(clientId));
    auto it = c.mappings.find(mapping);
    if (it == c.mappings.end())
        return Error(ENOENT, fmt::format("no mapping {} in this session", mapping));
    const uint64_t attachment = it->second.attachment;
    AttachmentRecord& record = c.attachments.at(attachment);
    record.mappings.erase(mapping);
    c.mappedPieces -= it->second.pieces;
    usage_[c.peer.uid].mappedPieces -= it->second.pieces;
    c.mappings.erase(it);
    if (!liveLocked(c, record)) {
        if (record.servicePin && record.attachment.unpin())
            record.servicePin = false;
        // Nothing of it left to stop using: as good as an acknowledgement.
        settleLocked(clientId, attachment);
    }
    return {};
}

Result<void> Service::beginCpuAccess(ClientId clientId, BorrowedFd fd, SyncFlags flags) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    auto& brackets = claimLocked(*client, *entry).cpuAccess;
    // Each open bracket costs the daemon memory: a client that only ever
    // begins must hit a limit, not exhaust the service.
    if (brackets.size() >= kMaxOpenCpuAccess)
        return Error(EBUSY, fmt::format("{} cpu accesses are already open on buffer {} in this session",
                                        brackets.size(), entry->buffer->id()));
    if (client->cpuAccessOpen >= kMaxOpenCpuAccessPerSession)
        return Error(EBUSY, fmt::format("{} cpu accesses are already open in this session, the most it may",
                                        client->cpuAccessOpen));
    // The service holds no fd of a host kernel dma-buf: the kernel does its
    // cache maintenance through the caller's.
    if (entry->buffer->inHostKernel() && !entry->buffer->bytesApart())
        CENALLOC_CHECK(syncDmaBuf(fd, DMA_BUF_SYNC_START | flags.bits()));
    CpuAccessGuard guard = CENALLOC_TRY(entry->buffer->beginCpuAccess(flags));
    brackets.emplace_back(flags.bits(), std::move(guard));
    ++client->cpuAccessOpen;
    return {};
}

Result<void> Service::endCpuAccess(ClientId clientId, BorrowedFd fd, SyncFlags flags) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    uint64_t id = entry->buffer->id();
    auto claim = client->claims.find(id);
    if (claim != client->claims.end()) {
        auto& brackets = claim->second.cpuAccess;
        for (auto it = brackets.rbegin(); it != brackets.rend(); ++it) {
            if (it->first == flags.bits()) {
                brackets.erase(std::next(it).base()); // ends the bracket
                --client->cpuAccessOpen;
                if (entry->buffer->inHostKernel() && !entry->buffer->bytesApart())
                    return syncDmaBuf(fd, DMA_BUF_SYNC_END | flags.bits());
                return {};
            }
        }
    }
    return Error(EINVAL,
                 fmt::format("no cpu access with flags {:#x} is open on buffer {} in this session", flags.bits(), id));
}

Result<std::shared_ptr<Buffer>> Service::lookup(ClientId clientId, BorrowedFd fd) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    return entry->buffer;
}

Result<void> Service::setName(ClientId clientId, BorrowedFd fd, const BufferName& name) {
    // The buffer has its own lock: naming it needs nothing of the service's.
    std::shared_ptr<Buffer> buffer = CENALLOC_TRY(lookup(clientId, fd));
    // A host kernel dma-buf keeps its name in the kernel too (its fdinfo).
    if (buffer->inHostKernel() && !buffer->bytesApart())
        CENALLOC_CHECK(setDmaBufName(fd, name));
    return buffer->setName(name);
}

Result<UniqueFd> Service::storageFd(ClientId clientId, BorrowedFd fd) {
    std::shared_ptr<Buffer> buffer = CENALLOC_TRY(lookup(clientId, fd));
    const int mode = ::fcntl(fd.get(), F_GETFL);
    if (mode < 0)
        return Error::fromErrno("fd flags of the buffer fd");
    if ((mode & O_ACCMODE) != O_RDWR)
        return Error(EACCES, fmt::format("buffer {}: a read-only fd of it gives no storage fd", buffer->id()));
    // Outside the service's lock: the buffer's own lock covers allocating
    // its storage.
    if (buffer->bytesApart()) {
        UniqueFd storage = CENALLOC_TRY(buffer->dupStorageFd(O_CLOEXEC));
        // The storage file can outlive the buffer in the client's hands: its
        // charge then lasts as long as that file (lingerLocked). The entry
        // exists: the fd this request carries keeps the buffer alive.
        std::lock_guard lock(mutex_);
        if (auto entry = entries_.find(buffer->id()); entry != entries_.end())
            entry->second->storageOut = true;
        return storage;
    }
    // The bytes are in the buffer's own file, whose fd the service gave
    // away: the caller's fd is one of it.
    CENALLOC_CHECK(buffer->ensureStorage());
    int again = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
    if (again < 0)
        return Error::fromErrno("duplicating the buffer fd");
    return UniqueFd(again);
}

Result<std::vector<BufferInfo>> Service::bufinfo(ClientId clientId) {
    observe();
    std::vector<std::shared_ptr<Buffer>> visible;
    {
        std::lock_guard lock(mutex_);
        reapLocked();
        const ClientState& client = *CENALLOC_TRY(clientLocked(clientId));
        visible = visibleLocked(client);
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

Result<AllocatorStats> Service::stats(ClientId clientId, bool resetWatermark) {
    const auto [peer, trusted] = CENALLOC_TRY(peerOf(clientId));
    if (resetWatermark && !trusted && peer.uid != 0)
        return Error(EPERM, fmt::format("uid {} may not reset the watermarks (root only)", peer.uid));
    observe();
    reap();
    if (resetWatermark)
        for (const auto& heap : context_->heaps())
            heap->resetWatermark();
    AllocatorStats stats;
    stats.heaps = heapInfos();
    stats.domains = context_->domainStats();
    stats.liveBuffers = context_->liveBuffers();
    stats.lifetimeBugs = context_->lifetimeBugs();
    stats.readyPools = context_->readyPoolStats();
    {
        std::lock_guard lock(mutex_);
        const ClientState& client = *CENALLOC_TRY(clientLocked(clientId));
        ServiceLimits& l = stats.limits;
        if (auto usage = usage_.find(peer.uid); usage != usage_.end()) {
            l.heldBytes = usage->second.bytes;
            l.heldBuffers = usage->second.buffers;
        }
        l.quotaBytes = client.quota.bytes;
        l.quotaBuffers = client.quota.buffers;
        l.trackedBuffers = chargedBuffers_;
        l.maxBuffers = watchLimit_;
        l.rootReserve = watchReserve_;
    }
    return stats;
}

} // namespace cenalloc
