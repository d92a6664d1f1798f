// SPDX-License-Identifier: MIT
// Buffers (the dma-buf), their attachments, device mappings and CPU access.
#pragma once

#include <atomic>
#include <cstdint>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/request.h>
#include <cenalloc/result.h>
#include <cenalloc/storage_types.h>
#include <cenalloc/unique_fd.h>

struct stat;

namespace cenalloc {

class Buffer;
class BufferOps;
class BufferRegistry;
class DmaDevice;
class IommuDomain;
class RefillSink;
struct AttachmentState;
struct BufferAccess;
struct BufferParams;

/// Direction of a device mapping, as Linux's enum dma_data_direction.
enum class DmaDirection {
    Bidirectional = 0,
    ToDevice = 1,   ///< the device reads memory
    FromDevice = 2, ///< the device writes memory
};
CENALLOC_EXPORT const char* dmaDirectionName(DmaDirection direction);

/// Why a device lost a mapping: its importer unmapped it (or detached, or
/// the buffer went), or the buffer's storage moved under a dynamic importer.
enum class UnmapCause { Unmapped, Moved };

/// One device mapping as bufinfo shows it.
struct MappingInfo {
    std::string device;
    DmaDirection direction = DmaDirection::Bidirectional;
    /// IOMMU domain name, empty for direct (physical) mappings.
    std::string domain;
    SgTable segments;
};

/// A bufinfo line: what /sys/kernel/debug/dma_buf/bufinfo shows, and more.
struct BufferInfo {
    uint64_t id = 0;
    uint64_t size = 0;
    uint32_t fdFlags = 0;
    std::string exporter;
    std::string name;
    uint64_t inode = 0;
    /// Holders of the buffer object in this process (handles, mappings).
    long references = 0;
    bool hasStorage = false;
    std::string heap;
    /// The storage is a real dma-buf of the host kernel: chunks are unknown.
    bool inHostKernel = false;
    std::vector<PhysChunk> chunks;
    std::vector<std::string> attachedDevices;
    std::vector<MappingInfo> mappings;
    uint32_t cpuAccessDepth = 0;
    uint64_t cacheMaintenanceOps = 0;
    uint64_t syncViolations = 0;
    std::string exporterState;
};

/// What a dynamic importer is told when the buffer's storage moves
/// (dma_buf_attach_ops.move_notify). Its mappings of the old storage are
/// gone when it is told: it maps again before its device's next DMA.
struct MoveNotification {
    uint64_t buffer = 0;
    /// The buffer's move sequence after this move (1 after the first): a
    /// mapping whose Attachment::Mapping::sequence() is lower is stale.
    uint64_t sequence = 0;
    std::string fromHeap;
    std::string toHeap;
    /// Why it moved: "attach of 'display'", "migrate to 'reserved'".
    std::string reason;
};
/// Called after the move, with no lock of the buffer held: it may map
/// again from inside. Called from the thread whose attach or migrate
/// moved the buffer.
using MoveCallback = std::function<void(const MoveNotification&)>;

/// What attaching a device to a buffer would do now (Buffer::forecastAttach).
struct AttachForecast {
    enum class Outcome {
        Fits,          ///< the storage serves it, or there is none yet and some heap would
        WouldMigrate,  ///< the storage must move: fromHeap to toHeap, notifying notified
        Blocked,       ///< the storage must move and cannot: reason says what holds it
        Unsatisfiable, ///< no heap serves the device with those attached: reason says why
    };
    Outcome outcome = Outcome::Fits;
    std::string fromHeap;
    std::string toHeap;
    /// The dynamic importers a move would notify.
    std::vector<std::string> notified;
    std::string reason;
};
CENALLOC_EXPORT const char* attachOutcomeName(AttachForecast::Outcome outcome);

/// How an importer attaches.
struct AttachOptions {
    /// Set: a dynamic importer (dma_buf_dynamic_attach with move_notify).
    /// Its unpinned mappings do not hold the storage in place: a later attach
    /// that needs other storage moves the buffer, invalidates them and calls
    /// this. Empty: a static importer, whose mappings pin the storage while
    /// they exist (a later attach that needs other storage is EBUSY).
    MoveCallback onMove;
    /// With onMove: the importer is told of a move before it is made and
    /// must acknowledge it first (a cenallocd client's dynamic attachment,
    /// whose service waits for the acknowledgement). A move the buffer's own
    /// heap needs (a CMA heap making room) waits for nobody, so it leaves a
    /// buffer with such an importer where it is.
    bool acknowledgesMoves = false;
};

/// A device's link to a buffer (dma_buf_attach). Detaches on destruction.
/// Does not keep the buffer alive: if the buffer is released first, the
/// registry records the bug and the attachment becomes inert (ENODEV).
///
/// Move-only. Thread safety: use one Attachment from one thread at a time.
class CENALLOC_EXPORT Attachment {
public:
    Attachment() = default;
    Attachment(Attachment&&) noexcept = default;
    Attachment& operator=(Attachment&& other) noexcept;
    ~Attachment() { detach(); }

