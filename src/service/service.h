// SPDX-License-Identifier: MIT
// Service: the allocator authority shared by all clients (buffers by inode, per-client claims, quotas, access).
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/request.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "base/adaptive_mutex.h"
#include "service/config.h"
#include "service/tracker.h"

namespace cenalloc {

class ServiceClient;

/// What the service tells a client's transport, from any thread, with the
/// service's lock held: neither may block or call the service.
struct ClientHooks {
    /// A move event for one of the client's dynamic attachments.
    std::function<void(const MoveEvent&)> event;
    /// The client's parked request (EINPROGRESS, Service::kParked) may go
    /// on: run it again.
    std::function<void()> wake;
};

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
    /// Names a client of the service (ServiceClient::id()).
    using ClientId = uint64_t;
    /// Made by the service alone (defined in its private header): what lets
    /// it construct ServiceClients and Reservations and take the latter.
    struct PassKey;

    /// A service for @p platform with @p config (whose heaps must exist:
    /// EINVAL naming the config file and line otherwise).
    static Result<std::shared_ptr<Service>> create(const Platform& platform, ServiceConfig config = {});
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    /// A new client. A trusted client (the in-process session) is not
    /// subject to access control or quotas and sees every buffer.
    /// Errors: EUSERS past config.maxClients (for uids other than 0, past
    /// all but the sixteenth kept for uid 0), EAGAIN past maxClientsPerUid.
    Result<std::unique_ptr<ServiceClient>> connect(const Credentials& peer, bool trusted = false);

    /// Drop what @p client holds (idempotent): its claims, attachments,
    /// mappings, CPU access and charges. Its operations fail with
    /// ESHUTDOWN afterwards.
    void disconnect(ClientId client);

    // ------------------------------------------------ per-client operations
    //
    // Session's operations for client @p client, with buffers named by fds
    // valid in this process (the daemon's copy of the fd a client sent, or
    // the caller's own fd in-process). Each takes the service's lock itself;
    // every request type was validated when it was made. Errors common to
    // all: ESHUTDOWN for a client that is gone; for an fd, EBADF when it
    // names no buffer of this service.

