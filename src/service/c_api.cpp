// SPDX-License-Identifier: MIT
// The C11 API: a thin shell over Session that turns Results into negative errnos.
#include <cenalloc/c/cenalloc.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>

struct cenalloc_session {
    std::unique_ptr<cenalloc::Session> session;
};

namespace {

thread_local std::string tLastError;

int succeed() {
    tLastError.clear();
    return 0;
}

int failWith(const cenalloc::Error& error) {
    tLastError = error.message();
    return -error.code();
}

int failWith(int code, const char* message) {
    tLastError = message;
    return -code;
}

template <size_t N> void copyName(char (&out)[N], const std::string& name) {
    std::strncpy(out, name.c_str(), N - 1);
    out[N - 1] = '\0';
}

// The first versions of the structs that grow: the sizes the header names.
static_assert(offsetof(cenalloc_heap_info, total_allocations) == CENALLOC_HEAP_INFO_SIZE_VER0);
static_assert(sizeof(cenalloc_heap_info) == CENALLOC_HEAP_INFO_SIZE_VER1);
static_assert(sizeof(cenalloc_explanation) == CENALLOC_EXPLANATION_SIZE_VER0);
static_assert(sizeof(cenalloc_buffer_info) == CENALLOC_BUFFER_INFO_SIZE_VER0);
static_assert(sizeof(cenalloc_alloc_for_info) == CENALLOC_ALLOC_FOR_INFO_SIZE_VER0);

/// A struct the caller sized (its leading struct_size) and the library
/// fills, under the kernel's rule for extensible structs
/// (copy_struct_from_user): at least @p ver0 bytes (else EINVAL); any more
/// than the library knows must be zero (else E2BIG). Checked before the
/// operation runs, so a refused struct changes nothing.
template <typename T> class SizedOut {
public:
    SizedOut(T* out, size_t ver0) : out_(out), ver0_(ver0) {}
    /// 0, or the negative errno (with the message set).
    int check() {
        const size_t size = out_->struct_size;
        if (size < ver0_)
            return failWith(cenalloc::Error(
                EINVAL,
                fmt::format("struct_size {} is smaller than the struct's first version ({} bytes)", size, ver0_)));
        // The caller's struct is struct_size bytes long: look at its tail.
        const auto* bytes = reinterpret_cast<const unsigned char*>(out_);
        for (size_t i = sizeof(T); i < size; ++i)
            if (bytes[i] != 0)
                return failWith(cenalloc::Error(
                    E2BIG, fmt::format("struct_size {} asks for fields past the {} bytes this library knows (byte "
                                       "{} is not zero)",
                                       size, sizeof(T), i)));
        fill_ = std::min(size, sizeof(T));
        return 0;
    }
    /// Give the caller the bytes of @p value that its struct has room for,
    /// and say how many in struct_size.
    void fill(T value) {
        value.struct_size = static_cast<uint32_t>(fill_);
        std::memcpy(out_, &value, fill_);
    }

private:
    T* out_;
    size_t ver0_;
    size_t fill_ = 0;
};

// Runs @p body, turning the only exceptions that can arise here (allocation
// failures inside the standard library) into -ENOMEM: nothing may unwind
// into C callers.
template <typename F> int guarded(F&& body) {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return failWith(ENOMEM, "out of memory");
    } catch (...) {
        return failWith(EIO, "internal error");
    }
}

cenalloc::CpuAccess toCpuAccess(int access) {
    switch (access) {
    case CENALLOC_CPU_ACCESS_NONE: return cenalloc::CpuAccess::None;
    case CENALLOC_CPU_ACCESS_OFTEN: return cenalloc::CpuAccess::Often;
    case CENALLOC_CPU_ACCESS_RARE: break;
    }
    return cenalloc::CpuAccess::Rare;
}

bool validCpuAccess(int access) {
    return access >= CENALLOC_CPU_ACCESS_NONE && access <= CENALLOC_CPU_ACCESS_OFTEN;
}

int openWith(cenalloc::Result<std::unique_ptr<cenalloc::Session>> opened, cenalloc_session** out) {
    if (!opened)
        return failWith(opened.error());
    *out = new cenalloc_session{std::move(*opened)};
    return succeed();
}

} // namespace

