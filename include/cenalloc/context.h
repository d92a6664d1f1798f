// SPDX-License-Identifier: MIT
// Context: one platform's heaps, devices and IOMMU domains, and the allocation API.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/device.h>
#include <cenalloc/explain.h>
#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/ready_pool.h>
#include <cenalloc/request.h>
#include <cenalloc/result.h>

namespace cenalloc {

class BufferRegistry;
class PhysicalMemory;
class ReadyMemory;
struct AllocatorState;

/// How a Context is built, beyond its platform.
struct ContextOptions {
    /// Offer each of the host kernel's dma-heaps as a heap "kernel:<name>"
    /// (real dma-buf fds, allocated by name; see HeapKind::Kernel), when the
    /// host has them.
    bool kernelHeaps = true;
    /// Where the kernel's heaps are.
    std::string kernelHeapDir = "/dev/dma_heap";
    /// Place the model on the host kernel's heaps (DESIGN.md section 4, last
    /// paragraph; see KernelPlacement): each heap of the model whose name is
    /// a node in kernelHeapDir hands out that node's real dma-bufs, the
    /// others are never chosen, and nodes that match no heap are offered as
    /// "kernel:<name>", never chosen. Unset: on when the platform is the
    /// running host's (Platform::source "host", the --host loader) and
    /// kernelHeapDir has nodes. Ignored without kernelHeaps.
    std::optional<bool> placeKernelHeaps{};
    /// The pool of ready (allocated and zeroed) memory allocate() serves
    /// buffers of the model's heaps from; a zero budget turns it off.
    ReadyPoolOptions readyPool;
};

/// A deferred buffer's request (Context::create): a non-zero size that
/// does not overflow when page-aligned, a name (BufferName) and the caller's
/// hint for cached vs uncached memory. Made once where input enters.
class CENALLOC_EXPORT CreateRequest {
public:
    /// Errors: EINVAL for a zero or overflowing size.
    static Result<CreateRequest> make(uint64_t size, BufferName name = {}, CpuAccess cpuAccess = CpuAccess::Rare);
    /// The same with a name not checked yet: EINVAL for one over
    /// kBufferNameMax bytes too (the size is checked first).
    static Result<CreateRequest> make(uint64_t size, std::string_view name, CpuAccess cpuAccess = CpuAccess::Rare);

    /// The size as asked.
    uint64_t size() const { return size_; }
    /// The size rounded up to a page: the buffer's size.
    uint64_t alignedSize() const { return aligned_; }
    const BufferName& name() const { return name_; }
    CpuAccess cpuAccess() const { return cpuAccess_; }

private:
    CreateRequest(uint64_t size, uint64_t aligned, BufferName name, CpuAccess cpuAccess)
        : size_(size), aligned_(aligned), name_(std::move(name)), cpuAccess_(cpuAccess) {}
    uint64_t size_ = 0;
    uint64_t aligned_ = 0;
    BufferName name_;
    CpuAccess cpuAccess_ = CpuAccess::Rare;
};

/// An allocation for devices (Context::allocateFor): the devices sharing
/// the buffer (1 to kMaxDevices distinct names of at most kMaxDeviceName
/// bytes each), its size, name, the CPU access hint and fd flags, validated
/// as AllocRequest validates. Made once where input enters.
class CENALLOC_EXPORT AllocForRequest {
public:
    static constexpr size_t kMaxDevices = 16;
    static constexpr size_t kMaxDeviceName = 63;

    /// Errors: EINVAL for no device or more than kMaxDevices, an empty,
    /// over-long or repeated device name, a zero or overflowing size, fd
    /// flags outside O_CLOEXEC|O_ACCMODE, a name over kBufferNameMax bytes.
    static Result<AllocForRequest> make(std::vector<std::string> devices, uint64_t size, std::string_view name = {},
                                        CpuAccess cpuAccess = CpuAccess::Rare, uint32_t fdFlags = kDefaultFdFlags);

