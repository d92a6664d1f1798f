// SPDX-License-Identifier: MIT
// DmaHeapEmulator's directory streams: /dev/dma_heap listed by opendir() and readdir(), merged with the kernel's.
#include "shim/emulator.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

#include "shim/emulator_internal.h"

namespace cenalloc::shim {

namespace {

/// telldir() positions past the real entries of a merged listing.
constexpr long kExtraPosition = 1L << 62;

} // namespace

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
