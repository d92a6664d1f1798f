// SPDX-License-Identifier: MIT
// Resolution of the interposed C library functions with dlsym(RTLD_NEXT).
#include "shim/libc_calls.h"

#include <dlfcn.h>

namespace cenalloc::shim {

namespace {

template <typename F> void resolve(F*& slot, const char* name) {
    slot = reinterpret_cast<F*>(::dlsym(RTLD_NEXT, name));
}

LibcCalls resolveAll() {
    LibcCalls c;
    resolve(c.open, "open");
    resolve(c.open64, "open64");
    resolve(c.openat, "openat");
    resolve(c.openat64, "openat64");
    resolve(c.open_2, "__open_2");
    resolve(c.open64_2, "__open64_2");
    resolve(c.openat_2, "__openat_2");
    resolve(c.openat64_2, "__openat64_2");
    resolve(c.ioctl, "ioctl");
    resolve(c.mmap, "mmap");
    resolve(c.mmap64, "mmap64");
    resolve(c.lseek, "lseek");
    resolve(c.lseek64, "lseek64");
    resolve(c.opendir, "opendir");
    resolve(c.fdopendir, "fdopendir");
    resolve(c.closedir, "closedir");
    resolve(c.readdir, "readdir");
    resolve(c.readdir64, "readdir64");
    resolve(c.readdir_r, "readdir_r");
    resolve(c.readdir64_r, "readdir64_r");
    resolve(c.rewinddir, "rewinddir");
    resolve(c.telldir, "telldir");
    resolve(c.seekdir, "seekdir");
    resolve(c.scandir, "scandir");
    resolve(c.scandir64, "scandir64");
    resolve(c.stat, "stat");
    resolve(c.stat64, "stat64");
    resolve(c.lstat, "lstat");
    resolve(c.lstat64, "lstat64");
    resolve(c.fstat, "fstat");
    resolve(c.fstat64, "fstat64");
    resolve(c.fstatat, "fstatat");
    resolve(c.fstatat64, "fstatat64");
    resolve(c.xstat, "__xstat");
    resolve(c.xstat64, "__xstat64");
    resolve(c.lxstat, "__lxstat");
    resolve(c.lxstat64, "__lxstat64");
    resolve(c.fxstat, "__fxstat");
    resolve(c.fxstat64, "__fxstat64");
    resolve(c.fxstatat, "__fxstatat");
    resolve(c.fxstatat64, "__fxstatat64");
    resolve(c.statx, "statx");
    resolve(c.access, "access");
    resolve(c.faccessat, "faccessat");
    resolve(c.getxattr, "getxattr");
    resolve(c.lgetxattr, "lgetxattr");
    resolve(c.listxattr, "listxattr");
    resolve(c.llistxattr, "llistxattr");
    return c;
}

} // namespace

const LibcCalls& nextLibc() {
    // A function-local static: initialised once, thread-safely, on first use.
    static const LibcCalls calls = resolveAll();
    return calls;
}

} // namespace cenalloc::shim
