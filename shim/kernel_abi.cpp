// SPDX-License-Identifier: MIT
// The kernel's ioctl argument rules: request number shapes, user copies with fault semantics, flag checks.
#include "shim/kernel_abi.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fmt/format.h>

namespace cenalloc::shim {

HeapIoctlShape heapIoctlShape(unsigned long request) {
    HeapIoctlShape shape;
    // dma_heap_ioctl(): nr indexes its table of one command; the type byte
    // is never compared.
    shape.known = _IOC_NR(request) == 0;
    if (!shape.known)
        return shape;
    const size_t size = _IOC_SIZE(request);
    // DMA_HEAP_IOCTL_ALLOC is _IOWR, so each direction counts when the
    // caller's number has it too.
    shape.inSize = (_IOC_DIR(request) & _IOC_WRITE) ? size : 0;
    shape.outSize = (_IOC_DIR(request) & _IOC_READ) ? size : 0;
    shape.kernelSize = std::max({shape.inSize, shape.outSize, kHeapAllocSize});
    return shape;
}

namespace {

enum class Copy { Ok, Fault, Unsupported };

// process_vm_readv/writev on our own pid: the kernel walks our page tables
// and reports a fault as a short count or EFAULT, exactly where
// copy_from_user would fail, and a ptrace check on oneself always passes.
Copy copyWithVm(void* local, const void* remote, size_t size, bool toRemote) {
    if (size == 0)
        return Copy::Ok;
    iovec localIov{local, size};
    iovec remoteIov{const_cast<void*>(remote), size};
    const pid_t self = ::getpid();
    ssize_t n = toRemote ? ::process_vm_writev(self, &localIov, 1, &remoteIov, 1, 0)
                         : ::process_vm_readv(self, &localIov, 1, &remoteIov, 1, 0);
    if (n == static_cast<ssize_t>(size))
        return Copy::Ok;
    if (n >= 0 || errno == EFAULT)
        return Copy::Fault;
    // ENOSYS or EPERM: a seccomp filter forbids the calls.
    return Copy::Unsupported;
}

/// The highest address of the calling thread's stack, found once per thread.
uintptr_t stackTop() {
    thread_local uintptr_t top = [] {
        pthread_attr_t attr;
        uintptr_t found = 0;
        if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
            void* base = nullptr;
            size_t size = 0;
            if (::pthread_attr_getstack(&attr, &base, &size) == 0)
                found = reinterpret_cast<uintptr_t>(base) + size;
            ::pthread_attr_destroy(&attr);
        }
        return found;
    }();
    return top;
}

/// True when [@p p, @p p + @p size) lies in the caller's frames: between
/// this function's frame and the top of the thread's stack, memory that is
/// mapped and writable by construction. The usual ioctl argument (a struct
/// on the caller's stack) is copied there without a system call.
__attribute__((noinline)) bool onCallersStack(const void* p, size_t size) {
    const auto begin = reinterpret_cast<uintptr_t>(p);
    const auto frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    const uintptr_t top = stackTop();
    return begin > frame && top != 0 && begin < top && size <= top - begin;
}

} // namespace

bool copyFromUser(void* to, const void* from, size_t size) {
    if (size > 0 && onCallersStack(from, size)) {
        std::memcpy(to, from, size);
        return true;
    }
    switch (copyWithVm(to, from, size, false)) {
    case Copy::Ok: return true;
    case Copy::Fault: return false;
    case Copy::Unsupported: break;
    }
    // Without process_vm_readv, only a null pointer is caught; other bad
    // pointers fault in the caller's process as they would in any library.
    if (from == nullptr)
        return false;
    std::memcpy(to, from, size);
    return true;
}

bool copyToUser(void* to, const void* from, size_t size) {
    if (size > 0 && onCallersStack(to, size)) {
        std::memcpy(to, from, size);
        return true;
    }
    switch (copyWithVm(const_cast<void*>(from), to, size, true)) {
    case Copy::Ok: return true;
    case Copy::Fault: return false;
    case Copy::Unsupported: break;
    }
    if (to == nullptr)
        return false;
    std::memcpy(to, from, size);
    return true;
}

Result<std::string> copyNameFromUser(const char* user) {
    // strnlen_user(user, 32) reads up to 32 bytes: a terminator within them
    // is a valid name; a fault before one is EFAULT; 32 bytes without one
    // is a name that is too long.
    char buffer[kDmaBufNameLen];
    size_t readable = 0;
    iovec localIov{buffer, sizeof buffer};
    iovec remoteIov{const_cast<char*>(user), sizeof buffer};
    ssize_t n = ::process_vm_readv(::getpid(), &localIov, 1, &remoteIov, 1, 0);
    if (n >= 0) {
        readable = static_cast<size_t>(n);
    } else if (errno == EFAULT) {
        readable = 0;
    } else {
        if (user == nullptr)
            return Error(EFAULT, "the name pointer is null");
        readable = ::strnlen(user, sizeof buffer);
        std::memcpy(buffer, user, readable < sizeof buffer ? readable + 1 : sizeof buffer);
        readable = readable < sizeof buffer ? readable + 1 : sizeof buffer;
    }
    const void* end = std::memchr(buffer, '\0', readable);
    if (end)
        return std::string(buffer, static_cast<const char*>(end) - buffer);
    if (readable < sizeof buffer)
        return Error(EFAULT, "the name cannot be read up to its terminator");
    return Error(EINVAL, fmt::format("the name is longer than {} bytes", kDmaBufNameLen - 1));
}

Result<void> validateSyncFlags(uint64_t flags) {
    if (flags & ~kSyncValidMask)
        return Error(EINVAL, fmt::format("sync flags {:#x} have bits outside {:#x}", flags, kSyncValidMask));
    if ((flags & kSyncRw) == 0)
        return Error(EINVAL, fmt::format("sync flags {:#x} name neither read nor write", flags));
    return {};
}

} // namespace cenalloc::shim
