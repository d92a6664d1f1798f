// SPDX-License-Identifier: MIT
// libcenalloc-dmaheap.so: the LD_PRELOAD entry points that route /dev/dma_heap and dma-buf calls to cenalloc.
//
// Every interposed function first decides, without allocating or locking,
// whether the call can concern the shim (a path mentioning "dma_heap", an
// fd once the shim is active); everything else goes straight to the next
// definition (libc). The emulator is created on the first call that needs
// it and lives until the process ends (it is never destroyed, so that no
// call racing with exit() finds it gone).
//
// Calls the shim itself makes while serving a call (the cenalloc library
// opening files, fstat-ing fds) pass straight through: a thread-local flag
// marks them.
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <mutex>
#include <new>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <type_traits>
#include <unistd.h>

#include "shim/emulator.h"
#include "shim/heap_paths.h"
#include "shim/libc_calls.h"

using cenalloc::shim::DmaHeapEmulator;
using cenalloc::shim::LibcCalls;
using cenalloc::shim::mentionsHeapDir;
using cenalloc::shim::nextLibc;
using cenalloc::shim::ShimOptions;

namespace {

thread_local bool insideShim = false;

/// Marks the current thread as running shim code for its lifetime.
class ShimScope {
public:
    ShimScope() : outer_(insideShim) { insideShim = true; }
    ~ShimScope() { insideShim = outer_; }
    ShimScope(const ShimScope&) = delete;
    ShimScope& operator=(const ShimScope&) = delete;

private:
    bool outer_;
};

/// Storage for the one emulator, never destroyed.
alignas(std::unique_ptr<DmaHeapEmulator>) unsigned char emulatorStorage[sizeof(std::unique_ptr<DmaHeapEmulator>)];
std::atomic<DmaHeapEmulator*> activeEmulator{nullptr};
std::atomic<bool> setUpFailed{false};
std::mutex setUpMutex;

// fork() from any thread while others are inside the shim: the child must
// find no lock of the shim held by a thread it does not have. The set-up
// lock and the emulator's own (its fork gate: no in-process session call
// in flight) are taken before the fork and released on both sides.
void prepareFork() {
    setUpMutex.lock();
    if (DmaHeapEmulator* e = activeEmulator.load(std::memory_order_acquire))
        e->prepareFork();
}

void parentAfterFork() {
    if (DmaHeapEmulator* e = activeEmulator.load(std::memory_order_acquire))
        e->parentAfterFork();
    setUpMutex.unlock();
}

void childAfterFork() {
    if (DmaHeapEmulator* e = activeEmulator.load(std::memory_order_acquire))
        e->childAfterFork();
    setUpMutex.unlock();
}

// Registered as the library loads, before any thread can be inside it.
__attribute__((constructor)) void registerForkHandlers() {
    pthread_atfork(prepareFork, parentAfterFork, childAfterFork);
}

/// The emulator if it exists, or (@p create) after creating it. nullptr when
/// the shim is inactive: inside its own code, or set-up failed.
DmaHeapEmulator* emulator(bool create) {
    if (insideShim)
        return nullptr;
    DmaHeapEmulator* e = activeEmulator.load(std::memory_order_acquire);
    if (e || !create || setUpFailed.load(std::memory_order_relaxed))
        return e;
    std::lock_guard lock(setUpMutex);
    e = activeEmulator.load(std::memory_order_acquire);
    if (e || setUpFailed.load(std::memory_order_relaxed))
        return e;
    ShimScope scope;
    const int savedErrno = errno;
    auto options = ShimOptions::fromEnvironment();
    auto created = options ? DmaHeapEmulator::create(*options, nextLibc())
                           : cenalloc::Result<std::unique_ptr<DmaHeapEmulator>>(options.error());
    if (!created) {
        // The one thing the shim ever prints: without it a program would
        // only see /dev/dma_heap missing and not know why.
        std::fprintf(stderr, "libcenalloc-dmaheap: %s; /dev/dma_heap is not emulated\n",
                     created.error().toString().c_str());
        setUpFailed.store(true, std::memory_order_relaxed);
        errno = savedErrno;
        return nullptr;
    }
    auto* holder = new (emulatorStorage) std::unique_ptr<DmaHeapEmulator>(std::move(*created));
    activeEmulator.store(holder->get(), std::memory_order_release);
    errno = savedErrno;
    return holder->get();
}

const LibcCalls& libc() {
    return nextLibc();
}

int noSymbol() {
    errno = ENOSYS;
    return -1;
}

bool isEmptyPath(const char* path) {
    return path != nullptr && *path == '\0';
}

bool needsMode(int flags) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/// The emulator to ask about @p path relative to @p dirfd, if any.
DmaHeapEmulator* forPath(int dirfd, const char* path) {
    if (mentionsHeapDir(path))
        return emulator(true);
    // Relative to a directory fd, a plain name may still be a heap when the
    // fd is the heap directory: only once the shim is active.
    if (path && path[0] != '/' && dirfd != AT_FDCWD)
        return emulator(false);
    return nullptr;
}

template <typename Real> int openCommon(int dirfd, const char* path, int flags, mode_t mode, Real real) {
    if (DmaHeapEmulator* e = forPath(dirfd, path)) {
        ShimScope scope;
        if (auto result = e->open(dirfd, path, flags, mode))
            return *result;
    }
    return real();
}

template <typename Stat, typename Real> int statCommon(int dirfd, const char* path, Stat* out, int flags, Real real) {
    static_assert(sizeof(Stat) == sizeof(struct stat), "stat64 is stat on this ABI");
    DmaHeapEmulator* e = forPath(dirfd, path);
    if (!e && (flags & AT_EMPTY_PATH) && isEmptyPath(path))
        e = emulator(false);
    if (e) {
        ShimScope scope;
        if (auto result = e->stat(dirfd, path, reinterpret_cast<struct stat*>(out), flags))
            return *result;
    }
    return real();
}

template <typename Stat> int fixedFstat(int fd, Stat* out, int result) {
    if (result == 0) {
        if (DmaHeapEmulator* e = emulator(false)) {
            ShimScope scope;
            e->fixFstat(fd, reinterpret_cast<struct stat*>(out));
        }
    }
    return result;
}

DmaHeapEmulator* streams() {
    DmaHeapEmulator* e = emulator(false);
    return e && e->hasStreams() ? e : nullptr;
}

/// scandir() over the emulated directory: glibc's own scandir reads with
/// internal calls the shim cannot see. Entries are malloc()ed as glibc's are,
/// so that the caller frees them with free().
template <typename Entry, typename Filter, typename Compare>
int scanEmulated(DmaHeapEmulator& e, DIR* dir, Entry*** list, Filter filter, Compare compare) {
    Entry** out = nullptr;
    size_t count = 0;
    size_t capacity = 0;
    bool outOfMemory = false;
    for (;;) {
        Entry* entry;
        if constexpr (std::is_same_v<Entry, struct dirent64>)
            entry = *e.readdir64(dir);
        else
            entry = *e.readdir(dir);
        if (!entry)
            break;
        if (filter && !filter(entry))
            continue;
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            auto** grown = static_cast<Entry**>(std::realloc(out, capacity * sizeof *out));
            if (!grown) {
                outOfMemory = true;
                break;
            }
            out = grown;
        }
        auto* copy = static_cast<Entry*>(std::malloc(sizeof(Entry)));
        if (!copy) {
            outOfMemory = true;
            break;
        }
        std::memcpy(copy, entry, sizeof(Entry));
        out[count++] = copy;
    }
    e.forgetStream(dir);
    libc().closedir(dir);
    if (outOfMemory) {
        for (size_t i = 0; i < count; ++i)
            std::free(out[i]);
        std::free(out);
        errno = ENOMEM;
        return -1;
    }
    if (compare && count > 1)
        std::qsort(out, count, sizeof *out, reinterpret_cast<int (*)(const void*, const void*)>(compare));
    *list = out;
    return static_cast<int>(count);
}

} // namespace

