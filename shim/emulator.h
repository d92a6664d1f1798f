// SPDX-License-Identifier: MIT
// DmaHeapEmulator: cenalloc's heaps behind the kernel's /dev/dma_heap and dma-buf uapi.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <dirent.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <set>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

#include <cenalloc/context.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "shim/heap_paths.h"
#include "shim/libc_calls.h"

struct statx;

namespace cenalloc::shim {

/// How the shim finds its allocator, from the environment.
struct ShimOptions {
    enum class Mode {
        Auto,   ///< cenallocd when one answers, else in-process
        Local,  ///< in-process only (Session::local)
        Daemon, ///< cenallocd only (Session::connect)
    };
    Mode mode = Mode::Auto;
    /// CENALLOC_SOCKET; empty: Session::defaultSocketPath().
    std::string socketPath;
    /// CENALLOC_PLATFORM: a platform YAML for the in-process session.
    std::string platformPath;
    /// CENALLOC_SHIM_OVERRIDE=1: serve cenalloc's heap even where the host
    /// has a kernel heap of the same name.
    bool overrideKernel = false;
    /// Where the host's kernel heaps are (tests point it elsewhere).
    std::string kernelHeapDir = std::string(kHeapDir);

    /// From CENALLOC_SHIM_MODE (auto, local, daemon), CENALLOC_SOCKET,
    /// CENALLOC_PLATFORM and CENALLOC_SHIM_OVERRIDE.
    /// Errors: EINVAL naming a variable with a value it cannot take.
    static Result<ShimOptions> fromEnvironment();
};

/// Tell the emulator that the session being created made @p fd (the
/// preload library's wrappers of socket() and inotify_init1() inside the
/// cenalloc code it carries call this): an fd the session relies on, whose
/// identity every later use checks. Ignored outside a session's creation.
void noteCreatedFd(int fd);

/// The dma-heap uapi served by a cenalloc Session: what the preload shim
/// (libcenalloc-dmaheap.so) runs for every call it intercepts.
///
/// Every heap of the session appears as /dev/dma_heap/<name> (unless the
/// host has a kernel heap of that name and overrideKernel is off: then the
/// kernel's is left visible). A heap fd is a new open file of a per-heap
/// anchor memfd, so it behaves as an fd (dup, fork, close, O_CLOEXEC) and
/// is recognised by its inode, never by its number. Buffer fds are the
/// Session's memfds, recognised by asking the Session.
///
/// Every method returning std::optional answers std::nullopt for a call
/// that is not the emulator's (the caller then passes it to libc
/// unchanged); otherwise the libc-style result, with errno set on failure.
/// The emulator reproduces the kernel's argument handling, not just its
/// success paths: tests/conformance/expected.txt is the real kernel's answer
/// to every case the conformance program tries.
///
/// Fds it relies on are its own only while their inode says so: a program
/// may close any fd (closefrom(3)) and get the number back for its own
/// file. Every use of a heap anchor, the heap directory or a descriptor the
/// session made (its cenallocd socket, its inotify fd) is preceded by a
/// check of the (st_dev, st_ino) recorded when it was made. A session whose
/// fds are no longer its own is abandoned without touching them (not even
/// closed) and a new one is made when the emulator made the first (from
/// ShimOptions); until then, calls get the kernel's answers.
///
/// Only buffers it handed out (or that the session confirmed through a
/// dma-buf ioctl) are looked up for lseek() and mmap(): the inodes are kept
/// in a bounded set, pruned against bufinfo as buffers die, so that a
/// program's own unlinked files never cost a session call.
///
/// fork(): prepareFork()/parentAfterFork()/childAfterFork() run from
/// pthread_atfork. In-process, every session call holds a fork gate shared
/// and prepareFork() takes it exclusively, so that no thread is inside the
/// session (its mutexes all unlocked) when the child's copy is made; with
/// cenallocd the child makes its own connection on next use.
///
/// Thread safety: all methods may be called concurrently.
/// The Context options of the in-process session (CENALLOC_SHIM_MODE=local):
/// no pool of ready memory, which would keep memfds in the program's fd
/// table (emulator_session.cpp says why). Through cenallocd the daemon's
/// pool serves the shim.
ContextOptions inProcessContextOptions();

class DmaHeapEmulator {
public:
    /// A session as @p options say, then the emulator over it.
    /// Errors: those of Session::local / Session::connect / loading the
    /// platform, and of creating the anchors.
    static Result<std::unique_ptr<DmaHeapEmulator>> create(const ShimOptions& options, const LibcCalls& libc);
    /// An emulator over @p session (tests and benchmarks).
    static Result<std::unique_ptr<DmaHeapEmulator>> create(std::shared_ptr<Session> session, const ShimOptions& options,
                                                           const LibcCalls& libc);
    ~DmaHeapEmulator();
    DmaHeapEmulator(const DmaHeapEmulator&) = delete;
    DmaHeapEmulator& operator=(const DmaHeapEmulator&) = delete;

