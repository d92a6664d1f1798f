/* SPDX-License-Identifier: MIT */
/* The C API used from C11: every call, its errors, and no leaked fds; with
 * arguments, one side of a migration through cenallocd
 * (tests/integration/c_api_moves_test.cpp runs it). */
#define _GNU_SOURCE /* fcntl F_DUPFD_CLOEXEC, mmap, readdir with -std=c11 */
#include <cenalloc/c/cenalloc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        ++checks;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            ++failures;                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond,                   \
                    cenalloc_last_error());                                                                            \
        }                                                                                                              \
    } while (0)

static int countFds(void) {
    DIR* dir = opendir("/proc/self/fd");
    int n = 0;
    if (!dir)
        return -1;
    while (readdir(dir))
        ++n;
    closedir(dir);
    return n;
}

static int findHeap(cenalloc_session* s, const char* name, cenalloc_heap_info* out) {
    size_t count = 0;
    if (cenalloc_heap_count(s, &count) != 0)
        return -1;
    for (size_t i = 0; i < count; ++i)
        if (cenalloc_get_heap(s, i, out) == 0 && strcmp(out->name, name) == 0)
            return 0;
    return -1;
}

/* Structs that grow, as the kernel's uapi structs do: an older caller's
 * size gets what fits and nothing more, a newer caller's size is fine while
 * what it asks for beyond this library is zero. */
