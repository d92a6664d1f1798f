// SPDX-License-Identifier: MIT
// Deferred allocation: attach checks, storage at first use, the best heap for the set.
#include "alloc/deferred_exporter.h"

#include <algorithm>
#include <span>
#include <cerrno>
#include <linux/dma-buf.h>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/constraints.h>
#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "base/try.h"
#include "core/sg_build.h"
#include "heaps/kernel_heap.h"

namespace cenalloc {

namespace {

class DeferredExporter final : public BufferOps {
public:
    DeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size, CpuAccess cpuAccess,
                     std::vector<const HeapProperties*> heaps)
        : state_(std::move(state)), size_(size), cpuAccess_(cpuAccess), heaps_(std::move(heaps)) {}

    const char* name() const override { return "cenalloc"; }

    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        if (!BufferAccess::hasStorageLocked(buffer)) {
            attached_ = CENALLOC_TRY(checkAttach(attached_, device.description(), state_->platform, heaps_, size_));
            return {};
        }
        const Storage& storage = BufferAccess::storageLocked(buffer);
        auto served = servesDevice(storage, device);
        if (served) {
            if (auto merged = attached_.merge(device.description(), state_->platform))
                attached_ = std::move(*merged);
            return {};
        }
        // The storage cannot serve the device: the buffer moves to storage
        // that serves every device, if some heap does and nothing holds it
        // in place (DESIGN.md section 5, "Deferred allocation").
        const std::string refusal = fmt::format("storage allocated from heap '{}' cannot serve '{}': {}",
                                                storage.heap()->name(), device.name(), served.error().message());
        if (std::optional<std::string> blocker = BufferAccess::moveBlockerLocked(buffer))
            return Error(EBUSY, fmt::format("{}; it cannot move: {}", refusal, *blocker));
        auto wanted = checkAttach(attached_, device.description(), state_->platform, heaps_, size_);
        if (!wanted)
            return Error(EBUSY, fmt::format("{}; no heap serves it with the devices attached: {}", refusal,
                                            wanted.error().message()));
        CENALLOC_CHECK(moveTo(buffer, *wanted, heaps_, fmt::format("attach of '{}'", device.name())));
        attached_ = std::move(*wanted);
        return {};
    }

    AttachForecast forecastAttach(const Buffer& buffer, const DmaDevice& device) const override {
        using Outcome = AttachForecast::Outcome;
        AttachForecast forecast;
        const bool hasStorage = BufferAccess::hasStorageLocked(buffer);
        if (hasStorage) {
            const Storage& storage = BufferAccess::storageLocked(buffer);
            forecast.fromHeap = storage.heap()->name();
            if (servesDevice(storage, device))
                return forecast;
        }
        auto wanted = checkAttach(attached_, device.description(), state_->platform, heaps_, size_);
        if (!wanted) {
            forecast.outcome = Outcome::Unsatisfiable;
            forecast.reason = wanted.error().message();
            return forecast;
        }
        if (!hasStorage)
            return forecast;
        if (std::optional<std::string> blocker = BufferAccess::moveBlockerLocked(buffer)) {
            forecast.outcome = Outcome::Blocked;
            forecast.reason = *blocker;
            return forecast;
        }
        // Where the move would go first; attach falls back to the next heap
        // that serves the set when that one is exhausted.
        auto chosen = chooseHeap(*wanted, heaps_, size_, cpuAccess_);
        if (!chosen) {
            forecast.outcome = Outcome::Unsatisfiable;
            forecast.reason = chosen.error().message();
            return forecast;
        }
        forecast.outcome = Outcome::WouldMigrate;
        forecast.toHeap = (*chosen)->name;
        forecast.notified = BufferAccess::dynamicImportersLocked(buffer);
        return forecast;
    }

    Result<void> migrate(Buffer& buffer, std::string_view heapName) override {
        auto allowed =
            std::find_if(heaps_.begin(), heaps_.end(), [&](const HeapProperties* h) { return h->name == heapName; });
        if (allowed == heaps_.end())
            return state_->heaps.find(heapName)
                       ? Error(EINVAL, "the buffer may not use it (its creator is not allowed that heap)")
                       : Error(ENOENT, "no such heap");
        if (BufferAccess::hasStorageLocked(buffer) && BufferAccess::storageLocked(buffer).heap()->name() == heapName)
            return {};
        HeapVerdict verdict = matchHeap(**allowed, attached_, size_);
        if (!verdict.accepted())
            return Error(EINVAL, fmt::format("it does not serve the attached devices: {}", verdict.reason()));
        if (!BufferAccess::hasStorageLocked(buffer))
            return allocateFrom(buffer, {*allowed});
        if (std::optional<std::string> blocker = BufferAccess::moveBlockerLocked(buffer))
            return Error(EBUSY, fmt::format("the buffer cannot move: {}", *blocker));
        return moveTo(buffer, attached_, {*allowed}, fmt::format("migrate to '{}'", heapName));
    }

