// SPDX-License-Identifier: MIT
// Session: the fd-based API every client uses, in-process or through cenallocd.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/explain.h>
#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/request.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// One heap as a session lists it.
struct HeapInfo {
    std::string name;
    HeapProperties properties;
    HeapStats stats;
    uint64_t freeBytes = 0;
};

/// A device mapping handed to a client: its segment table and the handle
/// that unmaps it.
struct SessionMapping {
    uint64_t id = 0; ///< names the mapping in unmap(); meaningful to this session only
    DmaDirection direction = DmaDirection::Bidirectional;
    SgTable segments;
};

/// Statistics of the whole allocator.
/// How the service bounds what one uid holds, seen by the caller: its
/// uid's charges and quota, and the buffers the service tracks against the
/// number it can (one inotify watch each), part of them kept for uid 0.
/// UINT64_MAX means no limit; all zero from a daemon too old to say.
struct ServiceLimits {
    uint64_t heldBytes = 0;   ///< charged to the caller's uid (buffers alive anywhere)
    uint64_t heldBuffers = 0; ///< charged to the caller's uid
    uint64_t quotaBytes = 0;
    uint64_t quotaBuffers = 0;
    uint64_t trackedBuffers = 0; ///< charged to any uid
    uint64_t maxBuffers = 0;     ///< the most the service tracks at once
    uint64_t rootReserve = 0;    ///< of maxBuffers, what only uid 0 may use
    bool operator==(const ServiceLimits&) const = default;
};

/// How a session attaches a device (Session::attach with options).
struct SessionAttachOptions {
    /// A dynamic importer: its unpinned mappings do not hold the storage in
    /// place; it is told of moves by MoveEvents (dma_buf_dynamic_attach with
    /// move_notify). False: a static importer, whose mappings pin the
    /// storage while they exist.
    bool dynamic = false;
};

/// What a session is told about a move of a buffer one of its dynamic
/// attachments is on (docs/protocol.md, "Events").
struct MoveEvent {
    enum class Kind : uint32_t {
        /// The buffer is about to move, and the attachment has live
        /// mappings: stop the device's use of them, then
        /// acknowledgeMove(attachment, sequence). Until every such
        /// importer acknowledged (or the daemon's bound passed) the
        /// storage stays where it is.
        Pending = 0,
        /// The buffer moved: mappings of the attachment made before are
        /// gone (a device using one faults); map again.
        Moved = 1,
        /// A move announced by Pending did not happen: the mappings are
        /// valid still, and sequence is the buffer's current one.
        Cancelled = 2,
    };
    Kind kind = Kind::Moved;
    uint64_t buffer = 0;     ///< the buffer's id (import(), BufferInfo::id)
    uint64_t attachment = 0; ///< the session's attachment id
    /// The buffer's move sequence after the move (Pending, Moved), or as it
    /// stays (Cancelled).
    uint64_t sequence = 0;
    /// Why: "attach of 'display'", "migrate to 'reserved'", or why a
    /// move was cancelled.
    std::string cause;
    bool operator==(const MoveEvent&) const = default;
};
CENALLOC_EXPORT const char* moveEventKindName(MoveEvent::Kind kind);
using MoveEventCallback = std::function<void(const MoveEvent&)>;

struct AllocatorStats {
    std::vector<HeapInfo> heaps;
    std::vector<IommuDomainStats> domains;
    uint64_t liveBuffers = 0;
    std::vector<std::string> lifetimeBugs;
    ServiceLimits limits;
    /// The pool of ready memory (Context::readyPoolStats): per heap that
    /// asked for some, then the whole pool's (heap ""). Empty from a
    /// daemon too old to say.
    std::vector<ReadyPoolStats> readyPools;
};

/// A buffer a session allocated for devices (Session::allocateFor).
struct SessionAllocatedFor {
    UniqueFd fd;
    /// Its size (page-aligned).
    uint64_t size = 0;
    /// The heap it came from, its host kernel heap node (empty for the
    /// model's storage) and why that heap (AllocForChoice).
    std::string heap;
    std::string kernelHeap;
    std::string reason;
    /// The buffer's name, as asked.
    std::string name;
    /// Its exporter (AllocForChoice::exporter; empty from a daemon too old
    /// to say).
    std::string exporter;
    /// The devices as the platform names them, in the order asked, with
    /// their sysfs path and bound driver on the running host (from a daemon
    /// too old to say: the names asked, nothing else).
    std::vector<AllocForDevice> devices;
};

