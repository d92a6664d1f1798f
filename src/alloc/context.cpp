// SPDX-License-Identifier: MIT
// Context: builds a platform's memory, heaps, domains and devices; the allocation entry points.
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <fcntl.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "alloc/allocator_state.h"
#include "alloc/deferred_exporter.h"
#include "alloc/ready_memory.h"
#include "base/try.h"
#include "core/buffer_internal.h"
#include "core/heap_exporter.h"
#include "core/registry.h"
#include "heaps/kernel_heap.h"
#include "heaps/platform_heaps.h"

namespace cenalloc {

Result<std::unique_ptr<Context>> Context::create(const Platform& platform, const ContextOptions& options) {
    if (auto ok = validatePlatform(platform); !ok)
        return ok.error().withContext(fmt::format("platform '{}'", platform.name));
    auto state = std::make_shared<AllocatorState>();
    state->platform = platform;
    state->memory = std::make_shared<PhysicalMemory>(state->platform);
    std::vector<std::string> kernelHeapProblems;
    std::optional<KernelHeapNodes> nodes;
    if (options.kernelHeaps) {
        auto names = listKernelHeaps(options.kernelHeapDir);
        if (!names) // an unreadable directory hides the kernel's heaps, not the model's
            kernelHeapProblems.push_back(names.error().message());
        else if (options.placeKernelHeaps.value_or(platform.source == "host" && !names->empty()))
            nodes = KernelHeapNodes{options.kernelHeapDir, std::move(*names)};
    }
    std::vector<std::shared_ptr<Heap>> heaps = CENALLOC_TRY(
        createPlatformHeaps(state->platform, state->memory, nodes ? &*nodes : nullptr, &kernelHeapProblems));
    if (options.kernelHeaps && !nodes && kernelHeapProblems.empty()) {
        auto kernel = openKernelHeaps(state->platform, &kernelHeapProblems, options.kernelHeapDir);
        if (kernel)
            heaps.insert(heaps.end(), kernel->begin(), kernel->end());
        else
            kernelHeapProblems.push_back(kernel.error().message());
    }
    for (auto& heap : heaps) {
        state->heapProperties.push_back(heap->properties());
        CENALLOC_CHECK(state->heaps.add(std::move(heap)));
    }
    // One domain per IOMMU group, as Linux gives every iommu_group its own
    // default domain: the IOMMU's shared one (devices without a group, or
    // an IOMMU no device uses yet), and one per group of its own.
    auto domainFor = [&](const Iommu& iommu, const std::string& name) {
        auto it = std::find_if(state->domains.begin(), state->domains.end(),
                               [&](const auto& dom) { return dom->name() == name; });
        if (it != state->domains.end())
            return *it;
        Iommu space = iommu;
        space.name = name;
        state->domains.push_back(std::make_shared<IommuDomain>(space));
        return state->domains.back();
    };
    for (const Iommu& iommu : state->platform.iommus) {
        bool grouped = std::any_of(state->platform.devices.begin(), state->platform.devices.end(),
                                   [&](const Device& d) { return d.iommu == iommu.name; });
        bool ungrouped = std::any_of(state->platform.devices.begin(), state->platform.devices.end(),
                                     [&](const Device& d) { return d.iommu == iommu.name && d.iommuGroup.empty(); });
        if (!grouped || ungrouped)
            domainFor(iommu, iommu.name);
    }

    std::unique_ptr<Context> context(new Context());
    for (const Device& d : state->platform.devices) {
        std::shared_ptr<IommuDomain> domain;
        if (d.iommu) // validatePlatform guarantees the IOMMU exists
            domain = domainFor(*state->platform.findIommu(*d.iommu), iommuDomainName(d));
        context->devices_.push_back(std::make_unique<DmaDevice>(d, std::move(domain)));
    }
    context->registry_ = std::make_shared<BufferRegistry>();
    state->mover = std::make_shared<HeapMover>(context->registry_);
    context->state_ = std::move(state);
    context->kernelHeapProblems_ = std::move(kernelHeapProblems);
    context->ready_ = std::make_shared<ReadyMemory>(options.readyPool);
    return context;
}

Context::~Context() = default;

const Platform& Context::platform() const {
    return state_->platform;
}
const std::vector<std::shared_ptr<Heap>>& Context::heaps() const {
    return state_->heaps.heaps();
}
std::shared_ptr<Heap> Context::findHeap(std::string_view name) const {
    return state_->heaps.find(name);
}
std::span<const HeapProperties> Context::heapProperties() const {
    return state_->heapProperties;
}
const std::vector<std::string>& Context::kernelHeapProblems() const {
    return kernelHeapProblems_;
}
const std::vector<std::unique_ptr<DmaDevice>>& Context::devices() const {
    return devices_;
}

Result<const DmaDevice*> Context::device(std::string_view name) const {
    for (const auto& d : devices_)
        if (d->name() == name)
            return d.get();
    std::string known;
    for (const auto& d : devices_)
        known += (known.empty() ? "" : ", ") + d->name();
    return Error(ENOENT, fmt::format("no device '{}' on platform '{}' (devices: {})", name, state_->platform.name,
                                     known.empty() ? "none" : known));
}

std::vector<IommuDomainStats> Context::domainStats() const {
    std::vector<IommuDomainStats> out;
    for (const auto& domain : state_->domains)
        out.push_back(domain->stats());
    return out;
}

std::vector<IommuMappingInfo> Context::domainMappings(std::string_view iommu) const {
    for (const auto& domain : state_->domains)
        if (domain->name() == iommu)
            return domain->mappings();
    return {};
}

Result<CreateRequest> CreateRequest::make(uint64_t size, BufferName name, CpuAccess cpuAccess) {
    if (size == 0)
        return Error(EINVAL, "size is 0");
    auto aligned = alignUpChecked(size, kPageSize);
    if (!aligned)
        return Error(EINVAL, fmt::format("size {} overflows when rounded up to a page", size));
    return CreateRequest(size, *aligned, std::move(name), cpuAccess);
}

Result<CreateRequest> CreateRequest::make(uint64_t size, std::string_view name, CpuAccess cpuAccess) {
    auto request = make(size, BufferName(), cpuAccess);
    if (!request)
        return request.error();
    request->name_ = CENALLOC_TRY(BufferName::make(name));
    return request;
}

Result<AllocForRequest> AllocForRequest::make(std::vector<std::string> devices, uint64_t size, std::string_view name,
                                              CpuAccess cpuAccess, uint32_t fdFlags) {
    if (devices.empty() || devices.size() > kMaxDevices)
        return Error(EINVAL, fmt::format("{} devices: an allocation is for 1 to {}", devices.size(), kMaxDevices));
    for (size_t i = 0; i < devices.size(); ++i) {
        const std::string& d = devices[i];
        if (d.empty() || d.size() > kMaxDeviceName)
            return Error(EINVAL, fmt::format("device name of {} bytes: need 1 to {}", d.size(), kMaxDeviceName));
        if (std::find(devices.begin(), devices.begin() + static_cast<std::ptrdiff_t>(i), d) !=
            devices.begin() + static_cast<std::ptrdiff_t>(i))
            return Error(EINVAL, fmt::format("device '{}' is listed twice", d));
    }
    // The size and fd flags are judged as an allocation from a heap is.
    auto alloc = AllocRequest::make(AllocArgs{fmt::format("for {}", fmt::join(devices, ",")), size, fdFlags, 0});
    if (!alloc)
        return alloc.error();
    AllocForRequest request;
    request.devices_ = std::move(devices);
    request.size_ = size;
    request.aligned_ = alloc->alignedLength();
    request.name_ = CENALLOC_TRY(BufferName::make(name));
    request.cpuAccess_ = cpuAccess;
    request.fdFlags_ = fdFlags;
    return request;
}

Result<AllocatedFor> Context::allocateFor(const AllocForRequest& request, const HeapFilter& allowHeap) {
    AllocatedFor out;
    for (const std::string& name : request.devices()) {
        const Device* d = state_->platform.findDevice(name);
        if (!d) {
            auto known = device(name); // ENOENT naming the known devices
            return Error(ENODEV, known.error().message());
        }
        out.choice.devices.push_back({d->name, d->sysfsPath, d->driver});
    }
    Explanation e = CENALLOC_TRY(explain(request.devices(), request.alignedSize(), request.cpuAccess()));
    if (!e.satisfiable)
        return Error(EINVAL, e.conflict ? e.conflict->reason : "no heap serves the devices");
    // The best heap first; a heap that is exhausted passes to the next that
    // serves the devices, as a deferred buffer's first allocation does.
    std::optional<Error> firstFailure;
    std::vector<std::string> refused;
    for (size_t rank = 0; rank < e.ranking.size(); ++rank) {
        std::shared_ptr<Heap> heap = state_->heaps.find(e.ranking[rank]);
        const HeapProperties& p = heap->properties();
        if (allowHeap && !allowHeap(p)) {
            refused.push_back(p.name);
            continue;
        }
        // A kernel heap takes no limits; matching found all of its memory
        // within the devices' reach (HeapProperties::honoursAddressLimit).
        auto storage = p.inHostKernel()
                           ? heap->allocate(request.alignedSize())
                           : state_->mover->allocate(heap, request.alignedSize(), storageLimits(e.constraints));
        if (!storage) {
            if (!firstFailure)
                firstFailure = storage.error().withContext(
                    fmt::format("allocating {} from heap '{}'", formatSize(request.alignedSize()), heap->name()));
            continue;
        }
        BufferParams params;
        params.size = request.alignedSize();
        params.fdFlags = request.fdFlags();
        params.name = request.name();
        params.ops = makeHeapExporter(*heap);
        params.storage = std::move(*storage);
        params.registry = registry_;
        out.buffer = CENALLOC_TRY(BufferAccess::create(std::move(params)));
        out.choice.heap = heap->name();
        out.choice.exporter = out.buffer->exporterName();
        out.choice.kernelHeap = p.inHostKernel() ? p.kernelHeap : std::string();
        // Heaps before this one in the ranking were refused to the caller or failed.
        if (!firstFailure)
            out.choice.reason =
                fmt::format("the best of the heaps that serve {} (ranked: {}); {}",
                            fmt::join(request.devices(), " and "), fmt::join(e.ranking, ", "), e.cachePolicy);
        else
            out.choice.reason =
                fmt::format("the next heap that serves {} after a failure ({}); {}",
                            fmt::join(request.devices(), " and "), firstFailure->message(), e.cachePolicy);
        if (!refused.empty())
            out.choice.reason += fmt::format("; not allowed here: {}", fmt::join(refused, ", "));
        out.choice.explanation = std::move(e);
        return out;
    }
    if (!firstFailure)
        return Error(EACCES, fmt::format("the heaps that serve {} ({}) are not ones this caller may allocate from",
                                         fmt::join(request.devices(), " and "), fmt::join(refused, ", ")));
    return *firstFailure;
}

Result<std::shared_ptr<Buffer>> Context::allocate(std::string_view heapName, uint64_t length, uint32_t fdFlags,
                                                  uint64_t heapFlags) {
    return allocate(CENALLOC_TRY(AllocRequest::make(heapName, length, fdFlags, heapFlags)));
}

Result<std::shared_ptr<Heap>> Context::heapFor(const AllocRequest& request) const {
    std::shared_ptr<Heap> heap = state_->heaps.find(request.heap());
    if (!heap)
        return Error(ENOENT, fmt::format("no heap '{}'", request.heap()));
    CENALLOC_CHECK(request.checkHeap(heap->properties()));
    return heap;
}

Result<std::shared_ptr<Buffer>> Context::allocate(const AllocRequest& request) {
    std::shared_ptr<Heap> heap = CENALLOC_TRY(heapFor(request));
    const uint64_t aligned = request.alignedLength();
    // A CMA heap without room moves buffers out of its way.
    auto storage = state_->mover->allocate(heap, aligned, {});
    if (!storage)
        return storage.error().withContext(
            fmt::format("allocating {} from heap '{}'", formatSize(aligned), request.heap()));
    BufferParams params;
    params.size = aligned;
    params.fdFlags = request.fdFlags();
    if (!storage->inHostKernel() && ready_->serves(aligned)) {
        // Memory the kernel allocated and zeroed beforehand, when the pool
        // has some: the user's first touch then faults nothing in. The
        // buffer, hit or miss, orders its class again when it is first used.
        const int seals = (request.fdFlags() & O_ACCMODE) == O_RDONLY ? kReadOnlySeals : 0;
        if (auto ready = CENALLOC_TRY(ready_->take(heap->name(), aligned, seals)))
            params.fd = std::move(*ready);
        params.refillSink = ready_;
        params.refillHeap = heap->name();
    }
    params.ops = makeHeapExporter(*heap);
    params.storage = std::move(*storage);
    params.registry = registry_;
    return BufferAccess::create(std::move(params));
}

Result<std::shared_ptr<Buffer>> Context::create(uint64_t size, std::string_view name, CpuAccess cpuAccess) {
    return create(CENALLOC_TRY(CreateRequest::make(size, name, cpuAccess)));
}

Result<std::shared_ptr<Buffer>> Context::create(uint64_t size, std::string_view name, CpuAccess cpuAccess,
                                                const HeapFilter& allowHeap) {
    return create(CENALLOC_TRY(CreateRequest::make(size, name, cpuAccess)), allowHeap);
}

Result<std::shared_ptr<Buffer>> Context::create(const CreateRequest& request, const HeapFilter& allowHeap) {
    BufferParams params;
    params.size = request.alignedSize();
    params.fdFlags = kDefaultFdFlags;
    params.name = request.name();
    std::vector<const HeapProperties*> heaps;
    heaps.reserve(state_->heapProperties.size());
    for (const HeapProperties& p : state_->heapProperties)
        if (!allowHeap || allowHeap(p))
            heaps.push_back(&p);
    // Where a heap placed on the host kernel's may serve the buffer, its
    // storage may be the kernel's dma-buf, which cannot exist before the
    // storage: the bytes then live apart from the handle returned now.
    params.bytesApart = std::any_of(heaps.begin(), heaps.end(), [](const HeapProperties* p) {
        return p->kernelPlacement == KernelPlacement::Placed;
    });
    params.ops = makeDeferredExporter(state_, request.alignedSize(), request.cpuAccess(), std::move(heaps));
    params.registry = registry_;
    return BufferAccess::create(std::move(params));
}

Result<Explanation> Context::explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) const {
    return cenalloc::explain(state_->platform, state_->heapProperties, devices, size, cpuAccess);
}

