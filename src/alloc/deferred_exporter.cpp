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

namespace cenalloc {

namespace {

class DeferredExporter final : public BufferOps {
public:
    DeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size, CpuAccess cpuAccess,
                     std::vector<const HeapProperties*> heaps)
        : state_(std::move(state)), size_(size), cpuAccess_(cpuAccess), heaps_(std::move(heaps)) {}

    const char* name() const override { return "cenalloc"; }

    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        if (BufferAccess::hasStorageLocked(buffer)) {
            // Storage is fixed now (migration is not supported yet): the
            // device joins only if this storage already serves it.
            if (auto ok = checkStorageForDevice(BufferAccess::storageLocked(buffer), device); !ok)
                return Error(EBUSY, fmt::format("storage already allocated from heap '{}' cannot serve '{}': {}",
                                                BufferAccess::storageLocked(buffer).heap()->name(), device.name(),
                                                ok.error().message()));
            if (auto merged = attached_.merge(device.description(), state_->platform))
                attached_ = std::move(*merged);
            return {};
        }
        attached_ = CENALLOC_TRY(checkAttach(attached_, device.description(), state_->platform, heaps_, size_));
        return {};
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
        std::vector<const HeapProperties*> candidates = heaps_;
        // Best heap first; when it is exhausted, the next best that serves
        // the set, so a full CMA pool does not fail an allocation a
        // carveout could serve.
        std::optional<Error> firstFailure;
        while (!candidates.empty()) {
            auto chosen = chooseHeap(attached_, candidates, size_, cpuAccess_);
            if (!chosen)
                return firstFailure ? *firstFailure : chosen.error();
            std::shared_ptr<Heap> heap = state_->heaps.find((*chosen)->name);
            auto storage = heap->allocate(size_, storageLimits(attached_));
            if (storage) {
                BufferAccess::setStorageLocked(buffer, std::move(*storage));
                chosenHeap_ = heap->name();
                return {};
            }
            if (!firstFailure)
                firstFailure = storage.error().withContext(fmt::format("heap '{}'", heap->name()));
            std::erase(candidates, *chosen);
        }
        return *firstFailure;
    }

    std::string describe(const Buffer& buffer) const override {
        (void)buffer;
        if (chosenHeap_.empty())
            return fmt::format("deferred, cpu access {}, no storage yet", cpuAccessName(cpuAccess_));
        return fmt::format("deferred, cpu access {}, allocated from '{}'", cpuAccessName(cpuAccess_), chosenHeap_);
    }

private:
    std::shared_ptr<const AllocatorState> state_;
    const uint64_t size_;
    const CpuAccess cpuAccess_;
    const std::vector<const HeapProperties*> heaps_; // the heaps this buffer may use, into state_
    // Guarded by the buffer's lock (every op runs under it).
    ConstraintSet attached_;
    std::string chosenHeap_;
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