extern "C" {

const char* cenalloc_last_error(void) {
    return tLastError.c_str();
}

int cenalloc_session_open_local(const char* platform_path, cenalloc_session** out) {
    if (!out)
        return failWith(EINVAL, "out is NULL");
    *out = nullptr;
    return guarded([&] {
        if (!platform_path)
            return openWith(cenalloc::Session::local(), out);
        auto platform = cenalloc::loadPlatformFile(platform_path);
        if (!platform)
            return failWith(platform.error());
        return openWith(cenalloc::Session::local(*platform), out);
    });
}

int cenalloc_session_connect(const char* socket_path, cenalloc_session** out) {
    if (!out)
        return failWith(EINVAL, "out is NULL");
    *out = nullptr;
    return guarded([&] { return openWith(cenalloc::Session::connect(socket_path ? socket_path : ""), out); });
}

void cenalloc_session_close(cenalloc_session* session) {
    delete session;
}

int cenalloc_heap_count(cenalloc_session* session, size_t* count) {
    if (!session || !count)
        return failWith(EINVAL, "session or count is NULL");
    return guarded([&] {
        auto heaps = session->session->heaps();
        if (!heaps)
            return failWith(heaps.error());
        *count = heaps->size();
        return succeed();
    });
}

int cenalloc_get_heap(cenalloc_session* session, size_t index, cenalloc_heap_info* out) {
    if (!session || !out)
        return failWith(EINVAL, "session or out is NULL");
    SizedOut sized(out, CENALLOC_HEAP_INFO_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        auto heaps = session->session->heaps();
        if (!heaps)
            return failWith(heaps.error());
        if (index >= heaps->size())
            return failWith(ERANGE, "no heap with that index");
        const cenalloc::HeapInfo& h = (*heaps)[index];
        cenalloc_heap_info info{};
        copyName(info.name, h.name);
        info.capacity = h.properties.capacity;
        info.free_bytes = h.freeBytes;
        info.live_buffers = h.stats.liveBuffers;
        info.live_bytes = h.stats.liveBytes;
        info.watermark_bytes = h.stats.watermarkBytes;
        info.failed_allocations = h.stats.failedAllocations;
        info.lowest_address = h.properties.lowestAddress;
        info.highest_address = h.properties.highestAddress;
        info.contiguous = h.properties.contiguous ? 1 : 0;
        info.cached = h.properties.cached ? 1 : 0;
        info.total_allocations = h.stats.totalAllocations;
        info.valid_heap_flags = h.properties.validHeapFlags;
        sized.fill(info);
        return succeed();
    });
}

int cenalloc_alloc(cenalloc_session* session, const char* heap, uint64_t length, uint32_t fd_flags, uint64_t heap_flags,
                   int* out_fd) {
    if (!session || !heap || !out_fd)
        return failWith(EINVAL, "session, heap or out_fd is NULL");
    return guarded([&] {
        auto fd = session->session->allocate(heap, length, fd_flags, heap_flags);
        if (!fd)
            return failWith(fd.error());
        *out_fd = fd->release();
        return succeed();
    });
}

int cenalloc_alloc_for(cenalloc_session* session, const char* const* devices, size_t count, uint64_t size,
                       const char* name, int cpu_access, uint32_t fd_flags, int* out_fd,
                       cenalloc_alloc_for_info* info) {
    if (!session || !out_fd || (count > 0 && !devices))
        return failWith(EINVAL, "session, devices or out_fd is NULL");
    if (!validCpuAccess(cpu_access))
        return failWith(EINVAL, "unknown cpu access hint");
    cenalloc_alloc_for_info ignored{};
    ignored.struct_size = sizeof ignored;
    SizedOut sized(info ? info : &ignored, CENALLOC_ALLOC_FOR_INFO_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        if (count > cenalloc::AllocForRequest::kMaxDevices)
            return failWith(EINVAL, "more devices than an allocation is for (16)");
        std::vector<std::string> names;
        for (size_t i = 0; i < count; ++i) {
            if (!devices[i])
                return failWith(EINVAL, "a device name is NULL");
            names.emplace_back(devices[i]);
        }
        auto request = cenalloc::AllocForRequest::make(std::move(names), size, name ? name : "",
                                                       toCpuAccess(cpu_access), fd_flags);
        if (!request)
            return failWith(request.error());
        auto allocated = session->session->allocateFor(*request);
        if (!allocated)
            return failWith(allocated.error());
        cenalloc_alloc_for_info out{};
        out.size = allocated->size;
        copyName(out.heap, allocated->heap);
        copyName(out.kernel_heap, allocated->kernelHeap);
        copyName(out.reason, allocated->reason);
        sized.fill(out);
        *out_fd = allocated->fd.release();
        return succeed();
    });
}

int cenalloc_create(cenalloc_session* session, uint64_t size, const char* name, int cpu_access, int* out_fd) {
    if (!session || !out_fd)
        return failWith(EINVAL, "session or out_fd is NULL");
    if (!validCpuAccess(cpu_access))
        return failWith(EINVAL, "unknown cpu access hint");
    return guarded([&] {
        auto fd = session->session->create(size, name ? name : "", toCpuAccess(cpu_access));
        if (!fd)
            return failWith(fd.error());
        *out_fd = fd->release();
        return succeed();
    });
}

int cenalloc_import(cenalloc_session* session, int buffer_fd, uint64_t* out_id) {
    if (!session || !out_id)
        return failWith(EINVAL, "session or out_id is NULL");
    return guarded([&] {
        auto id = session->session->import(cenalloc::BorrowedFd(buffer_fd));
        if (!id)
            return failWith(id.error());
        *out_id = *id;
        return succeed();
    });
}