std::vector<ReadyPoolStats> Context::readyPoolStats() const {
    return ready_->stats();
}

void Context::waitReadyPoolRefilled() const {
    ready_->waitIdle();
}

void Context::checkReadyPoolMemory() const {
    ready_->checkMemory();
}

Result<Evacuation> Context::evacuate(std::string_view heapName, uint64_t address, uint64_t size) {
    std::shared_ptr<Heap> heap = state_->heaps.find(heapName);
    if (!heap)
        return Error(ENOENT, fmt::format("no heap '{}'", heapName));
    if (!heapMovesBuffers(*heap))
        return Error(EINVAL,
                     fmt::format("heap '{}' is not a CMA heap of the model: nothing moves out of its way", heapName));
    const HeapProperties& p = heap->properties();
    if (size == 0 || address % kPageSize != 0 || size % kPageSize != 0 || address < p.lowestAddress ||
        address > p.highestAddress || size - 1 > p.highestAddress - address)
        return Error(EINVAL, fmt::format("{:#x} bytes at {:#x}: need a non-empty range of whole pages inside heap "
                                         "'{}' [{}, {}]",
                                         size, address, heapName, formatAddress(p.lowestAddress),
                                         formatAddress(p.highestAddress)));
    return state_->mover->evacuate(heap, {address, size});
}

std::vector<BufferInfo> Context::bufinfo() const {
    std::vector<BufferInfo> out;
    auto buffers = registry_->buffers();
    for (const auto& buffer : buffers)
        out.push_back(buffer->info());
    // The references counted include ours from buffers(): take it off.
    for (BufferInfo& info : out)
        info.references = std::max(0L, info.references - 1);
    return out;
}

size_t Context::liveBuffers() const {
    return registry_->liveCount();
}
std::vector<std::string> Context::lifetimeBugs() const {
    return registry_->bugs();
}

} // namespace cenalloc