    const std::vector<std::string>& devices() const { return devices_; }
    /// The size as asked.
    uint64_t size() const { return size_; }
    /// The size rounded up to a page: the buffer's size.
    uint64_t alignedSize() const { return aligned_; }
    const BufferName& name() const { return name_; }
    CpuAccess cpuAccess() const { return cpuAccess_; }
    uint32_t fdFlags() const { return fdFlags_; }

private:
    AllocForRequest() = default;
    std::vector<std::string> devices_;
    uint64_t size_ = 0;
    uint64_t aligned_ = 0;
    BufferName name_;
    CpuAccess cpuAccess_ = CpuAccess::Rare;
    uint32_t fdFlags_ = kDefaultFdFlags;
};

/// One device of an allocation for devices, as the platform names it.
struct AllocForDevice {
    std::string name;
    /// The running host's device (Device::sysfsPath); empty off the host.
    std::string sysfsPath;
    /// Its bound driver (Device::driver); empty when none.
    std::string driver;
};

/// Which heap served an allocation for devices, and why.
struct AllocForChoice {
    /// The heap the storage came from.
    std::string heap;
    /// Its host kernel node (/dev/dma_heap/<kernelHeap>) when the storage is
    /// a real dma-buf the kernel made; empty for the model's storage.
    std::string kernelHeap;
    /// Why this heap, in words.
    std::string reason;
    /// The buffer's exporter (Buffer::exporterName()).
    std::string exporter;
    /// The devices, in the order asked.
    std::vector<AllocForDevice> devices;
    /// What explain() says of the devices and the size.
    Explanation explanation;
};

/// A buffer allocated for devices, and the choice behind it.
struct AllocatedFor {
    std::shared_ptr<Buffer> buffer;
    AllocForChoice choice;
};

/// One buffer a heap moved out of its way (Context::evacuate).
struct EvacuatedBuffer {
    uint64_t buffer = 0;
    std::string name;
    /// Where its storage was, and where it is now.
    std::vector<PhysChunk> from;
    std::string toHeap;
    std::vector<PhysChunk> to;
    /// Its dynamic importers, each told of the move (MoveNotification).
    std::vector<std::string> notified;
};

/// What Context::evacuate moved to clear a range of a heap.
struct Evacuation {
    std::string heap;
    PhysChunk range;
    /// The buffers moved, by id.
    std::vector<EvacuatedBuffer> moved;
};

/// Everything cenalloc knows about one machine, in this process (the
/// embedded default; the service runs one for every client): the platform
/// model, its simulated physical memory, heaps, IOMMU domains and devices,
/// and the registry of live buffers.
///
/// Ownership: buffers may outlive the context (their storage keeps its heap
/// alive); devices and attachments may not.
/// Thread safety: all methods may be called concurrently.
class CENALLOC_EXPORT Context {
public:
    /// A context for @p platform (which must pass validatePlatform()), with
    /// the host kernel's heaps when @p options ask for them and the host has
    /// them (one that cannot be opened is left out and listed in
    /// kernelHeapProblems()). Errors: EINVAL for an invalid platform.
    static Result<std::unique_ptr<Context>> create(const Platform& platform = defaultPlatform(),
                                                   const ContextOptions& options = {});
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const Platform& platform() const;

    /// Heaps in registration order (system heaps first, then one per region,
    /// then the host kernel's).
    const std::vector<std::shared_ptr<Heap>>& heaps() const;
    /// The heap called @p name, or nullptr.
    std::shared_ptr<Heap> findHeap(std::string_view name) const;
    /// The heaps' properties, parallel to heaps().
    std::span<const HeapProperties> heapProperties() const;
    /// Host kernel heaps that exist but are not offered, and why
    /// ("system: Permission denied").
    const std::vector<std::string>& kernelHeapProblems() const;

    /// Devices in platform order.
    const std::vector<std::unique_ptr<DmaDevice>>& devices() const;
    /// The device called @p name. Errors: ENOENT naming the known devices.
    Result<const DmaDevice*> device(std::string_view name) const;

    /// Counters of every IOMMU domain, in platform order.
    std::vector<IommuDomainStats> domainStats() const;
    /// Live mappings of the domain of IOMMU @p iommu (empty for an unknown name).
    std::vector<IommuMappingInfo> domainMappings(std::string_view iommu) const;

    /// Allocate now from @p heap (the dma-heap way: DMA_HEAP_IOCTL_ALLOC).
    /// From a "kernel:<name>" heap the buffer's fd is a real dma-buf.
    /// Validated like the kernel: EINVAL for a zero length, a length that
    /// overflows when page-aligned, fd flags outside O_CLOEXEC|O_ACCMODE,
    /// undefined heap flags; ENOENT for an unknown heap; ENOMEM when the heap
    /// is exhausted (statistics and memory unchanged but failedAllocations).
    /// The memory is zero-filled. As in the kernel, O_ACCMODE bits are
    /// accepted but do not restrict the buffer (dma-heap buffers are always
    /// read-write); O_CLOEXEC is what dupFd() applies by default.
    Result<std::shared_ptr<Buffer>> allocate(std::string_view heap, uint64_t length, uint32_t fdFlags = kDefaultFdFlags,
                                             uint64_t heapFlags = 0);
    /// The same for a request made already (AllocRequest::make): ENOENT for
    /// an unknown heap, EINVAL for heap flags it does not define, ENOMEM.
    Result<std::shared_ptr<Buffer>> allocate(const AllocRequest& request);
    /// The heap @p request names, with the request's heap flags checked
    /// against it: what allocate() allocates from. Errors: ENOENT, EINVAL.
    Result<std::shared_ptr<Heap>> heapFor(const AllocRequest& request) const;

    /// A deferred buffer (the cenalloc exporter): an fd now, storage at the
    /// first map or CPU access, from the best heap for the devices attached
    /// by then. Each attach is checked at once against the devices already
    /// attached. @p cpuAccess is the caller's hint for cached vs uncached.
    /// Errors: EINVAL for a zero or overflowing size or a name over 31 bytes.
    Result<std::shared_ptr<Buffer>> create(uint64_t size, std::string_view name = {},
                                           CpuAccess cpuAccess = CpuAccess::Rare);

