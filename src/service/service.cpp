// SPDX-License-Identifier: MIT
// Service: buffers by inode, lifetime through inotify, per-client claims, quotas and access control.
#include "service/service.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "heaps/heap_request.h"
#include "heaps/kernel_heap.h"
#include "service/service_context.h"

namespace cenalloc {

struct Service::Entry {
    std::shared_ptr<Buffer> buffer;
    InodeKey key;
    int watch = -1;
    /// Clients with a claim or a charge on the buffer.
    std::set<uint64_t> holders;
};

struct Service::MappingRecord {
    uint64_t attachment = 0;
    Attachment::Mapping mapping;
};

struct Service::AttachmentRecord {
    uint64_t buffer = 0;
    Attachment attachment;
    std::set<uint64_t> mappings;
};

struct Service::Claim {
    std::set<uint64_t> attachments;
    /// Open CPU-access brackets, oldest first, with the flags they began with.
    std::vector<std::pair<uint32_t, CpuAccessGuard>> cpuAccess;
};

struct Service::ClientState {
    uint64_t id = 0;
    Credentials peer;
    bool trusted = false;
    Quota quota;
    std::map<uint64_t, Claim> claims;     // by buffer id
    std::map<uint64_t, uint64_t> charges; // buffer id -> bytes charged
    std::map<uint64_t, AttachmentRecord> attachments;
    std::map<uint64_t, MappingRecord> mappings;
    uint64_t nextAttachment = 1;
    uint64_t nextMapping = 1;
};

namespace {

// Open begin_cpu_access brackets one session may hold on one buffer.
constexpr size_t kMaxOpenCpuAccess = 1024;

// Allocations between two reaps when nothing else asks for one.
constexpr uint64_t kReapEvery = 32;

Error gone() {
    return Error(ESHUTDOWN, "the client was disconnected");
}

} // namespace

// --------------------------------------------------------------- Service

Service::Service(InodeWatcher watcher) : watcher_(std::move(watcher)) {}

Result<std::shared_ptr<Service>> Service::create(const Platform& platform, ServiceConfig config) {
    std::vector<std::string> notes;
    auto context = serviceContext(platform, config.context, notes);
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
    std::shared_ptr<Service> service(new Service(std::move(*watcher)));
    service->context_ = std::move(*context);
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
    Usage& usage = usage_[peer.uid];
    if (!trusted) {
        if (clients_.size() >= config_.maxClients)
            return Error(EUSERS, fmt::format("the daemon serves its maximum of {} clients", config_.maxClients));
        if (usage.clients >= config_.maxClientsPerUid)
            return Error(EAGAIN,
                         fmt::format("uid {} has its maximum of {} clients", peer.uid, config_.maxClientsPerUid));
    }
    auto state = std::make_unique<ClientState>();
    state->id = nextClient_++;
    state->peer = peer;
    state->trusted = trusted;
    state->quota = trusted ? Quota{} : config_.quotaFor(peer);
    uint64_t id = state->id;
    clients_.emplace(id, std::move(state));
    ++usage.clients;
    return std::unique_ptr<ServiceClient>(new ServiceClient(shared_from_this(), id, peer, trusted));
}

void Service::disconnect(uint64_t client) {
    std::lock_guard lock(mutex_);
    auto it = clients_.find(client);
    if (it != clients_.end())
        disconnectLocked(*it->second);
}

void Service::disconnectLocked(ClientState& client) {
    while (!client.claims.empty())
        dropClaimLocked(client, client.claims.begin()->first);
    while (!client.charges.empty())
        dropChargeLocked(client, client.charges.begin()->first);
    auto usage = usage_.find(client.peer.uid);
    if (usage != usage_.end()) {
        --usage->second.clients;
        if (usage->second.clients == 0 && usage->second.bytes == 0 && usage->second.buffers == 0)
            usage_.erase(usage);
    }
    clients_.erase(client.id); // destroys client
}

void Service::dropClaimLocked(ClientState& client, uint64_t bufferId) {
    auto claim = client.claims.find(bufferId);
    if (claim == client.claims.end())
        return;
    // Undo in the reverse order of doing: mappings, attachments, CPU access.
    for (uint64_t attachmentId : claim->second.attachments) {
        auto att = client.attachments.find(attachmentId);
        for (uint64_t mappingId : att->second.mappings)
            client.mappings.erase(mappingId); // unmaps
        client.attachments.erase(att);        // detaches
    }
    while (!claim->second.cpuAccess.empty())
        claim->second.cpuAccess.pop_back(); // ends the bracket
    client.claims.erase(claim);
    if (!client.charges.contains(bufferId))
        if (auto entry = entries_.find(bufferId); entry != entries_.end())
            entry->second->holders.erase(client.id);
}

void Service::dropChargeLocked(ClientState& client, uint64_t bufferId) {
    auto charge = client.charges.find(bufferId);
    if (charge == client.charges.end())
        return;
    Usage& usage = usage_[client.peer.uid];
    usage.bytes -= charge->second;
    usage.buffers -= 1;
    client.charges.erase(charge);
    if (!client.claims.contains(bufferId))
        if (auto entry = entries_.find(bufferId); entry != entries_.end())
            entry->second->holders.erase(client.id);
}

std::unique_ptr<Service::Entry> Service::unlinkEntryLocked(uint64_t bufferId) {
    auto it = entries_.find(bufferId);
    if (it == entries_.end())
        return nullptr;
    std::unique_ptr<Entry> entry = std::move(it->second);
    entries_.erase(it);
    for (uint64_t holder : entry->holders) {
        auto client = clients_.find(holder);
        if (client == clients_.end())
            continue;
        dropClaimLocked(*client->second, bufferId);
        dropChargeLocked(*client->second, bufferId);
    }
    byInode_.erase(entry->key);
    byWatch_.erase(entry->watch);
    return entry;
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
    std::vector<std::unique_ptr<Entry>> dead;
    takeDeadLocked(dead);
}

void Service::takeDeadLocked(std::vector<std::unique_ptr<Entry>>& dead) {
    bool overflowed = false;
    auto gone = watcher_.readGone(overflowed);
    if (!gone)
        return; // only EBADF/EFAULT could fail a read of our own inotify fd
    for (int wd : *gone)
        if (auto it = byWatch_.find(wd); it != byWatch_.end())
            dead.push_back(unlinkEntryLocked(it->second));
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

Result<Service::ClientState*> Service::clientLocked(uint64_t id) {
    auto it = clients_.find(id);
    if (it == clients_.end())
        return gone();
    return it->second.get();
}

Result<Service::Entry*> Service::entryForFdLocked(const InodeKey& key, int fd) {
    auto it = byInode_.find(key);
    if (it == byInode_.end())
        return Error(EBADF, fmt::format("fd {} is not a cenalloc buffer", fd));
    return entries_.at(it->second).get();
}

Result<Service::Target> Service::targetLocked(uint64_t clientId, const InodeKey& key, int fd) {
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

bool Service::visibleLocked(const ClientState& client, uint64_t bufferId) const {
    return client.trusted || client.peer.uid == 0 || client.claims.contains(bufferId) ||
           client.charges.contains(bufferId);
}

Result<void> Service::reserve(uint64_t clientId, uint32_t uid, uint64_t bytes) {
    std::lock_guard lock(mutex_);
    auto client = clientLocked(clientId);
    if (!client)
        return client.error();
    const Quota& quota = (*client)->quota;
    Usage& usage = usage_[uid];
    auto fits = [&] {
        return usage.buffers < quota.buffers && bytes <= quota.bytes && usage.bytes <= quota.bytes - bytes;
    };
    // Buffers that died but whose event is unread still count: read them
    // before refusing.
    if (!fits())
        reapLocked();
    if (usage.buffers >= quota.buffers)
        return Error(EDQUOT, fmt::format("uid {} holds {} buffer(s), its quota", uid, usage.buffers));
    if (!fits())
        return Error(EDQUOT, fmt::format("uid {} holds {} of its {} quota, {} more requested", uid,
                                         formatSize(usage.bytes), formatSize(quota.bytes), formatSize(bytes)));
    // Reserved now so that concurrent requests cannot overrun the quota;
    // adopt() turns the reservation into the client's charge.
    usage.bytes += bytes;
    usage.buffers += 1;
    return {};
}

bool Service::reapDue() {
    return allocationsSinceReap_.fetch_add(1, std::memory_order_relaxed) % kReapEvery == kReapEvery - 1;
}

void Service::unreserve(uint32_t uid, uint64_t bytes) {
    std::lock_guard lock(mutex_);
    Usage& usage = usage_[uid];
    usage.bytes -= bytes;
    usage.buffers -= 1;
}

Result<ServiceBuffer> Service::adopt(uint64_t clientId, std::shared_ptr<Buffer> buffer, uint64_t charge) {
    // One fstat for the buffer's remembered inode and our key.
    struct stat st {};
    auto fd = buffer->surrenderFd(&st);
    if (!fd)
        return fd.error();
    const InodeKey key = inodeKeyOf(st);
    // Outside the lock: adding a watch is one syscall the kernel serialises,
    // and no event can come for it while we hold the fd.
    auto wd = watcher_.watch(*fd, buffer->inHostKernel() ? BufferFile::DmaBuf : BufferFile::Memfd);
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
    uint64_t id = entry->buffer->id();
    uint64_t size = entry->buffer->size();
    byInode_[key] = id;
    byWatch_[*wd] = id;
    Entry& e = *entries_.emplace(id, std::move(entry)).first->second;
    claimLocked(**client, e);
    if (charge > 0)
        (*client)->charges[id] = charge;
    return ServiceBuffer{std::move(*fd), id, size};
}

// --------------------------------------------------------- ServiceClient

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
    auto adopted = s.adopt(id_, std::move(*buffer), *aligned);
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
    if (auto ok = s.reserve(id_, peer_.uid, *aligned); !ok)
        return ok.error();
    if (s.reapDue())
        s.reap();
    auto buffer = s.context_->create(size, name, cpuAccess, filter);
    if (!buffer) {
        s.unreserve(peer_.uid, *aligned);
        return buffer.error();
    }
    auto adopted = s.adopt(id_, std::move(*buffer), *aligned);
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
    auto client = s.clientLocked(id_);
    if (!client)
        return client.error();
    Service::ClientState& c = **client;
    auto it = c.attachments.find(attachment);
    if (it == c.attachments.end())
        return Error(ENOENT, fmt::format("no attachment {} in this session", attachment));
    if (!it->second.mappings.empty())
        return Error(EBUSY, fmt::format("attachment {} still has {} mapping(s): unmap them first", attachment,
                                        it->second.mappings.size()));
    if (auto claim = c.claims.find(it->second.buffer); claim != c.claims.end())
        claim->second.attachments.erase(attachment);
    c.attachments.erase(it);
    return {};
}

Result<SessionMapping> ServiceClient::map(uint64_t attachment, DmaDirection direction) {
    Service& s = *service_;
    std::unique_lock lock(s.mutex_);
    Service::ClientState* c = nullptr;
    auto find = [&]() -> Result<std::map<uint64_t, Service::AttachmentRecord>::iterator> {
        auto client = s.clientLocked(id_);
        if (!client)
            return client.error();
        c = *client;
        auto it = c->attachments.find(attachment);
        if (it == c->attachments.end())
            return Error(ENOENT, fmt::format("no attachment {} in this session", attachment));
        return it;
    };
    auto it = find();
    if (!it)
        return it.error();
    // The first map of a deferred buffer allocates: storage of buffers
    // that died must be back in the heaps by then (reap() waits for a
    // concurrent reap's too), and anything may change meanwhile.
    if (!s.entries_.at((*it)->second.buffer)->buffer->hasStorage()) {
        lock.unlock();
        s.reap();
        lock.lock();
        it = find();
        if (!it)
            return it.error();
    }
    auto mapping = (*it)->second.attachment.map(direction);
    if (!mapping)
        return mapping.error();
    SessionMapping out;
    out.id = c->nextMapping++;
    out.direction = direction;
    out.segments = mapping->segments();
    (*it)->second.mappings.insert(out.id);
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
    return stats;
}

} // namespace cenalloc
