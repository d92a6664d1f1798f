/* SPDX-License-Identifier: MIT */
/* The C11 API of cenalloc: sessions, buffers as fds, attachments and mappings. */
#ifndef CENALLOC_C_CENALLOC_H
#define CENALLOC_C_CENALLOC_H

#include <stddef.h>
#include <stdint.h>

#include <cenalloc/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Conventions.
 *  - Every function that can fail returns 0 on success or a negative errno
 *    (-EINVAL, -ENOMEM, -EBUSY, ...). No C++ exception ever crosses this API.
 *  - cenalloc_last_error() returns a short message about the calling thread's
 *    most recent failure ("" after a success), valid until its next call.
 *  - Buffers are file descriptors. Fds returned through out-parameters belong
 *    to the caller, who closes them with close(2).
 *  - A session is not bound to a thread; its functions may be called
 *    concurrently.
 *  - Parameters that take a cenalloc_dma_direction or cenalloc_cpu_access
 *    are plain ints, so that any value a caller passes is defined behaviour:
 *    values outside the enum are -EINVAL.
 *
 * Structs that grow. Every struct the library fills starts with
 * `uint32_t struct_size`, which the caller sets to the size of the struct
 * as its header declares it, so that a struct can gain fields at its end
 * without breaking a program built against an older header, as the
 * kernel's extensible uapi structs do (struct clone_args, struct open_how:
 * copy_struct_from_user()):
 *  - a size smaller than the struct's first version (its _SIZE_VER0) is
 *    -EINVAL;
 *  - a size this library knows or one between its versions (a program built
 *    against an older header) gets the fields that fit in it and not a byte
 *    more;
 *  - a larger size (a program built against a newer header) is accepted
 *    when every byte past what this library knows is zero, and is -E2BIG
 *    otherwise;
 *  - on success struct_size says how many bytes the library filled; the
 *    bytes past them are left as they were (zero, for a zeroed struct).
 * So zero the struct and set its size:
 *     cenalloc_heap_info info = {.struct_size = sizeof info};
 * Fixed-size elements of caller arrays (cenalloc_sg_entry) carry no size:
 * the caller's array stride is their size.
 */

/** An open session with cenalloc: in-process or with cenallocd. */
typedef struct cenalloc_session cenalloc_session;

/** DMA_BUF_SYNC_READ / DMA_BUF_SYNC_WRITE. */
enum {
    CENALLOC_SYNC_READ = 1,
    CENALLOC_SYNC_WRITE = 2,
};

/** enum dma_data_direction. */
typedef enum {
    CENALLOC_DMA_BIDIRECTIONAL = 0,
    CENALLOC_DMA_TO_DEVICE = 1,
    CENALLOC_DMA_FROM_DEVICE = 2,
} cenalloc_dma_direction;

/** How often the CPU touches a buffer (cached vs uncached memory). */
typedef enum {
    CENALLOC_CPU_ACCESS_NONE = 0,
    CENALLOC_CPU_ACCESS_RARE = 1,
    CENALLOC_CPU_ACCESS_OFTEN = 2,
} cenalloc_cpu_access;

/** Longest heap or device name the structs below carry, with its NUL. */
#define CENALLOC_NAME_MAX 64

/** One DMA segment as the device sees it. */
typedef struct {
    uint64_t dma_address;
    uint64_t length;
} cenalloc_sg_entry;

/** One heap: its properties and statistics. */
typedef struct {
    uint32_t struct_size; /**< set by the caller (see "Structs that grow") */
    uint32_t reserved;    /**< 0 */
    char name[CENALLOC_NAME_MAX];
    uint64_t capacity;
    uint64_t free_bytes;
    uint64_t live_buffers;
    uint64_t live_bytes;
    uint64_t watermark_bytes;
    uint64_t failed_allocations;
    uint64_t lowest_address;
    uint64_t highest_address;
    int contiguous; /**< 1 when every buffer is one contiguous chunk */
    int cached;     /**< 1 when CPU mappings are cached */
    /* CENALLOC_HEAP_INFO_SIZE_VER0 ends here. */
    uint64_t total_allocations; /**< allocations ever made from the heap */
    uint64_t valid_heap_flags;  /**< the heap flags cenalloc_alloc() accepts */
} cenalloc_heap_info;
#define CENALLOC_HEAP_INFO_SIZE_VER0 144 /* up to cached */
#define CENALLOC_HEAP_INFO_SIZE_VER1 160 /* total_allocations, valid_heap_flags */

