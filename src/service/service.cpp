// SPDX-License-Identifier: MIT
// Service: buffers by inode, lifetime through inotify, clients, claims and quotas (operations: service_ops.cpp).
#include "service/service.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "alloc/context_access.h"
#include "service/service_context.h"
#include "service/service_state.h"

namespace cenalloc {

namespace {

// Allocations between two reaps when nothing else asks for one.
constexpr uint64_t kReapEvery = 32;
// The share of the daemon's buffers (inotify watches) kept for uid 0: one
// in kRootReserveDivisor, at least kMinRootReserve (when the limit allows).
constexpr uint64_t kRootReserveDivisor = 16;
constexpr uint64_t kMinRootReserve = 64;
// The share of the daemon's connections kept for uid 0 the same way (at
// least one when max_clients is 2 or more): the administrator's `cenalloc
// stats` gets in while other users' clients fill the rest.
constexpr size_t kRootClientDivisor = 16;

size_t rootClientReserve(size_t maxClients) {
    return std::min(std::max<size_t>(maxClients / kRootClientDivisor, 1), maxClients / 2);
}

// fs.inotify.max_user_watches: every buffer the daemon tracks is a watch.
uint64_t kernelWatchLimit() {
    FILE* f = std::fopen("/proc/sys/fs/inotify/max_user_watches", "re");
    if (!f)
        return kUnlimited;
    unsigned long long limit = 0;
    int n = std::fscanf(f, "%llu", &limit);
    std::fclose(f);
    return n == 1 && limit > 0 ? limit : kUnlimited;
}

Error gone() {
    return Error(ESHUTDOWN, "the client was disconnected");
}

// @p fd (a memfd opened read-write) with the access mode @p accessMode
// (O_RDONLY or O_WRONLY): a new open file of the same inode, through
// /proc/self/fd. The inode's mode first loses the permission the mode does
// not give, so that a holder of the fd who is neither root nor the daemon's
// uid cannot widen it by reopening /proc/<pid>/fd/N. (A read-only buffer is
// also sealed against writes, which holds for root too: BufferAccess::create.)
Result<UniqueFd> narrowAccess(UniqueFd fd, uint32_t accessMode) {
    const mode_t mode = accessMode == O_RDONLY ? 0444 : 0222;
    if (::fchmod(fd.get(), mode) != 0)
        return Error(errno, fmt::format("fchmod of a buffer: {}", std::strerror(errno)));
    const std::string path = fmt::format("/proc/self/fd/{}", fd.get());
    UniqueFd narrowed(::open(path.c_str(), static_cast<int>(accessMode) | O_CLOEXEC));
    if (!narrowed.valid())
        return Error(errno, fmt::format("reopening a buffer {}: {}",
                                        accessMode == O_RDONLY ? "read-only" : "write-only", std::strerror(errno)));
    return narrowed;
}

} // namespace

// --------------------------------------------------------------- Service

Service::Service(InodeWatcher watcher) : watcher_(std::move(watcher)) {}

Result<std::shared_ptr<Service>> Service::create(const Platform& platform, ServiceConfig config) {
    std::vector<std::string> notes;
    auto context = serviceContext(platform, config.context, notes, config.probeKernelHeaps);
    if (!context)
        return context.error();
    std::vector<std::string> heapNames;
    for (const auto& heap : (*context)->heaps())
        heapNames.push_back(heap->name());
    if (auto ok = checkServiceConfig(config, (*context)->platform(), heapNames); !ok)
        return ok.error();
    auto watcher = InodeWatcher::create();
    if (!watcher)
        return watcher.error();
    // The ready pool's memfds come watched (PreparedWatches): set before
    // anything is allocated, so every memfd it makes is.
    auto prepared = PreparedWatches::create(*watcher);
    if (!prepared)
        return prepared.error();
    ContextAccess::readyMemory(**context).setPreparer(*prepared);
    std::shared_ptr<Service> service(new Service(std::move(*watcher)));
    service->prepared_ = std::move(*prepared);
    service->context_ = std::move(*context);
    service->watchLimit_ = config.maxBuffers != 0 ? config.maxBuffers : kernelWatchLimit();
    if (service->watchLimit_ != kUnlimited)
        service->watchReserve_ =
            std::min(std::max(service->watchLimit_ / kRootReserveDivisor, kMinRootReserve), service->watchLimit_ / 2);
    service->config_ = std::move(config);
    service->notes_ = std::move(notes);
    return service;
}

Service::~Service() {
    std::lock_guard lock(mutex_);
    // Clients first: their attachments must go before the buffers they attach.
    while (!clients_.empty())
        disconnectLocked(*clients_.begin()->second);
    while (!entries_.empty())
        dropEntryLocked(entries_.begin()->first);
}

Result<std::unique_ptr<ServiceClient>> Service::connect(const Credentials& peer, bool trusted) {
    std::lock_guard lock(mutex_);
    if (!trusted) {
        const size_t reserve = peer.uid == 0 ? 0 : rootClientReserve(config_.maxClients);
        if (clients_.size() + reserve >= config_.maxClients)
            return Error(EUSERS, reserve == 0 || clients_.size() >= config_.maxClients
                                     ? fmt::format("the daemon serves its maximum of {} clients", config_.maxClients)
                                     : fmt::format("the daemon serves {} clients; the last {} of its {} are kept "
                                                   "for uid 0",
                                                   clients_.size(), reserve, config_.maxClients));
        // Looked up, not made: a refused uid leaves no entry behind.
        auto usage = usage_.find(peer.uid);
        if (usage != usage_.end() && usage->second.clients >= config_.maxClientsPerUid)
            return Error(EAGAIN,
                         fmt::format("uid {} has its maximum of {} clients", peer.uid, config_.maxClientsPerUid));
    }
    Usage& usage = usage_[peer.uid];
    auto state = std::make_unique<ClientState>();
    state->id = nextClient_++;
    state->peer = peer;
    state->trusted = trusted;
    state->quota = trusted ? Quota{} : config_.quotaFor(peer);
    uint64_t id = state->id;
    clients_.emplace(id, std::move(state));
    ++usage.clients;
    return std::make_unique<ServiceClient>(PassKey{}, shared_from_this(), id, peer);
}

void Service::disconnect(uint64_t client) {
    std::lock_guard lock(mutex_);
    auto it = clients_.find(client);
    if (it != clients_.end())
        disconnectLocked(*it->second);
}

void Service::disconnectLocked(ClientState& client) {
    // A move it asked for and that waits is cancelled; as an importer it is
    // waited for no more (dropClaimLocked settles each attachment).
    std::vector<uint64_t> mine;
    for (const auto& [bufferId, move] : moves_)
        if (move.mover == client.id)
            mine.push_back(bufferId);
    for (uint64_t bufferId : mine)
        cancelMoveLocked(bufferId, "the client that asked for the move is gone");
    // The client's claims go; the charges of what it allocated stay with
    // the buffers (unlinkEntryLocked ends them).
    while (!client.claims.empty())
        dropClaimLocked(client, client.claims.begin()->first);
    const uint32_t uid = client.peer.uid;
    if (auto usage = usage_.find(uid); usage != usage_.end())
        --usage->second.clients;
    clients_.erase(client.id); // destroys client
    releaseUsageLocked(uid);
}

void Service::releaseUsageLocked(uint32_t uid) {
    auto usage = usage_.find(uid);
    // Kept while it counts anything, moves too: a count given back later
    // must find its entry.
    if (usage != usage_.end() && usage->second.clients == 0 && usage->second.bytes == 0 && usage->second.buffers == 0 &&
        usage->second.pendingMoves == 0 && usage->second.unackedMoves == 0 && usage->second.mappedPieces == 0 &&
        usage->second.attachments == 0)
        usage_.erase(usage);
}

void Service::dropClaimLocked(ClientState& client, uint64_t bufferId) {
    auto claim = client.claims.find(bufferId);
    if (claim == client.claims.end())
        return;
    // Undo in the reverse order of doing: mappings, attachments (the newest
    // first, as the buffer looks for them), CPU access.
    for (auto id = claim->second.attachments.rbegin(); id != claim->second.attachments.rend(); ++id) {
        const uint64_t attachmentId = *id;
        auto att = client.attachments.find(attachmentId);
        for (uint64_t mappingId : att->second.mappings) {
            auto mapping = client.mappings.find(mappingId);
            client.mappedPieces -= mapping->second.pieces;
            usage_[client.peer.uid].mappedPieces -= mapping->second.pieces;
            client.mappings.erase(mapping); // unmaps
        }
        client.attachments.erase(att); // detaches
        usage_[client.peer.uid].attachments -= 1;
        settleLocked(client.id, attachmentId);
    }
    client.cpuAccessOpen -= claim->second.cpuAccess.size();
    while (!claim->second.cpuAccess.empty())
        claim->second.cpuAccess.pop_back(); // ends the bracket
    client.claims.erase(claim);
    if (auto entry = entries_.find(bufferId); entry != entries_.end())
        entry->second->holders.erase(client.id);
}

std::unique_ptr<Service::Entry> Service::unlinkEntryLocked(uint64_t bufferId) {
    auto it = entries_.find(bufferId);
    if (it == entries_.end())
        return nullptr;
    std::unique_ptr<Entry> entry = std::move(it->second);
    entries_.erase(it);
    if (moves_.contains(bufferId))
        cancelMoveLocked(bufferId, "the buffer is gone");
    for (uint64_t holder : entry->holders) {
        auto client = clients_.find(holder);
        if (client == clients_.end())
            continue;
        dropClaimLocked(*client->second, bufferId);
    }
    // The buffer is gone everywhere: so is its charge, unless a client may
    // still hold its storage file.
    if (auto usage = usage_.find(entry->chargedUid); entry->charged && usage != usage_.end())
        usage->second.chargedBuffers.erase(bufferId);
    if (entry->charged && !(entry->storageOut && lingerLocked(*entry)))
        releaseChargeLocked(entry->chargedUid, entry->chargedBytes);
    byInode_.erase(entry->key);
    byWatch_.erase(entry->watch);
    return entry;
}

void Service::releaseChargeLocked(uint32_t uid, uint64_t bytes) {
    Usage& usage = usage_[uid];
    usage.bytes -= bytes;
    usage.buffers -= 1;
    chargedBuffers_ -= 1;
    releaseUsageLocked(uid);
}

bool Service::lingerLocked(const Entry& entry) {
    // The buffer has its storage (storage-fd made it): this only dups the
    // fd the buffer holds, which closes with the buffer once the caller
    // destroys the entry. The kernel's dma-buf then lives on only in the
    // clients that kept its fd, and so does the charge (the buffer's watch
    // is gone, this one takes its place in the count). Should the daemon
    // have no fd or watch to spare, the charge ends now, as before.
    auto storage = entry.buffer->dupStorageFd(O_CLOEXEC);
    if (!storage)
        return false;
    auto wd = watcher_.watch(*storage, entry.buffer->inHostKernel() ? BufferFile::DmaBuf : BufferFile::Memfd);
    if (!wd)
        return false;
    lingering_[*wd] = {entry.chargedUid, entry.chargedBytes};
    lingered_ += 1;
    return true;
}

void Service::dropEntryLocked(uint64_t bufferId) {
    // Destroyed here, under the lock: whoever reads statistics after this
    // sees the storage back in its heap.
    unlinkEntryLocked(bufferId);
}

void Service::reap() {
    std::lock_guard reaping(reapMutex_);
    std::vector<std::unique_ptr<Entry>> dead;
    {
        std::lock_guard lock(mutex_);
        takeDeadLocked(dead);
    }
    dead.clear(); // storage back to the heaps, while others' requests go on
}

void Service::reapLocked() {
    // Again when a death left a storage file watched: if no client kept it,
    // its end comes as the dead buffer's own fd of it closes here.
    for (;;) {
        const uint64_t lingered = lingered_;
        std::vector<std::unique_ptr<Entry>> dead;
        takeDeadLocked(dead);
        dead.clear();
        if (lingered_ == lingered)
            return;
    }
}

void Service::takeDeadLocked(std::vector<std::unique_ptr<Entry>>& dead) {
    bool overflowed = false;
    auto gone = watcher_.readGone(overflowed);
    if (!gone)
        return; // only EBADF/EFAULT could fail a read of our own inotify fd
    for (int wd : *gone)
        if (auto it = byWatch_.find(wd); it != byWatch_.end())
            dead.push_back(unlinkEntryLocked(it->second));
        else if (auto file = lingering_.find(wd); file != lingering_.end())
            endLingeringLocked(file);
        else
            prepared_->forget(wd);
    if (!overflowed)
        return;
    // Events were lost: every watch the kernel no longer holds is a buffer
    // whose last reference went while the queue was full.
    auto live = watcher_.liveWatches();
    if (!live)
        return;
    std::vector<uint64_t> lost;
    for (const auto& [wd, id] : byWatch_)
        if (!live->contains(wd))
            lost.push_back(id);
    for (uint64_t id : lost)
        dead.push_back(unlinkEntryLocked(id));
    for (auto file = lingering_.begin(); file != lingering_.end();)
        file = live->contains(file->first) ? std::next(file) : endLingeringLocked(file);
    prepared_->forgetAllBut(*live);
}

Service::Lingering::iterator Service::endLingeringLocked(Lingering::iterator file) {
    releaseChargeLocked(file->second.first, file->second.second);
    return lingering_.erase(file);
}

BorrowedFd Service::watcherFd() const {
    return watcher_.fd();
}

void Service::setObserveHook(std::function<void()> hook) {
    observeHook_ = std::move(hook);
}

void Service::observe() {
    if (observeHook_)
        observeHook_();
}

std::vector<HeapInfo> Service::heapInfos() const {
    std::vector<HeapInfo> out;
    for (const auto& heap : context_->heaps()) {
        HeapInfo info;
        info.name = heap->name();
        info.properties = heap->properties();
        info.stats = heap->stats();
        info.freeBytes = heap->freeBytes();
        out.push_back(std::move(info));
    }
    return out;
}

size_t Service::clientCount() const {
    std::lock_guard lock(mutex_);
    return clients_.size();
}

size_t Service::trackedBuffers() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

size_t Service::preparedWatches() const {
    return prepared_->size();
}

Service::UidUsage Service::usageOf(uint32_t uid) const {
    std::lock_guard lock(mutex_);
    auto it = usage_.find(uid);
    if (it == usage_.end())
        return {};
    const Usage& u = it->second;
    return UidUsage{u.bytes, u.buffers, u.pendingMoves, u.unackedMoves};
}

size_t Service::uidsCounted() const {
    std::lock_guard lock(mutex_);
    return usage_.size();
}

Result<Service::ClientState*> Service::clientLocked(ClientId id) const {
    auto it = clients_.find(id);
    if (it == clients_.end())
        return gone();
    return it->second.get();
}

Result<Service::AttachmentTarget> Service::attachmentLocked(ClientId clientId, uint64_t attachment) {
    auto client = clientLocked(clientId);
    if (!client)
        return client.error();
    auto it = (*client)->attachments.find(attachment);
    if (it == (*client)->attachments.end())
        return Error(ENOENT, fmt::format("no attachment {} in this session", attachment));
    return AttachmentTarget{*client, &it->second};
}

Result<Service::Entry*> Service::entryForFdLocked(const InodeKey& key, int fd) const {
    auto it = byInode_.find(key);
    if (it == byInode_.end())
        return Error(EBADF, fmt::format("fd {} is not a cenalloc buffer", fd));
    return entries_.at(it->second).get();
}

Result<Service::Target> Service::targetLocked(ClientId clientId, const InodeKey& key, int fd) {
    reapLocked();
    auto client = clientLocked(clientId);
    if (!client)
        return client.error();
    auto entry = entryForFdLocked(key, fd);
    if (!entry)
        return entry.error();
    return Target{*client, *entry};
}

Service::Claim& Service::claimLocked(ClientState& client, Entry& entry) {
    entry.holders.insert(client.id);
    return client.claims[entry.buffer->id()];
}

std::vector<std::shared_ptr<Buffer>> Service::visibleLocked(const ClientState& client) {
    std::vector<std::shared_ptr<Buffer>> visible;
    if (client.trusted || client.peer.uid == 0) {
        visible.reserve(entries_.size());
        for (const auto& [id, entry] : entries_)
            visible.push_back(entry->buffer);
        bufinfoVisits_ += entries_.size();
        return visible;
    }
    // Its uid's charged buffers and its claims, both in id order, merged:
    // a user's listing must not cost every other client a walk of every
    // buffer of the daemon under the lock (up to max_buffers of them).
    static const std::set<uint64_t> kNone;
    auto usage = usage_.find(client.peer.uid);
    const std::set<uint64_t>& charged = usage != usage_.end() ? usage->second.chargedBuffers : kNone;
    auto mine = charged.begin();
    auto claim = client.claims.begin();
    while (mine != charged.end() || claim != client.claims.end()) {
        uint64_t id = 0;
        if (claim == client.claims.end() || (mine != charged.end() && *mine < claim->first)) {
            id = *mine++;
        } else {
            id = claim->first;
            if (mine != charged.end() && *mine == id)
                ++mine;
            ++claim;
        }
        ++bufinfoVisits_;
        if (auto entry = entries_.find(id); entry != entries_.end())
            visible.push_back(entry->second->buffer);
    }
    return visible;
}

uint64_t Service::bufinfoVisits() const {
    std::lock_guard lock(mutex_);
    return bufinfoVisits_;
}

Result<std::pair<Credentials, bool>> Service::peerOf(ClientId clientId) const {
    std::lock_guard lock(mutex_);
    auto client = clientLocked(clientId);
    if (!client)
        return client.error();
    return std::pair{(*client)->peer, (*client)->trusted};
}

Service::Reservation::~Reservation() {
    if (service_)
        service_->unreserve(uid_, bytes_);
}

Result<Service::Reservation> Service::reserve(ClientId clientId, uint64_t bytes) {
    std::lock_guard lock(mutex_);
    auto client = clientLocked(clientId);
    if (!client)
        return client.error();
    const uint32_t uid = (*client)->peer.uid;
    const Quota& quota = (*client)->quota;
    Usage& usage = usage_[uid];
    // Root (and the in-process client) may use the reserve; everyone else
    // together stops short of it.
    const bool mayUseReserve = (*client)->trusted || uid == 0;
    const uint64_t shared = watchLimit_ == kUnlimited ? kUnlimited : watchLimit_ - watchReserve_;
    auto fits = [&] {
        return usage.buffers < quota.buffers && bytes <= quota.bytes && usage.bytes <= quota.bytes - bytes;
    };
    auto watchFits = [&] { return mayUseReserve || chargedBuffers_ < shared; };
    // Buffers that died but whose event is unread still count: read them
    // before refusing.
    if (!fits() || !watchFits())
        reapLocked();
    if (usage.buffers >= quota.buffers)
        return Error(EDQUOT, fmt::format("uid {} holds {} buffer(s), its quota of buffers{}", uid, usage.buffers,
                                         config_.quotaIsDefault(quota) ? " (the default quota)" : ""));
    if (!fits())
        return Error(EDQUOT, fmt::format("uid {} holds {} of its {} quota, {} more requested", uid,
                                         formatSize(usage.bytes), formatSize(quota.bytes), formatSize(bytes)));
    if (!watchFits())
        return Error(ENOSPC, fmt::format("the daemon tracks {} buffers: the last {} of the {} it can watch "
                                         "(fs.inotify.max_user_watches) are kept for root",
                                         chargedBuffers_, watchReserve_, watchLimit_));
    // Reserved now so that concurrent requests cannot overrun the quota;
    // adopt() turns the reservation into the buffer's charge.
    usage.bytes += bytes;
    usage.buffers += 1;
    chargedBuffers_ += 1;
    return Reservation(PassKey{}, this, uid, bytes);
}

bool Service::reapDue() {
    return allocationsSinceReap_.fetch_add(1, std::memory_order_relaxed) % kReapEvery == kReapEvery - 1;
}

void Service::unreserve(uint32_t uid, uint64_t bytes) {
    std::lock_guard lock(mutex_);
    Usage& usage = usage_[uid];
    usage.bytes -= bytes;
    usage.buffers -= 1;
    chargedBuffers_ -= 1;
    releaseUsageLocked(uid);
}

Result<ServiceBuffer> Service::adopt(ClientId clientId, Reservation reservation, std::shared_ptr<Buffer> buffer,
                                     uint32_t accessMode) {
    // One fstat for the buffer's remembered inode and our key.
    struct stat st {};
    auto fd = buffer->surrenderFd(&st);
    if (!fd)
        return fd.error();
    const InodeKey key = inodeKeyOf(st);
    if (accessMode != O_RDWR && !buffer->inHostKernel()) {
        // The kernel's own dma-bufs come with the mode asked for; a memfd
        // is made read-write, and is handed out with the mode asked for.
        auto narrowed = narrowAccess(std::move(*fd), accessMode);
        if (!narrowed)
            return narrowed.error();
        *fd = std::move(*narrowed);
    }
    // A memfd from the ready pool comes watched; else watch it now, outside
    // the lock: adding a watch is one syscall the kernel serialises, and no
    // event can come for it while we hold the fd.
    const std::optional<int> ahead = buffer->inHostKernel() ? std::nullopt : prepared_->claim(key);
    Result<int> wd = ahead ? Result<int>(*ahead)
                           : watcher_.watch(*fd, buffer->inHostKernel() ? BufferFile::DmaBuf : BufferFile::Memfd);
    if (!wd)
        return wd.error();
    std::lock_guard lock(mutex_);
    auto client = clientLocked(clientId);
    if (!client)
        return client.error(); // the fd closes: the event for this watch names nothing
    if (byInode_.contains(key)) {
        // The kernel gave this new memfd the inode number of a buffer
        // whose death is queued but not read yet: read it. Should the
        // queue have lost it, the number being reused proves it dead.
        reapLocked();
        if (auto stale = byInode_.find(key); stale != byInode_.end())
            dropEntryLocked(stale->second);
    }
    auto entry = std::make_unique<Entry>();
    entry->buffer = std::move(buffer);
    entry->key = key;
    entry->watch = *wd;
    // The reservation becomes the buffer's charge, which lasts as long as
    // the buffer (unlinkEntryLocked ends it).
    entry->charged = true;
    entry->chargedUid = reservation.uid();
    entry->chargedBytes = reservation.bytes();
    reservation.commit(PassKey{});
    uint64_t id = entry->buffer->id();
    uint64_t size = entry->buffer->size();
    byInode_[key] = id;
    byWatch_[*wd] = id;
    Entry& e = *entries_.emplace(id, std::move(entry)).first->second;
    usage_[e.chargedUid].chargedBuffers.insert(id);
    claimLocked(**client, e);
    return ServiceBuffer{std::move(*fd), id, size};
}

} // namespace cenalloc