    Result<std::vector<HeapInfo>> heaps(ClientId client);
    /// Context::allocate after access control (EACCES), a length no larger
    /// than the heap can ever hold (ENOMEM) and the quota (reserve()); the
    /// client is charged and holds a claim.
    Result<ServiceBuffer> allocate(ClientId client, const AllocRequest& request);
    /// Context::create restricted to the heaps the client may use, after
    /// the same checks as allocate().
    Result<ServiceBuffer> create(ClientId client, const CreateRequest& request);
    /// Context::allocateFor restricted to the heaps the client may use
    /// (EACCES when none that serves the devices is), charged to the quota
    /// as allocate(); @p choice receives which heap and why.
    Result<ServiceBuffer> allocateFor(ClientId client, const AllocForRequest& request, AllocForChoice& choice);
    /// The buffer @p fd names, claimed by the client.
    Result<uint64_t> import(ClientId client, BorrowedFd fd);
    /// Drop the client's claim (mappings, attachments, CPU access).
    /// ENOENT when it holds no claim on it.
    Result<void> release(ClientId client, BorrowedFd fd);
    /// Attachment ids count from 1 per client. ENOSPC past the most a
    /// client may hold. @p dynamic: a dynamic attachment (EPROTONOSUPPORT
    /// for a client that receives no events). An attach that needs the
    /// storage moved goes through the move gate as migrate() does.
    Result<uint64_t> attach(ClientId client, BorrowedFd fd, std::string_view device, bool dynamic = false);
    /// Pin / unpin a dynamic attachment (Attachment::pin): EINVAL for a
    /// static one, or an unpin without a pin of the client's.
    Result<void> pin(ClientId client, uint64_t attachment);
    Result<void> unpin(ClientId client, uint64_t attachment);
    /// Move the buffer's storage to @p heap (Buffer::migrate) after access
    /// control (EACCES) and the move gate.
    ///
    /// The move gate (attach and migrate): when the storage is to move and
    /// other clients' dynamic attachments have live mappings of it, each is
    /// sent a Pending MoveEvent and the call fails with kParked
    /// (EINPROGRESS) without waiting: the caller runs the same request
    /// again when the hooks' wake() says so or at parkedDeadline(). Once
    /// every such importer acknowledged, detached or went, the move is
    /// made; past the deadline those that did not are demoted to static
    /// and the call is EBUSY naming them (device, pid, uid), every notified
    /// importer being sent Cancelled. Bounds: Quota::pendingMoves (EAGAIN)
    /// of the caller's uid, Quota::unackedMoves of each importer's uid
    /// (past it, EBUSY naming the importer, not waited for). The new
    /// storage is counted against the caller's uid's byte quota while both
    /// exist (EDQUOT).
    Result<void> migrate(ClientId client, BorrowedFd fd, std::string_view heap);
    /// What attaching @p device would do (Buffer::forecastAttach).
    Result<AttachForecast> forecast(ClientId client, BorrowedFd fd, std::string_view device);
    /// The client's attachment no longer uses mappings older than
    /// @p sequence. ENOENT when no move to @p sequence waits for it.
    Result<void> acknowledgeMove(ClientId client, uint64_t attachment, uint64_t sequence);
    /// The code of a request parked by the move gate.
    static constexpr int kParked = EINPROGRESS;
    /// When the move the client's parked request waits on gives up on
    /// those not heard from; nullopt when it has none.
    std::optional<std::chrono::steady_clock::time_point> parkedDeadline(ClientId client) const;
    /// Install the client's hooks (before its first request) and whether
    /// it receives move events (its handshake).
    void setHooks(ClientId client, ClientHooks hooks);
    void enableEvents(ClientId client, bool enabled);
    /// EBUSY while the attachment has mappings; ENOENT for an id the client
    /// does not have.
    Result<void> detach(ClientId client, uint64_t attachment);
    Result<SessionMapping> map(ClientId client, uint64_t attachment, DmaDirection direction);
    Result<void> unmap(ClientId client, uint64_t mapping);
    Result<void> beginCpuAccess(ClientId client, BorrowedFd fd, SyncFlags flags);
    /// Ends the latest bracket begun with the same @p flags (EINVAL: none).
    Result<void> endCpuAccess(ClientId client, BorrowedFd fd, SyncFlags flags);
    Result<void> setName(ClientId client, BorrowedFd fd, const BufferName& name);
    /// The buffers the client may see.
    Result<std::vector<BufferInfo>> bufinfo(ClientId client);
    /// The buffer @p fd names, as it is now, without claiming it (the fd is
    /// the capability, as for import). Owned here for the caller's use.
    Result<std::shared_ptr<Buffer>> lookup(ClientId client, BorrowedFd fd);
    /// The fd holding the bytes of the buffer @p fd names
    /// (Buffer::dupStorageFd: a deferred buffer gets its storage now, which
    /// its creator's quota paid for at create). The fd is the capability,
    /// as for import(); EACCES when it is not read-write (a read-only fd
    /// gives no writable storage fd).
    Result<UniqueFd> storageFd(ClientId client, BorrowedFd fd);
    /// @p resetWatermark needs a trusted client or uid 0 (EPERM).
    Result<AllocatorStats> stats(ClientId client, bool resetWatermark);

    // ------------------------------------------------------------- quotas

    /// Part of a uid's quota and one of the service's buffers, held for a
    /// buffer being made: given back when the reservation is destroyed,
    /// unless adopt() turned it into the buffer's charge.
    class Reservation {
    public:
        Reservation(const PassKey&, Service* service, uint32_t uid, uint64_t bytes)
            : service_(service), uid_(uid), bytes_(bytes) {}
        Reservation(Reservation&& other) noexcept
            : service_(std::exchange(other.service_, nullptr)), uid_(other.uid_), bytes_(other.bytes_) {}
        Reservation& operator=(Reservation&&) = delete;
        ~Reservation();
        uint32_t uid() const { return uid_; }
        uint64_t bytes() const { return bytes_; }
        /// The reservation becomes a charge the service tracks: it is no
        /// longer given back by the destructor.
        void commit(const PassKey&) { service_ = nullptr; }

    private:
        Service* service_; // null once committed or moved from
        uint32_t uid_;
        uint64_t bytes_;
    };
    /// Reserve @p bytes and one buffer of the client's uid's quota, and one
    /// of the service's buffers (watches). Errors: EDQUOT past the quota,
    /// ENOSPC when what is left is kept for root.
    Result<Reservation> reserve(ClientId client, uint64_t bytes);
    /// Track @p buffer, charged to the client's uid by @p reservation (which
    /// it commits), claim it for the client, and take its fd with the access
    /// mode @p accessMode (O_ACCMODE bits). On failure the reservation is
    /// given back.
    Result<ServiceBuffer> adopt(ClientId client, Reservation reservation, std::shared_ptr<Buffer> buffer,
                                uint32_t accessMode);

