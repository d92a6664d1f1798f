// SPDX-License-Identifier: MIT
// The exporter's side of a Buffer: creating one, its ops, and what the ops may read and change under its lock.
#pragma once

#include <cstdint>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/heap.h>
#include <cenalloc/request.h>
#include <cenalloc/result.h>

namespace cenalloc {

class BufferRegistry;
class DmaDevice;

/// The exporter ops of a buffer (the dma_buf_ops of cenalloc).
///
/// Every op is called with the buffer's lock held, so an op sees a stable
/// attachment list and storage; an op must not call the buffer's public
/// methods (they lock), only BufferAccess, which is meant for exporters.
///  - attach (mandatory): accept or refuse @p device joining the buffer's
///    users. Refusal leaves the buffer unchanged. EBUSY when storage exists
///    and cannot serve the device; EINVAL when the device set would become
///    unsatisfiable.
///  - detach (optional): the device has left; the attachment list no longer
///    contains it.
///  - ensureStorage (mandatory): make storage exist (first map or first CPU
///    access of a deferred buffer). A no-op for buffers born with storage.
///    ENOMEM on exhaustion with nothing allocated.
///  - release (optional): the last reference is gone; storage is freed by
///    the buffer right after.
///  - beginCpuAccess / endCpuAccess (optional): the CPU starts or stops
///    touching the bytes (DMA_BUF_IOCTL_SYNC START/END with @p flags, already
///    validated); the exporter does the cache maintenance its storage needs.
///    Storage exists when they run. A failed begin opens no bracket.
///  - migrate (optional): move the storage to heap @p heap
///    (Buffer::migrate()); with BufferAccess::moveBlockerLocked and
///    moveStorageLocked. Default: EBUSY, the storage cannot move.
///  - forecastAttach (optional): what attach would do, changing nothing.
///    Default: it fits when the storage serves the device, else it is
///    blocked (the storage cannot move).
///  - movable (optional): whether the buffer's own heap may move its storage
///    to make room (storageElsewhere works, unless something holds it: see
///    BufferAccess::heapMoveBlockerLocked). Default: false.
///  - storageElsewhere (optional): new storage that serves every attached
///    device, allocated while the old storage still exists (so never on
///    it), for a move the old storage's heap needs (a CMA heap making room
///    for an allocation, Context::evacuate). It must not make room in a heap
///    itself. ENOMEM when no heap has room. Default: EBUSY.
///  - adoptStorage (mandatory with storageElsewhere): replace the storage
///    with what storageElsewhere gave (BufferAccess::moveStorageLocked).
///  - describe (optional): a line for bufinfo about the exporter's state.
/// An attach that needs other storage moves it the same way (the exporter
/// decides whether its buffers can move at all).
class BufferOps {
public:
    virtual ~BufferOps() = default;
    virtual const char* name() const = 0;
    virtual Result<void> attach(Buffer& buffer, const DmaDevice& device) = 0;
    virtual void detach(Buffer& buffer, const DmaDevice& device) { (void)buffer, (void)device; }
    virtual Result<void> ensureStorage(Buffer& buffer) = 0;
    virtual void release(Buffer& buffer) { (void)buffer; }
    virtual Result<void> beginCpuAccess(Buffer& buffer, uint32_t flags) {
        (void)buffer, (void)flags;
        return {};
    }
    virtual void endCpuAccess(Buffer& buffer, uint32_t flags) { (void)buffer, (void)flags; }
    virtual Result<void> migrate(Buffer& buffer, std::string_view heap);
    virtual AttachForecast forecastAttach(const Buffer& buffer, const DmaDevice& device) const;
    virtual bool movable() const { return false; }
    virtual Result<Storage> storageElsewhere(Buffer& buffer);
    virtual void adoptStorage(Buffer& buffer, Storage storage, std::string reason);
    virtual std::string describe(const Buffer& buffer) const {
        (void)buffer;
        return {};
    }
};

/// What a buffer is made of.
struct BufferParams {
    uint64_t size = 0; ///< page-aligned, non-zero (validated by the caller)
    /// O_CLOEXEC | O_ACCMODE; a read-only buffer (O_RDONLY) is sealed
    /// against every future write (F_SEAL_FUTURE_WRITE).
    uint32_t fdFlags = kDefaultFdFlags;
    BufferName name;
    std::unique_ptr<BufferOps> ops;
    Storage storage; ///< empty for deferred buffers
    /// A memfd of exactly @c size bytes sealed as createSealedMemfd seals
    /// (with kReadOnlySeals for a read-only buffer) to be the buffer's fd,
    /// from the pool of ready memory; invalid: a fresh one is made.
    UniqueFd fd;
    /// The bytes live apart from the buffer's fd, in a storage fd made with
    /// the storage (a deferred buffer that may get a host kernel heap's
    /// dma-buf, whose fd cannot exist before the storage): the buffer's own
    /// fd is then a handle of 0 bytes sealed against growth and writes, so
    /// no mapping of it can hold bytes that the storage does not see.
    bool bytesApart = false;
    /// The pool (and heap) whose class of @c size this buffer orders again
    /// at its first use (RefillSink); empty: none.
    std::weak_ptr<RefillSink> refillSink;
    std::string refillHeap;
    /// Where the buffer is listed while it lives, and its lifetime bugs
    /// reported; none: nowhere.
    std::shared_ptr<BufferRegistry> registry;
};

/// The seals a read-only buffer's memfd carries beyond the size seals.
inline constexpr int kReadOnlySeals = F_SEAL_FUTURE_WRITE;

/// cenalloc's own way into a Buffer (Buffer befriends it): creating one, and
/// the accessors its exporter ops use, which must be called with the
/// buffer's lock held (from inside an op).
struct BufferAccess {
    /// Create the buffer and its fd: the storage's real dma-buf when it has
    /// one (Storage::inHostKernel), else a new sealed memfd. Errors: those
    /// of createSealedMemfd, and for a host kernel dma-buf those of naming it.
    static Result<std::shared_ptr<Buffer>> create(BufferParams params);

