// SPDX-License-Identifier: MIT
// DmaHeapEmulator: heap fds, directory listing, stat, the dma-heap and dma-buf ioctls, mmap and lseek rules.
#include "shim/emulator.h"

#include <algorithm>
#include <cerrno>
#include <new>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/platform.h>

#include "shim/kernel_abi.h"

namespace cenalloc::shim {

namespace {

constexpr size_t kPage = 4096;
/// Device major of the emulated heap nodes (the kernel's is dynamic too).
constexpr unsigned kHeapMajor = 250;
/// telldir() positions past the real entries of a merged listing.
constexpr long kExtraPosition = 1L << 62;

/// Keeps errno across internal calls, so that a call passed to libc, or one
/// that succeeds, leaves errno as the program expects.
class ErrnoGuard {
public:
    ErrnoGuard() : saved_(errno) {}
    ~ErrnoGuard() { errno = saved_; }
    ErrnoGuard(const ErrnoGuard&) = delete;
    ErrnoGuard& operator=(const ErrnoGuard&) = delete;

private:
    int saved_;
};

int fail(int error) {
    errno = error;
    return -1;
}

void* mapFailed(int error) {
    errno = error;
    return MAP_FAILED;
}

std::string procFdPath(int fd) {
    return fmt::format("/proc/self/fd/{}", fd);
}

/// Known buffer inodes kept before the set is pruned against bufinfo (then
/// twice what is left alive).
constexpr size_t kKnownBuffersFloor = 1024;

/// The fds made by the session being created on this thread (see
/// noteCreatedFd), or nullptr.
thread_local std::vector<int>* createdFds = nullptr;

/// How deep this thread is in session calls: only the outermost takes the
/// fork gate (a nested shared lock would wait behind a waiting fork).
thread_local int gateDepth = 0;

/// Sessions abandoned because their fds became the program's: destroying
/// one would close the program's files, so they live on, reachable, until
/// the process ends.
std::vector<std::shared_ptr<Session>>& abandonedSessions() {
    static auto* sessions = new std::vector<std::shared_ptr<Session>>();
    return *sessions;
}
std::mutex abandonedMutex;

bool isInProcess(const Session& session) {
    return !session.describe().starts_with("cenallocd");
}

Result<std::shared_ptr<Session>> makeSession(const ShimOptions& options) {
    if (options.mode != ShimOptions::Mode::Local) {
        auto remote = Session::connect(options.socketPath);
        if (remote)
            return std::shared_ptr<Session>(std::move(*remote));
        if (options.mode == ShimOptions::Mode::Daemon)
            return remote.error().withContext("CENALLOC_SHIM_MODE=daemon");
    }
    if (!options.platformPath.empty()) {
        auto platform = loadPlatformFile(options.platformPath);
        if (!platform)
            return platform.error().withContext("CENALLOC_PLATFORM");
        auto local = Session::local(*platform);
        if (!local)
            return local.error();
        return std::shared_ptr<Session>(std::move(*local));
    }
    auto local = Session::local();
    if (!local)
        return local.error();
    return std::shared_ptr<Session>(std::move(*local));
}

/// makeSession(), and the identity of every fd it made that is still open.
template <typename OwnFd>
Result<std::shared_ptr<Session>> makeRecordedSession(const ShimOptions& options, const LibcCalls& libc,
                                                     std::vector<OwnFd>& owned) {
    std::vector<int> created;
    createdFds = &created;
    auto session = makeSession(options);
    createdFds = nullptr;
    owned.clear();
    if (!session)
        return session;
    // An fd made and closed again during set-up (a connection attempt in
    // auto mode) is not held: keep what is open, once per number.
    std::sort(created.begin(), created.end());
    created.erase(std::unique(created.begin(), created.end()), created.end());
    for (int fd : created) {
        struct stat st {};
        if (libc.fstat(fd, &st) == 0)
            owned.push_back({fd, st.st_dev, st.st_ino});
    }
    return session;
}

} // namespace

void noteCreatedFd(int fd) {
    if (createdFds && fd >= 0)
        createdFds->push_back(fd);
}

Result<ShimOptions> ShimOptions::fromEnvironment() {
    ShimOptions options;
    if (const char* mode = std::getenv("CENALLOC_SHIM_MODE"); mode && *mode) {
        std::string_view m(mode);
        if (m == "auto")
            options.mode = Mode::Auto;
        else if (m == "local")
            options.mode = Mode::Local;
        else if (m == "daemon")
            options.mode = Mode::Daemon;
        else
            return Error(EINVAL, fmt::format("CENALLOC_SHIM_MODE is '{}': expected auto, local or daemon", m));
    }
    if (const char* socket = std::getenv("CENALLOC_SOCKET"))
        options.socketPath = socket;
    if (const char* platform = std::getenv("CENALLOC_PLATFORM"))
        options.platformPath = platform;
    if (const char* override = std::getenv("CENALLOC_SHIM_OVERRIDE"); override && *override) {
        std::string_view o(override);
        if (o == "1")
            options.overrideKernel = true;
        else if (o != "0")
            return Error(EINVAL, fmt::format("CENALLOC_SHIM_OVERRIDE is '{}': expected 0 or 1", o));
    }
    return options;
}

struct DmaHeapEmulator::Heap {
    std::string name;
    unsigned index = 0;
    UniqueFd anchor; // an empty memfd: every heap fd is a new open file of it
    dev_t dev = 0;
    ino_t ino = 0;
    // O_PATH opens get files of a second memfd, so that an ioctl can tell
    // them by inode alone (libc then refuses them, EBADF, as the kernel does).
    UniqueFd pathAnchor;
    dev_t pathDev = 0;
    ino_t pathIno = 0;
};

struct DmaHeapEmulator::FdKind {
    enum Kind { Other, HeapFd, HeapPathFd, Directory, KernelDirectory, Unlinked };
    Kind kind = Other;
    const Heap* heap = nullptr;
    struct stat st {};
};

struct DmaHeapEmulator::Stream {
    struct Entry {
        std::string name;
        unsigned char type = DT_UNKNOWN;
        uint64_t inode = 0;
    };
    /// The real directory's entries come first (a host with kernel heaps).
    bool passReal = false;
    bool realDone = false;
    std::vector<Entry> entries;
    size_t next = 0;
    struct dirent entry {};
    struct dirent64 entry64 {};
};

DmaHeapEmulator::DmaHeapEmulator(const LibcCalls& libc, const ShimOptions& options)
    : libc_(libc), options_(options), pruneAt_(kKnownBuffersFloor) {}

DmaHeapEmulator::~DmaHeapEmulator() = default;

void DmaHeapEmulator::ForkGate::enter() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !forking_; });
    ++calls_;
}