    /// Names of the heaps served, in the session's order.
    std::vector<std::string> heapNames() const;
    std::string describe() const;

    /// openat() semantics (@p dirfd may be AT_FDCWD).
    std::optional<int> open(int dirfd, const char* path, int flags, mode_t mode);
    /// ioctl() on a heap fd or a buffer fd.
    std::optional<int> ioctl(int fd, unsigned long request, void* arg);
    /// mmap() of a heap fd or a buffer fd where the kernel would refuse
    /// what a memfd accepts. Where libc is to map (nothing returned) a
    /// buffer the shim handed out, MAP_POPULATE is added to @p *libcFlags
    /// (when given): the kernel's heaps map a buffer's pages at mmap time.
    std::optional<void*> mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset,
                              int* libcFlags = nullptr);
    std::optional<off_t> lseek(int fd, off_t offset, int whence);

    /// fstatat() semantics, for struct stat and (identical on 64-bit) stat64.
    std::optional<int> stat(int dirfd, const char* path, struct stat* out, int flags);
    /// statx() semantics.
    std::optional<int> statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* out);
    /// Rewrite what fstat() said about @p fd when it is a heap or directory fd.
    void fixFstat(int fd, struct stat* st);
    /// faccessat() semantics.
    std::optional<int> access(int dirfd, const char* path, int mode, int flags);
    /// getxattr() (@p list false: ENODATA) and listxattr() (true: none)
    /// of the emulated nodes, which carry no extended attributes.
    std::optional<ssize_t> xattr(const char* path, bool list);

    /// opendir() of the heap directory: a real DIR* (so that any libc
    /// function accepts it) whose entries readdir() serves.
    std::optional<DIR*> opendir(const char* path);
    /// After a real fdopendir(@p fd): serve its entries when @p fd is the
    /// heap directory.
    void adoptStream(DIR* dir, int fd);
    /// readdir()/readdir64() of a stream opendir() or adoptStream() made;
    /// std::nullopt for other streams.
    std::optional<struct dirent*> readdir(DIR* dir);
    std::optional<struct dirent64*> readdir64(DIR* dir);
    /// rewinddir/telldir/seekdir of our streams (false: not ours).
    bool rewinddir(DIR* dir);
    std::optional<long> telldir(DIR* dir);
    bool seekdir(DIR* dir, long position);
    /// Forget a stream before the real closedir().
    void forgetStream(DIR* dir);
    /// True while any stream is ours (a cheap test before locking).
    bool hasStreams() const { return streamCount_.load(std::memory_order_relaxed) > 0; }

    /// pthread_atfork handlers: prepareFork() waits until no thread is in
    /// an in-process session call and holds off new ones until the fork is
    /// done; in the child, a cenallocd connection is the parent's too, so
    /// the child makes its own on next use.
    void prepareFork();
    void parentAfterFork();
    void childAfterFork();

    /// Inodes of buffers known to be the session's (tests).
    size_t knownBufferCount() const;

