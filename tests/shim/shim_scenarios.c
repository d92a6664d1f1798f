// SPDX-License-Identifier: MIT
// Unmodified programs doing what real ones do around the dma-heap uapi: closefrom(3), fork() under load, lseek.
//
// Usage:
//   shim_scenarios closefrom
//       Allocates and syncs a buffer, closes every fd >= 3, puts a socket
//       pair of its own on every number the shim had, and checks that the
//       shim neither reads nor writes it: DMA_BUF_IOCTL_SYNC on a plain
//       memfd answers as the kernel does (ENOTTY), the program's messages
//       stay queued, nothing arrives from the shim.
//   shim_scenarios fork-stress CHILDREN THREADS
//       THREADS threads allocate and free in a loop while the main thread
//       forks CHILDREN children, each allocating once; a child that has not
//       exited 20 s after it was forked counts as hung (and is killed).
//   shim_scenarios fd-steady
//       Allocates, maps, touches, unmaps and closes one buffer, counts its
//       open fds and threads, then does the same for 24 buffers of other
//       sizes and counts again: the kernel makes no fd and no thread of the
//       program's, so neither may the shim (a pool of ready memfds would).
//   shim_scenarios lseek-time COUNT
//       ns per lseek(SEEK_CUR) on a tmpfile() and on a buffer fd (a timing
//       loop for people; no test asserts on it).
// Prints its findings, one per line; exits 0 when every check held.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <linux/dma-buf.h>
#include <linux/dma-heap.h>

static const char* errnoName(int error) {
    switch (error) {
    case 0: return "ok";
    case ENOTTY: return "ENOTTY";
    case ENOENT: return "ENOENT";
    case ENODEV: return "ENODEV";
    case EPROTO: return "EPROTO";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case ENOTSOCK: return "ENOTSOCK";
    case EAGAIN: return "EAGAIN";
    default: return strerror(error);
    }
}

static int allocate(int heap, size_t size) {
    struct dma_heap_allocation_data data = {.len = size, .fd_flags = O_RDWR | O_CLOEXEC};
    if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) != 0)
        return -1;
    return (int)data.fd;
}

static int syncStartEnd(int fd) {
    struct dma_buf_sync sync = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
    if (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return -1;
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
    return ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync);
}

static void closeFrom(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0)
        return;
#endif
    for (int fd = first; fd < 65536; ++fd)
        close(fd);
}

static int closefromScenario(void) {
    int heap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    if (heap < 0) {
        printf("error: open /dev/dma_heap/system: %s\n", strerror(errno));
        return 1;
    }
    int buffer = allocate(heap, 4096);
    if (buffer < 0 || syncStartEnd(buffer) != 0) {
        printf("error: allocate and sync: %s\n", strerror(errno));
        return 1;
    }
    // Every fd the shim has is below the highest open one plus a margin.
    int highest = 2;
    for (int fd = 3; fd < 4096; ++fd)
        if (fcntl(fd, F_GETFD) != -1)
            highest = fd;
    // What daemons and sandboxes do.
    closeFrom(3);

    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        printf("error: socketpair: %s\n", strerror(errno));
        return 1;
    }
    int plain = memfd_create("plain", MFD_CLOEXEC);
    if (plain < 0 || ftruncate(plain, 4096) != 0) {
        printf("error: memfd_create: %s\n", strerror(errno));
        return 1;
    }
    // The program's socket on every number the shim used.
    for (int fd = 3; fd <= highest + 8; ++fd)
        if (fd != pair[0] && fd != pair[1] && fd != plain && dup3(pair[0], fd, O_CLOEXEC) != fd) {
            printf("error: dup3: %s\n", strerror(errno));
            return 1;
        }
    // The program's own conversation, queued for it.
    send(pair[1], "program-1", 9, 0);
    send(pair[1], "program-2", 9, 0);

    struct dma_buf_sync sync = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
    errno = 0;
    int r = ioctl(plain, DMA_BUF_IOCTL_SYNC, &sync);
    const int syncErrno = r == 0 ? 0 : errno;
    printf("sync on a plain memfd: %s\n", errnoName(syncErrno));
    errno = 0;
    DIR* dir = opendir("/dev/dma_heap");
    printf("opendir /dev/dma_heap: %s\n", dir ? "ok" : errnoName(errno));
    if (dir)
        closedir(dir);
    errno = 0;
    int again = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    printf("open /dev/dma_heap/system: %s\n", again >= 0 ? "ok" : errnoName(errno));

    // The messages are still the program's, in order, and nothing came from the shim.
    char got[64];
    int intact = 1;
    for (int i = 1; i <= 2; ++i) {
        char want[16];
        snprintf(want, sizeof want, "program-%d", i);
        ssize_t n = recv(pair[0], got, sizeof got, MSG_DONTWAIT);
        if (n != 9 || memcmp(got, want, 9) != 0)
            intact = 0;
    }
    if (recv(pair[0], got, sizeof got, MSG_DONTWAIT) >= 0)
        intact = 0;
    printf("the program's messages: %s\n", intact ? "intact" : "consumed or reordered");
    ssize_t stray = recv(pair[1], got, sizeof got, MSG_DONTWAIT);
    printf("written into the program's socket: %s\n", stray < 0 ? "nothing" : "a message");
    int ok = syncErrno == ENOTTY && intact && stray < 0;
    return ok ? 0 : 1;
}