extern "C" {

// The cenalloc code linked into this library makes its descriptors with
// these (the link wraps them: -Wl,--wrap): the emulator records each one a
// session makes, so that it can tell later whether the number is still its
// own. Not exported; the program's own calls never come here.
int __real_socket(int domain, int type, int protocol);
int __real_inotify_init1(int flags);

int __wrap_socket(int domain, int type, int protocol) {
    int fd = __real_socket(domain, type, protocol);
    cenalloc::shim::noteCreatedFd(fd);
    return fd;
}

int __wrap_inotify_init1(int flags) {
    int fd = __real_inotify_init1(flags);
    cenalloc::shim::noteCreatedFd(fd);
    return fd;
}

// ------------------------------------------------------------------ open

int open(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needsMode(flags)) {
        va_list args;
        va_start(args, flags);
        mode = va_arg(args, mode_t);
        va_end(args);
    }
    return openCommon(AT_FDCWD, path, flags, mode,
                      [&] { return libc().open ? libc().open(path, flags, mode) : noSymbol(); });
}

int open64(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needsMode(flags)) {
        va_list args;
        va_start(args, flags);
        mode = va_arg(args, mode_t);
        va_end(args);
    }
    return openCommon(AT_FDCWD, path, flags, mode,
                      [&] { return libc().open64 ? libc().open64(path, flags, mode) : noSymbol(); });
}

