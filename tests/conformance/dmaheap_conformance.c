// SPDX-License-Identifier: MIT
// dma-heap / dma-buf ABI conformance cases, written against the kernel uapi headers only.
//
// The same program runs against a real kernel (statically linked, in a qemu
// guest: scripts/kernel-conformance) and against cenalloc through the
// LD_PRELOAD shim (tests/shim). It prints one deterministic line per case,
// "case-name: result" (errno names, "ok", sizes; never an fd number, an
// address or a time), and a final "summary:" line. The two outputs must be
// identical: the comparison, not this program, decides conformance. It exits
// 0 when it ran to the end, 2 when the heap could not even be opened.
//
// Usage: dmaheap_conformance [heap-name]   (default "system")
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/dma-heap.h>

#define HEAP_DIR "/dev/dma_heap"
#define PAGE 4096u

static const char* heapName = "system";
static char heapPath[256];
static int heapFd = -1;
static unsigned cases;

// ------------------------------------------------------------------ output

static void report(const char* name, const char* format, ...) __attribute__((format(printf, 2, 3)));

static void report(const char* name, const char* format, ...) {
    va_list args;
    va_start(args, format);
    printf("%s: ", name);
    vprintf(format, args);
    printf("\n");
    va_end(args);
    fflush(stdout);
    ++cases;
}

static const char* errnoName(int error) {
    const char* name = strerrorname_np(error);
    if (name)
        return name;
    static char unknown[32];
    snprintf(unknown, sizeof unknown, "errno-%d", error);
    return unknown;
}

static const char* accmodeName(int flags) {
    switch (flags & O_ACCMODE) {
    case O_RDONLY: return "O_RDONLY";
    case O_WRONLY: return "O_WRONLY";
    case O_RDWR: return "O_RDWR";
    default: return "O_ACCMODE";
    }
}

// ------------------------------------------------------------------ helpers

/// Open fds of this process, counted from /proc/self/fd: how a test sees an
/// fd the kernel installed but never reported.
static int countFds(void) {
    DIR* dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int count = 0;
    struct dirent* entry;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] != '.')
            ++count;
    closedir(dir);
    return count;
}

/// DMA_HEAP_IOCTL_ALLOC with the standard struct. Returns the buffer fd, or
/// -errno.
static int allocate(int heap, uint64_t len, uint32_t fdFlags, uint64_t heapFlags) {
    struct dma_heap_allocation_data data = {.len = len, .fd = 0, .fd_flags = fdFlags, .heap_flags = heapFlags};
    if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) != 0)
        return -errno;
    return (int)data.fd;
}

static int syncBuffer(int fd, uint64_t flags) {
    struct dma_buf_sync sync = {.flags = flags};
    return ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) == 0 ? 0 : -errno;
}

static long long sizeOf(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    return (long long)st.st_size;
}

/// "ok size=N seek_end=N cloexec=B accmode=M" for a fresh buffer fd.
static void describeBuffer(int fd, char* out, size_t size) {
    long long statSize = sizeOf(fd);
    off_t end = lseek(fd, 0, SEEK_END);
    int fdFlags = fcntl(fd, F_GETFD);
    int flFlags = fcntl(fd, F_GETFL);
    snprintf(out, size, "ok size=%lld seek_end=%lld cloexec=%d accmode=%s", statSize, (long long)end,
             (fdFlags & FD_CLOEXEC) ? 1 : 0, accmodeName(flFlags));
}

static void reportAlloc(const char* name, int fd) {
    if (fd < 0) {
        report(name, "%s", errnoName(-fd));
        return;
    }
    char text[160];
    describeBuffer(fd, text, sizeof text);
    report(name, "%s", text);
    close(fd);
}

static void reportErrno(const char* name, int ret) {
    if (ret == 0)
        report(name, "ok");
    else
        report(name, "%s", errnoName(-ret));
}