/** What cenalloc_explain() found. */
typedef struct {
    uint32_t struct_size;                      /**< set by the caller (see "Structs that grow") */
    int satisfiable;                           /**< 1 when some heap serves every device */
    char heap[CENALLOC_NAME_MAX];              /**< the chosen heap, "" when unsatisfiable */
    char allocating_device[CENALLOC_NAME_MAX]; /**< "" when cenalloc must allocate */
} cenalloc_explanation;
#define CENALLOC_EXPLANATION_SIZE_VER0 136

/** Longest reason cenalloc_alloc_for_info carries, with its NUL (longer ones are cut). */
#define CENALLOC_REASON_MAX 256

/** Which heap cenalloc_alloc_for() allocated from, and why. */
typedef struct {
    uint32_t struct_size; /**< set by the caller (see "Structs that grow") */
    uint32_t reserved;    /**< 0 */
    uint64_t size;        /**< the buffer's size (page-aligned) */
    char heap[CENALLOC_NAME_MAX];
    char kernel_heap[CENALLOC_NAME_MAX]; /**< its /dev/dma_heap node; "" for the model's storage */
    char reason[CENALLOC_REASON_MAX];
} cenalloc_alloc_for_info;
#define CENALLOC_ALLOC_FOR_INFO_SIZE_VER0 400

/** Longest buffer name cenalloc_buffer_info carries, with its NUL (DMA_BUF_NAME_LEN). */
#define CENALLOC_BUFFER_NAME_MAX 32

/** cenalloc_buffer_info.flags. */
enum {
    CENALLOC_BUFFER_HAS_STORAGE = 0x1,    /**< its memory exists (a deferred buffer gets it at first use) */
    CENALLOC_BUFFER_IN_HOST_KERNEL = 0x2, /**< a host kernel heap's dma-buf */
};

/** One buffer as `cenalloc bufinfo` lists it (cenalloc_describe()). */
typedef struct {
    uint32_t struct_size; /**< set by the caller (see "Structs that grow") */
    uint32_t flags;       /**< CENALLOC_BUFFER_* */
    uint64_t id;
    uint64_t size;
    uint64_t inode;
    int64_t references; /**< holders of the buffer object in its allocator (handles, mappings) */
    uint64_t cache_maintenance_ops;
    uint64_t sync_violations;
    uint32_t fd_flags;
    uint32_t cpu_access_depth; /**< CPU access brackets open */
    uint32_t chunk_count;
    uint32_t device_count; /**< devices attached */
    uint32_t mapping_count;
    uint32_t reserved; /**< 0 */
    char exporter[CENALLOC_NAME_MAX];
    char name[CENALLOC_BUFFER_NAME_MAX];
    char heap[CENALLOC_NAME_MAX]; /**< "" while a deferred buffer has no storage */
} cenalloc_buffer_info;
#define CENALLOC_BUFFER_INFO_SIZE_VER0 240

/** The message of the calling thread's last failure, or "". */
CENALLOC_EXPORT const char* cenalloc_last_error(void);

/**
 * Open an in-process session on the platform described by the YAML file
 * @p platform_path, or on the built-in platform when it is NULL.
 */
CENALLOC_EXPORT int cenalloc_session_open_local(const char* platform_path, cenalloc_session** out);

/**
 * Connect to cenallocd at @p socket_path (NULL: the default socket).
 * -ENOENT or -ECONNREFUSED when no daemon listens.
 */
CENALLOC_EXPORT int cenalloc_session_connect(const char* socket_path, cenalloc_session** out);

/** Close a session: detach and unmap everything it holds. NULL is a no-op. */
CENALLOC_EXPORT void cenalloc_session_close(cenalloc_session* session);

/** Number of heaps, for cenalloc_get_heap(). */
CENALLOC_EXPORT int cenalloc_heap_count(cenalloc_session* session, size_t* count);

/**
 * Heap number @p index (a fresh snapshot). -ERANGE past the last heap;
 * -EINVAL or -E2BIG for out->struct_size (see "Structs that grow").
 */
CENALLOC_EXPORT int cenalloc_get_heap(cenalloc_session* session, size_t index, cenalloc_heap_info* out);

