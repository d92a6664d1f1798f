// SPDX-License-Identifier: MIT
// An ordinary dma-heap user, as a media program would be written: knows the kernel uapi, nothing of cenalloc.
//
// Enumerates /dev/dma_heap, allocates from a heap, maps, writes under
// DMA_BUF_IOCTL_SYNC, names the buffer, checks the bytes through a second
// mapping, and frees. With --hold it prints "holding" and waits for a line
// on stdin before freeing, so that a test can look at the buffer meanwhile.
//
// Usage: heap_user [--hold] [heap [size]]    (default: system, 1 MiB)
// Prints "heaps: <names...>" and "ok", or "error: ..." and exits 1.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/dma-heap.h>

static int failWith(const char* what) {
    printf("error: %s: %s\n", what, strerror(errno));
    return 1;
}

static int compareNames(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

int main(int argc, char** argv) {
    int hold = 0;
    int arg = 1;
    if (arg < argc && strcmp(argv[arg], "--hold") == 0) {
        hold = 1;
        ++arg;
    }
    const char* heapName = arg < argc ? argv[arg++] : "system";
    size_t size = arg < argc ? strtoull(argv[arg++], NULL, 0) : 1024 * 1024;

    DIR* dir = opendir("/dev/dma_heap");
    if (!dir)
        return failWith("opendir /dev/dma_heap");
    char* names[64];
    int count = 0;
    struct dirent* entry;
    while ((entry = readdir(dir)) != NULL && count < 64)
        if (entry->d_name[0] != '.')
            names[count++] = strdup(entry->d_name);
    closedir(dir);
    qsort(names, (size_t)count, sizeof names[0], compareNames);
    printf("heaps:");
    for (int i = 0; i < count; ++i) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");

    char path[300];
    snprintf(path, sizeof path, "/dev/dma_heap/%s", heapName);
    int heap = open(path, O_RDONLY | O_CLOEXEC);
    if (heap < 0)
        return failWith(path);
    struct dma_heap_allocation_data alloc = {.len = size, .fd_flags = O_RDWR | O_CLOEXEC};
    if (ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &alloc) != 0)
        return failWith("DMA_HEAP_IOCTL_ALLOC");
    close(heap);
    int buffer = (int)alloc.fd;

    unsigned char* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, buffer, 0);
    if (p == MAP_FAILED)
        return failWith("mmap");
    struct dma_buf_sync sync = {.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE};
    if (ioctl(buffer, DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return failWith("DMA_BUF_IOCTL_SYNC start");
    for (size_t i = 0; i < size; ++i)
        p[i] = (unsigned char)(i * 7 + 3);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
    if (ioctl(buffer, DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return failWith("DMA_BUF_IOCTL_SYNC end");
    if (ioctl(buffer, DMA_BUF_SET_NAME_B, "heap-user") != 0)
        return failWith("DMA_BUF_SET_NAME");
    munmap(p, size);

    const unsigned char* q = mmap(NULL, size, PROT_READ, MAP_SHARED, buffer, 0);
    if (q == MAP_FAILED)
        return failWith("mmap again");
    sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
    if (ioctl(buffer, DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return failWith("DMA_BUF_IOCTL_SYNC start read");
    for (size_t i = 0; i < size; ++i) {
        if (q[i] != (unsigned char)(i * 7 + 3)) {
            printf("error: byte %zu reads %u\n", i, q[i]);
            return 1;
        }
    }
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
    if (ioctl(buffer, DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return failWith("DMA_BUF_IOCTL_SYNC end read");
    munmap((void*)q, size);

    if (hold) {
        printf("holding\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return failWith("waiting on stdin");
    }
    close(buffer);
    printf("ok\n");
    return 0;
}