/// The API of a client of cenalloc, with buffers named by file descriptor
/// as the kernel's dma-buf uapi names them. The same interface is served
/// in-process (Session::local, the embedded default, no daemon) and by
/// cenallocd (Session::connect): a program switches by how it creates its
/// session.
///
/// Buffers are named by an fd the caller holds (never by a guessable id):
/// an operation on an fd that is not a cenalloc buffer fails with EBADF
/// (not a buffer of this allocator) or EBADF/EINVAL. Attachments and
/// mappings are named by ids that are meaningful to this session only;
/// closing the session detaches and unmaps everything it holds.
///
/// A buffer lives while any fd or memory mapping of it exists in any
/// process; release() only drops this session's own claims on it.
///
/// Errors: every failure is an errno and a message, as in-process.
/// Thread safety: all methods may be called concurrently.
class CENALLOC_EXPORT Session {
public:
    class Attachment;
    class Mapping;
    class CpuAccessGuard;

    virtual ~Session() = default;

    /// An in-process session over its own Context for @p platform.
    static Result<std::unique_ptr<Session>> local(const Platform& platform = defaultPlatform());
    /// The same, its Context made with @p options (e.g. no ready pool: the
    /// preloaded shim's, which must make no fd the kernel would not).
    static Result<std::unique_ptr<Session>> local(const Platform& platform, const ContextOptions& options);
    /// A session with the cenallocd listening on @p socketPath
    /// (defaultSocketPath() when empty). Errors: ENOENT/ECONNREFUSED when no
    /// daemon listens, EPROTO for a daemon speaking another protocol.
    static Result<std::unique_ptr<Session>> connect(const std::string& socketPath = {});
    /// $XDG_RUNTIME_DIR/cenalloc.sock, or /run/cenalloc/cenalloc.sock for root
    /// and when XDG_RUNTIME_DIR is unset.
    static std::string defaultSocketPath();

    /// "in-process" or "cenallocd at PATH (protocol N)".
    virtual std::string describe() const = 0;

    virtual Result<std::vector<HeapInfo>> heaps() = 0;
    /// DMA_HEAP_IOCTL_ALLOC of a request made already (AllocRequest::make).
    /// Returns the buffer's fd (with O_CLOEXEC when the request's fd flags
    /// have it). Errors: as Context::allocate.
    virtual Result<UniqueFd> allocate(const AllocRequest& request) = 0;
    /// The same from the arguments of the ioctl (EINVAL as
    /// AllocRequest::make says).
    Result<UniqueFd> allocate(std::string_view heap, uint64_t length, uint32_t fdFlags = kDefaultFdFlags,
                              uint64_t heapFlags = 0);
    /// A deferred buffer (Context::create).
    virtual Result<UniqueFd> create(const CreateRequest& request) = 0;
    /// The same from its arguments (EINVAL as CreateRequest::make says).
    Result<UniqueFd> create(uint64_t size, std::string_view name = {}, CpuAccess cpuAccess = CpuAccess::Rare);
    /// Allocate now for the devices of @p request from the best heap that
    /// serves them (Context::allocateFor; on a daemon placed on the host
    /// kernel's heaps, a real dma-buf from the kernel heap chosen). Returns
    /// the fd (with O_CLOEXEC when the request's fd flags have it) and the
    /// choice. Errors: as Context::allocateFor; through cenallocd also those
    /// of allocate() (EACCES, EDQUOT, ENOSPC), and EINVAL from a daemon too
    /// old to know the operation.
    virtual Result<SessionAllocatedFor> allocateFor(const AllocForRequest& request) = 0;
    /// Tell the allocator this session uses @p buffer, received from
    /// elsewhere (another process). Importing the same buffer through any
    /// fd yields the same id. Errors: EBADF when @p buffer is not one of
    /// this allocator's buffers.
    virtual Result<uint64_t> import(BorrowedFd buffer) = 0;
    /// This session no longer uses @p buffer: detach and unmap what it holds
    /// of it. The buffer itself lives while any fd or mapping of it lives.
    virtual Result<void> release(BorrowedFd buffer) = 0;

    /// Attach @p device; the id names the attachment in detach() and map().
    virtual Result<uint64_t> attach(BorrowedFd buffer, std::string_view device) = 0;
    /// The same with @p options: a dynamic attachment receives MoveEvents.
    /// Through cenallocd a dynamic attach needs a session that receives
    /// events (every Session::connect() asks for them): EPROTONOSUPPORT
    /// from a daemon too old to send them. A dynamic attach that needs the
    /// storage elsewhere moves it under the rules of migrate().
    virtual Result<uint64_t> attach(BorrowedFd buffer, std::string_view device, SessionAttachOptions options) = 0;
    /// attach() as a handle that detaches when it is destroyed (Context's
    /// Attachment, for a session); Attachment::map() gives mappings that
    /// unmap themselves.
    Result<Attachment> attachHandle(BorrowedFd buffer, std::string_view device);
    virtual Result<void> detach(uint64_t attachment) = 0;
    virtual Result<SessionMapping> map(uint64_t attachment, DmaDirection direction) = 0;
    virtual Result<void> unmap(uint64_t mapping) = 0;