    // Any buffer with storage may move for its heap's need; what holds it
    // in place is BufferAccess::heapMoveBlockerLocked's to say.
    bool movable() const override { return true; }

    Result<Storage> storageElsewhere(Buffer& buffer) override {
        (void)buffer;
        return allocateFor(attached_, withoutHostKernel(heaps_), nullptr);
    }

    void adoptStorage(Buffer& buffer, Storage storage, std::string reason) override {
        chosenHeap_ = storage.heap()->name();
        BufferAccess::moveStorageLocked(buffer, std::move(storage), std::move(reason));
        ++moves_;
    }

    void detach(Buffer& buffer, const DmaDevice& device) override {
        // Recompute over the devices that remain: merging is order-free and
        // a device merged twice counts once, so this equals the set the
        // remaining devices would have built, and nothing changes while
        // another attachment of the same device remains. Each distinct
        // device is merged once: a client that attached one device
        // thousands of times must not make each of its detaches merge them
        // all (quadratic in its attachments, under the service's lock).
        std::vector<const DmaDevice*> remaining = BufferAccess::attachedDevicesLocked(buffer);
        if (std::find(remaining.begin(), remaining.end(), &device) != remaining.end())
            return;
        std::sort(remaining.begin(), remaining.end());
        remaining.erase(std::unique(remaining.begin(), remaining.end()), remaining.end());
        ConstraintSet set;
        for (const DmaDevice* d : remaining)
            if (auto merged = set.merge(d->description(), state_->platform))
                set = std::move(*merged);
        attached_ = std::move(set);
    }

    Result<void> ensureStorage(Buffer& buffer) override {
        if (BufferAccess::hasStorageLocked(buffer))
            return {};
        if (heaps_.empty())
            return Error(EACCES, "the buffer may use no heap (its creator is allowed none)");
        return allocateFrom(buffer, heaps_);
    }

    // A host kernel dma-buf is synced by the kernel (DMA_BUF_IOCTL_SYNC on
    // the storage fd, which this buffer holds as long as it lives).
    Result<void> beginCpuAccess(Buffer& buffer, uint32_t flags) override {
        if (!BufferAccess::storageLocked(buffer).inHostKernel())
            return {};
        return syncDmaBuf(BufferAccess::bytesFdLocked(buffer), DMA_BUF_SYNC_START | flags);
    }

    void endCpuAccess(Buffer& buffer, uint32_t flags) override {
        if (!BufferAccess::storageLocked(buffer).inHostKernel())
            return;
        // END after a successful START cannot fail for valid flags.
        (void)syncDmaBuf(BufferAccess::bytesFdLocked(buffer), DMA_BUF_SYNC_END | flags);
    }

    std::string describe(const Buffer& buffer) const override {
        (void)buffer;
        if (chosenHeap_.empty())
            return fmt::format("deferred, cpu access {}, no storage yet", cpuAccessName(cpuAccess_));
        if (moves_ > 0)
            return fmt::format("deferred, cpu access {}, on '{}' after {} move{}", cpuAccessName(cpuAccess_),
                               chosenHeap_, moves_, moves_ == 1 ? "" : "s");
        return fmt::format("deferred, cpu access {}, allocated from '{}'", cpuAccessName(cpuAccess_), chosenHeap_);
    }

private:
    // Whether @p storage serves @p device besides those attached. Storage
    // the host kernel made has no chunks to check a device against: its
    // heap is judged instead, as matching judged it when it was chosen (a
    // placed heap keeps the model's properties).
    Result<void> servesDevice(const Storage& storage, const DmaDevice& device) const {
        if (!storage.inHostKernel())
            return checkStorageForDevice(storage, device);
        const HeapProperties* own[] = {&storage.heap()->properties()};
        CENALLOC_CHECK(checkAttach(attached_, device.description(), state_->platform,
                                   std::span<const HeapProperties* const>(own), size_));
        return {};
    }

