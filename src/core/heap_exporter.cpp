// SPDX-License-Identifier: MIT
// Heap exporter: buffers whose storage exists from the start.
#include "core/heap_exporter.h"

#include <cerrno>
#include <linux/dma-buf.h>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "core/sg_build.h"
#include "heaps/kernel_heap.h"

namespace cenalloc {

namespace {

class HeapExporter final : public BufferOps {
public:
    explicit HeapExporter(std::string heap) : heap_(std::move(heap)) {}
    const char* name() const override { return heap_.c_str(); }

    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        if (auto ok = checkStorageForDevice(BufferAccess::storageLocked(buffer), device); !ok)
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

// A host kernel heap's buffer: a real dma-buf whose pages the kernel does not
// show. No modelled device can be checked against it or map it, and the
// kernel's exporter does the cache maintenance.
class KernelHeapExporter final : public BufferOps {
public:
    KernelHeapExporter(std::string heap, std::string kernelHeap)
        : heap_(std::move(heap)), kernelHeap_(std::move(kernelHeap)) {}
    const char* name() const override { return heap_.c_str(); }

    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        (void)buffer;
        if (!kernelHeap_.empty() && heap_ == kernelHeap_) // a placed heap
            return Error(EOPNOTSUPP,
                         fmt::format("the buffer is a real dma-buf the host kernel made from {}/{}: the model holds no "
                                     "placement for it, so '{}' cannot map it through the model (its driver imports "
                                     "the fd instead)",
                                     kKernelHeapDir, kernelHeap_, device.name()));
        return Error(EOPNOTSUPP,
                     fmt::format("heap '{}' is the host kernel's: where its pages lie is unknown, so '{}' cannot be "
                                 "checked against the buffer or map it (kernel drivers import its fd instead)",
                                 heap_, device.name()));
    }

    Result<void> ensureStorage(Buffer& buffer) override {
        (void)buffer; // born with storage
        return {};
    }

    // Once the fd was given away its holder syncs it (the kernel keeps no
    // brackets, so nothing is left unbalanced here).
    Result<void> beginCpuAccess(Buffer& buffer, uint32_t flags) override {
        if (!buffer.fd().valid())
            return {};
        return syncDmaBuf(buffer.fd(), DMA_BUF_SYNC_START | flags);
    }

    void endCpuAccess(Buffer& buffer, uint32_t flags) override {
        if (!buffer.fd().valid())
            return;
        // END after a successful START cannot fail for valid flags; a kernel
        // that disagrees changes nothing this bracket could undo.
        (void)syncDmaBuf(buffer.fd(), DMA_BUF_SYNC_END | flags);
    }

private:
    std::string heap_;
    std::string kernelHeap_; // its /dev/dma_heap node
};

} // namespace

std::unique_ptr<BufferOps> makeHeapExporter(const Heap& heap) {
    if (heap.properties().inHostKernel())
        return std::make_unique<KernelHeapExporter>(heap.name(), heap.properties().kernelHeap);
    return std::make_unique<HeapExporter>(heap.name());
}

} // namespace cenalloc
