// SPDX-License-Identifier: MIT
// Service: the allocator authority shared by all clients (buffers by inode, per-client claims, quotas, access).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "base/adaptive_mutex.h"
#include "service/config.h"
#include "service/tracker.h"

namespace cenalloc {

class ServiceClient;

/// A buffer handed to a client: its fd (O_CLOEXEC) and what names it.
struct ServiceBuffer {
    UniqueFd fd;
    uint64_t id = 0;
    uint64_t size = 0;
};

/// The authority that owns a Context for every client: what cenallocd runs,
/// and what Session::local runs for one trusted in-process client.
///
/// Buffers are known by the inode of their memfd. The service keeps no fd
/// of a buffer it handed out (Buffer::surrenderFd): it watches the inode
/// (InodeWatcher) and drops the buffer, its storage going back to its heap,
/// when the kernel reports the last fd or mapping anywhere gone. Whatever
/// clients still hold of it then (attachments, mappings, CPU access) is torn
/// down first, in order.
///
/// Each client has claims on buffers it allocated or imported (its
/// attachments, mappings and CPU-access brackets hang off them). Every
/// buffer allocated or created is charged (bytes and count) to the uid of
/// the client that made it, against that uid's quota, summed over all its
/// clients, for as long as the buffer lives: the end of the connection
/// does not end the charge. Claims go with release() or the client's end.
///
/// Every buffer costs the daemon an inotify watch (and its bookkeeping):
/// besides each uid's quota (a buffer count exists even without a
/// configuration), all clients but root together may hold no more than
/// the watch limit less a reserve kept for uid 0 (ENOSPC past it), so that
/// no set of users can lock root out.
///
/// Thread safety: all methods may be called concurrently; one mutex guards
/// the tables, held for bookkeeping and attach/map (model-only work), never
/// across a blocking call.
class Service : public std::enable_shared_from_this<Service> {
public:
    /// A service for @p platform with @p config (whose heaps must exist:
    /// EINVAL naming the config file and line otherwise).
    static Result<std::shared_ptr<Service>> create(const Platform& platform, ServiceConfig config = {});
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    /// A new client. A trusted client (the in-process session) is not
    /// subject to access control or quotas and sees every buffer.
    /// Errors: EUSERS past config.maxClients, EAGAIN past maxClientsPerUid.
    Result<std::unique_ptr<ServiceClient>> connect(const Credentials& peer, bool trusted = false);

    /// Drop what @p client holds (idempotent): its claims, attachments,
    /// mappings, CPU access and charges. Its ServiceClient fails with
    /// ESHUTDOWN afterwards.
    void disconnect(uint64_t client);

    /// Drop every buffer whose last reference anywhere is gone, as the
    /// inotify fd (watcherFd()) reports. Cheap when nothing happened: one
    /// non-blocking read. Called by every operation that observes or charges
    /// state, and by the daemon's loop when watcherFd() is readable. When it
    /// returns, the storage of every buffer whose death it or a concurrent
    /// reap() read is back in its heap; the buffers are destroyed outside
    /// the service's lock, so that other clients' requests do not wait.
    void reap();
    /// Readable when reap() has work.
    BorrowedFd watcherFd() const;

    /// Called (without the lock) before heaps(), bufinfo() and stats() so a
    /// server can first notice clients that are gone (their sockets hung up).
    void setObserveHook(std::function<void()> hook);

    const Context& context() const { return *context_; }
    const ServiceConfig& config() const { return config_; }
    /// What the operator should know of how the service was set up (kernel
    /// heaps left out and why); the daemon logs them at start.
    const std::vector<std::string>& notes() const { return notes_; }
    size_t clientCount() const;
    /// Buffers the service tracks (live somewhere).
    size_t trackedBuffers() const;
    /// What the buffers charged to @p uid add up to now.
    struct UidUsage {
        uint64_t bytes = 0;
        uint64_t buffers = 0;
    };
    UidUsage usageOf(uint32_t uid) const;

private:
    friend class ServiceClient;
    struct Claim;
    struct AttachmentRecord;
    struct MappingRecord;
    struct ClientState;
    struct Entry;
    struct Usage {
        uint64_t bytes = 0;
        uint64_t buffers = 0;
        size_t clients = 0;
    };

