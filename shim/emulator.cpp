// SPDX-License-Identifier: MIT
// DmaHeapEmulator: the heaps' anchors and the stand-in directory, what an fd or a path is (by inode), and open().
#include "shim/emulator.h"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "shim/emulator_internal.h"

namespace cenalloc::shim {

DmaHeapEmulator::DmaHeapEmulator(const LibcCalls& libc, const ShimOptions& options)
    : libc_(libc), options_(options), pruneAt_(kKnownBuffersFloor) {}

DmaHeapEmulator::~DmaHeapEmulator() = default;

Result<std::unique_ptr<DmaHeapEmulator>> DmaHeapEmulator::create(std::shared_ptr<Session> session,
                                                                 const ShimOptions& options, const LibcCalls& libc) {
    std::unique_ptr<DmaHeapEmulator> emulator(new DmaHeapEmulator(libc, options));
    if (auto ok = emulator->setUp(std::move(session)); !ok)
        return ok.error();
    return emulator;
}

Result<void> DmaHeapEmulator::setUp(std::shared_ptr<Session> session) {
    ErrnoGuard keepErrno;
    auto heaps = session->heaps();
    if (!heaps)
        return heaps.error().withContext("listing the heaps");
    inProcess_.store(isInProcess(*session), std::memory_order_relaxed);
    session_ = std::move(session);

    struct stat st {};
    if (libc_.stat(options_.kernelHeapDir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        kernelDir_ = true;
        kernelDirDev_ = st.st_dev;
        kernelDirIno_ = st.st_ino;
    }

    unsigned index = 0;
    for (const HeapInfo& info : *heaps) {
        ++index;
        // A name the kernel could not have in a directory entry is not served.
        if (info.name.empty() || info.name.find('/') != std::string::npos || info.name == "." || info.name == "..")
            continue;
        // cenalloc's own view of the host kernel's heaps: the program sees
        // the kernel's /dev/dma_heap/<name> itself, never a second copy.
        if (info.properties.kind == HeapKind::Kernel)
            continue;
        if (kernelDir_ && !options_.overrideKernel) {
            std::string kernelPath = options_.kernelHeapDir + "/" + info.name;
            if (libc_.access(kernelPath.c_str(), F_OK) == 0)
                continue; // the kernel's heap stays visible
        }
        auto heap = std::make_unique<Heap>();
        heap->name = info.name;
        heap->index = index;
        heap->anchor.reset(::memfd_create(fmt::format("cenalloc-dma-heap:{}", info.name).c_str(), MFD_CLOEXEC));
        heap->pathAnchor.reset(
            ::memfd_create(fmt::format("cenalloc-dma-heap-path:{}", info.name).c_str(), MFD_CLOEXEC));
        if (!heap->anchor.valid() || !heap->pathAnchor.valid())
            return Error::fromErrno(fmt::format("memfd_create for heap '{}'", info.name));
        if (libc_.fstat(heap->anchor.get(), &st) != 0)
            return Error::fromErrno("fstat");
        heap->dev = st.st_dev;
        heap->ino = st.st_ino;
        if (libc_.fstat(heap->pathAnchor.get(), &st) != 0)
            return Error::fromErrno("fstat");
        heap->pathDev = st.st_dev;
        heap->pathIno = st.st_ino;
        heaps_.push_back(std::move(heap));
    }

    // The stand-in for /dev/dma_heap: a directory nobody else can name
    // (created and removed at once), so that its fds are recognisable by
    // inode, work with fdopendir() and openat(), and leave nothing behind.
    const char* tmpdir = std::getenv("TMPDIR");
    std::vector<std::string> bases;
    if (tmpdir && *tmpdir)
        bases.emplace_back(tmpdir);
    bases.emplace_back("/tmp");
    bases.emplace_back("/dev/shm");
    for (const std::string& base : bases) {
        std::string templ = base + "/cenalloc-dma-heap.XXXXXX";
        if (!::mkdtemp(templ.data()))
            continue;
        directory_.reset(libc_.open(templ.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        ::rmdir(templ.c_str());
        if (directory_.valid() && libc_.fstat(directory_.get(), &st) == 0) {
            directoryDev_ = st.st_dev;
            directoryIno_ = st.st_ino;
            break;
        }
        directory_.reset();
    }
    return {};
}

std::vector<std::string> DmaHeapEmulator::heapNames() const {
    std::vector<std::string> names;
    for (const auto& heap : heaps_)
        names.push_back(heap->name);
    return names;
}

std::string DmaHeapEmulator::describe() const {
    std::lock_guard lock(mutex_);
    return session_ ? session_->describe() : std::string("no session (its fds were closed by the program)");
}

bool DmaHeapEmulator::stillOurs(int fd, dev_t dev, ino_t ino) const {
    ErrnoGuard keepErrno;
    struct stat st {};
    return fd >= 0 && libc_.fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

const DmaHeapEmulator::Heap* DmaHeapEmulator::findHeap(std::string_view name) const {
    for (const auto& heap : heaps_)
        if (heap->name == name)
            return heap.get();
    return nullptr;
}

DmaHeapEmulator::FdKind DmaHeapEmulator::kindOf(int fd) const {
    ErrnoGuard keepErrno;
    FdKind k;
    if (fd < 0 || libc_.fstat(fd, &k.st) != 0)
        return k;
    if (S_ISREG(k.st.st_mode)) {
        for (const auto& heap : heaps_) {
            if (heap->dev == k.st.st_dev && heap->ino == k.st.st_ino) {
                k.kind = FdKind::HeapFd;
                k.heap = heap.get();
                return k;
            }
            if (heap->pathDev == k.st.st_dev && heap->pathIno == k.st.st_ino) {
                k.kind = FdKind::HeapPathFd;
                k.heap = heap.get();
                return k;
            }
        }
        // Buffers are memfds, and a memfd has no name: no link to it exists.
        if (k.st.st_nlink == 0)
            k.kind = FdKind::Unlinked;
        return k;
    }
    if (S_ISDIR(k.st.st_mode)) {
        if (directory_.valid() && k.st.st_dev == directoryDev_ && k.st.st_ino == directoryIno_)
            k.kind = FdKind::Directory;
        else if (kernelDir_ && k.st.st_dev == kernelDirDev_ && k.st.st_ino == kernelDirIno_)
            k.kind = FdKind::KernelDirectory;
    }
    return k;
}

HeapPath DmaHeapEmulator::classify(int dirfd, const char* path, char* scratch, size_t size) const {
    if (path == nullptr || *path == '\0')
        return {};
    if (path[0] == '/')
        return mentionsHeapDir(path) ? classifyAbsolute(path, scratch, size) : HeapPath{};
    ErrnoGuard keepErrno;
    if (dirfd == AT_FDCWD) {
        if (!mentionsHeapDir(path))
            return {};
        char cwd[kPathMax];
        if (!::getcwd(cwd, sizeof cwd))
            return {};
        return classifyJoined(cwd, path, scratch, size);
    }
    FdKind k = kindOf(dirfd);
    if (k.kind == FdKind::Directory || k.kind == FdKind::KernelDirectory)
        return classifyJoined(kHeapDir, path, scratch, size);
    if (!mentionsHeapDir(path) || k.st.st_mode == 0)
        return {};
    char base[kPathMax];
    ssize_t n = ::readlink(procFdPath(dirfd).c_str(), base, sizeof base - 1);
    if (n <= 0 || base[0] != '/')
        return {};
    return classifyJoined(std::string_view(base, static_cast<size_t>(n)), path, scratch, size);
}

// ----------------------------------------------------------------- open

std::optional<int> DmaHeapEmulator::open(int dirfd, const char* path, int flags, mode_t mode) {
    (void)mode; // nothing is ever created
    char scratch[2 * kPathMax];
    HeapPath hp = classify(dirfd, path, scratch, sizeof scratch);
    switch (hp.kind) {
    case HeapPath::Kind::Other: return std::nullopt;
    case HeapPath::Kind::Directory:
        if (kernelDir_ || !directory_.valid())
            return std::nullopt;
        return openDirectory(flags);
    case HeapPath::Kind::Entry:
        if (const Heap* heap = findHeap(hp.name))
            return openHeap(*heap, flags, hp.trailingSlash);
        return std::nullopt;
    }
    return std::nullopt;
}

int DmaHeapEmulator::openHeap(const Heap& heap, int flags, bool trailingSlash) {
    // The checks path lookup makes on an existing device node, in its order.
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
        return fail(EEXIST);
    if (trailingSlash || (flags & O_DIRECTORY))
        return fail(ENOTDIR);
    // A new open file of the anchor: its own access mode and status flags.
    // Creation and truncation flags must not reach the memfd.
    const bool pathOnly = flags & O_PATH;
    const UniqueFd& anchor = pathOnly ? heap.pathAnchor : heap.anchor;
    int keep = pathOnly ? (O_PATH | (flags & O_CLOEXEC))
                        : (flags & (O_ACCMODE | O_CLOEXEC | O_NONBLOCK | O_APPEND | O_NOCTTY));
    const int saved = errno;
    // A program that closed every fd it did not know (closefrom) closed the
    // anchor too, and its number may now name another file: never open,
    // duplicate or hand that out as a heap.
    if (!stillOurs(anchor.get(), pathOnly ? heap.pathDev : heap.dev, pathOnly ? heap.pathIno : heap.ino))
        return fail(ENODEV);
    int fd = libc_.open(procFdPath(anchor.get()).c_str(), keep);
    if (fd < 0) // no /proc: share the anchor's open file instead
        fd = ::fcntl(anchor.get(), (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd < 0)
        return -1;
    // Closed and replaced between the check and the open: the same answer.
    struct stat st {};
    if (libc_.fstat(fd, &st) != 0 || st.st_dev != (pathOnly ? heap.pathDev : heap.dev) ||
        st.st_ino != (pathOnly ? heap.pathIno : heap.ino)) {
        ::close(fd);
        return fail(ENODEV);
    }
    errno = saved;
    return fd;
}

int DmaHeapEmulator::openDirectory(int flags) {
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
        return fail(EEXIST);
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT))
        return fail(EISDIR);
    int keep = (flags & O_PATH) ? (O_PATH | (flags & O_CLOEXEC)) : (O_RDONLY | (flags & (O_CLOEXEC | O_NONBLOCK)));
    const int saved = errno;
    if (!stillOurs(directory_.get(), directoryDev_, directoryIno_))
        return fail(ENOENT); // closed by the program: no heap directory, as on a host without one
    int fd = libc_.open(procFdPath(directory_.get()).c_str(), keep | O_DIRECTORY);
    if (fd < 0)
        fd = ::fcntl(directory_.get(), (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (fd >= 0)
        errno = saved;
    return fd;
}

} // namespace cenalloc::shim