/// Map @p fd shared read-write; NULL with errno on failure.
static unsigned char* mapShared(int fd, size_t size, int prot, off_t offset) {
    void* p = mmap(NULL, size, prot, MAP_SHARED, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}

static int allZero(const unsigned char* p, size_t size) {
    for (size_t i = 0; i < size; ++i)
        if (p[i] != 0)
            return 0;
    return 1;
}

static unsigned char pattern(size_t i, unsigned seed) {
    return (unsigned char)((i * 131u + seed * 7u + (i >> 12)) & 0xff);
}

// ------------------------------------------------------------------ cases

static void caseEnumerate(void) {
    DIR* dir = opendir(HEAP_DIR);
    if (!dir) {
        report("enumerate", "%s", errnoName(errno));
        return;
    }
    int sawDot = 0, sawDotDot = 0, sawHeap = 0, heapType = -1, passes = 0, countFirst = 0, countSecond = 0;
    for (passes = 0; passes < 2; ++passes) {
        int count = 0;
        struct dirent* entry;
        while ((entry = readdir(dir)) != NULL) {
            ++count;
            if (strcmp(entry->d_name, ".") == 0)
                sawDot = entry->d_type == DT_DIR ? 2 : 1;
            else if (strcmp(entry->d_name, "..") == 0)
                sawDotDot = entry->d_type == DT_DIR ? 2 : 1;
            else if (strcmp(entry->d_name, heapName) == 0) {
                sawHeap = 1;
                heapType = entry->d_type;
            }
        }
        if (passes == 0) {
            countFirst = count;
            rewinddir(dir);
        } else {
            countSecond = count;
        }
    }
    closedir(dir);
    report("enumerate-dot", "%s", sawDot == 2 ? "DT_DIR" : sawDot ? "found" : "missing");
    report("enumerate-dotdot", "%s", sawDotDot == 2 ? "DT_DIR" : sawDotDot ? "found" : "missing");
    report("enumerate-heap", "%s", sawHeap ? "found" : "missing");
    report("enumerate-heap-dtype", "%s",
           heapType == DT_CHR       ? "DT_CHR"
           : heapType == DT_UNKNOWN ? "DT_UNKNOWN"
           : heapType < 0           ? "none"
                                    : "other");
    report("enumerate-rewind", "%s", countFirst == countSecond && countFirst >= 3 ? "same" : "differs");

    struct dirent** list = NULL;
    int n = scandir(HEAP_DIR, &list, NULL, alphasort);
    if (n < 0) {
        report("scandir", "%s", errnoName(errno));
        return;
    }
    int found = 0, sorted = 1;
    for (int i = 0; i < n; ++i) {
        if (strcmp(list[i]->d_name, heapName) == 0)
            found = 1;
        if (i > 0 && strcmp(list[i - 1]->d_name, list[i]->d_name) > 0)
            sorted = 0;
    }
    for (int i = 0; i < n; ++i)
        free(list[i]);
    free(list);
    report("scandir", "%s%s", found ? "found" : "missing", sorted ? " sorted" : " unsorted");

    int dfd = open(HEAP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        report("fdopendir", "%s", errnoName(errno));
        return;
    }
    DIR* fdir = fdopendir(dfd);
    if (!fdir) {
        report("fdopendir", "%s", errnoName(errno));
        close(dfd);
        return;
    }
    found = 0;
    struct dirent* entry;
    while ((entry = readdir(fdir)) != NULL)
        if (strcmp(entry->d_name, heapName) == 0)
            found = 1;
    int viaDirfd = openat(dirfd(fdir), heapName, O_RDWR | O_CLOEXEC);
    report("fdopendir", "%s", found ? "found" : "missing");
    if (viaDirfd >= 0) {
        reportAlloc("openat-dirfd-alloc", allocate(viaDirfd, PAGE, O_RDWR | O_CLOEXEC, 0));
        close(viaDirfd);
    } else {
        report("openat-dirfd-alloc", "%s", errnoName(errno));
    }
    closedir(fdir);
}

static void caseStat(void) {
    struct stat st;
    report("stat-dir", "%s", stat(HEAP_DIR, &st) != 0 ? errnoName(errno) : S_ISDIR(st.st_mode) ? "dir" : "other");
    report("stat-heap", "%s", stat(heapPath, &st) != 0 ? errnoName(errno) : S_ISCHR(st.st_mode) ? "chr" : "other");
    report("lstat-heap", "%s", lstat(heapPath, &st) != 0 ? errnoName(errno) : S_ISCHR(st.st_mode) ? "chr" : "other");
    report("stat-missing", "%s", stat(HEAP_DIR "/no-such-heap", &st) != 0 ? errnoName(errno) : "exists");
    report("access-heap-rw", "%s", access(heapPath, R_OK | W_OK) != 0 ? errnoName(errno) : "ok");
    report("access-missing", "%s", access(HEAP_DIR "/no-such-heap", F_OK) != 0 ? errnoName(errno) : "ok");
    report("fstat-heap-fd", "%s", fstat(heapFd, &st) != 0 ? errnoName(errno) : S_ISCHR(st.st_mode) ? "chr" : "other");
}

static void caseOpen(void) {
    static const struct {
        const char* name;
        int flags;
    } modes[] = {
        {"open-rdonly", O_RDONLY},
        {"open-wronly", O_WRONLY},
        {"open-rdwr-cloexec", O_RDWR | O_CLOEXEC},
        {"open-rdwr", O_RDWR},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; ++i) {
        int fd = open(heapPath, modes[i].flags);
        if (fd < 0) {
            report(modes[i].name, "%s", errnoName(errno));
            continue;
        }
        int fdFlags = fcntl(fd, F_GETFD);
        int flFlags = fcntl(fd, F_GETFL);
        int buffer = allocate(fd, PAGE, O_RDWR | O_CLOEXEC, 0);
        report(modes[i].name, "ok cloexec=%d accmode=%s alloc=%s", (fdFlags & FD_CLOEXEC) ? 1 : 0, accmodeName(flFlags),
               buffer >= 0 ? "ok" : errnoName(-buffer));
        if (buffer >= 0)
            close(buffer);
        close(fd);
    }

    int fd = open(HEAP_DIR "/no-such-heap", O_RDWR);
    report("open-missing", "%s", fd < 0 ? errnoName(errno) : "opened");
    if (fd >= 0)
        close(fd);
    fd = open(heapPath, O_RDWR | O_CREAT | O_EXCL, 0600);
    report("open-creat-excl", "%s", fd < 0 ? errnoName(errno) : "opened");
    if (fd >= 0)
        close(fd);
    fd = open(heapPath, O_RDONLY | O_DIRECTORY);
    report("open-directory-flag", "%s", fd < 0 ? errnoName(errno) : "opened");
    if (fd >= 0)
        close(fd);

    char path[300];
    snprintf(path, sizeof path, "//dev//dma_heap/./%s", heapName);
    fd = open(path, O_RDWR | O_CLOEXEC);
    report("open-unnormalised-path", "%s", fd < 0 ? errnoName(errno) : "ok");
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof path, "/dev/dma_heap/../dma_heap/%s", heapName);
    fd = open(path, O_RDWR | O_CLOEXEC);
    report("open-dotdot-path", "%s", fd < 0 ? errnoName(errno) : "ok");
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof path, "%s/", heapPath);
    fd = open(path, O_RDWR | O_CLOEXEC);
    report("open-trailing-slash", "%s", fd < 0 ? errnoName(errno) : "ok");
    if (fd >= 0)
        close(fd);

    fd = openat(AT_FDCWD, heapPath, O_RDWR | O_CLOEXEC);
    report("openat-cwd-absolute", "%s", fd < 0 ? errnoName(errno) : "ok");
    if (fd >= 0)
        close(fd);
    int dev = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    snprintf(path, sizeof path, "dma_heap/%s", heapName);
    fd = dev < 0 ? -1 : openat(dev, path, O_RDWR | O_CLOEXEC);
    report("openat-dirfd-relative", "%s", fd < 0 ? errnoName(errno) : "ok");
    if (fd >= 0)
        close(fd);
    if (dev >= 0)
        close(dev);
    if (chdir("/dev") == 0) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        report("open-cwd-relative", "%s", fd < 0 ? errnoName(errno) : "ok");
        if (fd >= 0)
            close(fd);
        if (chdir("/") != 0)
            report("chdir-back", "%s", errnoName(errno));
    } else {
        report("open-cwd-relative", "chdir %s", errnoName(errno));
    }

    fd = open(heapPath, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        report("opath-alloc", "open %s", errnoName(errno));
    } else {
        reportAlloc("opath-alloc", allocate(fd, PAGE, O_RDWR | O_CLOEXEC, 0));
        close(fd);
    }
    fd = open(heapPath, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        reportAlloc("alloc-on-closed-heap-fd", allocate(fd, PAGE, O_RDWR | O_CLOEXEC, 0));
    }
}