    bool attached() const { return state_ != nullptr; }
    /// The attached device. Precondition: attached().
    const DmaDevice& device() const;
    /// Detach now; idempotent.
    void detach();

    /// Attached with a move callback (AttachOptions::onMove).
    bool dynamic() const;
    /// Hold the storage in place (dma_buf_pin), as a scanout engine does
    /// while a frame is on screen: while any pin is held, a move the buffer
    /// would need is EBUSY naming this device. Pins nest; each pin() needs
    /// its unpin(). Errors: EINVAL for a static attachment (its mappings pin
    /// already), ENODEV when detached or the buffer is gone.
    Result<void> pin();
    /// Release one pin. Errors: EINVAL when none is held, ENODEV as pin().
    Result<void> unpin();

    class Mapping;
    /// Map the buffer for the device (dma_buf_map_attachment). Allocates the
    /// storage of a deferred buffer on first use. The returned table obeys
    /// the device's limits or the call fails: ERANGE/EINVAL with the limit
    /// that was broken, ENOMEM for exhausted memory or IOVA space, ENODEV
    /// when the buffer is gone.
    Result<Mapping> map(DmaDirection direction);

private:
    friend class Buffer;
    CENALLOC_NO_EXPORT Attachment(std::weak_ptr<Buffer> buffer, std::shared_ptr<AttachmentState> state);
    CENALLOC_NO_EXPORT Result<void> changePins(int delta);
    std::weak_ptr<Buffer> buffer_;
    std::shared_ptr<AttachmentState> state_;
};

/// A mapped sg table (dma_buf_map_attachment's result). Unmaps exactly what
/// was mapped on destruction. Move-only.
class CENALLOC_EXPORT Attachment::Mapping {
public:
    Mapping() = default;
    Mapping(Mapping&&) noexcept = default;
    Mapping& operator=(Mapping&& other) noexcept;
    ~Mapping() { unmap(); }

    /// The DMA segments. Precondition: this handle was not unmapped or
    /// moved from (the table stays readable after a forced teardown).
    const SgTable& segments() const;
    DmaDirection direction() const;
    /// Still mapped: not unmapped, and not torn down by a detach, the
    /// buffer's release or a move of its storage.
    bool mapped() const;
    /// The buffer's move sequence when this mapping was made (0 before any
    /// move; see MoveNotification::sequence).
    uint64_t sequence() const;
    void unmap();

    struct Record;

private:
    friend class Attachment;
    friend class Buffer;
    explicit Mapping(std::shared_ptr<Record> record) : record_(std::move(record)) {}
    std::shared_ptr<Record> record_;
};

/// A CPU mapping of the buffer's memory (mmap of the dma-buf fd).
/// Keeps the buffer alive. Move-only.
class CENALLOC_EXPORT BufferMapping {
public:
    BufferMapping() = default;
    BufferMapping(BufferMapping&& other) noexcept;
    BufferMapping& operator=(BufferMapping&& other) noexcept;
    ~BufferMapping();

