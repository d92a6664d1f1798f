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

/** Longest sysfs path cenalloc_alloc_for_device carries, with its NUL (PATH_MAX). */
#define CENALLOC_SYSFS_PATH_MAX 4096
/** Longest driver name cenalloc_alloc_for_device carries, with its NUL (NAME_MAX + 1). */
#define CENALLOC_DRIVER_MAX 256

/**
 * One device a cenalloc_alloc_for() buffer is for, as the platform's loader
 * names it: an element of the caller's array cenalloc_alloc_for_info.devices
 * points to (fixed size, no struct_size). The daemon sends no longer strings
 * (sysfs paths up to 4095 bytes, drivers up to 255): each is NUL-terminated.
 */
typedef struct {
    char name[CENALLOC_NAME_MAX];
    char sysfs_path[CENALLOC_SYSFS_PATH_MAX]; /**< "/sys/devices/..."; "" for a device of the model only */
    char driver[CENALLOC_DRIVER_MAX];         /**< the bound driver; "" when none is bound or known */
} cenalloc_alloc_for_device;

/** Which heap cenalloc_alloc_for() allocated from, and why. */
typedef struct {
    uint32_t struct_size; /**< set by the caller (see "Structs that grow") */
    uint32_t reserved;    /**< 0 */
    uint64_t size;        /**< the buffer's size (page-aligned) */
    char heap[CENALLOC_NAME_MAX];
    char kernel_heap[CENALLOC_NAME_MAX]; /**< its /dev/dma_heap node; "" for the model's storage */
    char reason[CENALLOC_REASON_MAX];
    /* CENALLOC_ALLOC_FOR_INFO_SIZE_VER0 ends here. */
    char exporter[CENALLOC_NAME_MAX]; /**< the buffer's exporter (the kernel heap's name for a real dma-buf) */
    uint32_t device_count;            /**< the devices the buffer is for: as many as asked, in their order */
    /**
     * Set by the caller: how many elements @c devices has room for (0 with
     * NULL). The library fills the first min(device_count, device_capacity)
     * and writes nothing else there; the array stays the caller's.
     */
    uint32_t device_capacity;
    cenalloc_alloc_for_device* devices; /**< set by the caller: its array, or NULL */
} cenalloc_alloc_for_info;
#define CENALLOC_ALLOC_FOR_INFO_SIZE_VER0 400
#define CENALLOC_ALLOC_FOR_INFO_SIZE_VER1 480 /* exporter, device_count, device_capacity, devices */

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

/**
 * A deferred buffer: storage comes at the first map or CPU access. Where the
 * session's heaps are placed on the host kernel's (`cenallocd --host`), the
 * fd is a handle of 0 bytes sealed against growth and writes: its bytes live
 * in the storage, whose fd cenalloc_storage_fd() gives.
 */
CENALLOC_EXPORT int cenalloc_create(cenalloc_session* session, uint64_t size, const char* name, int cpu_access,
                                    int* out_fd);

/**
 * *out_fd receives a new fd (O_CLOEXEC, the caller's to close) of the bytes
 * of the buffer @p buffer_fd names, for the CPU to map and drivers to import:
 * the host kernel's dma-buf when the storage is one, else another fd of the
 * buffer. A deferred buffer gets its storage now (its first use). -EBADF for
 * an fd that is not a buffer, -EACCES through cenallocd for a read-only fd,
 * -ENOMEM and the kernel's errors for the storage.
 */
CENALLOC_EXPORT int cenalloc_storage_fd(cenalloc_session* session, int buffer_fd, int* out_fd);

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

/*
 * Migration (DESIGN.md section 5, "Deferred allocation"; docs/protocol.md,
 * "Migration across processes"). A dynamic attachment's unpinned mappings
 * do not hold the storage in place: when the buffer moves, its session is
 * sent move events (cenalloc_next_event(), cenalloc_wait_event(), or poll
 * cenalloc_event_fd()). Through cenallocd, an importer with live mappings is
 * first sent CENALLOC_MOVE_PENDING and the move waits for its
 * cenalloc_acknowledge_move(), up to the daemon's bound.
 */

/** cenalloc_attach_flags() flags. */
enum {
    /** A dynamic importer (dma_buf_dynamic_attach with move_notify): told of moves, may be moved. */
    CENALLOC_ATTACH_DYNAMIC = 0x1,
};

/** cenalloc_forecast.outcome: what attaching a device would do now. */
typedef enum {
    CENALLOC_FORECAST_FITS = 0,          /**< the storage serves it (or none exists yet and a heap would) */
    CENALLOC_FORECAST_WOULD_MIGRATE = 1, /**< the storage must move: from_heap to to_heap, notifying notified */
    CENALLOC_FORECAST_BLOCKED = 2,       /**< the storage must move and cannot: reason names the blocker */
    CENALLOC_FORECAST_UNSATISFIABLE = 3, /**< no heap serves the device with those attached: reason says why */
} cenalloc_forecast_outcome;

/**
 * Longest reason or cause the structs below carry, with its NUL; a longer
 * message is cut at CENALLOC_MESSAGE_MAX - 1 bytes.
 */
#define CENALLOC_MESSAGE_MAX 256
/**
 * Most notified devices cenalloc_forecast lists; notified_count says how
 * many there are, which may be more.
 */
#define CENALLOC_NOTIFIED_MAX 8