int openat(int dirfd, const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needsMode(flags)) {
        va_list args;
        va_start(args, flags);
        mode = va_arg(args, mode_t);
        va_end(args);
    }
    return openCommon(dirfd, path, flags, mode,
                      [&] { return libc().openat ? libc().openat(dirfd, path, flags, mode) : noSymbol(); });
}

int openat64(int dirfd, const char* path, int flags, ...) {
    mode_t mode = 0;
    if (needsMode(flags)) {
        va_list args;
        va_start(args, flags);
        mode = va_arg(args, mode_t);
        va_end(args);
    }
    return openCommon(dirfd, path, flags, mode,
                      [&] { return libc().openat64 ? libc().openat64(dirfd, path, flags, mode) : noSymbol(); });
}

// The _FORTIFY_SOURCE entry points.
int __open_2(const char* path, int flags) {
    return openCommon(AT_FDCWD, path, flags, 0,
                      [&] { return libc().open_2 ? libc().open_2(path, flags) : noSymbol(); });
}

int __open64_2(const char* path, int flags) {
    return openCommon(AT_FDCWD, path, flags, 0,
                      [&] { return libc().open64_2 ? libc().open64_2(path, flags) : noSymbol(); });
}

int __openat_2(int dirfd, const char* path, int flags) {
    return openCommon(dirfd, path, flags, 0,
                      [&] { return libc().openat_2 ? libc().openat_2(dirfd, path, flags) : noSymbol(); });
}

int __openat64_2(int dirfd, const char* path, int flags) {
    return openCommon(dirfd, path, flags, 0,
                      [&] { return libc().openat64_2 ? libc().openat64_2(dirfd, path, flags) : noSymbol(); });
}

// ------------------------------------------------------- ioctl, mmap, lseek

int ioctl(int fd, unsigned long request, ...) noexcept {
    va_list args;
    va_start(args, request);
    void* arg = va_arg(args, void*);
    va_end(args);
    // A dma-buf ioctl may name a buffer received from another process
    // before this one ever opened a heap: it activates the shim.
    DmaHeapEmulator* e = emulator(_IOC_TYPE(request) == 'b');
    if (e) {
        ShimScope scope;
        if (auto result = e->ioctl(fd, request, arg))
            return *result;
    }
    return libc().ioctl ? libc().ioctl(fd, request, arg) : noSymbol();
}

