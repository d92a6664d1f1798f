// SPDX-License-Identifier: MIT
// Heap exporter: buffers whose storage exists from the start.
#include "core/heap_exporter.h"

#include <cerrno>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "core/sg_build.h"

namespace cenalloc {

Result<uint64_t> validateHeapRequest(const HeapProperties& heap, uint64_t length, uint32_t fdFlags,
                                     uint64_t heapFlags) {
    if (length == 0)
        return Error(EINVAL, "length is 0");
    auto aligned = alignUpChecked(length, kPageSize);
    if (!aligned)
        return Error(EINVAL, fmt::format("length {} overflows when rounded up to a page", length));
    if (fdFlags & ~kValidFdFlags)
        return Error(EINVAL, fmt::format("fd flags {:#o} include bits other than O_CLOEXEC and O_ACCMODE", fdFlags));
    if (heapFlags & ~heap.validHeapFlags)
        return Error(EINVAL, fmt::format("heap flags {:#x} are not defined by heap '{}'", heapFlags, heap.name));
    return *aligned;
}

namespace {

class HeapExporter final : public BufferOps {
public:
    explicit HeapExporter(std::string heap) : heap_(std::move(heap)) {}
    const char* name() const override { return heap_.c_str(); }

    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        if (auto ok = checkStorageForDevice(buffer.storageLocked(), device); !ok)
            return Error(EBUSY, fmt::format("the buffer's storage from heap '{}' cannot serve '{}': {}", heap_,
                                            device.name(), ok.error().message()));
        return {};
    }

    Result<void> ensureStorage(Buffer& buffer) override {
        (void)buffer; // born with storage
        return {};
    }

private:
    std::string heap_;
};

} // namespace

std::unique_ptr<BufferOps> makeHeapExporter(std::string heapName) {
    return std::make_unique<HeapExporter>(std::move(heapName));
}

} // namespace cenalloc
