// SPDX-License-Identifier: MIT
// DmaHeapEmulator: cenalloc's heaps behind the kernel's /dev/dma_heap and dma-buf uapi.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <dirent.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <vector>

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
/// Thread safety: all methods may be called concurrently.
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
    /// what a memfd accepts.
    std::optional<void*> mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset);
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

    /// Called in the child after fork(): a cenallocd connection is shared
    /// with the parent, so the child makes its own on next use.
    void forked() { forked_.store(true, std::memory_order_relaxed); }

private:
    struct Heap;
    struct Stream;
    struct FdKind;
    DmaHeapEmulator(const LibcCalls& libc, const ShimOptions& options);
    Result<void> setUp(std::shared_ptr<Session> session);

    std::shared_ptr<Session> session();
    /// The heap @p fd is an fd of, the heap directory, or neither.
    FdKind kindOf(int fd) const;
    /// What @p path (relative to @p dirfd) names, resolved into @p scratch.
    HeapPath classify(int dirfd, const char* path, char* scratch, size_t size) const;
    const Heap* findHeap(std::string_view name) const;
    /// True when @p fd names a buffer of the session (it then uses it).
    bool isBuffer(int fd);

    int heapIoctl(const Heap& heap, int fd, unsigned long request, void* arg);
    std::optional<int> bufferIoctl(int fd, unsigned long request, void* arg);
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
    mutable std::mutex mutex_;
    std::shared_ptr<Session> session_;                // guarded by mutex_
    std::map<DIR*, std::unique_ptr<Stream>> streams_; // guarded by mutex_
    std::atomic<size_t> streamCount_{0};
};

} // namespace cenalloc::shim