void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) noexcept {
    if (fd >= 0 && !(flags & MAP_ANONYMOUS)) {
        if (DmaHeapEmulator* e = emulator(false)) {
            ShimScope scope;
            if (auto result = e->mmap(addr, length, prot, flags, fd, offset, &flags))
                return *result;
        }
    }
    if (!libc().mmap) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    return libc().mmap(addr, length, prot, flags, fd, offset);
}

void* mmap64(void* addr, size_t length, int prot, int flags, int fd, off64_t offset) noexcept {
    if (fd >= 0 && !(flags & MAP_ANONYMOUS)) {
        if (DmaHeapEmulator* e = emulator(false)) {
            ShimScope scope;
            if (auto result = e->mmap(addr, length, prot, flags, fd, offset, &flags))
                return *result;
        }
    }
    if (!libc().mmap64) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    return libc().mmap64(addr, length, prot, flags, fd, offset);
}

off_t lseek(int fd, off_t offset, int whence) noexcept {
    if (DmaHeapEmulator* e = emulator(false)) {
        ShimScope scope;
        if (auto result = e->lseek(fd, offset, whence))
            return *result;
    }
    return libc().lseek ? libc().lseek(fd, offset, whence) : noSymbol();
}

off64_t lseek64(int fd, off64_t offset, int whence) noexcept {
    if (DmaHeapEmulator* e = emulator(false)) {
        ShimScope scope;
        if (auto result = e->lseek(fd, offset, whence))
            return *result;
    }
    return libc().lseek64 ? libc().lseek64(fd, offset, whence) : noSymbol();
}

// ------------------------------------------------------------- directory

DIR* opendir(const char* path) {
    if (mentionsHeapDir(path)) {
        if (DmaHeapEmulator* e = emulator(true)) {
            ShimScope scope;
            if (auto result = e->opendir(path))
                return *result;
        }
    }
    if (!libc().opendir) {
        errno = ENOSYS;
        return nullptr;
    }
    return libc().opendir(path);
}

DIR* fdopendir(int fd) {
    if (!libc().fdopendir) {
        errno = ENOSYS;
        return nullptr;
    }
    DIR* dir = libc().fdopendir(fd);
    if (dir) {
        if (DmaHeapEmulator* e = emulator(false)) {
            ShimScope scope;
            e->adoptStream(dir, fd);
        }
    }
    return dir;
}

int closedir(DIR* dir) {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        e->forgetStream(dir);
    }
    return libc().closedir ? libc().closedir(dir) : noSymbol();
}

struct dirent* readdir(DIR* dir) {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (auto result = e->readdir(dir))
            return *result;
    }
    return libc().readdir ? libc().readdir(dir) : nullptr;
}

struct dirent64* readdir64(DIR* dir) {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (auto result = e->readdir64(dir))
            return *result;
    }
    return libc().readdir64 ? libc().readdir64(dir) : nullptr;
}

int readdir_r(DIR* dir, struct dirent* entry, struct dirent** result) {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (auto next = e->readdir(dir)) {
            if (*next) {
                std::memcpy(entry, *next, sizeof *entry);
                *result = entry;
            } else {
                *result = nullptr;
            }
            return 0;
        }
    }
    return libc().readdir_r ? libc().readdir_r(dir, entry, result) : ENOSYS;
}

int readdir64_r(DIR* dir, struct dirent64* entry, struct dirent64** result) {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (auto next = e->readdir64(dir)) {
            if (*next) {
                std::memcpy(entry, *next, sizeof *entry);
                *result = entry;
            } else {
                *result = nullptr;
            }
            return 0;
        }
    }
    return libc().readdir64_r ? libc().readdir64_r(dir, entry, result) : ENOSYS;
}

void rewinddir(DIR* dir) noexcept {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (e->rewinddir(dir))
            return;
    }
    if (libc().rewinddir)
        libc().rewinddir(dir);
}