static atomic_int stopWorkers;
static int workerHeap = -1;
static atomic_long workerAllocations;

static void* worker(void* unused) {
    (void)unused;
    while (!atomic_load(&stopWorkers)) {
        int fd = allocate(workerHeap, 4096);
        if (fd >= 0) {
            close(fd);
            atomic_fetch_add(&workerAllocations, 1);
        }
    }
    return NULL;
}

/// Waits for @p pid up to @p seconds: 0 exited cleanly, 1 failed, 2 hung (killed).
static int awaitChild(pid_t pid, int seconds) {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int ready = poll(&p, 1, seconds * 1000);
        close(pidfd);
        if (ready == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 2;
        }
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int forkStress(int children, int threads) {
    workerHeap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    if (workerHeap < 0) {
        printf("error: open /dev/dma_heap/system: %s\n", strerror(errno));
        return 1;
    }
    pthread_t ids[64];
    if (threads > 64)
        threads = 64;
    for (int i = 0; i < threads; ++i)
        pthread_create(&ids[i], NULL, worker, NULL);
    int exited = 0, hung = 0, failed = 0;
    for (int i = 0; i < children; ++i) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = allocate(workerHeap, 4096);
            _exit(fd >= 0 && syncStartEnd(fd) == 0 ? 0 : 1);
        }
        if (pid < 0) {
            ++failed;
            continue;
        }
        switch (awaitChild(pid, 20)) {
        case 0: ++exited; break;
        case 1: ++failed; break;
        default: ++hung; break;
        }
    }
    atomic_store(&stopWorkers, 1);
    for (int i = 0; i < threads; ++i)
        pthread_join(ids[i], NULL);
    printf("children: %d exited, %d hung, %d failed\n", exited, hung, failed);
    printf("worker allocations: %s\n", atomic_load(&workerAllocations) > 0 ? "some" : "none");
    return exited == children ? 0 : 1;
}

static double nsPerCall(int fd, long count) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < count; ++i)
        lseek(fd, 0, SEEK_CUR);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
    return ns / (double)count;
}

static int lseekTime(long count) {
    // Without heaps (no shim), the tmpfile alone: the baseline.
    int heap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    int buffer = heap >= 0 ? allocate(heap, 4096) : -1;
    FILE* file = tmpfile();
    if (!file) {
        printf("error: tmpfile: %s\n", strerror(errno));
        return 1;
    }
    printf("lseek(SEEK_CUR) on a tmpfile: %.1f ns\n", nsPerCall(fileno(file), count));
    if (buffer >= 0)
        printf("lseek(SEEK_CUR) on a buffer:  %.1f ns\n", nsPerCall(buffer, count));
    fclose(file);
    return 0;
}

static int countEntries(const char* path) {
    DIR* dir = opendir(path);
    if (!dir)
        return -1;
    int n = 0;
    for (struct dirent* entry; (entry = readdir(dir)) != NULL;)
        n += entry->d_name[0] != '.';
    closedir(dir);
    return n;
}

// One buffer's life as a program lives it: allocate, map, touch every page, unmap, close.
static int bufferCycle(int heap, size_t size) {
    int buffer = allocate(heap, size);
    if (buffer < 0)
        return -1;
    unsigned char* bytes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, buffer, 0);
    if (bytes == MAP_FAILED) {
        close(buffer);
        return -1;
    }
    for (size_t i = 0; i < size; i += 4096)
        bytes[i] = 1;
    munmap(bytes, size);
    return close(buffer);
}

static int fdSteady(void) {
    int heap = open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    if (heap < 0 || bufferCycle(heap, 64 * 1024) != 0) {
        printf("error: the first buffer: %s\n", strerror(errno));
        return 1;
    }
    // /proc/self/fd counts the fd opendir itself holds, both times.
    const int fds = countEntries("/proc/self/fd");
    const int threads = countEntries("/proc/self/task");
    for (int i = 1; i <= 24; ++i)
        if (bufferCycle(heap, (size_t)i * 96 * 1024) != 0) {
            printf("error: buffer %d: %s\n", i, strerror(errno));
            return 1;
        }
    // A background thread making fds would have made them by now.
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    printf("fds: %+d\n", countEntries("/proc/self/fd") - fds);
    printf("threads: %+d\n", countEntries("/proc/self/task") - threads);
    close(heap);
    return 0;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "closefrom") == 0)
        return closefromScenario();
    if (argc >= 4 && strcmp(argv[1], "fork-stress") == 0)
        return forkStress(atoi(argv[2]), atoi(argv[3]));
    if (argc >= 2 && strcmp(argv[1], "fd-steady") == 0)
        return fdSteady();
    if (argc >= 3 && strcmp(argv[1], "lseek-time") == 0)
        return lseekTime(atol(argv[2]));
    fprintf(stderr, "usage: %s closefrom | fork-stress CHILDREN THREADS | fd-steady | lseek-time COUNT\n", argv[0]);
    return 2;
}
