// SPDX-License-Identifier: MIT
// The C11 API: a thin shell over Session that turns Results into negative errnos.
#include <cenalloc/c/cenalloc.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <poll.h>

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
static_assert(offsetof(cenalloc_alloc_for_info, exporter) == CENALLOC_ALLOC_FOR_INFO_SIZE_VER0);
static_assert(sizeof(cenalloc_alloc_for_info) == CENALLOC_ALLOC_FOR_INFO_SIZE_VER1);
static_assert(sizeof(cenalloc_buffer_info) == CENALLOC_BUFFER_INFO_SIZE_VER0);
static_assert(sizeof(cenalloc_forecast) == CENALLOC_FORECAST_SIZE_VER0);
static_assert(sizeof(cenalloc_move_event) == CENALLOC_MOVE_EVENT_SIZE_VER0);
// The C enums are the C++ ones, value for value.
static_assert(CENALLOC_FORECAST_FITS == static_cast<int>(cenalloc::AttachForecast::Outcome::Fits));
static_assert(CENALLOC_FORECAST_WOULD_MIGRATE == static_cast<int>(cenalloc::AttachForecast::Outcome::WouldMigrate));
static_assert(CENALLOC_FORECAST_BLOCKED == static_cast<int>(cenalloc::AttachForecast::Outcome::Blocked));
static_assert(CENALLOC_FORECAST_UNSATISFIABLE == static_cast<int>(cenalloc::AttachForecast::Outcome::Unsatisfiable));
static_assert(CENALLOC_MOVE_PENDING == static_cast<int>(cenalloc::MoveEvent::Kind::Pending));
static_assert(CENALLOC_MOVE_MOVED == static_cast<int>(cenalloc::MoveEvent::Kind::Moved));
static_assert(CENALLOC_MOVE_CANCELLED == static_cast<int>(cenalloc::MoveEvent::Kind::Cancelled));

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

/// An operation that answers nothing but success or failure, on a session
/// that must not be NULL.
template <typename Op> int runVoid(cenalloc_session* session, Op&& op) {
    if (!session)
        return failWith(EINVAL, "session is NULL");
    return guarded([&] {
        auto r = op(*session->session);
        return r ? succeed() : failWith(r.error());
    });
}

/// Hand @p event to the caller's struct (checked already).
int giveEvent(SizedOut<cenalloc_move_event>& sized, const cenalloc::MoveEvent& event) {
    cenalloc_move_event out{};
    out.kind = static_cast<uint32_t>(event.kind);
    out.buffer = event.buffer;
    out.attachment = event.attachment;
    out.sequence = event.sequence;
    copyName(out.cause, event.cause);
    sized.fill(out);
    return succeed();
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
        copyName(out.exporter, allocated->exporter);
        out.device_count = static_cast<uint32_t>(allocated->devices.size());
        // The caller's array, read only from a struct that has the fields,
        // and given back to it as it was.
        if (info && info->struct_size >= CENALLOC_ALLOC_FOR_INFO_SIZE_VER1) {
            out.device_capacity = info->device_capacity;
            out.devices = info->devices;
            const size_t n = info->devices ? std::min<size_t>(out.device_count, info->device_capacity) : 0;
            for (size_t i = 0; i < n; ++i) {
                copyName(info->devices[i].name, allocated->devices[i].name);
                copyName(info->devices[i].sysfs_path, allocated->devices[i].sysfsPath);
                copyName(info->devices[i].driver, allocated->devices[i].driver);
            }
        }
        sized.fill(out);
        *out_fd = allocated->fd.release();
        return succeed();
    });
}