/** What cenalloc_forecast() found (Buffer::forecastAttach). */
typedef struct {
    uint32_t struct_size;                                    /**< set by the caller (see "Structs that grow") */
    int outcome;                                             /**< a cenalloc_forecast_outcome */
    char from_heap[CENALLOC_NAME_MAX];                       /**< WOULD_MIGRATE: the heap the storage is on */
    char to_heap[CENALLOC_NAME_MAX];                         /**< WOULD_MIGRATE: the heap it would move to */
    char reason[CENALLOC_MESSAGE_MAX];                       /**< BLOCKED, UNSATISFIABLE: why */
    uint32_t notified_count;                                 /**< dynamic importers a move would notify (all of them) */
    uint32_t reserved;                                       /**< 0 */
    char notified[CENALLOC_NOTIFIED_MAX][CENALLOC_NAME_MAX]; /**< the first CENALLOC_NOTIFIED_MAX of them */
} cenalloc_forecast;
#define CENALLOC_FORECAST_SIZE_VER0 912

/** cenalloc_move_event.kind. */
typedef enum {
    /** The buffer is about to move: stop the device's use of its mappings, then cenalloc_acknowledge_move(). */
    CENALLOC_MOVE_PENDING = 0,
    /** The buffer moved: the attachment's earlier mappings are gone (a device using one faults); map again. */
    CENALLOC_MOVE_MOVED = 1,
    /** A move announced as pending did not happen: the mappings stay valid. */
    CENALLOC_MOVE_CANCELLED = 2,
} cenalloc_move_kind;

/** One move event of a dynamic attachment of the session. */
typedef struct {
    uint32_t struct_size;             /**< set by the caller (see "Structs that grow") */
    uint32_t kind;                    /**< a cenalloc_move_kind */
    uint64_t buffer;                  /**< the buffer's id (cenalloc_import(), cenalloc_buffer_info.id) */
    uint64_t attachment;              /**< the session's attachment id */
    uint64_t sequence;                /**< the buffer's move sequence after the move (PENDING, MOVED) or as it stays */
    char cause[CENALLOC_MESSAGE_MAX]; /**< "attach of 'display'", "migrate to 'linux,cma'", ... */
} cenalloc_move_event;
#define CENALLOC_MOVE_EVENT_SIZE_VER0 288

/**
 * cenalloc_attach() with @p flags (CENALLOC_ATTACH_*; others are -EINVAL).
 * A dynamic attach that needs the storage elsewhere moves it under the
 * rules of cenalloc_migrate(). Through cenallocd -EPROTONOSUPPORT from a
 * daemon too old to send events.
 */
CENALLOC_EXPORT int cenalloc_attach_flags(cenalloc_session* session, int buffer_fd, const char* device, uint32_t flags,
                                          uint64_t* out_attachment);

/**
 * Hold a dynamic attachment's storage in place (dma_buf_pin): while pinned
 * a move is -EBUSY naming it. Pins nest. -EINVAL for a static attachment,
 * -ENOENT for an unknown one.
 */
CENALLOC_EXPORT int cenalloc_pin(cenalloc_session* session, uint64_t attachment);

/** Release one pin: -EINVAL when none is held, -ENOENT for an unknown attachment. */
CENALLOC_EXPORT int cenalloc_unpin(cenalloc_session* session, uint64_t attachment);

/**
 * Move the buffer's storage to @p heap. -EBUSY naming what holds it (a
 * static mapping, a pin, an importer that did not acknowledge in time),
 * -EINVAL for a heap that does not serve the attached devices, -ENOENT for
 * an unknown heap, -ENOMEM (nothing changed), -EDQUOT when the new storage
 * does not fit the caller's quota while both exist.
 */
CENALLOC_EXPORT int cenalloc_migrate(cenalloc_session* session, int buffer_fd, const char* heap);

/**
 * What attaching @p device to the buffer would do now; changes nothing.
 * -ENOENT for an unknown device; -EINVAL or -E2BIG for out->struct_size.
 */
CENALLOC_EXPORT int cenalloc_forecast_attach(cenalloc_session* session, int buffer_fd, const char* device,
                                             cenalloc_forecast* out);

/**
 * The session's event fd, readable while a move event may be waiting (for
 * poll(2) in an event loop). Borrowed: it stays the session's, valid until
 * cenalloc_session_close(); never close it.
 */
CENALLOC_EXPORT int cenalloc_event_fd(cenalloc_session* session, int* out_fd);

/**
 * Take the oldest move event without waiting: -EAGAIN when none waits.
 * -EINVAL or -E2BIG for out->struct_size (no event is taken then).
 */
CENALLOC_EXPORT int cenalloc_next_event(cenalloc_session* session, cenalloc_move_event* out);

/**
 * cenalloc_next_event(), waiting up to @p timeout_ms milliseconds (-1: for
 * ever; below -1 is -EINVAL) for an event: -ETIMEDOUT when none came.
 */
CENALLOC_EXPORT int cenalloc_wait_event(cenalloc_session* session, int timeout_ms, cenalloc_move_event* out);

/**
 * The device of @p attachment no longer uses its mappings made before move
 * @p sequence (a CENALLOC_MOVE_PENDING event's). -ENOENT when no move to
 * @p sequence waits for it (it happened, was cancelled, or the bound passed).
 */
CENALLOC_EXPORT int cenalloc_acknowledge_move(cenalloc_session* session, uint64_t attachment, uint64_t sequence);

#ifdef __cplusplus
}
#endif

#endif /* CENALLOC_C_CENALLOC_H */