static void caseSizes(void) {
    static const uint64_t sizes[] = {1, 4096, 5000, 65536, 1048576, 8388608};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        char name[64];
        snprintf(name, sizeof name, "alloc-%llu", (unsigned long long)sizes[i]);
        reportAlloc(name, allocate(heapFd, sizes[i], O_RDWR | O_CLOEXEC, 0));
    }
    struct dma_heap_allocation_data data = {.len = PAGE, .fd_flags = O_RDWR | O_CLOEXEC};
    int ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, &data);
    report("alloc-return-value", "%s", ret == 0 ? "0" : ret > 0 ? "positive" : errnoName(errno));
    if (ret == 0)
        close((int)data.fd);
}

static void caseFdFlags(void) {
    static const struct {
        const char* name;
        uint32_t flags;
    } table[] = {
        {"fd-flags-rdwr-cloexec", O_RDWR | O_CLOEXEC},
        {"fd-flags-rdwr", O_RDWR},
        {"fd-flags-zero", 0},
        {"fd-flags-cloexec", O_CLOEXEC},
        {"fd-flags-wronly", O_WRONLY},
        {"fd-flags-accmode", O_ACCMODE},
        {"fd-flags-nonblock", O_RDWR | O_NONBLOCK},
        {"fd-flags-append", O_RDWR | O_APPEND},
        {"fd-flags-sync", O_RDWR | O_SYNC},
        {"fd-flags-bit31", 0x80000000u},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        reportAlloc(table[i].name, allocate(heapFd, PAGE, table[i].flags, 0));

    // The access mode restricts what the buffer fd may map, as for any file.
    static const struct {
        const char* name;
        uint32_t flags;
        int prot;
    } maps[] = {
        {"accmode-rdonly-map-read", O_RDONLY, PROT_READ},
        {"accmode-rdonly-map-write", O_RDONLY, PROT_READ | PROT_WRITE},
        {"accmode-wronly-map-read", O_WRONLY, PROT_READ},
        {"accmode-wronly-map-write", O_WRONLY, PROT_WRITE},
        {"accmode-both-map-read", O_ACCMODE, PROT_READ},
        {"accmode-rdwr-map-write", O_RDWR, PROT_READ | PROT_WRITE},
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; ++i) {
        int fd = allocate(heapFd, PAGE, maps[i].flags | O_CLOEXEC, 0);
        if (fd < 0) {
            report(maps[i].name, "alloc %s", errnoName(-fd));
            continue;
        }
        unsigned char* p = mapShared(fd, PAGE, maps[i].prot, 0);
        report(maps[i].name, "%s", p ? "ok" : errnoName(errno));
        if (p)
            munmap(p, PAGE);
        close(fd);
    }
}

static void caseInvalid(void) {
    static const struct {
        const char* name;
        uint64_t len;
        uint32_t fd;
        uint32_t fdFlags;
        uint64_t heapFlags;
    } table[] = {
        {"invalid-fd-nonzero", PAGE, 1, O_RDWR | O_CLOEXEC, 0},
        {"invalid-fd-all-ones", PAGE, 0xffffffffu, O_RDWR | O_CLOEXEC, 0},
        {"invalid-heap-flags-bit0", PAGE, 0, O_RDWR | O_CLOEXEC, 1},
        {"invalid-heap-flags-bit63", PAGE, 0, O_RDWR | O_CLOEXEC, 1ull << 63},
        {"invalid-len-zero", 0, 0, O_RDWR | O_CLOEXEC, 0},
        {"invalid-len-max", UINT64_MAX, 0, O_RDWR | O_CLOEXEC, 0},
        {"invalid-len-wraps-page", UINT64_MAX - PAGE + 2, 0, O_RDWR | O_CLOEXEC, 0},
        {"invalid-len-zero-and-flags", 0, 0, O_NONBLOCK, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i) {
        struct dma_heap_allocation_data data = {
            .len = table[i].len, .fd = table[i].fd, .fd_flags = table[i].fdFlags, .heap_flags = table[i].heapFlags};
        int before = countFds();
        int ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, &data);
        int error = errno;
        int after = countFds();
        if (ret == 0) {
            report(table[i].name, "ok");
            close((int)data.fd);
        } else {
            report(table[i].name, "%s fd=%s fds-delta=%d", errnoName(error),
                   data.fd == table[i].fd ? "unchanged" : "changed", after - before);
        }
    }

    errno = 0;
    int ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, NULL);
    report("invalid-arg-null", "%s", ret == 0 ? "ok" : errnoName(errno));

    // A valid request the kernel cannot write its answer back into.
    unsigned char* page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        report("invalid-arg-readonly", "mmap %s", errnoName(errno));
        return;
    }
    struct dma_heap_allocation_data valid = {.len = PAGE, .fd_flags = O_RDWR | O_CLOEXEC};
    memcpy(page, &valid, sizeof valid);
    mprotect(page, PAGE, PROT_READ);
    int before = countFds();
    ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, page);
    int error = errno;
    report("invalid-arg-readonly-valid", "%s fds-delta=%d", ret == 0 ? "ok" : errnoName(error), countFds() - before);
    mprotect(page, PAGE, PROT_READ | PROT_WRITE);
    struct dma_heap_allocation_data bad = {.len = PAGE, .fd = 3, .fd_flags = O_RDWR | O_CLOEXEC};
    memcpy(page, &bad, sizeof bad);
    mprotect(page, PAGE, PROT_READ);
    before = countFds();
    ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, page);
    error = errno;
    report("invalid-arg-readonly-invalid", "%s fds-delta=%d", ret == 0 ? "ok" : errnoName(error), countFds() - before);

    // A struct that ends exactly at the end of a readable page, and one that
    // runs into an unmapped page.
    munmap(page, PAGE);
    unsigned char* two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED) {
        report("arg-at-page-end", "mmap %s", errnoName(errno));
        return;
    }
    munmap(two + PAGE, PAGE);
    struct dma_heap_allocation_data* atEnd = (void*)(two + PAGE - sizeof valid);
    memcpy(atEnd, &valid, sizeof valid);
    ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, atEnd);
    report("arg-at-page-end", "%s", ret == 0 ? "ok" : errnoName(errno));
    if (ret == 0)
        close((int)atEnd->fd);
    unsigned char* across = two + PAGE - 16;
    memcpy(across, &valid, 16);
    ret = ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, across);
    report("arg-across-unmapped", "%s", ret == 0 ? "ok" : errnoName(errno));
    munmap(two, PAGE);
}