/**
 * Allocate @p length bytes from @p heap now (DMA_HEAP_IOCTL_ALLOC):
 * -EINVAL for 0 or overflowing lengths, fd flags other than
 * O_CLOEXEC|O_ACCMODE and undefined heap flags; -ENOENT for an unknown heap;
 * -ENOMEM when the heap is exhausted. The new fd is stored in *out_fd.
 */
CENALLOC_EXPORT int cenalloc_alloc(cenalloc_session* session, const char* heap, uint64_t length, uint32_t fd_flags,
                                   uint64_t heap_flags, int* out_fd);

/**
 * Allocate now for @p count devices (1 to 16 distinct names) from the best
 * heap that serves them all; on a host whose kernel heaps the model is
 * placed on, a real dma-buf from the chosen kernel heap. @p name may be
 * NULL; @p fd_flags as cenalloc_alloc()'s. @p info may be NULL; otherwise
 * it receives the heap, kernel heap and reason (-EINVAL or -E2BIG for
 * info->struct_size, checked first). -ENODEV for an unknown device, -EINVAL
 * when no heap serves the devices.
 */
CENALLOC_EXPORT int cenalloc_alloc_for(cenalloc_session* session, const char* const* devices, size_t count,
                                       uint64_t size, const char* name, int cpu_access, uint32_t fd_flags, int* out_fd,
                                       cenalloc_alloc_for_info* info);

/** A deferred buffer: storage comes at the first map or CPU access. */
CENALLOC_EXPORT int cenalloc_create(cenalloc_session* session, uint64_t size, const char* name, int cpu_access,
                                    int* out_fd);

/** Use a buffer fd received from elsewhere; *out_id names the buffer. */
CENALLOC_EXPORT int cenalloc_import(cenalloc_session* session, int buffer_fd, uint64_t* out_id);

/** This session no longer uses the buffer (its fds stay the caller's). */
CENALLOC_EXPORT int cenalloc_release(cenalloc_session* session, int buffer_fd);

/** Attach @p device; -EBUSY when existing storage cannot serve it. */
CENALLOC_EXPORT int cenalloc_attach(cenalloc_session* session, int buffer_fd, const char* device,
                                    uint64_t* out_attachment);

CENALLOC_EXPORT int cenalloc_detach(cenalloc_session* session, uint64_t attachment);

/**
 * Map an attachment. Up to @p capacity segments are copied to @p entries;
 * *count receives the number of segments of the mapping (which may be more
 * than @p capacity: the mapping exists either way). *out_mapping names it.
 */
CENALLOC_EXPORT int cenalloc_map(cenalloc_session* session, uint64_t attachment, int direction,
                                 cenalloc_sg_entry* entries, size_t capacity, size_t* count, uint64_t* out_mapping);

CENALLOC_EXPORT int cenalloc_unmap(cenalloc_session* session, uint64_t mapping);

/** DMA_BUF_IOCTL_SYNC START/END; flags from CENALLOC_SYNC_*. */
CENALLOC_EXPORT int cenalloc_begin_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags);
CENALLOC_EXPORT int cenalloc_end_cpu_access(cenalloc_session* session, int buffer_fd, uint32_t flags);

/** DMA_BUF_SET_NAME: at most 31 bytes, else -EINVAL. */
CENALLOC_EXPORT int cenalloc_set_name(cenalloc_session* session, int buffer_fd, const char* name);

/**
 * The bufinfo entry of the buffer @p buffer_fd names, whoever allocated it
 * (the fd is the capability; nothing is claimed). -EBADF for a closed fd
 * and for an fd that is not a cenalloc buffer; -EINVAL or -E2BIG for
 * out->struct_size.
 */
CENALLOC_EXPORT int cenalloc_describe(cenalloc_session* session, int buffer_fd, cenalloc_buffer_info* out);

/**
 * Which heap serves @p count devices sharing @p size bytes, and who
 * allocates. -EINVAL or -E2BIG for out->struct_size.
 */
CENALLOC_EXPORT int cenalloc_explain(cenalloc_session* session, const char* const* devices, size_t count, uint64_t size,
                                     int cpu_access, cenalloc_explanation* out);

#ifdef __cplusplus
}
#endif

#endif /* CENALLOC_C_CENALLOC_H */