    explicit Service(InodeWatcher watcher);
    void observe();
    std::vector<HeapInfo> heapInfos() const;
    // All *Locked() run with mutex_ held.
    /// reap() for a caller holding mutex_: the dead are destroyed under it.
    void reapLocked();
    /// Unlink from the bookkeeping every buffer that died (claims and
    /// charges dropped) and hand them over, to be destroyed by the caller.
    void takeDeadLocked(std::vector<std::unique_ptr<Entry>>& dead);
    std::unique_ptr<Entry> unlinkEntryLocked(uint64_t bufferId);
    void dropEntryLocked(uint64_t bufferId);
    void dropClaimLocked(ClientState& client, uint64_t bufferId);
    void releaseUsageLocked(uint32_t uid);
    void disconnectLocked(ClientState& client);
    Result<ClientState*> clientLocked(uint64_t id);
    Result<Entry*> entryForFdLocked(const InodeKey& key, int fd);
    /// What an operation on a buffer fd works on: the calling client and
    /// the buffer, after reaping buffers that died. Caller holds mutex_.
    struct Target {
        ClientState* client;
        Entry* entry;
    };
    Result<Target> targetLocked(uint64_t clientId, const InodeKey& key, int fd);
    /// Client @p clientId and its attachment @p attachment. Errors: those
    /// of clientLocked(), ENOENT for an attachment it does not have.
    struct AttachmentTarget {
        ClientState* client;
        AttachmentRecord* record;
    };
    Result<AttachmentTarget> attachmentLocked(uint64_t clientId, uint64_t attachment);
    Claim& claimLocked(ClientState& client, Entry& entry);
    bool visibleLocked(const ClientState& client, uint64_t bufferId) const;
    /// Track @p buffer (charged @p charge bytes to the client's uid) and
    /// take its fd, with the access mode @p accessMode (O_ACCMODE bits).
    Result<ServiceBuffer> adopt(uint64_t clientId, std::shared_ptr<Buffer> buffer, uint64_t charge,
                                uint32_t accessMode);
    /// Reserve @p bytes and one buffer of @p uid's quota, and one of the
    /// daemon's buffers (watches). Errors: EDQUOT past the quota, ENOSPC
    /// when what is left is kept for root.
    Result<void> reserve(uint64_t clientId, uint32_t uid, uint64_t bytes);
    void unreserve(uint32_t uid, uint64_t bytes);
    /// True every kReapEvery allocations.
    bool reapDue();

    std::unique_ptr<Context> context_;
    ServiceConfig config_;
    std::vector<std::string> notes_;
    std::function<void()> observeHook_; // set before clients connect

    // Taken before mutex_, never after: held by reap() across destroying
    // what it took, so that a reap returns only when every death read by
    // then has given its storage back.
    AdaptiveMutex reapMutex_;
    mutable AdaptiveMutex mutex_;
    InodeWatcher watcher_;                                     // readGone() under mutex_; watch() is thread-safe
    std::map<uint64_t, std::unique_ptr<Entry>> entries_;       // guarded by mutex_; by buffer id
    std::map<InodeKey, uint64_t> byInode_;                     // guarded by mutex_
    std::map<int, uint64_t> byWatch_;                          // guarded by mutex_
    std::map<uint64_t, std::unique_ptr<ClientState>> clients_; // guarded by mutex_
    std::map<uint32_t, Usage> usage_;                          // guarded by mutex_; by uid
    uint64_t chargedBuffers_ = 0;                              // guarded by mutex_; sum of usage_ buffers
    uint64_t watchLimit_ = kUnlimited;                         // set by create()
    uint64_t watchReserve_ = 0;                                // set by create(): for uid 0 only
    std::atomic<uint64_t> allocationsSinceReap_{0};
    uint64_t nextClient_ = 1; // guarded by mutex_
};

/// One client of a Service: the operations of Session, with buffers named
/// by fds valid in this process (the daemon's copy of the fd a client sent,
/// or the caller's own fd in-process). Attachment and mapping ids count from
/// 1 per client. Destroying it disconnects the client.
///
/// Thread safety: methods may be called concurrently.
class ServiceClient {
public:
    ~ServiceClient();
    ServiceClient(const ServiceClient&) = delete;
    ServiceClient& operator=(const ServiceClient&) = delete;

    uint64_t id() const { return id_; }
    const Credentials& credentials() const { return peer_; }
    Service& service() const { return *service_; }

    Result<std::vector<HeapInfo>> heaps();
    /// Context::allocate after access control (EACCES) and the quota
    /// (EDQUOT); the client is charged and holds a claim.
    Result<ServiceBuffer> allocate(std::string_view heap, uint64_t length, uint32_t fdFlags, uint64_t heapFlags);
    /// Context::create restricted to the heaps the client may use.
    Result<ServiceBuffer> create(uint64_t size, std::string_view name, CpuAccess cpuAccess);
    /// The buffer @p fd names, claimed by this client. EBADF when it names
    /// no buffer of this service.
    Result<uint64_t> import(BorrowedFd fd);
    /// Drop this client's claim (mappings, attachments, CPU access).
    /// ENOENT when the client holds no claim on it.
    Result<void> release(BorrowedFd fd);
    Result<uint64_t> attach(BorrowedFd fd, std::string_view device);
    /// EBUSY while the attachment has mappings; ENOENT for an id this
    /// client does not have.
    Result<void> detach(uint64_t attachment);
    Result<SessionMapping> map(uint64_t attachment, DmaDirection direction);
    Result<void> unmap(uint64_t mapping);
    Result<void> beginCpuAccess(BorrowedFd fd, uint32_t flags);
    /// Ends the latest bracket begun with the same @p flags (EINVAL: none).
    Result<void> endCpuAccess(BorrowedFd fd, uint32_t flags);
    Result<void> setName(BorrowedFd fd, std::string_view name);
    Result<std::vector<BufferInfo>> bufinfo();
    /// @p resetWatermark needs a trusted client or uid 0 (EPERM).
    Result<AllocatorStats> stats(bool resetWatermark);

private:
    friend class Service;
    ServiceClient(std::shared_ptr<Service> service, uint64_t id, Credentials peer, bool trusted)
        : service_(std::move(service)), id_(id), peer_(std::move(peer)), trusted_(trusted) {}
    std::shared_ptr<Service> service_;
    const uint64_t id_;
    const Credentials peer_;
    const bool trusted_;
};

} // namespace cenalloc