/// DMA_HEAP_IOCTL_ALLOC with an ioctl number encoding @p size bytes and
/// direction @p dir, on a buffer of @p bytes bytes prepared by the caller.
static int rawAlloc(unsigned dir, unsigned type, unsigned nr, unsigned size, void* arg) {
    return ioctl(heapFd, _IOC(dir, type, nr, size), arg) == 0 ? 0 : -errno;
}

static void reportRaw(const char* name, int ret, const unsigned char* arg, size_t size, const unsigned char* before,
                      int fdsDelta) {
    // Which bytes of the argument changed, as offsets: the fd the kernel wrote,
    // or the zeroes it copied back.
    char changed[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < size && used + 8 < sizeof changed; i += 4) {
        if (memcmp(arg + i, before + i, size - i < 4 ? size - i : 4) != 0)
            used += (size_t)snprintf(changed + used, sizeof changed - used, "%s%zu", used ? "," : "", i);
    }
    report(name, "%s changed=[%s] fds-delta=%d", ret == 0 ? "ok" : errnoName(-ret), changed, fdsDelta);
}

static void caseStructSizes(void) {
    static const struct {
        const char* name;
        unsigned dir;
        unsigned type;
        unsigned nr;
        unsigned size;
    } table[] = {
        {"struct-size-4", _IOC_READ | _IOC_WRITE, 'H', 0, 4},
        {"struct-size-8", _IOC_READ | _IOC_WRITE, 'H', 0, 8},
        {"struct-size-12", _IOC_READ | _IOC_WRITE, 'H', 0, 12},
        {"struct-size-16", _IOC_READ | _IOC_WRITE, 'H', 0, 16},
        {"struct-size-24", _IOC_READ | _IOC_WRITE, 'H', 0, 24},
        {"struct-size-32", _IOC_READ | _IOC_WRITE, 'H', 0, 32},
        {"struct-size-200", _IOC_READ | _IOC_WRITE, 'H', 0, 200},
        {"struct-size-16383", _IOC_READ | _IOC_WRITE, 'H', 0, 16383},
        {"struct-size-0", _IOC_READ | _IOC_WRITE, 'H', 0, 0},
        {"dir-write-only", _IOC_WRITE, 'H', 0, 24},
        {"dir-read-only", _IOC_READ, 'H', 0, 24},
        {"dir-none", _IOC_NONE, 'H', 0, 24},
        {"type-other-magic", _IOC_READ | _IOC_WRITE, 'X', 0, 24},
        {"nr-1", _IOC_READ | _IOC_WRITE, 'H', 1, 24},
        {"nr-255", _IOC_READ | _IOC_WRITE, 'H', 255, 24},
    };
    const size_t maxSize = 16383;
    unsigned char* arg = malloc(maxSize);
    unsigned char* before = malloc(maxSize);
    if (!arg || !before) {
        report("struct-sizes", "malloc failed");
        free(arg);
        free(before);
        return;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i) {
        // len = 8192 (little-endian, so a 4-byte struct still sees it),
        // fd = 0, fd_flags = O_RDWR | O_CLOEXEC, heap_flags = 0, then 0xa5
        // in every byte past the kernel's 24.
        memset(arg, 0xa5, maxSize);
        struct dma_heap_allocation_data data = {.len = 2 * PAGE, .fd = 0, .fd_flags = O_RDWR | O_CLOEXEC};
        memcpy(arg, &data, sizeof data);
        memcpy(before, arg, maxSize);
        int fdsBefore = countFds();
        int ret = rawAlloc(table[i].dir, table[i].type, table[i].nr, table[i].size, arg);
        int fdsDelta = countFds() - fdsBefore;
        size_t shown = table[i].size > 32 ? 32 : 24;
        reportRaw(table[i].name, ret, arg, shown, before, fdsDelta);
        if (table[i].size > 32 && memcmp(arg + 24, before + 24, table[i].size - 24) != 0)
            report("struct-trailer-modified", "%s", table[i].name);
        if (ret == 0 && table[i].size >= 12 && (table[i].dir & _IOC_READ)) {
            uint32_t fd;
            memcpy(&fd, arg + 8, sizeof fd);
            char text[160];
            describeBuffer((int)fd, text, sizeof text);
            char bufferCase[64];
            snprintf(bufferCase, sizeof bufferCase, "%s-buffer", table[i].name);
            report(bufferCase, "%s", text);
            close((int)fd);
        }
    }
    free(arg);
    free(before);

    // dma-buf ioctls sent to the heap: the heap only looks at the number.
    struct dma_buf_sync sync = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
    int fdsBefore = countFds();
    int ret = ioctl(heapFd, DMA_BUF_IOCTL_SYNC, &sync);
    report("heap-fd-dma-buf-sync", "%s fds-delta=%d", ret == 0 ? "ok" : errnoName(errno), countFds() - fdsBefore);
    ret = ioctl(heapFd, DMA_BUF_SET_NAME_B, "name");
    report("heap-fd-dma-buf-set-name", "%s", ret == 0 ? "ok" : errnoName(errno));
    int flag = 1;
    ret = ioctl(heapFd, FIONBIO, &flag);
    report("heap-fd-fionbio", "%s nonblock=%d", ret == 0 ? "ok" : errnoName(errno),
           (fcntl(heapFd, F_GETFL) & O_NONBLOCK) ? 1 : 0);
    flag = 0;
    ioctl(heapFd, FIONBIO, &flag);
    int avail = 0;
    ret = ioctl(heapFd, FIONREAD, &avail);
    report("heap-fd-fionread", "%s", ret == 0 ? "ok" : errnoName(errno));

    // The heap device can be neither mapped nor seeked.
    void* p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, heapFd, 0);
    report("heap-fd-mmap", "%s", p != MAP_FAILED ? "ok" : errnoName(errno));
    if (p != MAP_FAILED)
        munmap(p, PAGE);
    off_t pos = lseek(heapFd, 0, SEEK_SET);
    report("heap-fd-lseek-set", "%s", pos < 0 ? errnoName(errno) : "ok");
    pos = lseek(heapFd, 0, SEEK_END);
    report("heap-fd-lseek-end", "%s", pos < 0 ? errnoName(errno) : "ok");
}