    /// Which heaps a buffer may take its storage from (the service's
    /// per-client access control): true allows @p heap.
    using HeapFilter = std::function<bool(const HeapProperties& heap)>;
    /// create() for a buffer whose storage may come only from the heaps
    /// @p allowHeap accepts: its attach checks and its heap choice see those
    /// heaps only, as if the platform had no others (an attach that only a
    /// refused heap could serve fails with EINVAL, naming only allowed
    /// heaps). An empty filter allows every heap. Errors: as create().
    Result<std::shared_ptr<Buffer>> create(uint64_t size, std::string_view name, CpuAccess cpuAccess,
                                           const HeapFilter& allowHeap);
    /// create() for a request made already (CreateRequest::make): nothing
    /// left to refuse but the memory for its fd.
    Result<std::shared_ptr<Buffer>> create(const CreateRequest& request, const HeapFilter& allowHeap = {});

    /// Why @p devices sharing a buffer of @p size can or cannot be served, by
    /// which heap, and which device should allocate. See cenalloc::explain.
    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size,
                                CpuAccess cpuAccess = CpuAccess::Rare) const;

    /// Allocate now, for @p request's devices, from the best heap that serves
    /// them all (explain()'s choice; when it is exhausted, the next that
    /// serves them). On the host with placed kernel heaps
    /// (ContextOptions::placeKernelHeaps) the buffer is a real dma-buf the
    /// kernel made from that heap, which drivers import as they always have;
    /// otherwise it has the model's storage, which meets every device's
    /// limits. The devices are not attached.
    /// Errors: ENODEV for a device the platform does not have; EINVAL when
    /// no heap serves the devices, naming each heap's refusal as explain()
    /// does; ENOMEM when every heap that serves them is exhausted; the
    /// kernel's errors.
    /// With @p allowHeap, only the heaps it accepts are allocated from (the
    /// service's per-client access control): EACCES when every heap that
    /// serves the devices is refused.
    Result<AllocatedFor> allocateFor(const AllocForRequest& request, const HeapFilter& allowHeap = {});
    /// The ready-memory pool's statistics: one entry per heap that asked
    /// for ready memory, then the whole pool's (heap name empty).
    std::vector<ReadyPoolStats> readyPoolStats() const;
    /// Block until the pool's background thread has made every refill
    /// ordered so far: the steady state a benchmark or test wants to start
    /// from. Returns at once when the pool was never used.
    void waitReadyPoolRefilled() const;
    /// Read MemAvailable now and give the pool's memory back when it is
    /// below ReadyPoolOptions::lowMemoryBytes (the background thread does
    /// this on its own about once a second; for tests).
    void checkReadyPoolMemory() const;

    /// Clear [@p address, @p address + @p size) of CMA heap @p heap: move
    /// every buffer with storage there to another place that serves its
    /// attached devices (another heap, or elsewhere in the same one), as the
    /// kernel's CMA migrates movable pages out of a range it allocates, under
    /// the rules of every move (Buffer::attach with options): dynamic
    /// importers are told, and what holds a buffer in place blocks it. An
    /// allocation from the heap that finds no room does the same on its own
    /// for the window that needs the fewest bytes moved. All or nothing:
    /// a failure moves no buffer. The range is free when this returns
    /// (until something is allocated there).
    /// Errors: ENOENT for an unknown heap; EINVAL for a heap that is not a
    /// CMA heap of the model, or a range that is empty, not page-aligned or
    /// not inside the heap; EBUSY naming every buffer there that cannot move
    /// and why (a pin, a static mapping, an importer that must acknowledge
    /// first, a buffer allocated from the heap by name), or bytes in use by
    /// a buffer busy in another thread; ENOMEM when no other place has room
    /// for them.
    Result<Evacuation> evacuate(std::string_view heap, uint64_t address, uint64_t size);

    /// A bufinfo line per live buffer, by id.
    std::vector<BufferInfo> bufinfo() const;
    size_t liveBuffers() const;
    /// Lifetime bugs seen (buffers released with devices attached, ...).
    std::vector<std::string> lifetimeBugs() const;

private:
    friend struct ContextAccess; // alloc/context_access.h: what the service layer reaches inside
    Context() = default;
    std::shared_ptr<AllocatorState> state_;
    std::shared_ptr<BufferRegistry> registry_;
    std::vector<std::unique_ptr<DmaDevice>> devices_;
    std::vector<std::string> kernelHeapProblems_;
    /// Last: its refill thread stops before anything else goes (unless a
    /// buffer ordering a refill holds it for that moment: buffers hold it
    /// weakly, and it uses nothing else of the context).
    std::shared_ptr<ReadyMemory> ready_;
};

} // namespace cenalloc