int cenalloc_storage_fd(cenalloc_session* session, int buffer_fd, int* out_fd) {
    if (!session || !out_fd)
        return failWith(EINVAL, "session or out_fd is NULL");
    return guarded([&] {
        auto fd = session->session->storageFd(cenalloc::BorrowedFd(buffer_fd));
        if (!fd)
            return failWith(fd.error());
        *out_fd = fd->release();
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
    return runVoid(session, [&](cenalloc::Session& s) { return s.release(cenalloc::BorrowedFd(buffer_fd)); });
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

int cenalloc_attach_flags(cenalloc_session* session, int buffer_fd, const char* device, uint32_t flags,
                          uint64_t* out_attachment) {
    if (!session || !device || !out_attachment)
        return failWith(EINVAL, "session, device or out_attachment is NULL");
    if ((flags & ~uint32_t{CENALLOC_ATTACH_DYNAMIC}) != 0)
        return failWith(EINVAL, "unknown attach flags");
    return guarded([&] {
        cenalloc::SessionAttachOptions options;
        options.dynamic = (flags & CENALLOC_ATTACH_DYNAMIC) != 0;
        auto id = session->session->attach(cenalloc::BorrowedFd(buffer_fd), device, options);
        if (!id)
            return failWith(id.error());
        *out_attachment = *id;
        return succeed();
    });
}

int cenalloc_pin(cenalloc_session* session, uint64_t attachment) {
    return runVoid(session, [&](cenalloc::Session& s) { return s.pin(attachment); });
}

int cenalloc_unpin(cenalloc_session* session, uint64_t attachment) {
    return runVoid(session, [&](cenalloc::Session& s) { return s.unpin(attachment); });
}

int cenalloc_migrate(cenalloc_session* session, int buffer_fd, const char* heap) {
    if (!session || !heap)
        return failWith(EINVAL, "session or heap is NULL");
    return guarded([&] {
        auto r = session->session->migrate(cenalloc::BorrowedFd(buffer_fd), heap);
        return r ? succeed() : failWith(r.error());
    });
}

int cenalloc_forecast_attach(cenalloc_session* session, int buffer_fd, const char* device, cenalloc_forecast* out) {
    if (!session || !device || !out)
        return failWith(EINVAL, "session, device or out is NULL");
    SizedOut sized(out, CENALLOC_FORECAST_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        auto f = session->session->forecast(cenalloc::BorrowedFd(buffer_fd), device);
        if (!f)
            return failWith(f.error());
        cenalloc_forecast forecast{};
        forecast.outcome = static_cast<int>(f->outcome);
        copyName(forecast.from_heap, f->fromHeap);
        copyName(forecast.to_heap, f->toHeap);
        copyName(forecast.reason, f->reason);
        forecast.notified_count = static_cast<uint32_t>(f->notified.size());
        for (size_t i = 0; i < f->notified.size() && i < CENALLOC_NOTIFIED_MAX; ++i)
            copyName(forecast.notified[i], f->notified[i]);
        sized.fill(forecast);
        return succeed();
    });
}

int cenalloc_event_fd(cenalloc_session* session, int* out_fd) {
    if (!session || !out_fd)
        return failWith(EINVAL, "session or out_fd is NULL");
    *out_fd = session->session->eventFd().get();
    return succeed();
}

int cenalloc_next_event(cenalloc_session* session, cenalloc_move_event* out) {
    if (!session || !out)
        return failWith(EINVAL, "session or out is NULL");
    SizedOut sized(out, CENALLOC_MOVE_EVENT_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        auto event = session->session->nextEvent();
        if (!event)
            return failWith(event.error());
        if (!*event)
            return failWith(EAGAIN, "no move event waits");
        return giveEvent(sized, **event);
    });
}

int cenalloc_wait_event(cenalloc_session* session, int timeout_ms, cenalloc_move_event* out) {
    if (!session || !out)
        return failWith(EINVAL, "session or out is NULL");
    if (timeout_ms < -1)
        return failWith(EINVAL, "timeout_ms is below -1");
    SizedOut sized(out, CENALLOC_MOVE_EVENT_SIZE_VER0);
    if (int refused = sized.check())
        return refused;
    return guarded([&] {
        using Clock = std::chrono::steady_clock;
        const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        // The fd can be readable with no move event to take (a reply or
        // another message arrived), so wait again until the deadline.
        for (;;) {
            auto event = session->session->nextEvent();
            if (!event)
                return failWith(event.error());
            if (*event)
                return giveEvent(sized, **event);
            int left = -1;
            if (timeout_ms >= 0) {
                const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
                if (remaining <= 0)
                    return failWith(ETIMEDOUT, "no move event came in time");
                left = static_cast<int>(remaining);
            }
            pollfd p{session->session->eventFd().get(), POLLIN, 0};
            if (::poll(&p, 1, left) < 0 && errno != EINTR)
                return failWith(cenalloc::Error::fromErrno("poll"));
        }
    });
}

int cenalloc_acknowledge_move(cenalloc_session* session, uint64_t attachment, uint64_t sequence) {
    return runVoid(session, [&](cenalloc::Session& s) { return s.acknowledgeMove(attachment, sequence); });
}

int cenalloc_detach(cenalloc_session* session, uint64_t attachment) {
    return runVoid(session, [&](cenalloc::Session& s) { return s.detach(attachment); });
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
    return runVoid(session, [&](cenalloc::Session& s) { return s.unmap(mapping); });
}

int cenalloc_begin_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags) {
    return runVoid(session,
                   [&](cenalloc::Session& s) { return s.beginCpuAccess(cenalloc::BorrowedFd(buffer_fd), flags); });
}

int cenalloc_end_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags) {
    return runVoid(session,
                   [&](cenalloc::Session& s) { return s.endCpuAccess(cenalloc::BorrowedFd(buffer_fd), flags); });
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