long telldir(DIR* dir) noexcept {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (auto result = e->telldir(dir))
            return *result;
    }
    return libc().telldir ? libc().telldir(dir) : noSymbol();
}

void seekdir(DIR* dir, long position) noexcept {
    if (DmaHeapEmulator* e = streams()) {
        ShimScope scope;
        if (e->seekdir(dir, position))
            return;
    }
    if (libc().seekdir)
        libc().seekdir(dir, position);
}

int scandir(const char* path, struct dirent*** list, int (*filter)(const struct dirent*),
            int (*compare)(const struct dirent**, const struct dirent**)) {
    if (mentionsHeapDir(path)) {
        if (DmaHeapEmulator* e = emulator(true)) {
            ShimScope scope;
            if (auto dir = e->opendir(path)) {
                if (!*dir)
                    return -1;
                if (e->hasStreams())
                    return scanEmulated(*e, *dir, list, filter, compare);
                libc().closedir(*dir);
            }
        }
    }
    return libc().scandir ? libc().scandir(path, list, filter, compare) : noSymbol();
}

int scandir64(const char* path, struct dirent64*** list, int (*filter)(const struct dirent64*),
              int (*compare)(const struct dirent64**, const struct dirent64**)) {
    if (mentionsHeapDir(path)) {
        if (DmaHeapEmulator* e = emulator(true)) {
            ShimScope scope;
            if (auto dir = e->opendir(path)) {
                if (!*dir)
                    return -1;
                if (e->hasStreams())
                    return scanEmulated(*e, *dir, list, filter, compare);
                libc().closedir(*dir);
            }
        }
    }
    return libc().scandir64 ? libc().scandir64(path, list, filter, compare) : noSymbol();
}

// ------------------------------------------------------------------ stat

int stat(const char* path, struct stat* out) noexcept {
    return statCommon(AT_FDCWD, path, out, 0, [&] { return libc().stat ? libc().stat(path, out) : noSymbol(); });
}

int stat64(const char* path, struct stat64* out) noexcept {
    return statCommon(AT_FDCWD, path, out, 0, [&] { return libc().stat64 ? libc().stat64(path, out) : noSymbol(); });
}

int lstat(const char* path, struct stat* out) noexcept {
    return statCommon(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW,
                      [&] { return libc().lstat ? libc().lstat(path, out) : noSymbol(); });
}

int lstat64(const char* path, struct stat64* out) noexcept {
    return statCommon(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW,
                      [&] { return libc().lstat64 ? libc().lstat64(path, out) : noSymbol(); });
}

int fstatat(int dirfd, const char* path, struct stat* out, int flags) noexcept {
    int result = statCommon(dirfd, path, out, flags,
                            [&] { return libc().fstatat ? libc().fstatat(dirfd, path, out, flags) : noSymbol(); });
    return result;
}

int fstatat64(int dirfd, const char* path, struct stat64* out, int flags) noexcept {
    return statCommon(dirfd, path, out, flags,
                      [&] { return libc().fstatat64 ? libc().fstatat64(dirfd, path, out, flags) : noSymbol(); });
}

int fstat(int fd, struct stat* out) noexcept {
    return fixedFstat(fd, out, libc().fstat ? libc().fstat(fd, out) : noSymbol());
}

int fstat64(int fd, struct stat64* out) noexcept {
    return fixedFstat(fd, out, libc().fstat64 ? libc().fstat64(fd, out) : noSymbol());
}

// The pre-2.33 glibc entry points, still called by older binaries.
int __xstat(int version, const char* path, struct stat* out) {
    return statCommon(AT_FDCWD, path, out, 0,
                      [&] { return libc().xstat ? libc().xstat(version, path, out) : noSymbol(); });
}

int __xstat64(int version, const char* path, struct stat64* out) {
    return statCommon(AT_FDCWD, path, out, 0,
                      [&] { return libc().xstat64 ? libc().xstat64(version, path, out) : noSymbol(); });
}