void DmaHeapEmulator::ForkGate::leave() {
    std::lock_guard lock(mutex_);
    if (--calls_ == 0)
        changed_.notify_all();
}

void DmaHeapEmulator::ForkGate::close() {
    std::unique_lock lock(mutex_);
    forking_ = true;
    changed_.wait(lock, [&] { return calls_ == 0; });
    lock.release(); // held across fork(): no call can start meanwhile
}

void DmaHeapEmulator::ForkGate::openInParent() {
    forking_ = false;
    mutex_.unlock();
    changed_.notify_all();
}

void DmaHeapEmulator::ForkGate::openInChild() {
    // Only this thread exists in the child: no call is in flight, and the
    // waiters the condition variable counted are gone, so it starts anew.
    // Not destroyed first: pthread_cond_destroy would wait for those
    // waiters forever; a condition variable holds no other resource.
    forking_ = false;
    calls_ = 0;
    new (&changed_) std::condition_variable();
    mutex_.unlock();
}

Result<std::unique_ptr<DmaHeapEmulator>> DmaHeapEmulator::create(const ShimOptions& options, const LibcCalls& libc) {
    std::vector<OwnFd> owned;
    auto session = makeRecordedSession(options, libc, owned);
    if (!session)
        return session.error();
    auto emulator = create(std::move(*session), options, libc);
    if (!emulator)
        return emulator;
    std::lock_guard lock((*emulator)->mutex_);
    (*emulator)->sessionFds_ = std::move(owned);
    (*emulator)->renewable_ = true;
    return emulator;
}

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
            return Error(errno, fmt::format("memfd_create for heap '{}': {}", info.name, std::strerror(errno)));
        if (libc_.fstat(heap->anchor.get(), &st) != 0)
            return Error(errno, fmt::format("fstat: {}", std::strerror(errno)));
        heap->dev = st.st_dev;
        heap->ino = st.st_ino;
        if (libc_.fstat(heap->pathAnchor.get(), &st) != 0)
            return Error(errno, fmt::format("fstat: {}", std::strerror(errno)));
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

