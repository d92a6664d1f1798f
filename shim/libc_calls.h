// SPDX-License-Identifier: MIT
// The C library functions the dma-heap shim interposes, as found after it in the lookup order.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

struct statx;

namespace cenalloc::shim {

/// Pointers to the next definition of every function the shim interposes
/// (dlsym(RTLD_NEXT)): the C library's, or another interposer's (a
/// sanitizer runtime preloaded first). Whatever the shim does not handle
/// goes to these, unchanged.
///
/// A pointer is null only when no later object defines the function (then
/// the call fails with ENOSYS).
struct LibcCalls {
    int (*open)(const char*, int, ...) = nullptr;
    int (*open64)(const char*, int, ...) = nullptr;
    int (*openat)(int, const char*, int, ...) = nullptr;
    int (*openat64)(int, const char*, int, ...) = nullptr;
    int (*open_2)(const char*, int) = nullptr;
    int (*open64_2)(const char*, int) = nullptr;
    int (*openat_2)(int, const char*, int) = nullptr;
    int (*openat64_2)(int, const char*, int) = nullptr;
    int (*ioctl)(int, unsigned long, ...) = nullptr;
    void* (*mmap)(void*, size_t, int, int, int, off_t) = nullptr;
    void* (*mmap64)(void*, size_t, int, int, int, off64_t) = nullptr;
    off_t (*lseek)(int, off_t, int) = nullptr;
    off64_t (*lseek64)(int, off64_t, int) = nullptr;
    DIR* (*opendir)(const char*) = nullptr;
    DIR* (*fdopendir)(int) = nullptr;
    int (*closedir)(DIR*) = nullptr;
    struct dirent* (*readdir)(DIR*) = nullptr;
    struct dirent64* (*readdir64)(DIR*) = nullptr;
    int (*readdir_r)(DIR*, struct dirent*, struct dirent**) = nullptr;
    int (*readdir64_r)(DIR*, struct dirent64*, struct dirent64**) = nullptr;
    void (*rewinddir)(DIR*) = nullptr;
    long (*telldir)(DIR*) = nullptr;
    void (*seekdir)(DIR*, long) = nullptr;
    int (*scandir)(const char*, struct dirent***, int (*)(const struct dirent*),
                   int (*)(const struct dirent**, const struct dirent**)) = nullptr;
    int (*scandir64)(const char*, struct dirent64***, int (*)(const struct dirent64*),
                     int (*)(const struct dirent64**, const struct dirent64**)) = nullptr;
    int (*stat)(const char*, struct stat*) = nullptr;
    int (*stat64)(const char*, struct stat64*) = nullptr;
    int (*lstat)(const char*, struct stat*) = nullptr;
    int (*lstat64)(const char*, struct stat64*) = nullptr;
    int (*fstat)(int, struct stat*) = nullptr;
    int (*fstat64)(int, struct stat64*) = nullptr;
    int (*fstatat)(int, const char*, struct stat*, int) = nullptr;
    int (*fstatat64)(int, const char*, struct stat64*, int) = nullptr;
    int (*xstat)(int, const char*, struct stat*) = nullptr;
    int (*xstat64)(int, const char*, struct stat64*) = nullptr;
    int (*lxstat)(int, const char*, struct stat*) = nullptr;
    int (*lxstat64)(int, const char*, struct stat64*) = nullptr;
    int (*fxstat)(int, int, struct stat*) = nullptr;
    int (*fxstat64)(int, int, struct stat64*) = nullptr;
    int (*fxstatat)(int, int, const char*, struct stat*, int) = nullptr;
    int (*fxstatat64)(int, int, const char*, struct stat64*, int) = nullptr;
    int (*statx)(int, const char*, int, unsigned int, struct statx*) = nullptr;
    int (*access)(const char*, int) = nullptr;
    int (*faccessat)(int, const char*, int, int) = nullptr;
    ssize_t (*getxattr)(const char*, const char*, void*, size_t) = nullptr;
    ssize_t (*lgetxattr)(const char*, const char*, void*, size_t) = nullptr;
    ssize_t (*listxattr)(const char*, char*, size_t) = nullptr;
    ssize_t (*llistxattr)(const char*, char*, size_t) = nullptr;
};

/// The next definitions, resolved on first use (thread-safe; dlsym may
/// allocate, so the first call must not come from a signal handler).
const LibcCalls& nextLibc();

} // namespace cenalloc::shim
