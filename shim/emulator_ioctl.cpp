// SPDX-License-Identifier: MIT
// DmaHeapEmulator on heap and buffer fds: the dma-heap and dma-buf ioctls, mmap() and lseek(), and the set of
// inodes known to be buffers that mmap() and lseek() look up.
#include "shim/emulator.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "shim/emulator_internal.h"
#include "shim/kernel_abi.h"

namespace cenalloc::shim {

// ------------------------------------------------------- known buffers

size_t DmaHeapEmulator::knownBufferCount() const {
    std::lock_guard lock(knownMutex_);
    return knownBuffers_.size();
}

bool DmaHeapEmulator::knownBuffer(const struct stat& st) const {
    std::lock_guard lock(knownMutex_);
    return knownBuffers_.contains({st.st_dev, st.st_ino});
}

void DmaHeapEmulator::forgetBuffer(const struct stat& st) {
    std::lock_guard lock(knownMutex_);
    knownBuffers_.erase({st.st_dev, st.st_ino});
}

void DmaHeapEmulator::rememberBuffer(const struct stat& st) {
    {
        std::lock_guard lock(knownMutex_);
        knownBuffers_.insert({st.st_dev, st.st_ino});
        if (knownBuffers_.size() < pruneAt_ || pruning_)
            return;
        pruning_ = true;
    }
    pruneKnownBuffers();
}

void DmaHeapEmulator::pruneKnownBuffers() {
    // Buffers die without telling the shim (their last fd may close in
    // another process): bufinfo says which are alive. Only the inodes known
    // before asking are candidates, so that one remembered meanwhile stays.
    std::set<InodeKey> before;
    {
        std::lock_guard lock(knownMutex_);
        before = knownBuffers_;
    }
    std::set<uint64_t> live;
    bool listed = false;
    {
        ErrnoGuard keepErrno;
        SessionUse s = session();
        if (s) {
            if (auto buffers = s->bufinfo()) {
                listed = true;
                for (const BufferInfo& b : *buffers)
                    live.insert(b.inode);
            }
        }
    }
    std::lock_guard lock(knownMutex_);
    if (listed)
        for (const InodeKey& key : before)
            if (!live.contains(static_cast<uint64_t>(key.second)))
                knownBuffers_.erase(key);
    pruneAt_ = std::max(kKnownBuffersFloor, 2 * knownBuffers_.size());
    pruning_ = false;
}

// ----------------------------------------------------------------- ioctl

std::optional<int> DmaHeapEmulator::ioctl(int fd, unsigned long request, void* arg) {
    FdKind k = kindOf(fd);
    if (k.kind == FdKind::HeapFd)
        return heapIoctl(*k.heap, fd, request, arg);
    if (k.kind == FdKind::Unlinked)
        return bufferIoctl(fd, k.st, request, arg);
    return std::nullopt;
}

int DmaHeapEmulator::heapIoctl(const Heap& heap, int fd, unsigned long request, void* arg) {
    // The VFS answers these for every file before a driver sees the call.
    if (request == FIOCLEX || request == FIONCLEX || request == FIONBIO || request == FIOASYNC)
        return libc_.ioctl(fd, request, arg);
    // dma_heap_ioctl(): copy in, zero-extend, allocate, copy back.
    HeapIoctlShape shape = heapIoctlShape(request);
    if (!shape.known)
        return fail(EINVAL);
    unsigned char onStack[128];
    std::vector<unsigned char> onHeap;
    unsigned char* kdata = onStack;
    if (shape.kernelSize > sizeof onStack) {
        onHeap.resize(shape.kernelSize);
        kdata = onHeap.data();
    }
    std::memset(kdata, 0, shape.kernelSize);
    if (!copyFromUser(kdata, arg, shape.inSize))
        return fail(EFAULT);
    int ret = allocate(heap, kdata);
    // Copied back even when the allocation failed; a fault then wins.
    if (!copyToUser(arg, kdata, shape.outSize))
        ret = -EFAULT;
    return ret == 0 ? 0 : fail(-ret);
}

int DmaHeapEmulator::allocate(const Heap& heap, unsigned char* request) {
    uint64_t len = 0;
    uint32_t fdIn = 0;
    uint32_t fdFlags = 0;
    uint64_t heapFlags = 0;
    std::memcpy(&len, request + kHeapAllocLen, sizeof len);
    std::memcpy(&fdIn, request + kHeapAllocFd, sizeof fdIn);
    std::memcpy(&fdFlags, request + kHeapAllocFdFlags, sizeof fdFlags);
    std::memcpy(&heapFlags, request + kHeapAllocHeapFlags, sizeof heapFlags);
    // The field the kernel fills must come in empty; the rest (flags,
    // length) the session validates with the kernel's rules.
    if (fdIn != 0)
        return -EINVAL;
    ErrnoGuard keepErrno;
    SessionUse s = session();
    if (!s)
        return -ENODEV; // the program closed the session's fds and none could be made again
    auto buffer = s->allocate(heap.name, len, fdFlags, heapFlags);
    if (!buffer)
        return -buffer.error().code();
    UniqueFd fd = std::move(*buffer);
    if ((fdFlags & O_ACCMODE) != O_RDWR) {
        // The kernel's dma-buf file takes its access mode from fd_flags, and
        // mmap() checks it: reopen the memfd with the same mode.
        int narrowed = libc_.open(procFdPath(fd.get()).c_str(), static_cast<int>(fdFlags & (O_ACCMODE | O_CLOEXEC)));
        if (narrowed >= 0)
            fd.reset(narrowed);
    }
    struct stat st {};
    if (libc_.fstat(fd.get(), &st) == 0)
        rememberBuffer(st);
    int out = fd.release();
    std::memcpy(request + kHeapAllocFd, &out, sizeof out);
    return 0;
}

bool DmaHeapEmulator::isBuffer(int fd) {
    ErrnoGuard keepErrno;
    SessionUse s = session();
    return s && s->import(BorrowedFd(fd)).has_value();
}

std::optional<int> DmaHeapEmulator::bufferIoctl(int fd, const struct stat& st, unsigned long request, void* arg) {
    if (_IOC_TYPE(request) != DMA_BUF_BASE)
        return std::nullopt;
    if (request == DMA_BUF_IOCTL_SYNC) {
        uint64_t flags = 0;
        bool readable = copyFromUser(&flags, arg, sizeof flags);
        if (readable && validateSyncFlags(flags)) {
            // The common case first: one session call, which also tells
            // whether the fd is a buffer at all (EBADF: it is not).
            const uint32_t direction = static_cast<uint32_t>(flags & kSyncRw);
            int error = 0;
            {
                ErrnoGuard keepErrno;
                SessionUse s = session();
                if (!s)
                    return std::nullopt; // no allocator: the kernel's answer
                Result<void> done = (flags & kSyncEnd) ? s->endCpuAccess(BorrowedFd(fd), direction)
                                                       : s->beginCpuAccess(BorrowedFd(fd), direction);
                if (!done)
                    error = done.error().code();
                if ((flags & kSyncEnd) && error == EINVAL) {
                    // The kernel keeps no brackets: an END that matches no
                    // START is a cache flush like any other. Close what a
                    // START of each single direction left open, if anything.
                    if (direction == kSyncRw) {
                        (void)s->endCpuAccess(BorrowedFd(fd), static_cast<uint32_t>(kSyncRead));
                        (void)s->endCpuAccess(BorrowedFd(fd), static_cast<uint32_t>(kSyncWrite));
                    }
                    error = 0;
                }
            }
            if (error == EBADF) {
                forgetBuffer(st);
                return std::nullopt; // not a buffer of ours: libc's answer
            }
            if (!knownBuffer(st))
                rememberBuffer(st); // one received from elsewhere
            return error == 0 ? 0 : fail(error);
        }
        if (!isBuffer(fd))
            return std::nullopt;
        return fail(readable ? EINVAL : EFAULT);
    }
    if (request == DMA_BUF_SET_NAME_A || request == DMA_BUF_SET_NAME_B) {
        if (!isBuffer(fd))
            return std::nullopt;
        auto name = copyNameFromUser(static_cast<const char*>(arg));
        if (!name)
            return fail(name.error().code());
        int error = 0;
        {
            ErrnoGuard keepErrno;
            SessionUse s = session();
            if (!s)
                error = ENODEV;
            else if (auto done = s->setName(BorrowedFd(fd), *name); !done)
                error = done.error().code();
        }
        return error == 0 ? 0 : fail(error);
    }
    // dma_buf_ioctl() knows no other number (the sync_file exchange is not
    // emulated: programs see the ENOTTY of a kernel without it).
    if (!isBuffer(fd))
        return std::nullopt;
    return fail(ENOTTY);
}

// ------------------------------------------------------------ mmap, lseek

std::optional<void*> DmaHeapEmulator::mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset,
                                           int* libcFlags) {
    (void)addr;
    if (fd < 0 || (flags & MAP_ANONYMOUS) || length == 0 || (offset & static_cast<off_t>(kPage - 1)) || offset < 0)
        return std::nullopt; // libc gives the generic answers
    FdKind k = kindOf(fd);
    if (k.kind != FdKind::HeapFd && k.kind != FdKind::Unlinked)
        return std::nullopt;
    const bool shared = (flags & MAP_TYPE) != MAP_PRIVATE;
    const uint64_t pages = (length + kPage - 1) / kPage;
    if (k.kind == FdKind::Unlinked) {
        // Within the buffer and shared, a memfd maps exactly as a dma-buf.
        // A dma-buf refuses pages beyond its end, and the system heap's
        // page-by-page remap_pfn_range() refuses a copy-on-write (private)
        // mapping of more than one page.
        const uint64_t first = static_cast<uint64_t>(offset) / kPage;
        const uint64_t sizePages = static_cast<uint64_t>(k.st.st_size) / kPage;
        const bool beyond = first + pages > sizePages;
        if (!beyond && (shared || pages <= 1)) {
            // Populated at mmap time, as system_heap_mmap()
            // (drivers/dma-buf/heaps/system_heap.c) maps every page with
            // remap_pfn_range() before returning; the caller's flags stay.
            if (libcFlags && shared && knownBuffer(k.st))
                *libcFlags |= MAP_POPULATE;
            return std::nullopt;
        }
        if (!knownBuffer(k.st) || !isBuffer(fd))
            return std::nullopt;
    }
    // do_mmap() checks the file's access mode before calling the file's
    // mmap: a heap fd has none (ENODEV), a buffer refuses the range (EINVAL).
    int status;
    {
        ErrnoGuard keepErrno;
        status = ::fcntl(fd, F_GETFL);
    }
    const int mode = status & O_ACCMODE;
    const bool readable = mode == O_RDONLY || mode == O_RDWR;
    const bool writable = mode == O_WRONLY || mode == O_RDWR;
    if (shared && (prot & PROT_WRITE) && !writable)
        return mapFailed(EACCES);
    if (!readable)
        return mapFailed(EACCES);
    return mapFailed(k.kind == FdKind::HeapFd ? ENODEV : EINVAL);
}

std::optional<off_t> DmaHeapEmulator::lseek(int fd, off_t offset, int whence) {
    FdKind k = kindOf(fd);
    if (k.kind == FdKind::HeapFd)
        return fail(ESPIPE); // the heap device has no llseek
    if (k.kind != FdKind::Unlinked)
        return std::nullopt;
    // dma_buf_llseek() answers only "where is the end" and "the start".
    if (offset == 0 && (whence == SEEK_END || whence == SEEK_SET))
        return std::nullopt; // the memfd gives the same answer
    // Only an inode the shim handed out can be a buffer worth asking about:
    // a program's own unlinked files (tmpfile()) never cost a session call.
    if (!knownBuffer(k.st))
        return std::nullopt;
    if (!isBuffer(fd)) {
        forgetBuffer(k.st); // its inode number was reused
        return std::nullopt;
    }
    return fail(EINVAL);
}

} // namespace cenalloc::shim