static void caseZeroFill(void) {
    // Dirty memory, give it back, and require every later allocation to be
    // zero, for several sizes (the recycled pages come back first).
    static const size_t sizes[] = {PAGE, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
        const size_t size = sizes[s];
        char name[64];
        snprintf(name, sizeof name, "zero-fill-recycled-%zu", size);
        const char* result = "ok";
        char text[96];
        for (int round = 0; round < 8 && strcmp(result, "ok") == 0; ++round) {
            int fd = allocate(heapFd, size, O_RDWR | O_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(text, sizeof text, "alloc %s", errnoName(-fd));
                result = text;
                break;
            }
            unsigned char* p = mapShared(fd, size, PROT_READ | PROT_WRITE, 0);
            if (!p) {
                snprintf(text, sizeof text, "mmap %s", errnoName(errno));
                result = text;
                close(fd);
                break;
            }
            if (!allZero(p, size)) {
                snprintf(text, sizeof text, "dirty memory in round %d", round);
                result = text;
            }
            memset(p, 0xff, size);
            munmap(p, size);
            close(fd);
        }
        report(name, "%s", result);
    }
}

static void caseSync(int buffer) {
    static const struct {
        const char* name;
        uint64_t flags;
    } table[] = {
        {"sync-start-read", DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ},
        {"sync-end-read", DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ},
        {"sync-start-write", DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE},
        {"sync-end-write", DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE},
        {"sync-start-rw", DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW},
        {"sync-end-rw", DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW},
        {"sync-end-without-start", DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW},
        {"sync-end-other-direction", DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ},
        {"sync-start-twice-1", DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ},
        {"sync-start-twice-2", DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ},
        {"sync-start-twice-end", DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE},
        {"sync-no-direction-start", DMA_BUF_SYNC_START},
        {"sync-no-direction-end", DMA_BUF_SYNC_END},
        {"sync-unknown-bit-3", DMA_BUF_SYNC_RW | (1u << 3)},
        {"sync-unknown-bit-8", DMA_BUF_SYNC_RW | (1u << 8)},
        {"sync-unknown-bit-32", DMA_BUF_SYNC_RW | (1ull << 32)},
        {"sync-unknown-bit-63", DMA_BUF_SYNC_RW | (1ull << 63)},
        {"sync-only-unknown", 1u << 4},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        reportErrno(table[i].name, syncBuffer(buffer, table[i].flags));

    errno = 0;
    int ret = ioctl(buffer, DMA_BUF_IOCTL_SYNC, NULL);
    report("sync-arg-null", "%s", ret == 0 ? "ok" : errnoName(errno));
    struct dma_buf_sync sync16[2] = {{.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW}, {0}};
    ret = ioctl(buffer, _IOW(DMA_BUF_BASE, 0, sync16), sync16);
    report("sync-wrong-size", "%s", ret == 0 ? "ok" : errnoName(errno));
    ret = ioctl(buffer, _IOWR(DMA_BUF_BASE, 0, struct dma_buf_sync), sync16);
    report("sync-wrong-direction", "%s", ret == 0 ? "ok" : errnoName(errno));

    // The same ioctl on files that are not dma-bufs.
    int memfd = memfd_create("not-a-dma-buf", MFD_CLOEXEC);
    if (memfd >= 0 && ftruncate(memfd, PAGE) == 0)
        reportErrno("sync-on-memfd", syncBuffer(memfd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
    else
        report("sync-on-memfd", "memfd %s", errnoName(errno));
    if (memfd >= 0)
        close(memfd);
    int pipes[2];
    if (pipe2(pipes, O_CLOEXEC) == 0) {
        reportErrno("sync-on-pipe", syncBuffer(pipes[0], DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
        close(pipes[0]);
        close(pipes[1]);
    }
    reportErrno("sync-on-closed-fd", syncBuffer(1000, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));

    // Other ioctls on a buffer.
    struct dma_heap_allocation_data data = {.len = PAGE, .fd_flags = O_RDWR | O_CLOEXEC};
    ret = ioctl(buffer, DMA_HEAP_IOCTL_ALLOC, &data);
    report("buffer-fd-heap-alloc", "%s", ret == 0 ? "ok" : errnoName(errno));
    uint64_t dummy = 0;
    ret = ioctl(buffer, _IOW(DMA_BUF_BASE, 9, uint64_t), &dummy);
    report("buffer-fd-unknown-nr", "%s", ret == 0 ? "ok" : errnoName(errno));
    ret = ioctl(buffer, _IOW('X', 0, struct dma_buf_sync), &dummy);
    report("buffer-fd-other-type", "%s", ret == 0 ? "ok" : errnoName(errno));
    int dupFd = dup(buffer);
    reportErrno("sync-via-dup", syncBuffer(dupFd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
    reportErrno("sync-via-dup-end", syncBuffer(dupFd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
    close(dupFd);
    int flag = 1;
    ret = ioctl(buffer, FIOCLEX, &flag);
    report("buffer-fd-fioclex", "%s cloexec=%d", ret == 0 ? "ok" : errnoName(errno),
           (fcntl(buffer, F_GETFD) & FD_CLOEXEC) ? 1 : 0);
}

static void caseSetName(int buffer) {
    static const struct {
        const char* name;
        size_t length;
    } lengths[] = {
        {"set-name-empty", 0}, {"set-name-1", 1},   {"set-name-31", 31},
        {"set-name-32", 32},   {"set-name-33", 33}, {"set-name-200", 200},
    };
    char name[256];
    for (int which = 0; which < 2; ++which) {
        unsigned long request = which == 0 ? DMA_BUF_SET_NAME_A : DMA_BUF_SET_NAME_B;
        for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; ++i) {
            memset(name, 'n', lengths[i].length);
            name[lengths[i].length] = '\0';
            char caseName[64];
            snprintf(caseName, sizeof caseName, "%s-%s", lengths[i].name, which == 0 ? "a" : "b");
            int ret = ioctl(buffer, request, name);
            report(caseName, "%s", ret == 0 ? "ok" : errnoName(errno));
        }
    }
    errno = 0;
    int ret = ioctl(buffer, DMA_BUF_SET_NAME_B, NULL);
    report("set-name-null", "%s", ret == 0 ? "ok" : errnoName(errno));
    // A name whose terminator is on an unmapped page, and one that ends
    // exactly at the end of a readable page.
    unsigned char* two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two != MAP_FAILED) {
        munmap(two + PAGE, PAGE);
        memset(two + PAGE - 8, 'x', 8);
        ret = ioctl(buffer, DMA_BUF_SET_NAME_B, two + PAGE - 8);
        report("set-name-unterminated-at-fault", "%s", ret == 0 ? "ok" : errnoName(errno));
        memset(two + PAGE - 8, 'y', 7);
        two[PAGE - 1] = '\0';
        ret = ioctl(buffer, DMA_BUF_SET_NAME_B, two + PAGE - 8);
        report("set-name-at-page-end", "%s", ret == 0 ? "ok" : errnoName(errno));
        munmap(two, PAGE);
    }
    ret = ioctl(buffer, _IOW(DMA_BUF_BASE, 1, char[16]), "sixteen");
    report("set-name-other-size", "%s", ret == 0 ? "ok" : errnoName(errno));
    int memfd = memfd_create("not-a-dma-buf", MFD_CLOEXEC);
    if (memfd >= 0) {
        ret = ioctl(memfd, DMA_BUF_SET_NAME_B, "name");
        report("set-name-on-memfd", "%s", ret == 0 ? "ok" : errnoName(errno));
        close(memfd);
    }
}

static void caseMmap(void) {
    const size_t size = 4 * PAGE;
    int fd = allocate(heapFd, size, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        report("mmap", "alloc %s", errnoName(-fd));
        return;
    }
    unsigned char* p = mapShared(fd, size, PROT_READ | PROT_WRITE, 0);
    report("mmap-shared-rw", "%s", p ? "ok" : errnoName(errno));
    if (!p) {
        close(fd);
        return;
    }
    report("mmap-zero", "%s", allZero(p, size) ? "ok" : "dirty");
    for (size_t i = 0; i < size; ++i)
        p[i] = pattern(i, 1);
    reportErrno("mmap-sync-end-write", syncBuffer(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE));
    munmap(p, size);

    // Data survives unmapping; a second mapping, a mapping at an offset and a
    // mapping through a dup() all see the same bytes.
    p = mapShared(fd, size, PROT_READ, 0);
    int same = p != NULL;
    for (size_t i = 0; p && i < size; ++i)
        same &= p[i] == pattern(i, 1);
    report("mmap-remap-integrity", "%s", p ? (same ? "ok" : "corrupt") : errnoName(errno));
    if (p)
        munmap(p, size);
    unsigned char* q = mapShared(fd, PAGE, PROT_READ, 2 * PAGE);
    same = q != NULL;
    for (size_t i = 0; q && i < PAGE; ++i)
        same &= q[i] == pattern(2 * PAGE + i, 1);
    report("mmap-offset-integrity", "%s", q ? (same ? "ok" : "corrupt") : errnoName(errno));
    if (q)
        munmap(q, PAGE);
    int dupFd = dup(fd);
    unsigned char* w = mapShared(dupFd, size, PROT_READ | PROT_WRITE, 0);
    unsigned char* r = mapShared(fd, size, PROT_READ, 0);
    if (w && r) {
        w[size - 1] = 0x5a;
        w[0] = 0xa5;
        report("mmap-two-mappings-coherent", "%s", r[size - 1] == 0x5a && r[0] == 0xa5 ? "ok" : "stale");
    } else {
        report("mmap-two-mappings-coherent", "%s", errnoName(errno));
    }
    if (w)
        munmap(w, size);
    if (r)
        munmap(r, size);
    close(dupFd);

    // The mapping must stay inside the buffer.
    static const struct {
        const char* name;
        size_t length;
        off_t offset;
    } bounds[] = {
        {"mmap-exact-size", 4 * PAGE, 0},
        {"mmap-last-page", PAGE, 3 * PAGE},
        {"mmap-beyond-end", 5 * PAGE, 0},
        {"mmap-offset-beyond", PAGE, 4 * PAGE},
        {"mmap-offset-straddle", 2 * PAGE, 3 * PAGE},
        {"mmap-unaligned-length", 3 * PAGE + 1, 0},
        {"mmap-unaligned-offset", PAGE, 100},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; ++i) {
        unsigned char* m = mapShared(fd, bounds[i].length, PROT_READ, bounds[i].offset);
        report(bounds[i].name, "%s", m ? "ok" : errnoName(errno));
        if (m)
            munmap(m, bounds[i].length);
    }

    // dma-bufs are meant to be mapped shared; what a private mapping does is
    // up to the exporter.
    unsigned char* priv = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    report("mmap-private-one-page", "%s", priv != MAP_FAILED ? "ok" : errnoName(errno));
    if (priv != MAP_FAILED)
        munmap(priv, PAGE);
    priv = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    report("mmap-private-read-only", "%s", priv != MAP_FAILED ? "ok" : errnoName(errno));
    if (priv != MAP_FAILED)
        munmap(priv, size);
    priv = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    report("mmap-private-rw", "%s", priv != MAP_FAILED ? "ok" : errnoName(errno));
    if (priv != MAP_FAILED)
        munmap(priv, size);

    // The mapping keeps the buffer alive after the last fd is closed.
    p = mapShared(fd, size, PROT_READ | PROT_WRITE, 0);
    close(fd);
    if (p) {
        p[10] = 0x42;
        report("mmap-outlives-fd", "%s", p[10] == 0x42 && p[11] == pattern(11, 1) ? "ok" : "corrupt");
        munmap(p, size);
    }

    struct pollfd pfd = {.fd = -1, .events = POLLIN | POLLOUT};
    pfd.fd = allocate(heapFd, PAGE, O_RDWR | O_CLOEXEC, 0);
    if (pfd.fd >= 0) {
        int n = poll(&pfd, 1, 0);
        report("poll-buffer", "%d%s%s", n, (pfd.revents & POLLIN) ? " IN" : "", (pfd.revents & POLLOUT) ? " OUT" : "");
        off_t set = lseek(pfd.fd, 0, SEEK_SET);
        off_t end = lseek(pfd.fd, 0, SEEK_END);
        report("lseek-set-end", "%lld %lld", (long long)set, (long long)end);
        off_t cur = lseek(pfd.fd, 0, SEEK_CUR);
        report("lseek-cur", "%s", cur < 0 ? errnoName(errno) : "ok");
        off_t odd = lseek(pfd.fd, 1, SEEK_SET);
        report("lseek-set-nonzero", "%s", odd < 0 ? errnoName(errno) : "ok");
        close(pfd.fd);
    }
}

static void caseLifetime(void) {
    // A buffer outlives the heap fd it came from, and is shared with a child.
    int heap = open(heapPath, O_RDWR | O_CLOEXEC);
    if (heap < 0) {
        report("buffer-outlives-heap-fd", "open %s", errnoName(errno));
        return;
    }
    int fd = allocate(heap, 2 * PAGE, O_RDWR | O_CLOEXEC, 0);
    close(heap);
    if (fd < 0) {
        report("buffer-outlives-heap-fd", "alloc %s", errnoName(-fd));
        return;
    }
    unsigned char* p = mapShared(fd, 2 * PAGE, PROT_READ | PROT_WRITE, 0);
    report("buffer-outlives-heap-fd", "%s", p ? "ok" : errnoName(errno));
    if (!p) {
        close(fd);
        return;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        // The child syncs, writes through its own mapping and names the buffer.
        int ok = syncBuffer(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE) == 0;
        unsigned char* c = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ok &= c != MAP_FAILED;
        if (c != MAP_FAILED) {
            for (size_t i = 0; i < 2 * PAGE; ++i)
                c[i] = pattern(i, 9);
            munmap(c, 2 * PAGE);
        }
        ok &= syncBuffer(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE) == 0;
        ok &= ioctl(fd, DMA_BUF_SET_NAME_A, "from-child") == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child) {
        report("fork-child-writes", "fork %s", errnoName(errno));
    } else {
        int same = 1;
        for (size_t i = 0; i < 2 * PAGE; ++i)
            same &= p[i] == pattern(i, 9);
        report("fork-child-writes", "%s child=%d", same ? "ok" : "corrupt",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    munmap(p, 2 * PAGE);
    close(fd);
}

static void caseMany(void) {
    // Many live buffers at once, then all freed.
    enum { kCount = 64 };
    int fds[kCount];
    int ok = 1;
    for (int i = 0; i < kCount; ++i) {
        fds[i] = allocate(heapFd, (size_t)(i % 4 + 1) * PAGE, O_RDWR | O_CLOEXEC, 0);
        ok &= fds[i] >= 0;
    }
    int sizesOk = 1;
    for (int i = 0; i < kCount; ++i)
        if (fds[i] >= 0)
            sizesOk &= sizeOf(fds[i]) == (long long)(i % 4 + 1) * PAGE;
    for (int i = 0; i < kCount; ++i)
        if (fds[i] >= 0)
            close(fds[i]);
    report("many-live-buffers", "%s%s", ok ? "ok" : "failed", sizesOk ? "" : " wrong-sizes");
}

int main(int argc, char** argv) {
    if (argc > 1)
        heapName = argv[1];
    snprintf(heapPath, sizeof heapPath, HEAP_DIR "/%s", heapName);
    setvbuf(stdout, NULL, _IOLBF, 0);

    heapFd = open(heapPath, O_RDWR | O_CLOEXEC);
    report("open-heap", "%s", heapFd < 0 ? errnoName(errno) : "ok");
    if (heapFd < 0) {
        printf("summary: %u cases, heap unavailable\n", cases);
        return 2;
    }

    caseEnumerate();
    caseStat();
    caseOpen();
    caseSizes();
    caseFdFlags();
    caseInvalid();
    caseStructSizes();
    caseZeroFill();

    int buffer = allocate(heapFd, 4 * PAGE, O_RDWR | O_CLOEXEC, 0);
    if (buffer >= 0) {
        caseSync(buffer);
        caseSetName(buffer);
        close(buffer);
    } else {
        report("sync-and-set-name", "alloc %s", errnoName(-buffer));
    }
    caseMmap();
    caseLifetime();
    caseMany();

    close(heapFd);
    printf("summary: %u cases\n", cases);
    return 0;
}