    // Storage for @p set from the best of @p candidates; when the best is
    // exhausted, the next best that serves the set, so a full CMA pool does
    // not fail an allocation a carveout could serve. Errors: the first
    // heap's failure (ENOMEM), or chooseHeap's EINVAL when none serves.
    // @p roomFor: the buffer whose lock the caller holds, when a CMA heap
    // without room may move other buffers out of its way for it (never for
    // a buffer that is itself moving out of a heap's way).
    Result<Storage> allocateFor(const ConstraintSet& set, std::vector<const HeapProperties*> candidates,
                                Buffer* roomFor) const {
        std::optional<Error> firstFailure;
        while (!candidates.empty()) {
            auto chosen = chooseHeap(set, candidates, size_, cpuAccess_);
            if (!chosen)
                return firstFailure ? *firstFailure : chosen.error();
            std::shared_ptr<Heap> heap = state_->heaps.find((*chosen)->name);
            // A kernel heap takes no limits; matching found all of its memory
            // within the devices' reach (HeapProperties::honoursAddressLimit).
            // Only a buffer whose bytes live apart gets here with one among
            // its candidates (Context::create, movesTo).
            auto storage = heap->properties().inHostKernel() ? heap->allocate(size_)
                           : roomFor ? state_->mover->allocate(heap, size_, storageLimits(set), roomFor)
                                     : heap->allocate(size_, storageLimits(set));
            if (storage)
                return storage;
            if (!firstFailure)
                firstFailure = storage.error().withContext(fmt::format("heap '{}'", heap->name()));
            std::erase(candidates, *chosen);
        }
        return firstFailure ? *firstFailure : Error(EINVAL, "no heap serves the devices");
    }

    Result<void> allocateFrom(Buffer& buffer, std::vector<const HeapProperties*> candidates) {
        if (!buffer.bytesApart())
            candidates = withoutHostKernel(std::move(candidates));
        Storage storage = CENALLOC_TRY(allocateFor(attached_, std::move(candidates), &buffer));
        std::string heap = storage.heap()->name();
        CENALLOC_CHECK(BufferAccess::setStorageLocked(buffer, std::move(storage)));
        chosenHeap_ = std::move(heap);
        return {};
    }

    // @p candidates but the host kernel's heaps. Storage that exists never
    // moves onto one: its dma-buf would be a second fd of the bytes while
    // mappings of the first live on (storage the kernel made never moves
    // either: BufferAccess::moveBlockerLocked). A buffer whose bytes are in
    // its own fd never gets one: that fd cannot become the kernel's dma-buf.
    static std::vector<const HeapProperties*> withoutHostKernel(std::vector<const HeapProperties*> candidates) {
        std::erase_if(candidates, [](const HeapProperties* p) { return p->inHostKernel(); });
        return candidates;
    }

    // Move to new storage for @p set. The new storage is allocated while the
    // old one still exists (as a migration copies from one to the other), so
    // a failure changes nothing.
    Result<void> moveTo(Buffer& buffer, const ConstraintSet& set, std::vector<const HeapProperties*> candidates,
                        std::string reason) {
        adoptStorage(buffer, CENALLOC_TRY(allocateFor(set, withoutHostKernel(std::move(candidates)), &buffer)),
                     std::move(reason));
        return {};
    }

    std::shared_ptr<const AllocatorState> state_;
    const uint64_t size_;
    const CpuAccess cpuAccess_;
    const std::vector<const HeapProperties*> heaps_; // the heaps this buffer may use, into state_
    // Guarded by the buffer's lock (every op runs under it).
    ConstraintSet attached_;
    std::string chosenHeap_;
    uint64_t moves_ = 0;
};

} // namespace

std::unique_ptr<BufferOps> makeDeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size,
                                                CpuAccess cpuAccess) {
    std::vector<const HeapProperties*> heaps;
    heaps.reserve(state->heapProperties.size());
    for (const HeapProperties& p : state->heapProperties)
        heaps.push_back(&p);
    return makeDeferredExporter(std::move(state), size, cpuAccess, std::move(heaps));
}

std::unique_ptr<BufferOps> makeDeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size,
                                                CpuAccess cpuAccess, std::vector<const HeapProperties*> heaps) {
    return std::make_unique<DeferredExporter>(std::move(state), size, cpuAccess, std::move(heaps));
}

} // namespace cenalloc
