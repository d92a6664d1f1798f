// SPDX-License-Identifier: MIT
// Deferred allocation: attach checks, storage at first use, the best heap for the set.
#include "alloc/deferred_exporter.h"

#include <algorithm>
#include <cerrno>

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
        auto served = checkStorageForDevice(storage, device);
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
            if (checkStorageForDevice(storage, device))
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
        return allocateFor(attached_, heaps_, nullptr);
    }

    void adoptStorage(Buffer& buffer, Storage storage, std::string reason) override {
        chosenHeap_ = storage.heap()->name();
        BufferAccess::moveStorageLocked(buffer, std::move(storage), std::move(reason));
        ++moves_;
    }

    void detach(Buffer& buffer, const DmaDevice& device) override {
        (void)device;
        // Recompute over the devices that remain: merging is order-free, so
        // this equals the set the remaining devices would have built.
        ConstraintSet set;
        for (const DmaDevice* d : BufferAccess::attachedDevicesLocked(buffer))
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
            if (heap->properties().inHostKernel())
                return Error(EOPNOTSUPP,
                             fmt::format("the best heap for the devices is '{}', the host kernel's {}/{}: a deferred "
                                         "buffer's fd was handed out before its storage and cannot become the "
                                         "kernel's dma-buf; allocate with Context::allocateFor (cenalloc alloc --for)",
                                         heap->name(), kKernelHeapDir, heap->properties().kernelHeap));
            auto storage = roomFor ? state_->mover->allocate(heap, size_, storageLimits(set), roomFor)
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
        Storage storage = CENALLOC_TRY(allocateFor(attached_, std::move(candidates), &buffer));
        chosenHeap_ = storage.heap()->name();
        BufferAccess::setStorageLocked(buffer, std::move(storage));
        return {};
    }

    // Move to new storage for @p set. The new storage is allocated while the
    // old one still exists (as a migration copies from one to the other), so
    // a failure changes nothing.
    Result<void> moveTo(Buffer& buffer, const ConstraintSet& set, std::vector<const HeapProperties*> candidates,
                        std::string reason) {
        adoptStorage(buffer, CENALLOC_TRY(allocateFor(set, std::move(candidates), &buffer)), std::move(reason));
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
