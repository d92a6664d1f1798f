// SPDX-License-Identifier: MIT
// Buffer life, attachments, device mappings and CPU access.
#include "core/buffer_internal.h"

#include <algorithm>
#include <iterator>
#include <cassert>
#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "base/memfd_internal.h"
#include "base/memfd_pool.h"
#include "base/try.h"
#include "core/registry.h"
#include "core/sg_build.h"
#include "base/try.h"
#include "heaps/kernel_heap.h"
#include "iommu/iommu_domain.h"

namespace cenalloc {

/// A device's attachment, owned jointly by the buffer's list and the
/// Attachment handle. Its members are guarded by the buffer's mutex.
struct AttachmentState {
    const DmaDevice* device = nullptr;
    uint64_t id = 0;
    bool detached = false;
    /// Set for a dynamic importer; fixed at attach.
    MoveCallback onMove;
    /// AttachOptions::acknowledgesMoves; fixed at attach.
    bool acknowledgesMoves = false;
    /// Pins held (Attachment::pin()); dynamic attachments only.
    uint32_t pins = 0;
    std::vector<std::shared_ptr<Attachment::Mapping::Record>> mappings;
};

/// One live device mapping. Members are guarded by the buffer's mutex.
struct Attachment::Mapping::Record {
    std::weak_ptr<Buffer> buffer;
    std::shared_ptr<AttachmentState> attachment;
    uint64_t id = 0;
    DmaDirection direction = DmaDirection::Bidirectional;
    SgTable segments;
    std::shared_ptr<IommuDomain> domain; // null for a direct mapping; outlives iova
    IommuDomain::MappingRef iova;
    /// The buffer's move sequence when it was made.
    uint64_t sequence = 0;
    bool live = true;
};

namespace {

std::atomic<uint64_t> gNextBufferId{1};
std::atomic<uint64_t> gNextAttachmentId{1};
std::atomic<uint64_t> gNextMappingId{1};

} // namespace

const char* dmaDirectionName(DmaDirection direction) {
    switch (direction) {
    case DmaDirection::Bidirectional: return "bidirectional";
    case DmaDirection::ToDevice: return "to-device";
    case DmaDirection::FromDevice: return "from-device";
    }
    return "?";
}

// ---------------------------------------------------------------- Buffer

// Undo one mapping: the device loses it, the IOMMU domain gets its use
// back (the IOVA mapping stays cached unless the storage is moving).
// Called with the buffer lock held.
void Buffer::teardownLocked(Attachment::Mapping::Record& record, UnmapCause cause) {
    if (!record.live)
        return;
    record.live = false;
    record.attachment->device->removeMapping(record.id, cause);
    // Ends this use; the IOVA mapping stays in the domain's cache.
    record.iova.reset();
}

struct Buffer::PassKey {
    explicit PassKey() = default;
};

Result<std::shared_ptr<Buffer>> BufferAccess::create(BufferParams params) {
    UniqueFd fd;
    if (params.storage.inHostKernel()) {
        fd = params.storage.takeDmaBuf();
        if (!params.name.empty())
            CENALLOC_CHECK(setDmaBufName(fd.borrow(), params.name));
    } else if (params.bytesApart) {
        // A handle of 0 bytes that nobody can grow or write: its bytes are
        // the storage's (made at its first use), so a mapping of the handle
        // faults at its first touch (SIGBUS past the end of the file)
        // instead of holding bytes the storage never sees.
        fd = CENALLOC_TRY(openSealableMemfd("cenalloc-handle"));
        CENALLOC_CHECK(sizeAndSealMemfd(fd.borrow(), 0, F_SEAL_WRITE));
    } else if (params.fd.valid()) {
        fd = std::move(params.fd); // a ready memfd, sealed by its pool
    } else {
        // A buffer allocated read-only (fd flags O_RDONLY, as the kernel's
        // dma-heap takes them) is sealed against every future write: its
        // fds are read-only, and no reopen through /proc/self/fd, by
        // anyone, gives a way to write it.
        const bool readOnly = (params.fdFlags & O_ACCMODE) == O_RDONLY;
        fd = CENALLOC_TRY(createSealedMemfd("cenalloc", params.size, readOnly ? kReadOnlySeals : 0));
    }
    // One allocation for the buffer and its reference counts.
    auto buffer = std::make_shared<Buffer>(Buffer::PassKey{}, std::move(params), std::move(fd));
    if (buffer->registry_)
        buffer->registry_->add(buffer);
    return buffer;
}

Buffer::Buffer(PassKey, BufferParams params, UniqueFd fd)
    : id_(gNextBufferId.fetch_add(1)), size_(params.size), fdFlags_(params.fdFlags), fd_(std::move(fd)),
      bytesApart_(params.bytesApart), registry_(std::move(params.registry)), refillSink_(std::move(params.refillSink)),
      refillHeap_(std::move(params.refillHeap)), refillOwed_(!refillSink_.expired()), ops_(std::move(params.ops)),
      name_(params.name.str()), storage_(std::move(params.storage)) {}

std::vector<const DmaDevice*> BufferAccess::attachedDevicesLocked(const Buffer& buffer) {
    std::vector<const DmaDevice*> devices;
    devices.reserve(buffer.attachments_.size());
    for (const auto& state : buffer.attachments_)
        devices.push_back(state->device);
    return devices;
}

bool BufferAccess::hasStorageLocked(const Buffer& buffer) {
    return !buffer.storage_.empty();
}

const Storage& BufferAccess::storageLocked(const Buffer& buffer) {
    return buffer.storage_;
}

Result<void> BufferAccess::setStorageLocked(Buffer& buffer, Storage storage) {
    if (buffer.bytesApart_ && !buffer.storageFd_.valid()) {
        UniqueFd bytes;
        if (storage.inHostKernel()) {
            bytes = storage.takeDmaBuf();
            if (!buffer.name_.empty())
                CENALLOC_CHECK(setDmaBufName(bytes.borrow(), buffer.name_));
        } else {
            const bool readOnly = (buffer.fdFlags_ & O_ACCMODE) == O_RDONLY;
            bytes = CENALLOC_TRY(createSealedMemfd("cenalloc", buffer.size_, readOnly ? kReadOnlySeals : 0));
        }
        buffer.storageFd_ = std::move(bytes);
    }
    buffer.storage_ = std::move(storage);
    return {};
}

BorrowedFd BufferAccess::bytesFdLocked(const Buffer& buffer) {
    return buffer.bytesApart_ ? buffer.storageFd_.borrow() : buffer.fd_.borrow();
}

Buffer::~Buffer() {
    // No lock: nobody else can reach a buffer whose last reference is gone.
    if (!attachments_.empty() && registry_)
        registry_->reportBug(
            fmt::format("buffer {} ('{}') released with {} device(s) still attached", id_, name_, attachments_.size()));
    for (auto& state : attachments_) {
        for (auto& record : state->mappings)
            teardownLocked(*record);
        state->mappings.clear();
        state->detached = true;
    }
    attachments_.clear();
    ops_->release(*this);
    // Cached IOVA mappings die with the buffer.
    for (auto& domain : domainsUsed_)
        if (size_t orphaned = domain->releaseBuffer(id_); orphaned && registry_)
            registry_->reportBug(fmt::format("buffer {} released with {} IOVA mapping(s) in use in '{}'", id_, orphaned,
                                             domain->name()));
    storage_.reset();
    if (registry_)
        registry_->remove(id_);
}

const char* Buffer::exporterName() const {
    // The ops are set at creation and never replaced: no lock needed.
    return ops_->name();
}

void Buffer::noteCpuUse() const {
    // The first use orders the refill of the buffer's class (RefillSink);
    // later ones, and buffers that owe none, cost one atomic load.
    if (!refillOwed_.load(std::memory_order_relaxed) || !refillOwed_.exchange(false))
        return;
    if (std::shared_ptr<RefillSink> sink = refillSink_.lock())
        sink->orderRefill(refillHeap_, size_);
}

Result<UniqueFd> Buffer::dupFd(int flags) const {
    if (flags & ~O_CLOEXEC)
        return Error(EINVAL, fmt::format("fd flags {:#x}: only O_CLOEXEC is allowed", flags));
    if (!fd_.valid())
        return Error(EBADF, fmt::format("buffer {} gave its fd away", id_));
    int fd = ::fcntl(fd_.get(), (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0)
        return Error::fromErrno("duplicating buffer fd");
    // Whoever gets the fd may map it where this object cannot see.
    noteCpuUse();
    return UniqueFd(fd);
}

Result<UniqueFd> Buffer::surrenderFd(struct ::stat* stat) {
    std::lock_guard lock(mutex_);
    if (!fd_.valid())
        return Error(EBADF, fmt::format("buffer {} gave its fd away already", id_));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0)
        return Error::fromErrno(fmt::format("stat of buffer {}", id_));
    // Never 0 for a memfd: 0 is what "still owned" reads as.
    surrenderedInode_ = st.st_ino;
    if (stat)
        *stat = st;
    // Its new holder maps it where this object cannot see: count it used.
    noteCpuUse();
    return std::move(fd_);
}

bool Buffer::fdSurrendered() const {
    std::lock_guard lock(mutex_);
    return !fd_.valid();
}

std::string Buffer::name() const {
    std::lock_guard lock(mutex_);
    return name_;
}

Result<void> Buffer::setName(std::string_view name) {
    return setName(CENALLOC_TRY(BufferName::make(name)));
}

Result<void> Buffer::setName(const BufferName& name) {
    std::lock_guard lock(mutex_);
    // A real dma-buf carries its name in the kernel; a refusal there leaves
    // the old name everywhere.
    BorrowedFd bytes = BufferAccess::bytesFdLocked(*this);
    if (storage_.inHostKernel() && bytes.valid())
        if (auto named = setDmaBufName(bytes, name); !named)
            return named.error().withContext(fmt::format("naming buffer {}", id_));
    name_ = name.str();
    return {};
}

bool Buffer::hasStorage() const {
    std::lock_guard lock(mutex_);
    return !storage_.empty();
}

std::vector<PhysChunk> Buffer::chunks() const {
    std::lock_guard lock(mutex_);
    return storage_.chunks();
}

std::string Buffer::heapName() const {
    std::lock_guard lock(mutex_);
    return storage_.empty() ? std::string() : storage_.heap()->name();
}

bool Buffer::inHostKernel() const {
    std::lock_guard lock(mutex_);
    return storage_.inHostKernel();
}

bool Buffer::anyNonCoherentLocked() const {
    return std::any_of(attachments_.begin(), attachments_.end(),
                       [](const auto& s) { return !s->device->constraints().coherent; });
}

Result<Attachment> Buffer::attach(const DmaDevice& device) {
    return attach(device, AttachOptions{});
}

Result<Attachment> Buffer::attach(const DmaDevice& device, AttachOptions options) {
    std::unique_lock lock(mutex_);
    if (auto ok = ops_->attach(*this, device); !ok)
        return ok.error().withContext(fmt::format("attaching '{}' to buffer {}", device.name(), id_));
    auto state = std::make_shared<AttachmentState>();
    state->device = &device;
    state->id = gNextAttachmentId.fetch_add(1);
    state->onMove = std::move(options.onMove);
    state->acknowledgesMoves = options.acknowledgesMoves && state->onMove;
    attachments_.push_back(state);
    Attachment attachment(weak_from_this(), std::move(state));
    deliverMoves(lock);
    return attachment;
}

Result<void> Buffer::migrate(std::string_view heap) {
    std::unique_lock lock(mutex_);
    if (auto ok = ops_->migrate(*this, heap); !ok)
        return ok.error().withContext(fmt::format("moving buffer {} to heap '{}'", id_, heap));
    deliverMoves(lock);
    return {};
}

uint64_t Buffer::moveSequence() const {
    std::lock_guard lock(mutex_);
    return moveSequence_;
}

void Buffer::deliverMoves(std::unique_lock<std::mutex>& lock) {
    if (pendingMoves_.empty())
        return;
    std::vector<std::pair<MoveCallback, MoveNotification>> moves = std::exchange(pendingMoves_, {});
    lock.unlock();
    for (auto& [callback, notification] : moves)
        callback(notification);
}

Result<void> BufferOps::migrate(Buffer& buffer, std::string_view heap) {
    (void)heap;
    return Error(EBUSY, fmt::format("buffers of exporter '{}' stay where they were allocated (their heap was chosen "
                                    "by name)",
                                    buffer.exporterName()));
}

Result<Storage> BufferOps::storageElsewhere(Buffer& buffer) {
    return Error(EBUSY, fmt::format("buffers of exporter '{}' stay where they were allocated", buffer.exporterName()));
}

void BufferOps::adoptStorage(Buffer& buffer, Storage storage, std::string reason) {
    // Only an exporter whose storageElsewhere gives storage is asked to adopt it.
    (void)buffer, (void)storage, (void)reason;
    assert(false && "adoptStorage without storageElsewhere");
}

AttachForecast BufferOps::forecastAttach(const Buffer& buffer, const DmaDevice& device) const {
    AttachForecast forecast;
    const Storage& storage = BufferAccess::storageLocked(buffer);
    if (storage.empty())
        return forecast;
    if (auto served = checkStorageForDevice(storage, device); !served) {
        forecast.outcome = AttachForecast::Outcome::Blocked;
        forecast.fromHeap = storage.heap()->name();
        forecast.reason = fmt::format("storage from heap '{}' cannot serve '{}' ({}) and buffers of exporter '{}' "
                                      "do not move",
                                      storage.heap()->name(), device.name(), served.error().message(), name());
    }
    return forecast;
}

const char* attachOutcomeName(AttachForecast::Outcome outcome) {
    switch (outcome) {
    case AttachForecast::Outcome::Fits: return "fits";
    case AttachForecast::Outcome::WouldMigrate: return "would migrate";
    case AttachForecast::Outcome::Blocked: return "blocked";
    case AttachForecast::Outcome::Unsatisfiable: return "unsatisfiable";
    }
    return "?";
}

AttachForecast Buffer::forecastAttach(const DmaDevice& device) const {
    std::lock_guard lock(mutex_);
    return ops_->forecastAttach(*this, device);
}

std::vector<std::string> BufferAccess::dynamicImportersLocked(const Buffer& buffer) {
    std::vector<std::string> names;
    for (const auto& state : buffer.attachments_)
        if (state->onMove)
            names.push_back(state->device->name());
    return names;
}

std::optional<std::string> BufferAccess::moveBlockerLocked(const Buffer& buffer) {
    if (buffer.storage_.inHostKernel())
        return std::string("its storage is a dma-buf the host kernel made, which only the kernel can move");
    for (const auto& state : buffer.attachments_) {
        if (state->pins > 0)
            return fmt::format("'{}' pinned it", state->device->name());
        if (!state->onMove && std::any_of(state->mappings.begin(), state->mappings.end(),
                                          [](const auto& record) { return record->live; }))
            return fmt::format("'{}' holds a static mapping of it", state->device->name());
    }
    return std::nullopt;
}

std::unique_lock<std::mutex> BufferAccess::tryLock(const Buffer& buffer) {
    return std::unique_lock(buffer.mutex_, std::try_to_lock);
}

BufferOps& BufferAccess::opsLocked(Buffer& buffer) {
    return *buffer.ops_;
}

const std::string& BufferAccess::nameLocked(const Buffer& buffer) {
    return buffer.name_;
}

std::optional<std::string> BufferAccess::heapMoveBlockerLocked(const Buffer& buffer) {
    if (std::optional<std::string> blocker = moveBlockerLocked(buffer))
        return blocker;
    for (const auto& state : buffer.attachments_)
        if (state->acknowledgesMoves)
            return fmt::format("'{}' must acknowledge a move before it is made, and a move its heap needs waits for "
                               "nobody",
                               state->device->name());
    if (!buffer.ops_->movable())
        return fmt::format("buffers of exporter '{}' stay where they were allocated", buffer.ops_->name());
    return std::nullopt;
}

BufferAccess::PendingMoves BufferAccess::takePendingMovesLocked(Buffer& buffer) {
    return std::exchange(buffer.pendingMoves_, {});
}

void BufferAccess::queueMovesLocked(Buffer& buffer, PendingMoves moves) {
    for (auto& move : moves)
        buffer.pendingMoves_.push_back(std::move(move));
}

void BufferAccess::moveStorageLocked(Buffer& buffer, Storage storage, std::string reason) {
    std::string from = buffer.storage_.empty() ? std::string() : buffer.storage_.heap()->name();
    for (auto& state : buffer.attachments_) {
        for (auto& record : state->mappings)
            Buffer::teardownLocked(*record, UnmapCause::Moved);
        state->mappings.clear();
    }
    // The IOVA mappings of the old storage must not be hits for the new one:
    // destroying them unmaps their IOVA, so a device still using it faults
    // in its IOMMU.
    for (auto& domain : buffer.domainsUsed_)
        if (size_t orphaned = domain->releaseBuffer(buffer.id_); orphaned && buffer.registry_)
            buffer.registry_->reportBug(fmt::format("buffer {} moved with {} IOVA mapping(s) in use in '{}'",
                                                    buffer.id_, orphaned, domain->name()));
    buffer.domainsUsed_.clear();
    buffer.storage_ = std::move(storage);
    ++buffer.moveSequence_;
    MoveNotification notification{buffer.id_, buffer.moveSequence_, std::move(from), buffer.storage_.heap()->name(),
                                  std::move(reason)};
    for (const auto& state : buffer.attachments_)
        if (state->onMove)
            buffer.pendingMoves_.emplace_back(state->onMove, notification);
}

void Buffer::detachLocked(AttachmentState& state) {
    if (state.detached)
        return;
    if (!state.mappings.empty() && registry_)
        registry_->reportBug(fmt::format("device '{}' detached from buffer {} with {} mapping(s) still live",
                                         state.device->name(), id_, state.mappings.size()));
    for (auto& record : state.mappings)
        teardownLocked(*record);
    state.mappings.clear();
    state.detached = true;
    // Looked for from the newest: attachments mostly go in the reverse order
    // of coming (a session's end undoes them so), and then this is no scan
    // of every other attachment of the buffer.
    auto it =
        std::find_if(attachments_.rbegin(), attachments_.rend(), [&](const auto& s) { return s.get() == &state; });
    if (it != attachments_.rend())
        attachments_.erase(std::next(it).base());
    ops_->detach(*this, *state.device);
}

Result<Attachment::Mapping> Buffer::mapAttachment(const std::shared_ptr<AttachmentState>& state,
                                                  DmaDirection direction) {
    std::unique_lock lock(mutex_);
    auto mapping = mapAttachmentLocked(state, direction);
    // The storage a first map allocated may have made room by moving
    // other buffers: their importers are told now.
    deliverMoves(lock);
    return mapping;
}

Result<Attachment::Mapping> Buffer::mapAttachmentLocked(const std::shared_ptr<AttachmentState>& state,
                                                        DmaDirection direction) {
    if (state->detached)
        return Error(ENODEV, "the attachment was detached");
    if (auto ok = ops_->ensureStorage(*this); !ok)
        return ok.error().withContext(fmt::format("allocating storage of buffer {}", id_));
    const DmaDevice& device = *state->device;
    const DmaConstraints& c = device.constraints();
    if (storage_.inHostKernel())
        return Error(
            EOPNOTSUPP,
            fmt::format("buffer {}'s storage is a real dma-buf the host kernel made from {}/{}: the model holds "
                        "no placement for it, so '{}' cannot map it through the model (its driver imports the "
                        "storage fd instead: Buffer::dupStorageFd)",
                        id_, kKernelHeapDir, storage_.heap()->properties().kernelHeap, device.name()));

    auto record = std::make_shared<Attachment::Mapping::Record>();
    record->buffer = weak_from_this();
    record->attachment = state;
    record->id = gNextMappingId.fetch_add(1);
    record->direction = direction;
    record->sequence = moveSequence_;

    if ((storage_.heap()->properties().accessBits & c.accessBits) == 0)
        return Error(EINVAL,
                     fmt::format("'{}' cannot reach the memory of heap '{}'", device.name(), storage_.heap()->name()));
    if (IommuDomain* domain = device.domain()) {
        uint64_t limit = iovaLimit(c, domain->apertureBase(), domain->apertureSize());
        auto iova = domain->mapBuffer(id_, storage_.chunks(), limit);
        if (!iova)
            return iova.error().withContext(fmt::format("mapping buffer {} for '{}'", id_, device.name()));
        auto table = splitForDevice((*iova)->iova, (*iova)->size, c);
        if (!table) {
            iova->reset();
            return table.error().withContext(fmt::format("mapping buffer {} for '{}'", id_, device.name()));
        }
        // The IOVA range covers whole IOMMU pages; the device sees the buffer's bytes only.
        uint64_t excess = (*iova)->size - size_;
        while (excess > 0 && !table->empty()) {
            uint64_t cut = std::min(excess, table->back().length);
            table->back().length -= cut;
            excess -= cut;
            if (table->back().length == 0)
                table->pop_back();
        }
        record->segments = std::move(*table);
        record->domain = device.sharedDomain();
        record->iova = std::move(*iova);
        if (std::find(domainsUsed_.begin(), domainsUsed_.end(), record->domain) == domainsUsed_.end())
            domainsUsed_.push_back(record->domain);
    } else {
        auto table = buildDirectSgTable(storage_.chunks(), directMappingLimits(device.description()));
        if (!table)
            return table.error().withContext(fmt::format("mapping buffer {} for '{}'", id_, device.name()));
        record->segments = std::move(*table);
    }
    device.addMapping(record->id, weak_from_this(), direction, record->segments, storage_.chunks());
    // Mapping for a non-coherent device is where dma_map_sg cleans the CPU cache.
    if (!c.coherent && storage_.heap()->properties().cached)
        ++cacheMaintenanceOps_;
    state->mappings.push_back(record);
    return Attachment::Mapping(std::move(record));
}

Result<int> Buffer::bytesFdWithStorage() {
    CENALLOC_CHECK(ensureStorage());
    // The fd holding the bytes is never replaced once it exists (a storage
    // fd lives as long as the buffer; fd_ only goes invalid), so its number
    // stays good after the unlock while the caller holds the buffer.
    std::lock_guard lock(mutex_);
    const int bytes = BufferAccess::bytesFdLocked(*this).get();
    if (bytes < 0)
        return Error(EBADF, fmt::format("buffer {} gave its fd away: map the fd instead", id_));
    return bytes;
}

Result<void> Buffer::ensureStorage() {
    std::unique_lock lock(mutex_);
    auto ok = ops_->ensureStorage(*this);
    deliverMoves(lock);
    if (!ok)
        return ok.error().withContext(fmt::format("allocating storage of buffer {}", id_));
    return {};
}

Result<UniqueFd> Buffer::dupStorageFd(int flags) {
    if (flags & ~O_CLOEXEC)
        return Error(EINVAL, fmt::format("fd flags {:#x}: only O_CLOEXEC is allowed", flags));
    const int bytes = CENALLOC_TRY(bytesFdWithStorage());
    int fd = ::fcntl(bytes, (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0)
        return Error::fromErrno("duplicating the storage fd");
    noteCpuUse();
    return UniqueFd(fd);
}

Result<BufferMapping> Buffer::mmap(int prot) {
    const int bytes = CENALLOC_TRY(bytesFdWithStorage());
    // Populated at map time, as the kernel's system heap maps its buffers:
    // system_heap_mmap() (drivers/dma-buf/heaps/system_heap.c) inserts
    // every page with remap_pfn_range() before mmap returns. The user's
    // first touch then faults nothing in; pages from the pool of ready
    // memory are only mapped here, never cleared.
    void* data = ::mmap(nullptr, size_, prot, MAP_SHARED | MAP_POPULATE, bytes, 0);
    if (data == MAP_FAILED)
        return Error::fromErrno(fmt::format("mmap of buffer {}", id_));
    noteCpuUse();
    return BufferMapping(shared_from_this(), data, size_);
}

Result<CpuAccessGuard> Buffer::beginCpuAccess(uint32_t flags) {
    return beginCpuAccess(CENALLOC_TRY(SyncFlags::make(flags)));
}

Result<CpuAccessGuard> Buffer::beginCpuAccess(SyncFlags sync) {
    const uint32_t flags = sync.bits();
    std::unique_lock lock(mutex_);
    if (auto ok = ops_->ensureStorage(*this); !ok)
        return ok.error().withContext(fmt::format("allocating storage of buffer {}", id_));
    if (!pendingMoves_.empty()) {
        deliverMoves(lock);
        lock.lock();
    }
    if (auto ok = ops_->beginCpuAccess(*this, flags); !ok)
        return ok.error().withContext(fmt::format("CPU access to buffer {}", id_));
    ++cpuAccessDepth_;
    // begin_cpu_access(READ) on cached memory shared with a non-coherent
    // device is where the kernel invalidates the CPU cache.
    if ((flags & kSyncRead) && storage_.heap()->properties().cached && anyNonCoherentLocked())
        ++cacheMaintenanceOps_;
    return CpuAccessGuard(shared_from_this(), flags);
}

void Buffer::endCpuAccess(uint32_t flags) {
    std::lock_guard lock(mutex_);
    if (cpuAccessDepth_ > 0)
        --cpuAccessDepth_;
    ops_->endCpuAccess(*this, flags);
    // end_cpu_access(WRITE): clean CPU caches so a non-coherent device sees the data.
    if ((flags & kSyncWrite) && storage_.heap()->properties().cached && anyNonCoherentLocked())
        ++cacheMaintenanceOps_;
}

BufferInfo Buffer::info() const {
    BufferInfo info;
    info.id = id_;
    info.size = size_;
    info.fdFlags = fdFlags_;
    // use_count counts our caller's reference too when reached through the
    // registry; it is a hint for debugging, like bufinfo's file count.
    info.references = weak_from_this().use_count();
    std::lock_guard lock(mutex_);
    // Looked up here rather than at creation: an fstat per allocation
    // costs more than everything else cenalloc adds to a memfd. Under the
    // lock because surrenderFd() may take the fd away concurrently.
    struct stat st {};
    if (fd_.valid())
        info.inode = ::fstat(fd_.get(), &st) == 0 ? st.st_ino : 0;
    else
        info.inode = surrenderedInode_;
    info.exporter = ops_->name();
    info.name = name_;
    info.hasStorage = !storage_.empty();
    if (info.hasStorage) {
        info.heap = storage_.heap()->name();
        info.inHostKernel = storage_.inHostKernel();
        info.chunks = storage_.chunks();
    }
    for (const auto& state : attachments_) {
        info.attachedDevices.push_back(state->device->name());
        for (const auto& record : state->mappings)
            info.mappings.push_back({state->device->name(), record->direction,
                                     record->domain ? record->domain->name() : std::string(), record->segments});
    }
    info.cpuAccessDepth = cpuAccessDepth_;
    info.cacheMaintenanceOps = cacheMaintenanceOps_;
    info.syncViolations = syncViolations_;
    info.exporterState = ops_->describe(*this);
    return info;
}

void Buffer::noteDeviceAccess() {
    std::lock_guard lock(mutex_);
    // A device touching memory while the CPU holds it open (between begin
    // and end of CPU access) is a missing sync on non-coherent hardware.
    if (cpuAccessDepth_ > 0)
        ++syncViolations_;
}

// ------------------------------------------------------------ Attachment

Attachment::Attachment(std::weak_ptr<Buffer> buffer, std::shared_ptr<AttachmentState> state)
    : buffer_(std::move(buffer)), state_(std::move(state)) {}

Attachment& Attachment::operator=(Attachment&& other) noexcept {
    if (this != &other) {
        detach();
        buffer_ = std::move(other.buffer_);
        state_ = std::move(other.state_);
    }
    return *this;
}

const DmaDevice& Attachment::device() const {
    assert(state_ && "Attachment::device() on a detached attachment");
    return *state_->device;
}

bool Attachment::dynamic() const {
    // Set at attach and never changed: no lock.
    return state_ && state_->onMove;
}

Result<void> Attachment::pin() {
    return changePins(+1);
}

Result<void> Attachment::unpin() {
    return changePins(-1);
}

Result<void> Attachment::changePins(int delta) {
    auto buffer = buffer_.lock();
    if (!state_ || !buffer)
        return Error(ENODEV, state_ ? "the buffer was released" : "the attachment is detached");
    std::lock_guard lock(buffer->mutex_);
    if (state_->detached)
        return Error(ENODEV, "the attachment was detached");
    if (!state_->onMove)
        return Error(EINVAL, fmt::format("'{}' is a static importer: its mappings hold the storage in place",
                                         state_->device->name()));
    if (delta < 0 && state_->pins == 0)
        return Error(EINVAL, fmt::format("'{}' holds no pin of buffer {}", state_->device->name(), buffer->id()));
    if (delta > 0 && state_->pins == UINT32_MAX)
        return Error(EOVERFLOW, "too many pins");
    state_->pins = delta > 0 ? state_->pins + 1 : state_->pins - 1;
    return {};
}

void Attachment::detach() {
    if (!state_)
        return;
    if (auto buffer = buffer_.lock()) {
        std::lock_guard lock(buffer->mutex_);
        buffer->detachLocked(*state_);
    }
    state_.reset();
    buffer_.reset();
}

Result<Attachment::Mapping> Attachment::map(DmaDirection direction) {
    if (!state_)
        return Error(ENODEV, "the attachment is detached");
    auto buffer = buffer_.lock();
    if (!buffer)
        return Error(ENODEV, "the buffer was released");
    return buffer->mapAttachment(state_, direction);
}

// --------------------------------------------------------------- Mapping

Attachment::Mapping& Attachment::Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        unmap();
        record_ = std::move(other.record_);
    }
    return *this;
}

