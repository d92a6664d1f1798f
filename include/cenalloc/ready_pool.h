// SPDX-License-Identifier: MIT
// The bounded pool of ready memory: options and statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <cenalloc/units.h>

namespace cenalloc {

/// How much ready memory a Context keeps: memfds whose pages the kernel has
/// already allocated and zeroed, made by a background thread off the
/// allocation path (as the kernel's heaps keep page pools), so an
/// allocation from a heap of the model (system, CMA, carveouts; not the
/// host kernel's heaps, which pool their own) gets its pages without
/// faulting and zeroing them. Each memfd is handed out once and never comes
/// back: what a buffer gets is always zero-filled.
///
/// The pool makes again, in its size class, each buffer of a pooled size
/// that is used: mapped (Buffer::mmap), or its fd handed out (dupFd,
/// surrenderFd: the service's buffers), since whoever gets it may map it
/// unseen. A buffer allocated and freed untouched orders nothing, so such
/// allocations cost the refill thread no work. Within @c heapBytes per
/// heap and @c totalBytes in all; a budget of 0 turns it off. When the
/// system's MemAvailable falls below @c lowMemoryBytes the pool gives
/// everything back and makes nothing until it recovers.
struct ReadyPoolOptions {
    uint64_t heapBytes = 64 * MiB;
    uint64_t totalBytes = 128 * MiB;
    /// Smaller buffers are allocated as before (0: every size is served).
    /// Below 64 KiB the pool costs more than it saves: a memfd made on
    /// another thread costs its user more to close (its inode and file are
    /// freed on another CPU than they were made on), which takes back what
    /// making it ahead saved, while the process as a whole does the same
    /// work plus the hand-over (bench/service_bench BM_InProcess/4096,
    /// pool:2 against pool:0: 99% hits, the allocating thread's CPU per
    /// buffer 10-12 µs against 12, the process's 19 against 12).
    uint64_t minBytes = 64 * KiB;
    /// Smaller classes are made ahead without their pages: a memfd of the
    /// class's size, whose first touch costs what any fresh memfd's does
    /// (below it populating costs about what it saves: bench/alloc_bench,
    /// BM_Ready_*); what such a buffer gains is the memfd made off the
    /// allocation path.
    uint64_t populateBytes = 64 * KiB;
    /// The most memfds the pool holds at once (ready, ordered or being
    /// made): each is an open fd of the process. 0: only the budgets bound it.
    uint64_t maxBuffers = 64;
    /// How many memfds of a class in use the pool keeps ready or ordered:
    /// each use orders one, and more while fewer are, so the background
    /// thread makes them in batches (a wake-up per buffer costs more than a
    /// small buffer's memfd) and a burst finds some ready. At least 1.
    uint64_t classDepth = 4;
    /// The most bytes of populated classes (populateBytes and up) the
    /// background thread makes per second, on average, with bursts of up to
    /// a second's worth and one memfd more; a refill beyond it is not made
    /// (the class's next use orders it again, and finds it made once the
    /// budget allows; meanwhile allocations of the class miss). Making a
    /// populated memfd costs the thread the zeroing of its pages whoever
    /// ordered it, so without a bound a client that allocates large buffers
    /// and drops them untouched keeps the thread zeroing memory nobody uses,
    /// a core of the daemon's for requests that cost it tens of microseconds
    /// each. 1 GiB/s is 0.28-0.35 of a core where it was measured (the
    /// thread's populated memfd: 275 µs per MiB at 1 MiB, 344 at 32 MiB;
    /// bench/alloc_bench BM_Ready_Prepared, prep_populate). 0: no bound.
    uint64_t refillBytesPerSecond = 1 * GiB;
    uint64_t lowMemoryBytes = 512 * MiB;
    /// Where MemAvailable is read (bytes; nothing when unknown, which never
    /// counts as pressure). Empty: /proc/meminfo. For tests.
    std::function<std::optional<uint64_t>()> memAvailable;

    /// Whether the pool is used at all.
    bool enabled() const { return heapBytes != 0 && totalBytes != 0; }
};

/// One heap's ready memory (or, with an empty heap name, the whole pool's).
struct ReadyPoolStats {
    std::string heap;
    uint64_t readyBytes = 0;   ///< in memfds ready to be handed out (their size classes)
    uint64_t readyBuffers = 0; ///< memfds ready to be handed out
    uint64_t hits = 0;         ///< allocations served from the pool
    uint64_t misses = 0;       ///< allocations of a pooled size that found nothing ready
    uint64_t refills = 0;      ///< memfds made by the background thread
    uint64_t refillNanos = 0;  ///< time it spent making them
    bool operator==(const ReadyPoolStats&) const = default;
};

} // namespace cenalloc