    void* data() const { return data_; }
    std::byte* bytes() const { return static_cast<std::byte*>(data_); }
    size_t size() const { return size_; }

private:
    friend class Buffer;
    BufferMapping(std::shared_ptr<Buffer> buffer, void* data, size_t size)
        : buffer_(std::move(buffer)), data_(data), size_(size) {}
    std::shared_ptr<Buffer> buffer_;
    void* data_ = nullptr;
    size_t size_ = 0;
};

/// begin_cpu_access/end_cpu_access as an RAII bracket (like
/// DMA_BUF_IOCTL_SYNC START/END). Keeps the buffer alive. Move-only.
class CENALLOC_EXPORT CpuAccessGuard {
public:
    CpuAccessGuard() = default;
    CpuAccessGuard(CpuAccessGuard&& other) noexcept = default;
    CpuAccessGuard& operator=(CpuAccessGuard&& other) noexcept;
    ~CpuAccessGuard() { end(); }
    /// End the access now; idempotent.
    void end();

private:
    friend class Buffer;
    CpuAccessGuard(std::shared_ptr<Buffer> buffer, uint32_t flags) : buffer_(std::move(buffer)), flags_(flags) {}
    std::shared_ptr<Buffer> buffer_;
    uint32_t flags_ = 0;
};

/// The shared buffer object (a dma-buf): a fixed size, an fd that holds its
/// bytes (a sealed memfd, or the real dma-buf of a host kernel heap), an
/// exporter, attachments, and storage in the simulated physical address
/// space that may arrive late.
///
/// Ownership: shared (std::shared_ptr). It lives while any handle, CPU
/// mapping or CPU-access guard lives.
/// Thread safety: all public methods may be called concurrently.
class CENALLOC_EXPORT Buffer : public std::enable_shared_from_this<Buffer> {
    struct PassKey;

public:
    /// Buffers are made by Context::allocate() and Context::create(). The key
    /// is cenalloc's own (BufferAccess::create): this is for make_shared only.
    CENALLOC_NO_EXPORT Buffer(PassKey, BufferParams params, UniqueFd fd);
    ~Buffer();
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    uint64_t id() const { return id_; }
    uint64_t size() const { return size_; }
    uint32_t fdFlags() const { return fdFlags_; }
    /// The exporter: the heap's name, or "cenalloc" for a deferred buffer.
    const char* exporterName() const;
    /// The fd holding the bytes (a memfd, or a host kernel dma-buf); valid
    /// while the buffer lives, unless surrenderFd() gave it away (then
    /// invalid).
    BorrowedFd fd() const { return fd_.borrow(); }
    /// A new fd for the same buffer (to send to another process).
    /// @p flags: O_CLOEXEC or 0. Errors: EINVAL for other flags, EBADF after
    /// surrenderFd(), errno of fcntl.
    Result<UniqueFd> dupFd(int flags = O_CLOEXEC) const;
    /// A new fd of the buffer's bytes for a driver to import: the host
    /// kernel's dma-buf when the storage is one (a buffer allocated for
    /// host devices, or a deferred buffer whose storage the kernel made),
    /// else the same as dupFd(). A deferred buffer gets its storage first,
    /// as at its first map. A deferred buffer made where a host kernel heap
    /// may serve it keeps its bytes only there: its own fd is a handle of 0
    /// bytes, sealed against growth and writes (a mapping of it faults with
    /// SIGBUS at its first touch: it never holds bytes the storage lacks),
    /// and mmap() maps the storage fd.
    /// @p flags: O_CLOEXEC or 0. Errors: EINVAL for other flags, those of
    /// allocating the storage (ENOMEM, the kernel's), EBADF when the fd
    /// holding the bytes was surrendered, errno of fcntl.
    Result<UniqueFd> dupStorageFd(int flags = O_CLOEXEC);
    /// Allocate a deferred buffer's storage now, as its first map would (a
    /// no-op for a buffer that has storage). Errors: those of allocating it
    /// (ENOMEM, EINVAL when no heap serves the devices, the kernel's).
    Result<void> ensureStorage();
    /// True when the bytes live in a storage fd apart from fd() (see
    /// dupStorageFd()); fixed at creation.
    bool bytesApart() const { return bytesApart_; }
    /// Give the fd away, keeping no fd of the buffer in this object: the
    /// service hands the fd to its client so that only the kernel counts who
    /// still holds the buffer (the last close or munmap anywhere frees it).
    /// Afterwards fd() is invalid, dupFd() and mmap() fail with EBADF, device
    /// DMA through a mapping fails with EBADF, and info() reports the inode
    /// remembered here. Attach, map and CPU access brackets keep working.
    /// @p stat, when not null, receives the fd's fstat() (the service keys
    /// buffers by device and inode: one fstat serves both).
    /// Errors: EBADF when the fd was surrendered already, errno of fstat.
    /// Thread safety: call it before fd(), dupFd() or mmap() can run
    /// concurrently (the service calls it right after creating the buffer);
    /// info() may run concurrently.
    Result<UniqueFd> surrenderFd(struct ::stat* stat = nullptr);
    /// True once surrenderFd() succeeded.
    bool fdSurrendered() const;