    // ------------------------------------------------------- the service

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
    /// Watches made ahead on the ready pool's memfds, not yet a buffer's
    /// (PreparedWatches): at most ReadyPoolOptions::maxBuffers.
    size_t preparedWatches() const;
    /// What the buffers charged to @p uid add up to now.
    struct UidUsage {
        uint64_t bytes = 0;
        uint64_t buffers = 0;
        uint64_t pendingMoves = 0; ///< its clients' migrations that wait (Quota::pendingMoves)
        uint64_t unackedMoves = 0; ///< Pending events its importers have not answered (Quota::unackedMoves)
    };
    UidUsage usageOf(uint32_t uid) const;
    /// Uids with a client, a charge or anything else counted (an entry each).
    size_t uidsCounted() const;
    /// Tracked buffers bufinfo looked at, by every call so far: what a
    /// listing costs the others waiting for the service's lock.
    uint64_t bufinfoVisits() const;

private:
    struct Claim;
    struct AttachmentRecord;
    struct MappingRecord;
    struct ClientState;
    struct Entry;
    struct PendingMove;
    struct Usage {
        uint64_t bytes = 0;
        uint64_t buffers = 0;
        size_t clients = 0;
        uint64_t pendingMoves = 0; ///< migrations its clients asked for that wait
        uint64_t unackedMoves = 0; ///< Pending events its importers have not answered
        uint64_t mappedPieces = 0; ///< what its clients' mappings hold (MappingRecord::pieces)
        uint64_t attachments = 0;  ///< its clients' attachments
        /// The live buffers charged to it, by id: what bufinfo lists for it
        /// besides its claims, found without looking at anyone else's.
        std::set<uint64_t> chargedBuffers;
    };
    /// Importers sent a Pending event for a move: (client, attachment).
    using Told = std::set<std::pair<ClientId, uint64_t>>;
    /// The move gate (migrate()): whether the move may be made now, and
    /// whom a failure of it must be told (Cancelled). @p canMove: false
    /// when the exporter will refuse the move anyway (only what holds the
    /// buffer is named then, nobody is waited for).
    Result<Told> moveGateLocked(ClientState& client, Entry& entry, std::string cause, bool canMove);
    void tellCancelledLocked(uint64_t bufferId, const Told& told, const std::string& why);
    /// Cancel the move the client's parked request waited on, if any.
    void dropParkedLocked(ClientState& client);
    /// The new storage of a move charged while both exist: EDQUOT when the
    /// client's uid's byte quota has no room; @p make runs charged.
    template <typename Make> auto chargedMoveLocked(ClientState& client, uint64_t size, Make make);
    /// Attachment records of every client on buffer @p bufferId.
    template <typename F> void forEachRecordLocked(const Entry& entry, F f);
    bool liveLocked(const ClientState& client, const AttachmentRecord& record) const;
    std::string importerLocked(const ClientState& client, const AttachmentRecord& record) const;
    /// (client, attachment) is no longer waited for by a pending move.
    void settleLocked(ClientId client, uint64_t attachment);
    /// End @p move: counts given back, Cancelled sent to whom it told
    /// with @p why. Erases it.
    void cancelMoveLocked(uint64_t bufferId, const std::string& why);
    void sendLocked(ClientId client, const MoveEvent& event);
    void wakeLocked(ClientId client);
    void demoteLocked(ClientState& client, AttachmentRecord& record);