    /// Hold the storage of a dynamic attachment's buffer in place
    /// (dma_buf_pin): while pinned, a move is EBUSY naming it. Pins nest.
    /// Errors: EINVAL for a static attachment, ENOENT for an unknown id.
    virtual Result<void> pin(uint64_t attachment) = 0;
    /// Release one pin. Errors: EINVAL when none is held, ENOENT.
    virtual Result<void> unpin(uint64_t attachment) = 0;
    /// Move the buffer's storage to heap @p heap (Buffer::migrate). Before
    /// storage that another session's dynamic attachment has mapped moves,
    /// that session is sent a Pending MoveEvent and the move waits for its
    /// acknowledgement, up to the daemon's bound (docs/protocol.md,
    /// "Migration across processes"). Errors: EBUSY naming what holds the
    /// storage (a static mapping, a pin, an importer that did not
    /// acknowledge in time: device, pid and uid), EINVAL for a heap that
    /// does not serve the attached devices, ENOENT for an unknown heap,
    /// ENOMEM (nothing changed), EDQUOT when the new storage does not fit
    /// the caller's quota while both exist.
    virtual Result<void> migrate(BorrowedFd buffer, std::string_view heap) = 0;
    /// What attaching @p device to @p buffer would do now, changing nothing
    /// (Buffer::forecastAttach).
    virtual Result<AttachForecast> forecast(BorrowedFd buffer, std::string_view device) = 0;
    /// Tell the allocator that the device of @p attachment no longer uses
    /// its mappings made before move @p sequence (a Pending MoveEvent's).
    /// Errors: ENOENT when no move to @p sequence waits for this attachment
    /// (it happened, was cancelled, or the bound passed).
    virtual Result<void> acknowledgeMove(uint64_t attachment, uint64_t sequence) = 0;

    /// Events. The session queues MoveEvents as they arrive (one per
    /// attachment: a newer event replaces one not taken yet); eventFd() is
    /// readable while one may be waiting, for an event loop to poll;
    /// dispatchEvents() takes what arrived and hands each to the callback
    /// (when one is set) and returns how many; nextEvent() takes one
    /// without a callback (nullopt: none waiting). In-process the events
    /// come from the buffer's move notification; through cenallocd from
    /// the connection. Errors: those of the connection.
    virtual BorrowedFd eventFd() = 0;
    virtual void setMoveCallback(MoveEventCallback callback) = 0;
    virtual Result<size_t> dispatchEvents() = 0;
    virtual Result<std::optional<MoveEvent>> nextEvent() = 0;
    /// nextEvent(), waiting up to @p timeoutMs (-1: for ever) for one.
    Result<std::optional<MoveEvent>> waitEvent(int timeoutMs);

    /// DMA_BUF_IOCTL_SYNC START / END.
    virtual Result<void> beginCpuAccess(BorrowedFd buffer, SyncFlags flags) = 0;
    virtual Result<void> endCpuAccess(BorrowedFd buffer, SyncFlags flags) = 0;
    /// The same with flags not checked yet (EINVAL as SyncFlags::make says).
    Result<void> beginCpuAccess(BorrowedFd buffer, uint32_t flags);
    Result<void> endCpuAccess(BorrowedFd buffer, uint32_t flags);
    /// beginCpuAccess() as a guard that ends the bracket when it is
    /// destroyed (Context's CpuAccessGuard, for a session). The guard keeps
    /// a duplicate of @p buffer (O_CLOEXEC) to end it through, so the caller
    /// may close its own; it keeps the buffer alive while it lives. Errors:
    /// EINVAL for the flags, EBADF for the fd, those of beginCpuAccess().
    Result<CpuAccessGuard> beginCpuAccessGuard(BorrowedFd buffer, uint32_t flags);
    /// DMA_BUF_SET_NAME.
    virtual Result<void> setName(BorrowedFd buffer, const BufferName& name) = 0;
    /// The same with a name not checked yet (EINVAL over kBufferNameMax bytes).
    Result<void> setName(BorrowedFd buffer, std::string_view name);