const SgTable& Attachment::Mapping::segments() const {
    assert(record_ && "Mapping::segments() on an unmapped mapping");
    return record_->segments;
}

DmaDirection Attachment::Mapping::direction() const {
    assert(record_ && "Mapping::direction() on an unmapped mapping");
    return record_->direction;
}

uint64_t Attachment::Mapping::sequence() const {
    assert(record_ && "Mapping::sequence() on an unmapped mapping");
    return record_->sequence;
}

bool Attachment::Mapping::mapped() const {
    if (!record_)
        return false;
    auto buffer = record_->buffer.lock();
    if (!buffer)
        return false; // torn down with the buffer
    std::lock_guard lock(buffer->mutex_);
    return record_->live;
}

void Attachment::Mapping::unmap() {
    if (!record_)
        return;
    if (auto buffer = record_->buffer.lock()) {
        std::lock_guard lock(buffer->mutex_);
        Buffer::teardownLocked(*record_);
        std::erase(record_->attachment->mappings, record_);
    }
    record_.reset();
}

// --------------------------------------------------- CPU access, mmap

CpuAccessGuard& CpuAccessGuard::operator=(CpuAccessGuard&& other) noexcept {
    if (this != &other) {
        end();
        buffer_ = std::move(other.buffer_);
        flags_ = other.flags_;
    }
    return *this;
}

void CpuAccessGuard::end() {
    if (!buffer_)
        return;
    buffer_->endCpuAccess(flags_);
    buffer_.reset();
}

BufferMapping::BufferMapping(BufferMapping&& other) noexcept
    : buffer_(std::move(other.buffer_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

BufferMapping& BufferMapping::operator=(BufferMapping&& other) noexcept {
    if (this != &other) {
        if (data_)
            ::munmap(data_, size_);
        buffer_ = std::move(other.buffer_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

BufferMapping::~BufferMapping() {
    if (data_)
        ::munmap(data_, size_);
}

} // namespace cenalloc