    explicit Service(InodeWatcher watcher);
    void observe();
    std::vector<HeapInfo> heapInfos() const;
    /// The one way a buffer is made for a client: reserve @p bytes of its
    /// quota (none for a trusted client), reap first when @p reapFirst or
    /// every so often, make the buffer, adopt it; everything is given back
    /// on any failure.
    template <typename Make>
    Result<ServiceBuffer> makeCharged(ClientId client, uint64_t bytes, bool reapFirst, uint32_t accessMode, Make make);
    /// The client's credentials and whether it is trusted.
    Result<std::pair<Credentials, bool>> peerOf(ClientId client) const;
    void unreserve(uint32_t uid, uint64_t bytes);
    // All *Locked() run with mutex_ held.
    /// reap() for a caller holding mutex_: the dead are destroyed under it.
    void reapLocked();
    /// Unlink from the bookkeeping every buffer that died (claims and
    /// charges dropped) and hand them over, to be destroyed by the caller.
    void takeDeadLocked(std::vector<std::unique_ptr<Entry>>& dead);
    std::unique_ptr<Entry> unlinkEntryLocked(uint64_t bufferId);
    /// The charge of a dead buffer whose storage file a client may still
    /// hold (Entry::storageOut) moves to a watch on that file, and ends when
    /// the file does. False when it cannot be watched (the charge ends now).
    bool lingerLocked(const Entry& entry);
    void releaseChargeLocked(uint32_t uid, uint64_t bytes);
    /// Charges of dead buffers whose storage file lives on (lingerLocked),
    /// by the watch on that file: (uid, bytes).
    using Lingering = std::map<int, std::pair<uint32_t, uint64_t>>;
    /// A lingering storage file is gone: its charge ends.
    Lingering::iterator endLingeringLocked(Lingering::iterator file);
    void dropEntryLocked(uint64_t bufferId);
    void dropClaimLocked(ClientState& client, uint64_t bufferId);
    void releaseUsageLocked(uint32_t uid);
    void disconnectLocked(ClientState& client);
    Result<ClientState*> clientLocked(ClientId id) const;
    Result<Entry*> entryForFdLocked(const InodeKey& key, int fd) const;
    /// What an operation on a buffer fd works on: the calling client and
    /// the buffer, after reaping buffers that died. Caller holds mutex_.
    struct Target {
        ClientState* client;
        Entry* entry;
    };
    Result<Target> targetLocked(ClientId client, const InodeKey& key, int fd);
    /// Client @p clientId and its attachment @p attachment. Errors: those
    /// of clientLocked(), ENOENT for an attachment it does not have.
    struct AttachmentTarget {
        ClientState* client;
        AttachmentRecord* record;
    };
    Result<AttachmentTarget> attachmentLocked(ClientId client, uint64_t attachment);
    Claim& claimLocked(ClientState& client, Entry& entry);
    /// The buffers @p client may see, in id order: every buffer for a
    /// trusted client or uid 0; else what its uid allocated (from any
    /// connection, while it lives) and what it claimed, at a cost of those
    /// alone (bufinfoVisits_).
    std::vector<std::shared_ptr<Buffer>> visibleLocked(const ClientState& client);
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
    std::shared_ptr<PreparedWatches> prepared_;                // set by create(); thread-safe (shared with the pool)
    std::map<uint64_t, std::unique_ptr<Entry>> entries_;       // guarded by mutex_; by buffer id
    std::map<InodeKey, uint64_t> byInode_;                     // guarded by mutex_
    std::map<int, uint64_t> byWatch_;                          // guarded by mutex_
    Lingering lingering_;                                      // guarded by mutex_; see Lingering
    uint64_t lingered_ = 0;                                    // guarded by mutex_; lingering_ insertions, ever
    std::map<uint64_t, std::unique_ptr<ClientState>> clients_; // guarded by mutex_
    std::map<uint32_t, Usage> usage_;                          // guarded by mutex_; by uid
    uint64_t chargedBuffers_ = 0;                              // guarded by mutex_; sum of usage_ buffers
    uint64_t watchLimit_ = kUnlimited;                         // set by create()
    uint64_t watchReserve_ = 0;                                // set by create(): for uid 0 only
    std::atomic<uint64_t> allocationsSinceReap_{0};
    uint64_t bufinfoVisits_ = 0;            // guarded by mutex_; see bufinfoVisits()
    uint64_t nextClient_ = 1;               // guarded by mutex_
    std::map<uint64_t, PendingMove> moves_; // guarded by mutex_; by buffer id
    uint64_t nextTicket_ = 1;               // guarded by mutex_
};

/// One client's connection to a Service: what names it in the service's
/// per-client operations (id()), and the end of its claims when it goes.
/// Destroying it disconnects the client.
///
/// Thread safety: any thread may use it; the operations are the service's.
class ServiceClient {
public:
    ~ServiceClient() { service_->disconnect(id_); }
    ServiceClient(const ServiceClient&) = delete;
    ServiceClient& operator=(const ServiceClient&) = delete;

    Service::ClientId id() const { return id_; }
    const Credentials& credentials() const { return peer_; }
    Service& service() const { return *service_; }

    /// Service::connect() makes them.
    ServiceClient(const Service::PassKey&, std::shared_ptr<Service> service, Service::ClientId id, Credentials peer)
        : service_(std::move(service)), id_(id), peer_(std::move(peer)) {}

private:
    std::shared_ptr<Service> service_;
    const Service::ClientId id_;
    const Credentials peer_;
};

} // namespace cenalloc