private:
    struct Heap;
    struct Stream;
    struct FdKind;
    class SessionUse;
    /// An fd and the file it named when it was made.
    struct OwnFd {
        int fd = -1;
        dev_t dev = 0;
        ino_t ino = 0;
    };
    using InodeKey = std::pair<dev_t, ino_t>;
    DmaHeapEmulator(const LibcCalls& libc, const ShimOptions& options);
    Result<void> setUp(std::shared_ptr<Session> session);

    /// The session for one operation (empty when there is none), holding
    /// the fork gate in-process.
    SessionUse session();
    /// The current session after checking that its fds are its own.
    std::shared_ptr<Session> currentSession();
    bool ownsSessionFdsLocked() const;
    /// Abandon the session (@p lost: its fds are no longer its own) and
    /// make a new one when the emulator can.
    void renewSessionLocked(bool lost);
    /// Does @p fd still name the file it named when it was made?
    bool stillOurs(int fd, dev_t dev, ino_t ino) const;
    void rememberBuffer(const struct stat& st);
    void forgetBuffer(const struct stat& st);
    bool knownBuffer(const struct stat& st) const;
    void pruneKnownBuffers();
    /// The heap @p fd is an fd of, the heap directory, or neither.
    FdKind kindOf(int fd) const;
    /// What @p path (relative to @p dirfd) names, resolved into @p scratch.
    HeapPath classify(int dirfd, const char* path, char* scratch, size_t size) const;
    const Heap* findHeap(std::string_view name) const;
    /// True when @p fd names a buffer of the session (it then uses it).
    bool isBuffer(int fd);

    int heapIoctl(const Heap& heap, int fd, unsigned long request, void* arg);
    std::optional<int> bufferIoctl(int fd, const struct stat& st, unsigned long request, void* arg);
    int allocate(const Heap& heap, unsigned char* request);
    int openHeap(const Heap& heap, int flags, bool trailingSlash);
    int openDirectory(int flags);
    void heapStat(const Heap& heap, struct stat* out) const;
    void directoryStat(struct stat* out) const;
    Stream* streamLocked(DIR* dir);
    bool nextEntry(DIR* dir, std::string& name, unsigned char& type, uint64_t& inode, long& offset);

    const LibcCalls& libc_;
    const ShimOptions options_;
    std::vector<std::unique_ptr<Heap>> heaps_; // fixed after setUp
    UniqueFd directory_;                       // an empty, deleted directory: the fake /dev/dma_heap
    dev_t directoryDev_ = 0;
    ino_t directoryIno_ = 0;
    bool kernelDir_ = false; // the host has a real heap directory
    dev_t kernelDirDev_ = 0;
    ino_t kernelDirIno_ = 0;

    std::atomic<bool> forked_{false};
    /// Shared by every in-process session call, exclusive from prepareFork()
    /// to after the fork (the fork first: once it waits, new calls wait, so a
    /// stream of calls cannot starve it). A mutex and a count rather than a
    /// pthread rwlock: a rwlock's writer is recorded by thread id, which the
    /// child's thread does not have, so the child could not release it; a
    /// plain mutex held across fork is the child's to unlock.
    class ForkGate {
    public:
        void enter();
        void leave();
        /// Wait for the calls in flight and keep every new one out.
        void close();
        /// After the fork, in the parent or the child.
        void openInParent();
        void openInChild();

    private:
        std::mutex mutex_;
        std::condition_variable changed_; // a call left, or the fork is over
        unsigned calls_ = 0;              // guarded by mutex_
        bool forking_ = false;            // guarded by mutex_
    };
    ForkGate forkGate_;
    std::atomic<bool> inProcess_{false};              // the session is Session::local's: calls take the gate
    bool renewable_ = false;                          // made from ShimOptions: can make another session
    mutable std::mutex mutex_;                        // taken after forkGate_, never before
    std::shared_ptr<Session> session_;                // guarded by mutex_
    std::vector<OwnFd> sessionFds_;                   // guarded by mutex_
    std::map<DIR*, std::unique_ptr<Stream>> streams_; // guarded by mutex_
    std::atomic<size_t> streamCount_{0};

    mutable std::mutex knownMutex_;   // never held across a session call
    std::set<InodeKey> knownBuffers_; // guarded by knownMutex_
    size_t pruneAt_;                  // guarded by knownMutex_
    bool pruning_ = false;            // guarded by knownMutex_
};

} // namespace cenalloc::shim