class DmaHeapEmulator::SessionUse {
public:
    explicit SessionUse(DmaHeapEmulator& emulator) : emulator_(emulator) {
        if (gateDepth++ == 0 && emulator_.inProcess_.load(std::memory_order_relaxed)) {
            emulator_.forkGate_.enter();
            gated_ = true;
        }
        session_ = emulator_.currentSession();
    }
    ~SessionUse() {
        session_.reset();
        if (gated_)
            emulator_.forkGate_.leave();
        --gateDepth;
    }
    SessionUse(const SessionUse&) = delete;
    SessionUse& operator=(const SessionUse&) = delete;

    explicit operator bool() const { return session_ != nullptr; }
    Session* operator->() const { return session_.get(); }

private:
    DmaHeapEmulator& emulator_;
    bool gated_ = false;
    std::shared_ptr<Session> session_;
};

DmaHeapEmulator::SessionUse DmaHeapEmulator::session() {
    return SessionUse(*this);
}

bool DmaHeapEmulator::stillOurs(int fd, dev_t dev, ino_t ino) const {
    ErrnoGuard keepErrno;
    struct stat st {};
    return fd >= 0 && libc_.fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

bool DmaHeapEmulator::ownsSessionFdsLocked() const {
    for (const OwnFd& own : sessionFds_)
        if (!stillOurs(own.fd, own.dev, own.ino))
            return false;
    return true;
}

std::shared_ptr<Session> DmaHeapEmulator::currentSession() {
    std::lock_guard lock(mutex_);
    const bool forked = forked_.exchange(false, std::memory_order_relaxed);
    if (!session_ && renewable_)
        renewSessionLocked(false); // the last attempt failed: try again
    else if (session_ && !ownsSessionFdsLocked())
        renewSessionLocked(true);
    else if (session_ && forked && !isInProcess(*session_))
        // The connection is the parent's too: requests and replies of both
        // processes would interleave on it.
        renewSessionLocked(false);
    return session_;
}

void DmaHeapEmulator::renewSessionLocked(bool lost) {
    ErrnoGuard keepErrno;
    if (lost) {
        // Its fds now name the program's files: it must never use them
        // again, nor close them as it would when destroyed.
        std::lock_guard abandoned(abandonedMutex);
        abandonedSessions().push_back(std::move(session_));
        session_.reset();
        sessionFds_.clear();
    }
    if (!renewable_)
        return;
    std::vector<OwnFd> owned;
    auto fresh = makeRecordedSession(options_, libc_, owned);
    if (!fresh)
        return; // lost: none until one can be made; forked: the shared one, as before
    session_ = std::move(*fresh);
    sessionFds_ = std::move(owned);
    inProcess_.store(isInProcess(*session_), std::memory_order_relaxed);
}

void DmaHeapEmulator::prepareFork() {
    forkGate_.close();
    mutex_.lock();
    knownMutex_.lock();
}

void DmaHeapEmulator::parentAfterFork() {
    knownMutex_.unlock();
    mutex_.unlock();
    forkGate_.openInParent();
}

void DmaHeapEmulator::childAfterFork() {
    knownMutex_.unlock();
    mutex_.unlock();
    forkGate_.openInChild();
    forked_.store(true, std::memory_order_relaxed);
}

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

std::optional<void*> DmaHeapEmulator::mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
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
        if (!beyond && (shared || pages <= 1))
            return std::nullopt;
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

// ------------------------------------------------------------- directory

std::optional<DIR*> DmaHeapEmulator::opendir(const char* path) {
    char scratch[2 * kPathMax];
    HeapPath hp = classify(AT_FDCWD, path, scratch, sizeof scratch);
    if (hp.kind == HeapPath::Kind::Entry && findHeap(hp.name)) {
        errno = ENOTDIR;
        return nullptr;
    }
    if (hp.kind != HeapPath::Kind::Directory)
        return std::nullopt;
    DIR* dir = nullptr;
    if (kernelDir_) {
        dir = libc_.opendir(options_.kernelHeapDir.c_str());
    } else if (directory_.valid()) {
        int fd = openDirectory(O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return nullptr;
        dir = libc_.fdopendir(fd);
        if (!dir) {
            ErrnoGuard keepErrno;
            ::close(fd);
        }
    } else {
        return std::nullopt;
    }
    if (dir)
        adoptStream(dir, ::dirfd(dir));
    return dir;
}

void DmaHeapEmulator::adoptStream(DIR* dir, int fd) {
    FdKind k = kindOf(fd);
    if (k.kind != FdKind::Directory && k.kind != FdKind::KernelDirectory)
        return;
    auto stream = std::make_unique<Stream>();
    stream->passReal = k.kind == FdKind::KernelDirectory;
    if (!stream->passReal) {
        stream->entries.push_back({".", DT_DIR, static_cast<uint64_t>(directoryIno_)});
        stream->entries.push_back({"..", DT_DIR, 1});
    }
    for (const auto& heap : heaps_) {
        if (stream->passReal) {
            // Overridden kernel heaps are listed once, by the kernel's entry.
            ErrnoGuard keepErrno;
            std::string kernelPath = options_.kernelHeapDir + "/" + heap->name;
            if (libc_.access(kernelPath.c_str(), F_OK) == 0)
                continue;
        }
        stream->entries.push_back({heap->name, DT_CHR, static_cast<uint64_t>(heap->ino)});
    }
    std::lock_guard lock(mutex_);
    streams_[dir] = std::move(stream);
    streamCount_.store(streams_.size(), std::memory_order_relaxed);
}

DmaHeapEmulator::Stream* DmaHeapEmulator::streamLocked(DIR* dir) {
    auto it = streams_.find(dir);
    return it == streams_.end() ? nullptr : it->second.get();
}

std::optional<struct dirent*> DmaHeapEmulator::readdir(DIR* dir) {
    std::lock_guard lock(mutex_);
    Stream* s = streamLocked(dir);
    if (!s)
        return std::nullopt;
    if (s->passReal && !s->realDone) {
        if (struct dirent* real = libc_.readdir(dir))
            return real;
        s->realDone = true;
    }
    if (s->next >= s->entries.size())
        return nullptr; // the end: errno untouched
    const Stream::Entry& e = s->entries[s->next++];
    s->entry = {};
    s->entry.d_ino = e.inode;
    s->entry.d_off = static_cast<off_t>(s->next);
    s->entry.d_reclen = sizeof s->entry;
    s->entry.d_type = e.type;
    std::snprintf(s->entry.d_name, sizeof s->entry.d_name, "%s", e.name.c_str());
    return &s->entry;
}

std::optional<struct dirent64*> DmaHeapEmulator::readdir64(DIR* dir) {
    std::lock_guard lock(mutex_);
    Stream* s = streamLocked(dir);
    if (!s)
        return std::nullopt;
    if (s->passReal && !s->realDone) {
        if (struct dirent64* real = libc_.readdir64(dir))
            return real;
        s->realDone = true;
    }
    if (s->next >= s->entries.size())
        return nullptr;
    const Stream::Entry& e = s->entries[s->next++];
    s->entry64 = {};
    s->entry64.d_ino = e.inode;
    s->entry64.d_off = static_cast<off64_t>(s->next);
    s->entry64.d_reclen = sizeof s->entry64;
    s->entry64.d_type = e.type;
    std::snprintf(s->entry64.d_name, sizeof s->entry64.d_name, "%s", e.name.c_str());
    return &s->entry64;
}

bool DmaHeapEmulator::rewinddir(DIR* dir) {
    std::lock_guard lock(mutex_);
    Stream* s = streamLocked(dir);
    if (!s)
        return false;
    libc_.rewinddir(dir);
    s->next = 0;
    s->realDone = false;
    return true;
}

std::optional<long> DmaHeapEmulator::telldir(DIR* dir) {
    std::lock_guard lock(mutex_);
    Stream* s = streamLocked(dir);
    if (!s)
        return std::nullopt;
    if (s->passReal && !s->realDone)
        return libc_.telldir(dir);
    return kExtraPosition + static_cast<long>(s->next);
}

bool DmaHeapEmulator::seekdir(DIR* dir, long position) {
    std::lock_guard lock(mutex_);
    Stream* s = streamLocked(dir);
    if (!s)
        return false;
    if (position >= kExtraPosition) {
        s->realDone = true;
        s->next = std::min(static_cast<size_t>(position - kExtraPosition), s->entries.size());
    } else {
        libc_.seekdir(dir, position);
        s->realDone = false;
        s->next = 0;
    }
    return true;
}

void DmaHeapEmulator::forgetStream(DIR* dir) {
    std::lock_guard lock(mutex_);
    streams_.erase(dir);
    streamCount_.store(streams_.size(), std::memory_order_relaxed);
}

} // namespace cenalloc::shim