    std::string name() const;
    /// DMA_BUF_SET_NAME (the name checked by BufferName::make). A host
    /// kernel dma-buf is named in the kernel too (its fdinfo shows the name)
    /// while this object holds its fd; the kernel's errors are returned.
    Result<void> setName(const BufferName& name);
    /// The same for a name not checked yet: EINVAL for one over
    /// kBufferNameMax bytes.
    Result<void> setName(std::string_view name);

    bool hasStorage() const;
    /// Snapshot of the storage's chunks (empty when deferred and unallocated).
    std::vector<PhysChunk> chunks() const;
    /// Name of the heap the storage came from, or empty.
    std::string heapName() const;
    /// The storage is a real dma-buf of the host kernel (Storage::inHostKernel).
    bool inHostKernel() const;

    /// Attach @p device (it must outlive the attachment). The exporter may
    /// refuse: EBUSY (storage exists and cannot serve the device), EINVAL
    /// (the device set would be unsatisfiable); a refusal changes nothing.
    Result<Attachment> attach(const DmaDevice& device);
    /// The same with @p options: a dynamic importer when it has a move
    /// callback. An attach the storage does not serve moves a deferred
    /// buffer to storage that serves every attached device, when nothing
    /// holds it in place: every live device mapping belongs to an unpinned
    /// dynamic attachment (those are invalidated, their devices fault on
    /// the old addresses, and their callbacks run after the move). Otherwise
    /// EBUSY naming what holds it: a static attachment's mapping, a pin, or
    /// storage that cannot move (a heap chosen by name, a host kernel
    /// dma-buf). A failed move (ENOMEM for the new storage) changes nothing.
    /// The bytes stay where they are, in the buffer's fd: CPU mappings stay
    /// valid across a move, only the placement changes.
    Result<Attachment> attach(const DmaDevice& device, AttachOptions options);

    /// Move the storage to heap @p heap (which must serve every attached
    /// device), under the rules of attach(): EBUSY naming what holds it in
    /// place, EINVAL for a heap that does not serve the devices or that this
    /// buffer may not use, ENOENT for an unknown heap, ENOMEM with nothing
    /// changed. A deferred buffer without storage gets it from @p heap. A
    /// buffer already there is left alone.
    Result<void> migrate(std::string_view heap);
    /// Moves so far (MoveNotification::sequence of the last one).
    uint64_t moveSequence() const;
    /// What attach(@p device) would do now, changing nothing: fits, would
    /// move (from which heap to which, notifying whom), blocked (by what),
    /// or unsatisfiable. A forecast of WouldMigrate can still meet ENOMEM.
    AttachForecast forecastAttach(const DmaDevice& device) const;
    /// Map the bytes for the CPU. Counts as CPU access for deferred storage.
    /// Maps the fd that holds the bytes: the storage fd of a buffer whose
    /// bytes live apart (bytesApart(), which works after surrenderFd() too),
    /// else fd(). Errors: those of allocating the storage, EBADF after
    /// surrenderFd() of a buffer whose bytes are in its fd, errno of mmap.
    Result<BufferMapping> mmap(int prot = PROT_READ | PROT_WRITE);

