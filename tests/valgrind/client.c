/* SPDX-License-Identifier: MIT */
/* A small client of cenallocd, run under Valgrind memcheck: every call that sends a message, fds attached or not. */
#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cenalloc/c/cenalloc.h>

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_ != 0) {                                                                                                \
            fprintf(stderr, "%s: %d: %s\n", #call, rc_, cenalloc_last_error());                                        \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    cenalloc_session* session = NULL;
    CHECK(cenalloc_session_connect(argv[1], &session));
    size_t heaps = 0;
    CHECK(cenalloc_heap_count(session, &heaps));
    cenalloc_heap_info info = {.struct_size = sizeof info};
    CHECK(cenalloc_get_heap(session, 0, &info));
    int fd = -1;
    CHECK(cenalloc_alloc(session, "system", 65536, O_CLOEXEC | O_RDWR, 0, &fd));
    uint64_t id = 0;
    CHECK(cenalloc_import(session, fd, &id));
    CHECK(cenalloc_set_name(session, fd, "valgrind"));
    CHECK(cenalloc_begin_cpu_access(session, fd, CENALLOC_SYNC_READ | CENALLOC_SYNC_WRITE));
    CHECK(cenalloc_end_cpu_access(session, fd, CENALLOC_SYNC_READ | CENALLOC_SYNC_WRITE));
    uint64_t attachment = 0, mapping = 0;
    cenalloc_sg_entry entries[4];
    size_t count = 0;
    CHECK(cenalloc_attach(session, fd, "gpu", &attachment));
    CHECK(cenalloc_map(session, attachment, 0, entries, 4, &count, &mapping));
    CHECK(cenalloc_unmap(session, mapping));
    CHECK(cenalloc_detach(session, attachment));
    CHECK(cenalloc_release(session, fd));
    int deferred = -1;
    CHECK(cenalloc_create(session, 8192, "deferred", 0, &deferred));
    close(deferred);
    close(fd);
    cenalloc_session_close(session);
    return 0;
}