int cenalloc_release(cenalloc_session* session, int buffer_fd) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = session->session->release(cenalloc::BorrowedFd(buffer_fd));
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_attach(cenalloc_session* session, int buffer_fd, const char* device, uint64_t* out_attachment) {
    if (!session || !device || !out_attachment)
        return failWith(EINVAL, "session, device or out_attachment is NULL");
    return guarded([&] {
        auto id = session->session->attach(cenalloc::BorrowedFd(buffer_fd), device);
        if (!id)
            return failWith(id.error());
        *out_attachment = *id;
        return succeed();
    });
}

int cenalloc_detach(cenalloc_session* session, uint64_t attachment) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = session->session->detach(attachment);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_map(cenalloc_session* session, uint64_t attachment, int direction, cenalloc_sg_entry* entries,
                 size_t capacity, size_t* count, uint64_t* out_mapping) {
    if (!session || !count || !out_mapping || (capacity > 0 && !entries))
        return failWith(EINVAL, "session, count, out_mapping or entries is NULL");
    if (direction < CENALLOC_DMA_BIDIRECTIONAL || direction > CENALLOC_DMA_FROM_DEVICE)
        return failWith(EINVAL, "unknown dma direction");
    return guarded([&] {
        auto mapping = session->session->map(attachment, static_cast<cenalloc::DmaDirection>(direction));
        if (!mapping)
            return failWith(mapping.error());
        const cenalloc::SgTable& segments = mapping->segments;
        for (size_t i = 0; i < segments.size() && i < capacity; ++i)
            entries[i] = {segments[i].dmaAddress, segments[i].length};
        *count = segments.size();
        *out_mapping = mapping->id;
        return succeed();
    });
}

int cenalloc_unmap(cenalloc_session* session, uint64_t mapping) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = session->session->unmap(mapping);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_begin_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = session->session->beginCpuAccess(cenalloc::BorrowedFd(buffer_fd), flags);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_end_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = session->session->endCpuAccess(cenalloc::BorrowedFd(buffer_fd), flags);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_set_name(cenalloc_session* session, int buffer_fd, const char* name) {
    if (!session || !name)
        return failWith(EINVAL, "session or name is NULL");
    return guarded([&] {
        auto r = session->session->setName(cenalloc::BorrowedFd(buffer_fd), name);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_describe(cenalloc_session* session, int buffer_fd, cenalloc_buffer_info* out) {
    if (!session || !out)
        return failWith(EINVAL, "session or out is NULL");
    SizedOut sized(out, CENALLOC_BUFFER_INFO_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        auto b = session->session->describe(cenalloc::BorrowedFd(buffer_fd));
        if (!b)
            return failWith(b.error());
        cenalloc_buffer_info info{};
        info.flags =
            (b->hasStorage ? CENALLOC_BUFFER_HAS_STORAGE : 0) | (b->inHostKernel ? CENALLOC_BUFFER_IN_HOST_KERNEL : 0);
        info.id = b->id;
        info.size = b->size;
        info.inode = b->inode;
        info.references = b->references;
        info.cache_maintenance_ops = b->cacheMaintenanceOps;
        info.sync_violations = b->syncViolations;
        info.fd_flags = b->fdFlags;
        info.cpu_access_depth = b->cpuAccessDepth;
        info.chunk_count = static_cast<uint32_t>(b->chunks.size());
        info.device_count = static_cast<uint32_t>(b->attachedDevices.size());
        info.mapping_count = static_cast<uint32_t>(b->mappings.size());
        copyName(info.exporter, b->exporter);
        copyName(info.name, b->name);
        copyName(info.heap, b->heap);
        sized.fill(info);
        return succeed();
    });
}

int cenalloc_explain(cenalloc_session* session, const char* const* devices, size_t count, uint64_t size, int cpu_access,
                     cenalloc_explanation* out) {
    if (!session || !out || (count > 0 && !devices))
        return failWith(EINVAL, "session, devices or out is NULL");
    if (!validCpuAccess(cpu_access))
        return failWith(EINVAL, "unknown cpu access hint");
    SizedOut sized(out, CENALLOC_EXPLANATION_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        std::vector<std::string> names;
        for (size_t i = 0; i < count; ++i) {
            if (!devices[i])
                return failWith(EINVAL, "a device name is NULL");
            names.emplace_back(devices[i]);
        }
        auto e = session->session->explain(names, size, toCpuAccess(cpu_access));
        if (!e)
            return failWith(e.error());
        cenalloc_explanation explanation{};
        explanation.satisfiable = e->satisfiable ? 1 : 0;
        copyName(explanation.heap, e->heap.value_or(""));
        copyName(explanation.allocating_device, e->allocatingDevice.value_or(""));
        sized.fill(explanation);
        return succeed();
    });
}

} // extern "C"
