// SPDX-License-Identifier: MIT
// DmaHeapEmulator's stat family: the heap nodes as character devices in a directory, for stat, statx, access and
// the extended attribute calls.
#include "shim/emulator.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "shim/emulator_internal.h"

namespace cenalloc::shim {

namespace {

/// Device major of the emulated heap nodes (the kernel's is dynamic too).
constexpr unsigned kHeapMajor = 250;

} // namespace

// ------------------------------------------------------------------ stat

void DmaHeapEmulator::heapStat(const Heap& heap, struct stat* out) const {
    ErrnoGuard keepErrno;
    struct stat anchor {};
    if (!stillOurs(heap.anchor.get(), heap.dev, heap.ino) || libc_.fstat(heap.anchor.get(), &anchor) != 0) {
        anchor = {}; // the program closed it: what is known without it
        anchor.st_dev = heap.dev;
        anchor.st_ino = heap.ino;
    }
    *out = anchor;
    out->st_mode = S_IFCHR | 0600;
    out->st_nlink = 1;
    out->st_uid = ::geteuid();
    out->st_gid = ::getegid();
    out->st_rdev = makedev(kHeapMajor, heap.index);
    out->st_size = 0;
    out->st_blocks = 0;
    out->st_blksize = kPage;
}

void DmaHeapEmulator::directoryStat(struct stat* out) const {
    ErrnoGuard keepErrno;
    struct stat dir {};
    if (!stillOurs(directory_.get(), directoryDev_, directoryIno_) || libc_.fstat(directory_.get(), &dir) != 0) {
        dir = {};
        dir.st_dev = directoryDev_;
        dir.st_ino = directoryIno_;
    }
    *out = dir;
    out->st_mode = S_IFDIR | 0755;
    out->st_nlink = 2;
    out->st_uid = ::geteuid();
    out->st_gid = ::getegid();
}

std::optional<int> DmaHeapEmulator::stat(int dirfd, const char* path, struct stat* out, int flags) {
    if ((flags & AT_EMPTY_PATH) && path && *path == '\0') {
        FdKind k = kindOf(dirfd);
        if (k.kind == FdKind::HeapFd || k.kind == FdKind::HeapPathFd) {
            heapStat(*k.heap, out);
            return 0;
        }
        if (k.kind == FdKind::Directory) {
            directoryStat(out);
            return 0;
        }
        return std::nullopt;
    }
    char scratch[2 * kPathMax];
    HeapPath hp = classify(dirfd, path, scratch, sizeof scratch);
    if (hp.kind == HeapPath::Kind::Directory && !kernelDir_ && directory_.valid()) {
        directoryStat(out);
        return 0;
    }
    if (hp.kind == HeapPath::Kind::Entry) {
        if (const Heap* heap = findHeap(hp.name)) {
            if (hp.trailingSlash)
                return fail(ENOTDIR);
            heapStat(*heap, out);
            return 0;
        }
    }
    return std::nullopt;
}

std::optional<int> DmaHeapEmulator::statx(int dirfd, const char* path, int flags, unsigned int mask,
                                          struct statx* out) {
    (void)mask; // the basic fields are all there is
    struct stat st {};
    auto done = stat(dirfd, path, &st, flags & AT_EMPTY_PATH);
    if (!done || *done != 0)
        return done;
    std::memset(out, 0, sizeof *out);
    out->stx_mask = STATX_BASIC_STATS;
    out->stx_blksize = static_cast<uint32_t>(st.st_blksize);
    out->stx_nlink = static_cast<uint32_t>(st.st_nlink);
    out->stx_uid = st.st_uid;
    out->stx_gid = st.st_gid;
    out->stx_mode = static_cast<uint16_t>(st.st_mode);
    out->stx_ino = st.st_ino;
    out->stx_size = static_cast<uint64_t>(st.st_size);
    out->stx_blocks = static_cast<uint64_t>(st.st_blocks);
    out->stx_atime = {st.st_atim.tv_sec, static_cast<uint32_t>(st.st_atim.tv_nsec), 0};
    out->stx_mtime = {st.st_mtim.tv_sec, static_cast<uint32_t>(st.st_mtim.tv_nsec), 0};
    out->stx_ctime = {st.st_ctim.tv_sec, static_cast<uint32_t>(st.st_ctim.tv_nsec), 0};
    out->stx_rdev_major = major(st.st_rdev);
    out->stx_rdev_minor = minor(st.st_rdev);
    out->stx_dev_major = major(st.st_dev);
    out->stx_dev_minor = minor(st.st_dev);
    return 0;
}

void DmaHeapEmulator::fixFstat(int fd, struct stat* st) {
    (void)fd;
    for (const auto& heap : heaps_) {
        if ((heap->dev == st->st_dev && heap->ino == st->st_ino) ||
            (heap->pathDev == st->st_dev && heap->pathIno == st->st_ino)) {
            heapStat(*heap, st);
            return;
        }
    }
    if (directory_.valid() && st->st_dev == directoryDev_ && st->st_ino == directoryIno_)
        directoryStat(st);
}

std::optional<int> DmaHeapEmulator::access(int dirfd, const char* path, int mode, int flags) {
    (void)flags;
    char scratch[2 * kPathMax];
    HeapPath hp = classify(dirfd, path, scratch, sizeof scratch);
    if (hp.kind == HeapPath::Kind::Directory && !kernelDir_ && directory_.valid())
        return 0;
    if (hp.kind == HeapPath::Kind::Entry) {
        if (findHeap(hp.name)) {
            if (hp.trailingSlash)
                return fail(ENOTDIR);
            if (mode & X_OK)
                return fail(EACCES); // a device node is not executable
            return 0;
        }
    }
    return std::nullopt;
}

std::optional<ssize_t> DmaHeapEmulator::xattr(const char* path, bool list) {
    char scratch[2 * kPathMax];
    HeapPath hp = classify(AT_FDCWD, path, scratch, sizeof scratch);
    const bool ours = (hp.kind == HeapPath::Kind::Directory && !kernelDir_ && directory_.valid()) ||
                      (hp.kind == HeapPath::Kind::Entry && findHeap(hp.name));
    if (!ours)
        return std::nullopt;
    if (hp.kind == HeapPath::Kind::Entry && hp.trailingSlash)
        return fail(ENOTDIR);
    return list ? 0 : fail(ENODATA);
}

} // namespace cenalloc::shim
