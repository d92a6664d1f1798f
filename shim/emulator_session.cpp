// SPDX-License-Identifier: MIT
// DmaHeapEmulator's session: which one the environment asks for, remaking it when its fds are lost or after
// fork(), and the fork gate that keeps fork() out of in-process calls.
#include "shim/emulator.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <new>
#include <sys/stat.h>

#include <fmt/format.h>

#include <cenalloc/platform.h>

#include "shim/emulator_internal.h"

namespace cenalloc::shim {

// The in-process session's context: no pool of ready memory. The kernel's
// system heap takes zeroed pages from the page allocator at
// DMA_HEAP_IOCTL_ALLOC (drivers/dma-buf/heaps/system_heap.c: alloc_pages
// with the __GFP_ZERO of its order_flags) and keeps no file in the caller's
// fd table; a pool of memfds would put fds in the program's table behind its back, which
// it counts (the dma-heap selftest compares fd counts), closes with
// closefrom() under the pool, and pays for in RLIMIT_NOFILE. Through
// cenallocd the pool lives in the daemon.
ContextOptions inProcessContextOptions() {
    ContextOptions context;
    context.readyPool.heapBytes = 0;
    context.readyPool.totalBytes = 0;
    return context;
}

namespace {

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
        auto local = Session::local(*platform, inProcessContextOptions());
        if (!local)
            return local.error();
        return std::shared_ptr<Session>(std::move(*local));
    }
    auto local = Session::local(defaultPlatform(), inProcessContextOptions());
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

bool isInProcess(const Session& session) {
    return !session.describe().starts_with("cenallocd");
}

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

DmaHeapEmulator::SessionUse::SessionUse(DmaHeapEmulator& emulator) : emulator_(emulator) {
    if (gateDepth++ == 0 && emulator_.inProcess_.load(std::memory_order_relaxed)) {
        emulator_.forkGate_.enter();
        gated_ = true;
    }
    session_ = emulator_.currentSession();
}

DmaHeapEmulator::SessionUse::~SessionUse() {
    session_.reset();
    if (gated_)
        emulator_.forkGate_.leave();
    --gateDepth;
}

DmaHeapEmulator::SessionUse DmaHeapEmulator::session() {
    return SessionUse(*this);
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

} // namespace cenalloc::shim