    /// DMA_BUF_IOCTL_SYNC START. @p flags: kSyncRead/kSyncWrite, at least one,
    /// no other bits (EINVAL). For a host kernel dma-buf the kernel does the
    /// cache maintenance (its SYNC ioctl, while this object holds the fd).
    Result<CpuAccessGuard> beginCpuAccess(uint32_t flags);
    /// The same with flags checked already (SyncFlags::make).
    Result<CpuAccessGuard> beginCpuAccess(SyncFlags flags);

    BufferInfo info() const;

private:
    friend struct BufferAccess; // core/buffer_internal.h: creation and the exporter's accessors
    friend class Attachment;
    friend class CpuAccessGuard;
    friend struct AttachmentState;
    friend class DmaDevice;
    // The library's own: not exported (cenalloc/export.h).
    CENALLOC_NO_EXPORT static void teardownLocked(Attachment::Mapping::Record& record,
                                                  UnmapCause cause = UnmapCause::Unmapped);
    CENALLOC_NO_EXPORT void detachLocked(AttachmentState& state);
    CENALLOC_NO_EXPORT Result<Attachment::Mapping> mapAttachment(const std::shared_ptr<AttachmentState>& state,
                                                                 DmaDirection direction);
    CENALLOC_NO_EXPORT Result<Attachment::Mapping> mapAttachmentLocked(const std::shared_ptr<AttachmentState>& state,
                                                                       DmaDirection direction);
    CENALLOC_NO_EXPORT void endCpuAccess(uint32_t flags);
    CENALLOC_NO_EXPORT void deliverMoves(std::unique_lock<std::mutex>& lock);
    CENALLOC_NO_EXPORT bool anyNonCoherentLocked() const;
    CENALLOC_NO_EXPORT void noteDeviceAccess();
    CENALLOC_NO_EXPORT void noteCpuUse() const;
    /// Ensure the storage, then the number of the fd holding the bytes.
    CENALLOC_NO_EXPORT Result<int> bytesFdWithStorage();

    const uint64_t id_;
    const uint64_t size_;
    const uint32_t fdFlags_;
    UniqueFd fd_; // written only by surrenderFd(), under mutex_
    const bool bytesApart_;
    std::shared_ptr<BufferRegistry> registry_;
    /// The pool of ready memory this buffer owes the refill of its size
    /// class, ordered at its first use (mmap, dupFd, surrenderFd): set at
    /// creation, then only read; empty when it owes none.
    const std::weak_ptr<RefillSink> refillSink_;
    const std::string refillHeap_;
    mutable std::atomic<bool> refillOwed_;

    mutable std::mutex mutex_;
    std::unique_ptr<BufferOps> ops_;                            // guarded by mutex_
    std::string name_;                                          // guarded by mutex_
    Storage storage_;                                           // guarded by mutex_
    std::vector<std::shared_ptr<AttachmentState>> attachments_; // guarded by mutex_
    uint32_t cpuAccessDepth_ = 0;                               // guarded by mutex_
    uint64_t cacheMaintenanceOps_ = 0;                          // guarded by mutex_
    uint64_t syncViolations_ = 0;                               // guarded by mutex_
    uint64_t surrenderedInode_ = 0;                             // guarded by mutex_; 0 = fd still owned
    std::vector<std::shared_ptr<IommuDomain>> domainsUsed_;     // guarded by mutex_
    uint64_t moveSequence_ = 0;                                 // guarded by mutex_
    /// Where the bytes live when bytesApart_: set with the first storage
    /// (under mutex_), then never replaced until the buffer dies.
    UniqueFd storageFd_;
    /// Callbacks of the last move, run by the public method that moved the
    /// buffer once it has unlocked.
    std::vector<std::pair<MoveCallback, MoveNotification>> pendingMoves_; // guarded by mutex_
};

} // namespace cenalloc