    /// bufinfo of every live buffer (cenallocd: every buffer on the machine
    /// the caller may see).
    virtual Result<std::vector<BufferInfo>> bufinfo() = 0;
    /// The bufinfo entry of the buffer @p buffer names, as bufinfo() would
    /// show it (what `cenalloc bufinfo` prints for one buffer), whoever
    /// allocated it: the fd is the capability, as for import(); nothing is
    /// claimed. Errors: EBADF for a closed fd, and for an fd that is not one
    /// of this allocator's buffers ("not a cenalloc buffer").
    virtual Result<BufferInfo> describe(BorrowedFd buffer) = 0;
    /// The fd of @p buffer's bytes for a driver to import and for the CPU to
    /// map (Buffer::dupStorageFd), with O_CLOEXEC: the host kernel's dma-buf
    /// for a buffer whose storage the kernel made, else a new fd of the
    /// buffer itself. A deferred buffer made where a host kernel heap may
    /// serve it (its handle holds 0 bytes) gets its storage now, from the
    /// heap that serves its attached devices; map this fd, not the handle.
    /// Errors: EBADF as describe(); EACCES through cenallocd for a buffer
    /// fd that is not read-write; those of allocating the storage (ENOMEM,
    /// the kernel's); EINVAL from a daemon too old to know the operation.
    virtual Result<UniqueFd> storageFd(BorrowedFd buffer) = 0;
    /// Statistics; @p resetWatermark resets every heap's high-water mark first.
    virtual Result<AllocatorStats> stats(bool resetWatermark = false) = 0;
    virtual Result<Explanation> explain(std::span<const std::string> devices, uint64_t size,
                                        CpuAccess cpuAccess = CpuAccess::Rare) = 0;
};

/// An attachment of a session that detaches when destroyed.
///
/// Ownership: move-only; it borrows its session, which must outlive it, and
/// its mappings must go before it does (a detach with mappings is EBUSY, and
/// the destructor cannot report it: the attachment then lives until the
/// session closes). The destructor ignores errors; detach() reports them.
class Session::Attachment {
public:
    Attachment() = default;
    /// Take over attachment @p id of @p session (what attach() returned).
    Attachment(Session& session, uint64_t id) : session_(&session), id_(id) {}
    Attachment(Attachment&& other) noexcept;
    Attachment& operator=(Attachment&& other) noexcept;
    ~Attachment();

    bool valid() const { return session_ != nullptr; }
    /// The id detach() and map() take.
    uint64_t id() const { return id_; }
    /// Map the attachment for @p direction: a mapping that unmaps when it
    /// is destroyed. Errors: those of Session::map().
    Result<Mapping> map(DmaDirection direction) const;
    /// Detach now; the handle is empty afterwards (on failure it still
    /// holds the attachment: EBUSY while it has mappings). A no-op on an
    /// empty handle.
    Result<void> detach();
    /// The id, no longer this handle's to detach.
    [[nodiscard]] uint64_t release();

private:
    Session* session_ = nullptr;
    uint64_t id_ = 0;
};

/// A mapping of a session's attachment that unmaps when destroyed.
///
/// Ownership: move-only; it borrows its session, which must outlive it. The
/// destructor ignores errors; unmap() reports them.
class Session::Mapping {
public:
    Mapping() = default;
    /// Take over @p mapping of @p session (what map() returned).
    Mapping(Session& session, SessionMapping mapping) : session_(&session), mapping_(std::move(mapping)) {}
    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    ~Mapping();

    bool valid() const { return session_ != nullptr; }
    uint64_t id() const { return mapping_.id; }
    DmaDirection direction() const { return mapping_.direction; }
    /// The device addresses.
    const SgTable& segments() const { return mapping_.segments; }
    /// Unmap now; the handle is empty afterwards (on failure it still holds
    /// the mapping). A no-op on an empty handle.
    Result<void> unmap();
    /// The mapping, no longer this handle's to unmap.
    [[nodiscard]] SessionMapping release();

private:
    Session* session_ = nullptr;
    SessionMapping mapping_;
};

/// A CPU access bracket of a session that ends when destroyed.
///
/// Ownership: move-only; it borrows its session, which must outlive it, and
/// owns an fd of the buffer (so the buffer lives while it does). The
/// destructor ignores errors; end() reports them.
class Session::CpuAccessGuard {
public:
    CpuAccessGuard() = default;
    /// Take over the bracket begun on @p buffer (an fd the guard keeps) with
    /// @p flags.
    CpuAccessGuard(Session& session, UniqueFd buffer, SyncFlags flags)
        : session_(&session), buffer_(std::move(buffer)), flags_(flags) {}
    CpuAccessGuard(CpuAccessGuard&& other) noexcept;
    CpuAccessGuard& operator=(CpuAccessGuard&& other) noexcept;
    ~CpuAccessGuard();

    bool valid() const { return session_ != nullptr; }
    /// End the bracket now; the guard is empty afterwards (on failure it
    /// still holds the bracket). A no-op on an empty guard.
    Result<void> end();

private:
    Session* session_ = nullptr;
    UniqueFd buffer_;
    std::optional<SyncFlags> flags_;
};

} // namespace cenalloc