static void checkStructSizes(cenalloc_session* s) {
    cenalloc_heap_info full = {.struct_size = sizeof full};
    CHECK(cenalloc_get_heap(s, 0, &full) == 0);
    CHECK(full.struct_size == sizeof full);
    CHECK(strlen(full.name) > 0);

    /* A caller built against the first version: the fields of VER0 only. */
    union {
        cenalloc_heap_info info;
        unsigned char bytes[sizeof(cenalloc_heap_info)];
    } older;
    memset(&older, 0xee, sizeof older);
    older.info.struct_size = CENALLOC_HEAP_INFO_SIZE_VER0;
    CHECK(cenalloc_get_heap(s, 0, &older.info) == 0);
    CHECK(older.info.struct_size == CENALLOC_HEAP_INFO_SIZE_VER0);
    CHECK(strcmp(older.info.name, full.name) == 0);
    CHECK(older.info.capacity == full.capacity && older.info.cached == full.cached);
    int untouched = 1;
    for (size_t i = CENALLOC_HEAP_INFO_SIZE_VER0; i < sizeof older; ++i)
        untouched = untouched && older.bytes[i] == 0xee;
    CHECK(untouched);

    /* Smaller than the first version: nothing to fill. */
    cenalloc_heap_info tiny = {.struct_size = CENALLOC_HEAP_INFO_SIZE_VER0 - 8};
    CHECK(cenalloc_get_heap(s, 0, &tiny) == -EINVAL);
    CHECK(strlen(cenalloc_last_error()) > 0);
    tiny.struct_size = 0;
    CHECK(cenalloc_get_heap(s, 0, &tiny) == -EINVAL);

    /* A caller built against a newer header: zeros past what we know are
     * fine (and stay zero), anything else is a field we cannot fill. */
    struct {
        cenalloc_heap_info info;
        uint64_t newer[2];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.info.struct_size = sizeof newer;
    CHECK(cenalloc_get_heap(s, 0, &newer.info) == 0);
    CHECK(newer.info.struct_size == sizeof(cenalloc_heap_info));
    CHECK(newer.newer[0] == 0 && newer.newer[1] == 0);
    CHECK(strcmp(newer.info.name, full.name) == 0);
    newer.info.struct_size = sizeof newer;
    newer.newer[1] = 1;
    CHECK(cenalloc_get_heap(s, 0, &newer.info) == -E2BIG);
    CHECK(newer.info.struct_size == sizeof newer); /* refused: left as it was */

    const char* devices[] = {"gpu"};
    struct {
        cenalloc_explanation e;
        uint32_t newer;
    } explanation;
    memset(&explanation, 0, sizeof explanation);
    explanation.e.struct_size = sizeof explanation;
    CHECK(cenalloc_explain(s, devices, 1, 4096, CENALLOC_CPU_ACCESS_RARE, &explanation.e) == 0);
    CHECK(explanation.e.struct_size == sizeof(cenalloc_explanation) && explanation.e.satisfiable == 1);
    explanation.newer = 7;
    explanation.e.struct_size = sizeof explanation;
    CHECK(cenalloc_explain(s, devices, 1, 4096, CENALLOC_CPU_ACCESS_RARE, &explanation.e) == -E2BIG);
    explanation.e.struct_size = CENALLOC_EXPLANATION_SIZE_VER0 - 1;
    CHECK(cenalloc_explain(s, devices, 1, 4096, CENALLOC_CPU_ACCESS_RARE, &explanation.e) == -EINVAL);
}

/* tests/support's patternByte(): the C++ side fills, this side checks. */
static unsigned char pattern(size_t i) {
    return (unsigned char)((i * 7 + 13) & 0xff);
}

/* Whether the buffer's bytes are pattern(i); fill them first when @p fill. */
static int patterned(int fd, size_t size, int fill) {
    unsigned char* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return 0;
    int same = 1;
    for (size_t i = 0; i < size; ++i) {
        if (fill)
            p[i] = pattern(i);
        same = same && p[i] == pattern(i);
    }
    munmap(p, size);
    return same;
}

static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/* In-process migration: a dynamic GPU importer, pin/unpin, forecast, the
 * event queue, and the bytes across the move. */
static void checkMigration(cenalloc_session* s) {
    enum { kSize = 1 << 20 };
    int fd = -1;
    CHECK(cenalloc_create(s, kSize, "movable", CENALLOC_CPU_ACCESS_RARE, &fd) == 0);
    CHECK(patterned(fd, kSize, 1));
    uint64_t gpu = 0, staticGpu = 0, mapping = 0;
    CHECK(cenalloc_attach_flags(s, fd, "gpu", 0x2, &gpu) == -EINVAL);
    CHECK(cenalloc_attach_flags(s, fd, "gpu", CENALLOC_ATTACH_DYNAMIC | 0x80000000u, &gpu) == -EINVAL);
    CHECK(cenalloc_attach_flags(s, fd, "no-such-device", CENALLOC_ATTACH_DYNAMIC, &gpu) == -ENOENT);
    CHECK(cenalloc_attach_flags(s, fd, "gpu", CENALLOC_ATTACH_DYNAMIC, &gpu) == 0);
    cenalloc_sg_entry entries[4];
    size_t count = 0;
    CHECK(cenalloc_map(s, gpu, CENALLOC_DMA_BIDIRECTIONAL, entries, 4, &count, &mapping) == 0);
    cenalloc_buffer_info info = {.struct_size = sizeof info};
    CHECK(cenalloc_describe(s, fd, &info) == 0 && strcmp(info.heap, "system") == 0);

    /* A static attachment has nothing to pin; unknown ids are ENOENT. */
    CHECK(cenalloc_attach_flags(s, fd, "gpu", 0, &staticGpu) == 0);
    CHECK(cenalloc_pin(s, staticGpu) == -EINVAL);
    CHECK(cenalloc_detach(s, staticGpu) == 0);
    CHECK(cenalloc_pin(s, 987654321) == -ENOENT);
    CHECK(cenalloc_unpin(s, gpu) == -EINVAL);

    /* The display attaching would move the buffer to CMA, telling the GPU. */
    cenalloc_forecast f = {.struct_size = sizeof f};
    CHECK(cenalloc_forecast_attach(s, fd, "display", &f) == 0);
    CHECK(f.struct_size == sizeof f);
    CHECK(f.outcome == CENALLOC_FORECAST_WOULD_MIGRATE);
    CHECK(strcmp(f.from_heap, "system") == 0 && strcmp(f.to_heap, "linux,cma") == 0);
    CHECK(f.notified_count == 1 && strcmp(f.notified[0], "gpu") == 0);
    CHECK(cenalloc_forecast_attach(s, fd, "gpu", &f) == 0 && f.outcome == CENALLOC_FORECAST_FITS);
    CHECK(cenalloc_forecast_attach(s, fd, "no-such-device", &f) == -ENOENT);
    f.struct_size = CENALLOC_FORECAST_SIZE_VER0 - 4;
    CHECK(cenalloc_forecast_attach(s, fd, "display", &f) == -EINVAL);
    f.struct_size = sizeof f;

    /* Pinned: the move is EBUSY naming the GPU, and the forecast says so. */
    CHECK(cenalloc_pin(s, gpu) == 0);
    CHECK(cenalloc_migrate(s, fd, "linux,cma") == -EBUSY);
    CHECK(strstr(cenalloc_last_error(), "gpu") != NULL);
    CHECK(cenalloc_forecast_attach(s, fd, "display", &f) == 0);
    CHECK(f.outcome == CENALLOC_FORECAST_BLOCKED && strstr(f.reason, "gpu") != NULL);
    CHECK(cenalloc_unpin(s, gpu) == 0);
    CHECK(cenalloc_migrate(s, fd, "no-such-heap") == -ENOENT);
    CHECK(cenalloc_migrate(s, fd, NULL) == -EINVAL);
    CHECK(cenalloc_describe(s, fd, &info) == 0 && strcmp(info.heap, "system") == 0);

    /* No event yet. */
    int events = -1;
    CHECK(cenalloc_event_fd(s, &events) == 0 && events >= 0);
    cenalloc_move_event e = {.struct_size = sizeof e};
    CHECK(cenalloc_next_event(s, &e) == -EAGAIN);
    CHECK(cenalloc_wait_event(s, 0, &e) == -ETIMEDOUT);
    CHECK(cenalloc_wait_event(s, -2, &e) == -EINVAL);
    CHECK(!readable(events));

    /* Unpinned: the move happens, the GPU is told, the bytes survive. */
    CHECK(cenalloc_migrate(s, fd, "linux,cma") == 0);
    CHECK(cenalloc_describe(s, fd, &info) == 0 && strcmp(info.heap, "linux,cma") == 0);
    CHECK(readable(events));
    e.struct_size = 0; /* refused: the event stays */
    CHECK(cenalloc_next_event(s, &e) == -EINVAL);
    e.struct_size = sizeof e;
    CHECK(cenalloc_next_event(s, &e) == 0);
    CHECK(e.struct_size == sizeof e && e.kind == CENALLOC_MOVE_MOVED);
    CHECK(e.attachment == gpu && e.buffer == info.id && e.sequence == 1);
    CHECK(strcmp(e.cause, "migrate to 'linux,cma'") == 0);
    CHECK(cenalloc_next_event(s, &e) == -EAGAIN);
    CHECK(!readable(events));
    CHECK(cenalloc_acknowledge_move(s, gpu, 1) == -ENOENT);
    CHECK(patterned(fd, kSize, 0));

    /* The old mapping's id still unmaps; a new mapping is the new storage. */
    CHECK(cenalloc_unmap(s, mapping) == 0);
    CHECK(cenalloc_map(s, gpu, CENALLOC_DMA_BIDIRECTIONAL, entries, 4, &count, &mapping) == 0);
    CHECK(cenalloc_unmap(s, mapping) == 0);
    CHECK(cenalloc_detach(s, gpu) == 0);
    CHECK(cenalloc_release(s, fd) == 0);
    close(fd);
}

/*
 * One process of a migration through cenallocd at @p socket, on the buffer
 * it was given as fd 3 (1 MiB of pattern(i)). It reports on stdout, one line
 * a step, and waits on stdin where the test paces it.
 *  - "dynamic": a dynamic GPU importer that maps, says "mapped", takes the
 *    pending event, acknowledges it, takes the moved event, maps again,
 *    checks the bytes, says "remapped".
 *  - "static": a static GPU importer that maps, says "mapped" and holds the
 *    mapping until stdin closes.
 *  - "attach-moves" / "attach-busy": the restrictive attacher: attaches the
 *    display, which must move the buffer to CMA / be EBUSY naming the GPU,
 *    and says "attached" / "busy".
 */
static int daemonMode(const char* role, const char* socket) {
    enum { kSize = 1 << 20, kBuffer = 3, kWaitMs = 30000 };
    cenalloc_session* s = NULL;
    CHECK(cenalloc_session_connect(socket, &s) == 0);
    if (!s)
        return 1;
    uint64_t id = 0, attachment = 0, mapping = 0;
    cenalloc_sg_entry entries[4];
    size_t count = 0;
    cenalloc_buffer_info info = {.struct_size = sizeof info};
    CHECK(cenalloc_import(s, kBuffer, &id) == 0);
    if (strcmp(role, "dynamic") == 0 || strcmp(role, "static") == 0) {
        const int dynamic = strcmp(role, "dynamic") == 0;
        CHECK(cenalloc_attach_flags(s, kBuffer, "gpu", dynamic ? CENALLOC_ATTACH_DYNAMIC : 0, &attachment) == 0);
        CHECK(cenalloc_map(s, attachment, CENALLOC_DMA_BIDIRECTIONAL, entries, 4, &count, &mapping) == 0);
        CHECK(cenalloc_describe(s, kBuffer, &info) == 0 && strcmp(info.heap, "system") == 0);
        printf("mapped\n");
        fflush(stdout);
        if (dynamic) {
            cenalloc_move_event e = {.struct_size = sizeof e};
            CHECK(cenalloc_wait_event(s, kWaitMs, &e) == 0);
            CHECK(e.kind == CENALLOC_MOVE_PENDING && e.attachment == attachment && e.buffer == id);
            CHECK(e.sequence == 1 && strcmp(e.cause, "attach of 'display'") == 0);
            CHECK(cenalloc_acknowledge_move(s, attachment, e.sequence + 1) == -ENOENT);
            CHECK(cenalloc_acknowledge_move(s, attachment, e.sequence) == 0);
            CHECK(cenalloc_wait_event(s, kWaitMs, &e) == 0);
            CHECK(e.kind == CENALLOC_MOVE_MOVED && e.attachment == attachment && e.sequence == 1);
            CHECK(cenalloc_unmap(s, mapping) == 0);
            CHECK(cenalloc_map(s, attachment, CENALLOC_DMA_BIDIRECTIONAL, entries, 4, &count, &mapping) == 0);
            CHECK(count == 1 && entries[0].length == kSize);
            CHECK(cenalloc_describe(s, kBuffer, &info) == 0 && strcmp(info.heap, "linux,cma") == 0);
            CHECK(patterned(kBuffer, kSize, 0));
            CHECK(cenalloc_next_event(s, &e) == -EAGAIN);
            printf("remapped\n");
        } else {
            char line[16];
            while (fgets(line, sizeof line, stdin)) {
            }
        }
        CHECK(cenalloc_unmap(s, mapping) == 0);
        CHECK(cenalloc_detach(s, attachment) == 0);
    } else if (strcmp(role, "attach-moves") == 0) {
        CHECK(cenalloc_attach(s, kBuffer, "display", &attachment) == 0);
        CHECK(cenalloc_describe(s, kBuffer, &info) == 0 && strcmp(info.heap, "linux,cma") == 0);
        CHECK(cenalloc_map(s, attachment, CENALLOC_DMA_TO_DEVICE, entries, 4, &count, &mapping) == 0);
        CHECK(count == 1 && entries[0].length == kSize);
        CHECK(patterned(kBuffer, kSize, 0));
        CHECK(cenalloc_unmap(s, mapping) == 0);
        CHECK(cenalloc_detach(s, attachment) == 0);
        printf("attached\n");
    } else if (strcmp(role, "attach-busy") == 0) {
        cenalloc_forecast f = {.struct_size = sizeof f};
        CHECK(cenalloc_forecast_attach(s, kBuffer, "display", &f) == 0);
        CHECK(f.outcome == CENALLOC_FORECAST_BLOCKED && strstr(f.reason, "gpu") != NULL);
        CHECK(cenalloc_attach(s, kBuffer, "display", &attachment) == -EBUSY);
        CHECK(strstr(cenalloc_last_error(), "gpu") != NULL);
        CHECK(cenalloc_migrate(s, kBuffer, "linux,cma") == -EBUSY);
        CHECK(cenalloc_describe(s, kBuffer, &info) == 0 && strcmp(info.heap, "system") == 0);
        printf("busy\n");
    } else {
        fprintf(stderr, "unknown role %s\n", role);
        ++failures;
    }
    CHECK(cenalloc_release(s, kBuffer) == 0);
    cenalloc_session_close(s);
    fflush(stdout);
    fprintf(stderr, "%s: %d passed, %d failed\n", role, checks - failures, failures);
    return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc == 3)
        return daemonMode(argv[1], argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [ROLE SOCKET]\n", argv[0]);
        return 2;
    }
    const int fdsBefore = countFds();
    cenalloc_session* s = NULL;
    CHECK(cenalloc_session_open_local(NULL, NULL) == -EINVAL);
    CHECK(cenalloc_session_open_local("/nonexistent/platform.yaml", &s) == -ENOENT);
    CHECK(s == NULL);
    CHECK(strlen(cenalloc_last_error()) > 0);
    CHECK(cenalloc_session_open_local(NULL, &s) == 0);
    if (!s)
        return 1;

    cenalloc_heap_info before = {.struct_size = sizeof before};
    CHECK(findHeap(s, "system", &before) == 0);
    CHECK(before.contiguous == 0 && before.cached == 1);
    cenalloc_heap_info cmaBefore = {.struct_size = sizeof cmaBefore};
    CHECK(findHeap(s, "linux,cma", &cmaBefore) == 0);
    size_t heaps = 0;
    CHECK(cenalloc_heap_count(s, &heaps) == 0 && heaps >= 2);
    cenalloc_heap_info ignored = {.struct_size = sizeof ignored};
    CHECK(cenalloc_get_heap(s, heaps, &ignored) == -ERANGE);
    checkStructSizes(s);

    /* Validation, as DMA_HEAP_IOCTL_ALLOC does it. */
    int fd = -1;
    CHECK(cenalloc_alloc(s, "system", 0, O_CLOEXEC | O_RDWR, 0, &fd) == -EINVAL);
    CHECK(cenalloc_alloc(s, "system", UINT64_MAX, O_CLOEXEC | O_RDWR, 0, &fd) == -EINVAL);
    CHECK(cenalloc_alloc(s, "system", 4096, O_NONBLOCK, 0, &fd) == -EINVAL);
    CHECK(cenalloc_alloc(s, "system", 4096, O_CLOEXEC, 1, &fd) == -EINVAL);
    CHECK(cenalloc_alloc(s, "no-such-heap", 4096, O_CLOEXEC, 0, &fd) == -ENOENT);
    CHECK(cenalloc_alloc(s, "linux,cma", (uint64_t)1 << 40, O_CLOEXEC, 0, &fd) == -ENOMEM);
    CHECK(fd == -1);

    /* An eager buffer: zero-filled, writable, nameable, syncable. */
    CHECK(cenalloc_alloc(s, "system", 65536, O_CLOEXEC | O_RDWR, 0, &fd) == 0);
    CHECK(fd >= 0);
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    unsigned char* p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    if (p != MAP_FAILED) {
        int zero = 1;
        for (size_t i = 0; i < 65536; ++i)
            zero = zero && p[i] == 0;
        CHECK(zero);
        CHECK(cenalloc_begin_cpu_access(s, fd, CENALLOC_SYNC_WRITE) == 0);
        memset(p, 0xab, 65536);
        CHECK(cenalloc_end_cpu_access(s, fd, CENALLOC_SYNC_WRITE) == 0);
        munmap(p, 65536);
    }
    CHECK(cenalloc_begin_cpu_access(s, fd, 0) == -EINVAL);
    CHECK(cenalloc_begin_cpu_access(s, fd, 4) == -EINVAL);
    CHECK(cenalloc_set_name(s, fd, "c-frame") == 0);
    CHECK(cenalloc_set_name(s, fd, "0123456789012345678901234567890123") == -EINVAL);

    /* Attach, map, unmap, detach. */
    uint64_t attachment = 0, mapping = 0;
    CHECK(cenalloc_attach(s, fd, "gpu", &attachment) == 0);
    CHECK(cenalloc_attach(s, fd, "no-such-device", &attachment) == -ENOENT);
    cenalloc_sg_entry entries[4];
    size_t count = 0;
    CHECK(cenalloc_map(s, attachment, CENALLOC_DMA_TO_DEVICE, entries, 4, &count, &mapping) == 0);
    CHECK(count >= 1);

    /* describe: the buffer's bufinfo entry, by its fd. */
    cenalloc_buffer_info info = {.struct_size = sizeof info};
    CHECK(cenalloc_describe(s, fd, &info) == 0);
    CHECK(info.struct_size == sizeof info);
    CHECK(info.size == 65536 && strcmp(info.name, "c-frame") == 0 && strcmp(info.heap, "system") == 0);
    CHECK((info.flags & CENALLOC_BUFFER_HAS_STORAGE) != 0 && (info.flags & CENALLOC_BUFFER_IN_HOST_KERNEL) == 0);
    CHECK(info.device_count == 1 && info.mapping_count == 1 && info.chunk_count >= 1);
    CHECK(info.id != 0 && info.inode != 0 && strlen(info.exporter) > 0);
    int foreign = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(cenalloc_describe(s, foreign, &info) == -EBADF);
    close(foreign);
    CHECK(cenalloc_describe(s, foreign, &info) == -EBADF); /* closed now */
    info.struct_size = 0;
    CHECK(cenalloc_describe(s, fd, &info) == -EINVAL);
    info.struct_size = sizeof info;
    uint64_t total = 0;
    for (size_t i = 0; i < count && i < 4; ++i)
        total += entries[i].length;
    CHECK(count > 4 || total == 65536);
    CHECK(cenalloc_map(s, attachment, 7, entries, 4, &count, &mapping) == -EINVAL);
    CHECK(cenalloc_map(s, attachment, -1, entries, 4, &count, &mapping) == -EINVAL);
    CHECK(cenalloc_unmap(s, mapping) == 0);
    CHECK(cenalloc_detach(s, attachment) == 0);
    CHECK(cenalloc_detach(s, attachment) != 0);

    /* A deferred buffer the display and the gpu share: contiguous memory. */
    int shared = -1;
    CHECK(cenalloc_create(s, 1 << 20, "bad-hint", 9, &shared) == -EINVAL);
    CHECK(cenalloc_create(s, 1 << 20, "shared", CENALLOC_CPU_ACCESS_RARE, &shared) == 0);
    uint64_t a1 = 0, a2 = 0, m1 = 0;
    CHECK(cenalloc_attach(s, shared, "gpu", &a1) == 0);
    CHECK(cenalloc_attach(s, shared, "display", &a2) == 0);
    CHECK(cenalloc_map(s, a2, CENALLOC_DMA_TO_DEVICE, entries, 4, &count, &m1) == 0);
    CHECK(count == 1 && entries[0].length == (1u << 20));

    /* The fd of its bytes (here, the model's: the buffer's own memfd). */
    int storage = -1;
    CHECK(cenalloc_storage_fd(s, shared, &storage) == 0);
    CHECK(storage >= 0 && (fcntl(storage, F_GETFD) & FD_CLOEXEC));
    struct stat sharedStat, storageStat;
    CHECK(fstat(shared, &sharedStat) == 0 && fstat(storage, &storageStat) == 0);
    CHECK(sharedStat.st_ino == storageStat.st_ino);
    close(storage);
    int stranger = open("/dev/null", O_RDWR | O_CLOEXEC);
    storage = -1;
    CHECK(cenalloc_storage_fd(s, stranger, &storage) == -EBADF && storage == -1);
    CHECK(cenalloc_storage_fd(s, shared, NULL) == -EINVAL);
    close(stranger);

    /* Import of our own buffer through another fd names the same buffer. */
    uint64_t id1 = 0, id2 = 0;
    int dup = fcntl(shared, F_DUPFD_CLOEXEC, 0);
    CHECK(cenalloc_import(s, shared, &id1) == 0);
    CHECK(cenalloc_import(s, dup, &id2) == 0);
    CHECK(id1 == id2);
    int notOurs = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(cenalloc_import(s, notOurs, &id2) < 0);
    close(notOurs);
    close(dup);

    cenalloc_explanation e = {.struct_size = sizeof e};
    const char* devices[] = {"gpu", "display"};
    CHECK(cenalloc_explain(s, devices, 2, 1 << 20, CENALLOC_CPU_ACCESS_RARE, &e) == 0);
    CHECK(e.satisfiable == 1);
    CHECK(strcmp(e.heap, "linux,cma") == 0);
    CHECK(strcmp(e.allocating_device, "display") == 0);
    const char* unknown[] = {"gpu", "nope"};
    CHECK(cenalloc_explain(s, unknown, 2, 4096, CENALLOC_CPU_ACCESS_RARE, &e) == -ENOENT);

    /* Allocating for devices: the heap explain chose, and why. */
    cenalloc_heap_info cmaForBefore = {.struct_size = sizeof cmaForBefore};
    CHECK(findHeap(s, "linux,cma", &cmaForBefore) == 0);
    cenalloc_alloc_for_info forInfo = {.struct_size = sizeof forInfo};
    int forFd = -1;
    CHECK(cenalloc_alloc_for(s, devices, 2, 5000, "for-both", CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC | O_RDWR, &forFd,
                             &forInfo) == 0);
    CHECK(forFd >= 0 && (fcntl(forFd, F_GETFD) & FD_CLOEXEC));
    CHECK(forInfo.struct_size == sizeof forInfo);
    CHECK(forInfo.size == 8192);
    CHECK(strcmp(forInfo.heap, "linux,cma") == 0);
    CHECK(strcmp(forInfo.kernel_heap, "") == 0);
    CHECK(strstr(forInfo.reason, "gpu and display") != NULL);
    CHECK(strcmp(forInfo.exporter, "linux,cma") == 0);
    CHECK(forInfo.device_count == 2 && forInfo.device_capacity == 0 && forInfo.devices == NULL);
    cenalloc_heap_info cmaDuring = {.struct_size = sizeof cmaDuring};
    CHECK(findHeap(s, "linux,cma", &cmaDuring) == 0);
    CHECK(cmaDuring.live_buffers == cmaForBefore.live_buffers + 1);
    close(forFd);
    /* Each device with its sysfs path and driver, into the caller's array:
       as many as it has room for, nothing past them. */
    static cenalloc_alloc_for_device forDevices[3];
    memset(forDevices, 'x', sizeof forDevices);
    cenalloc_alloc_for_info withDevices = {
        .struct_size = sizeof withDevices, .device_capacity = 1, .devices = forDevices};
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC | O_RDWR, &forFd,
                             &withDevices) == 0);
    CHECK(withDevices.device_count == 2 && withDevices.device_capacity == 1 && withDevices.devices == forDevices);
    CHECK(strcmp(forDevices[0].name, "gpu") == 0);
    CHECK(strcmp(forDevices[0].sysfs_path, "") == 0 && strcmp(forDevices[0].driver, "") == 0); /* the model's */
    CHECK(forDevices[1].name[0] == 'x' && forDevices[1].driver[CENALLOC_DRIVER_MAX - 1] == 'x');
    close(forFd);
    withDevices.device_capacity = 3;
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC | O_RDWR, &forFd,
                             &withDevices) == 0);
    CHECK(strcmp(forDevices[1].name, "display") == 0 && forDevices[2].name[0] == 'x');
    close(forFd);
    /* A caller built against the first version gets its 400 bytes, no more. */
    cenalloc_alloc_for_info oldInfo = {.struct_size = CENALLOC_ALLOC_FOR_INFO_SIZE_VER0};
    unsigned char* tail = (unsigned char*)&oldInfo + CENALLOC_ALLOC_FOR_INFO_SIZE_VER0;
    memset(tail, 0x7f, sizeof oldInfo - CENALLOC_ALLOC_FOR_INFO_SIZE_VER0);
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC | O_RDWR, &forFd,
                             &oldInfo) == 0);
    CHECK(oldInfo.struct_size == CENALLOC_ALLOC_FOR_INFO_SIZE_VER0 && strcmp(oldInfo.heap, "linux,cma") == 0);
    CHECK(tail[0] == 0x7f && tail[sizeof oldInfo - CENALLOC_ALLOC_FOR_INFO_SIZE_VER0 - 1] == 0x7f);
    close(forFd);
    forFd = -1;
    CHECK(cenalloc_alloc_for(s, devices, 1, 4096, NULL, CENALLOC_CPU_ACCESS_NONE, O_CLOEXEC | O_RDWR, &forFd, NULL) ==
          0);
    CHECK(forFd >= 0);
    close(forFd);
    /* Bad input: nothing allocated, no fd. */
    forFd = -1;
    CHECK(cenalloc_alloc_for(s, unknown, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) ==
          -ENODEV);
    const char* twice[] = {"gpu", "gpu"};
    CHECK(cenalloc_alloc_for(s, twice, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) ==
          -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 0, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) ==
          -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 17, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) ==
          -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 2, 0, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) == -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, 7, O_CLOEXEC, &forFd, &forInfo) == -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_NONBLOCK, &forFd, &forInfo) ==
          -EINVAL);
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, NULL, &forInfo) ==
          -EINVAL);
    forInfo.struct_size = 8;
    CHECK(cenalloc_alloc_for(s, devices, 2, 4096, NULL, CENALLOC_CPU_ACCESS_RARE, O_CLOEXEC, &forFd, &forInfo) ==
          -EINVAL);
    CHECK(forFd == -1);
    cenalloc_heap_info cmaForAfter = {.struct_size = sizeof cmaForAfter};
    CHECK(findHeap(s, "linux,cma", &cmaForAfter) == 0);
    CHECK(cmaForAfter.live_buffers == cmaForBefore.live_buffers);

    CHECK(cenalloc_unmap(s, m1) == 0);
    CHECK(cenalloc_release(s, shared) == 0);
    close(shared);
    close(fd);

    checkMigration(s);

    /* Everything back to where it was. */
    cenalloc_heap_info after = {.struct_size = sizeof after};
    CHECK(findHeap(s, "system", &after) == 0);
    CHECK(after.live_buffers == before.live_buffers);
    CHECK(after.live_bytes == before.live_bytes);
    cenalloc_heap_info cmaAfter = {.struct_size = sizeof cmaAfter};
    CHECK(findHeap(s, "linux,cma", &cmaAfter) == 0);
    CHECK(cmaAfter.live_buffers == cmaBefore.live_buffers && cmaAfter.free_bytes == cmaBefore.free_bytes);
    cenalloc_session_close(s);
    cenalloc_session_close(NULL);
    CHECK(countFds() == fdsBefore);

    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