int __lxstat(int version, const char* path, struct stat* out) {
    return statCommon(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW,
                      [&] { return libc().lxstat ? libc().lxstat(version, path, out) : noSymbol(); });
}

int __lxstat64(int version, const char* path, struct stat64* out) {
    return statCommon(AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW,
                      [&] { return libc().lxstat64 ? libc().lxstat64(version, path, out) : noSymbol(); });
}

int __fxstat(int version, int fd, struct stat* out) {
    return fixedFstat(fd, out, libc().fxstat ? libc().fxstat(version, fd, out) : noSymbol());
}

int __fxstat64(int version, int fd, struct stat64* out) {
    return fixedFstat(fd, out, libc().fxstat64 ? libc().fxstat64(version, fd, out) : noSymbol());
}

int __fxstatat(int version, int dirfd, const char* path, struct stat* out, int flags) {
    return statCommon(dirfd, path, out, flags,
                      [&] { return libc().fxstatat ? libc().fxstatat(version, dirfd, path, out, flags) : noSymbol(); });
}

int __fxstatat64(int version, int dirfd, const char* path, struct stat64* out, int flags) {
    return statCommon(dirfd, path, out, flags, [&] {
        return libc().fxstatat64 ? libc().fxstatat64(version, dirfd, path, out, flags) : noSymbol();
    });
}

int statx(int dirfd, const char* path, int flags, unsigned int mask, struct statx* out) noexcept {
    DmaHeapEmulator* e = forPath(dirfd, path);
    if (!e && (flags & AT_EMPTY_PATH) && isEmptyPath(path))
        e = emulator(false);
    if (e) {
        ShimScope scope;
        if (auto result = e->statx(dirfd, path, flags, mask, out))
            return *result;
    }
    return libc().statx ? libc().statx(dirfd, path, flags, mask, out) : noSymbol();
}

int access(const char* path, int mode) noexcept {
    if (DmaHeapEmulator* e = forPath(AT_FDCWD, path)) {
        ShimScope scope;
        if (auto result = e->access(AT_FDCWD, path, mode, 0))
            return *result;
    }
    return libc().access ? libc().access(path, mode) : noSymbol();
}

int faccessat(int dirfd, const char* path, int mode, int flags) noexcept {
    if (DmaHeapEmulator* e = forPath(dirfd, path)) {
        ShimScope scope;
        if (auto result = e->access(dirfd, path, mode, flags))
            return *result;
    }
    return libc().faccessat ? libc().faccessat(dirfd, path, mode, flags) : noSymbol();
}

ssize_t getxattr(const char* path, const char* name, void* value, size_t size) noexcept {
    if (DmaHeapEmulator* e = forPath(AT_FDCWD, path)) {
        ShimScope scope;
        if (auto result = e->xattr(path, false))
            return *result;
    }
    return libc().getxattr ? libc().getxattr(path, name, value, size) : noSymbol();
}

ssize_t lgetxattr(const char* path, const char* name, void* value, size_t size) noexcept {
    if (DmaHeapEmulator* e = forPath(AT_FDCWD, path)) {
        ShimScope scope;
        if (auto result = e->xattr(path, false))
            return *result;
    }
    return libc().lgetxattr ? libc().lgetxattr(path, name, value, size) : noSymbol();
}

ssize_t listxattr(const char* path, char* list, size_t size) noexcept {
    if (DmaHeapEmulator* e = forPath(AT_FDCWD, path)) {
        ShimScope scope;
        if (auto result = e->xattr(path, true))
            return *result;
    }
    return libc().listxattr ? libc().listxattr(path, list, size) : noSymbol();
}

ssize_t llistxattr(const char* path, char* list, size_t size) noexcept {
    if (DmaHeapEmulator* e = forPath(AT_FDCWD, path)) {
        ShimScope scope;
        if (auto result = e->xattr(path, true))
            return *result;
    }
    return libc().llistxattr ? libc().llistxattr(path, list, size) : noSymbol();
}

} // extern "C"