    /// Devices attached now, in attach order.
    static std::vector<const DmaDevice*> attachedDevicesLocked(const Buffer& buffer);
    static bool hasStorageLocked(const Buffer& buffer);
    static const Storage& storageLocked(const Buffer& buffer);
    /// Give a buffer without storage its first storage. For a buffer whose
    /// bytes live apart (BufferParams::bytesApart) this makes the storage
    /// fd too: the host kernel's dma-buf (named as the buffer is) or a new
    /// sealed memfd. Errors: those of createSealedMemfd and of naming the
    /// dma-buf; the storage is then freed and the buffer left without.
    static Result<void> setStorageLocked(Buffer& buffer, Storage storage);
    /// The fd that holds the bytes (the storage fd of a buffer whose bytes
    /// live apart, else the buffer's fd); invalid before the storage of such
    /// a buffer exists, or after surrenderFd() of another.
    static BorrowedFd bytesFdLocked(const Buffer& buffer);

    /// What holds the storage in place, or nothing when it may move: the
    /// first static attachment with a live mapping ("'gpu' holds a static
    /// mapping"), pinned dynamic attachment ("'display' pinned it"), or
    /// storage the host kernel made.
    static std::optional<std::string> moveBlockerLocked(const Buffer& buffer);
    /// Replace the storage with @p storage (which must serve every attached
    /// device; moveBlockerLocked() said nothing holds it): invalidate every
    /// live mapping (dynamic ones, by the precondition) so their devices
    /// fault on the old addresses, drop the buffer's cached IOVA mappings,
    /// free the old storage, bump the move sequence, and queue each dynamic
    /// importer's notification for the public method to deliver once it has
    /// unlocked. @p reason says why ("attach of 'display'").
    static void moveStorageLocked(Buffer& buffer, Storage storage, std::string reason);
    /// The devices of the dynamic attachments, in attach order: whom a move
    /// would notify.
    static std::vector<std::string> dynamicImportersLocked(const Buffer& buffer);

    /// The buffer's lock, taken only when free now (owns_lock() false
    /// otherwise): a heap making room locks the buffers in its way this way,
    /// so it never waits for a buffer while it holds another's lock.
    static std::unique_lock<std::mutex> tryLock(const Buffer& buffer);
    static BufferOps& opsLocked(Buffer& buffer);
    static const std::string& nameLocked(const Buffer& buffer);
    /// What keeps the storage where it is when its own heap wants it moved,
    /// or nothing: moveBlockerLocked(), an importer that must acknowledge a
    /// move before it is made (AttachOptions::acknowledgesMoves: a move the
    /// heap needs waits for nobody), an exporter whose buffers do not move.
    static std::optional<std::string> heapMoveBlockerLocked(const Buffer& buffer);
    /// Notifications queued by moveStorageLocked and not yet delivered.
    using PendingMoves = std::vector<std::pair<MoveCallback, MoveNotification>>;
    static PendingMoves takePendingMovesLocked(Buffer& buffer);
    /// Queue @p moves (another buffer's) for @p buffer's public method to
    /// deliver once it has unlocked, with its own.
    static void queueMovesLocked(Buffer& buffer, PendingMoves moves);
};

} // namespace cenalloc
