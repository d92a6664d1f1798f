// SPDX-License-Identifier: MIT
// The service's context: kernel heaps offered only when the kernel reports the end of their buffers.
#include "service/service_context.h"

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "heaps/kernel_heap.h"
#include "service/tracker.h"

namespace cenalloc {

Result<std::unique_ptr<Context>> serviceContext(const Platform& platform, const ContextOptions& options,
                                                std::vector<std::string>& notes, bool probeHeaps) {
    auto context = Context::create(platform, options);
    if (!context)
        return context.error();
    for (const std::string& problem : (*context)->kernelHeapProblems())
        notes.push_back(fmt::format("kernel heap left out: {}", problem));
    if (!probeHeaps)
        return context;
    for (const auto& heap : (*context)->heaps()) {
        auto kernel = std::dynamic_pointer_cast<KernelHeap>(heap);
        if (!kernel)
            continue;
        auto probe = kernel->allocateDmaBuf(kPageSize);
        if (probe && InodeWatcher::kernelReportsDmaBufCloses(std::move(*probe)))
            return context;
        ContextOptions none = options;
        none.kernelHeaps = false;
        auto without = Context::create(platform, none);
        if (!without)
            return without.error();
        notes.push_back(probe ? "kernel heaps are not offered: this kernel does not report the end of a dma-buf to "
                                "inotify, so the service could not count their buffers free"
                              : fmt::format("kernel heaps are not offered: probing {}: {}", kernel->name(),
                                            probe.error().message()));
        return without;
    }
    return context;
}

} // namespace cenalloc
