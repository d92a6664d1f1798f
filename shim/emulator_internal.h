// SPDX-License-Identifier: MIT
// What the files of DmaHeapEmulator share: its private types and the small errno helpers every call path uses.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <dirent.h>
#include <memory>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "shim/emulator.h"

namespace cenalloc::shim {

inline constexpr size_t kPage = 4096;
/// Known buffer inodes kept before the set is pruned against bufinfo (then
/// twice what is left alive).
inline constexpr size_t kKnownBuffersFloor = 1024;

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

inline int fail(int error) {
    errno = error;
    return -1;
}

inline void* mapFailed(int error) {
    errno = error;
    return MAP_FAILED;
}

inline std::string procFdPath(int fd) {
    return fmt::format("/proc/self/fd/{}", fd);
}

/// Is @p session in-process (Session::local) rather than a cenallocd connection?
bool isInProcess(const Session& session);

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

/// The session for one operation, holding the fork gate while in-process
/// (emulator_session.cpp).
class DmaHeapEmulator::SessionUse {
public:
    explicit SessionUse(DmaHeapEmulator& emulator);
    ~SessionUse();
    SessionUse(const SessionUse&) = delete;
    SessionUse& operator=(const SessionUse&) = delete;

    explicit operator bool() const { return session_ != nullptr; }
    Session* operator->() const { return session_.get(); }

private:
    DmaHeapEmulator& emulator_;
    bool gated_ = false;
    std::shared_ptr<Session> session_;
};

} // namespace cenalloc::shim
