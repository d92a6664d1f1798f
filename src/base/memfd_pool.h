// SPDX-License-Identifier: MIT
// MemfdPool: bounded per-heap stocks of memfds whose pages the kernel has already allocated and zeroed.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// What a pool may hold. A budget of 0 turns the pool off.
struct MemfdPoolLimits {
    uint64_t heapBytes = 0;  ///< the most one heap's stock holds (ready and being made)
    uint64_t totalBytes = 0; ///< the most all heaps' stocks hold together
    uint64_t minBytes = 0;   ///< smaller requests are not served from the pool
    /// The most memfds held (ready, ordered and being made), each an open fd
    /// of the process; 0: no bound but the bytes'.
    uint64_t maxBuffers = 0;
};

/// What the pool's owner does to each memfd made for it before it is
/// stocked (on the worker that made it), and undoes when the pool closes
/// one that was never taken: e.g. the service watches it ahead, so that
/// the request that gets it adds no watch of its own.
class MemfdPreparer {
public:
    virtual ~MemfdPreparer() = default;
    /// Errors: any; the memfd is then closed instead of stocked.
    virtual Result<void> prepare(BorrowedFd fd) = 0;
    /// The pool is about to close prepared memfd @p fd, never taken.
    virtual void discard(BorrowedFd fd) = 0;
};

/// Counters of one heap's stock (or of all, summed).
struct MemfdPoolCounters {
    uint64_t readyBytes = 0;   ///< in memfds made and not handed out (class sizes)
    uint64_t readyBuffers = 0; ///< memfds made and not handed out
    uint64_t hits = 0;         ///< requests served from the stock
    uint64_t misses = 0;       ///< requests of a served size the stock had nothing for
    uint64_t orders = 0;       ///< refills ordered (one per buffer used, within the budgets)
    uint64_t refills = 0;      ///< memfds made
    uint64_t refillNanos = 0;  ///< time spent making them
    uint64_t drained = 0;      ///< memfds given back to the kernel unused
};

/// A memfd the refill worker should make: heap @c heap wants one of
/// @c classBytes. Made by takeRefill(); ended by put() or abandon().
struct MemfdRefill {
    std::string heap;
    uint64_t classBytes = 0;
    uint64_t epoch = 0; ///< the pool's drain count when ordered
};

/// Stocks of ready memfds, one per heap, bounded in bytes per heap and in
/// total. A memfd in a stock has had its pages allocated and zeroed by the
/// kernel (makeReadyMemfd); take() shrinks it to the request's exact size
/// and seals it like every buffer's memfd, and it leaves the pool for good:
/// a pooled memfd is never handed out twice, so what a buffer user gets is
/// always zero-filled, whatever the previous buffer of its class held.
///
/// The pool does no slow work under its lock: memfds are made by the caller
/// of takeRefill() (a background worker), outside the lock, and given back
/// with put(). A take() orders nothing: the buffer it served (hit or miss)
/// orders the refill of its class with order() when it is first used (see
/// RefillSink), so the stock follows the sizes that are used, and buffers
/// that are allocated and freed untouched cost the worker no work.
///
/// Thread safety: every method may be called concurrently.
class MemfdPool {
public:
    explicit MemfdPool(MemfdPoolLimits limits);
    ~MemfdPool();
    MemfdPool(const MemfdPool&) = delete;
    MemfdPool& operator=(const MemfdPool&) = delete;

    /// The size class serving @p bytes (page-aligned, non-zero): exact page
    /// multiples up to 64 KiB, then steps of 1/8 of the power of two below
    /// the size (so a class wastes at most 1/8 of what it serves, and a
    /// 1080p frame of 8,294,400 bytes comes from the 8 MiB class).
    static uint64_t classFor(uint64_t bytes);

    /// Whether requests of @p bytes are served from the pool at all.
    bool serves(uint64_t bytes) const;

    /// A ready memfd of exactly @p bytes (page-aligned) for heap @p heap,
    /// sealed against shrinking and growing and with @p extraSeals, then
    /// F_SEAL_SEAL; nothing (a miss) when the heap's stock has none of the
    /// class. Orders no refill (order() does). Errors: those of
    /// ftruncate/fcntl on the memfd (which is then closed; the caller makes
    /// a fresh one).
    Result<std::optional<UniqueFd>> take(std::string_view heap, uint64_t bytes, int extraSeals);

    /// What order() leaves: whether the worker is wanted now.
    struct Backlog {
        size_t orders = 0;       ///< refills ordered and not taken, in all stocks
        size_t readyOfClass = 0; ///< memfds ready in the class ordered
    };
    /// Order a memfd of the class serving @p bytes for heap @p heap, and
    /// more while fewer than @p depth of the class are ready or ordered,
    /// within the budgets (giving back ready memfds of other classes of the
    /// heap to make room); nothing for a size the pool does not serve.
    Backlog order(std::string_view heap, uint64_t bytes, size_t depth = 1);

    /// The next memfd to make, counted against the budgets until put() or
    /// abandon(); nothing when no refill is ordered.
    std::optional<MemfdRefill> takeRefill();
    /// Stock @p fd, made for @p refill in @p elapsed. Dropped (closed) when
    /// the pool was drained while it was being made.
    void put(const MemfdRefill& refill, UniqueFd fd, std::chrono::nanoseconds elapsed);
    /// @p refill could not be made: forget it.
    void abandon(const MemfdRefill& refill);
    /// Whether a refill is ordered and not yet taken.
    bool refillPending() const;

    /// Who prepares the memfds made from now on (MemfdPreparer).
    void setPreparer(std::shared_ptr<MemfdPreparer> preparer);
    std::shared_ptr<MemfdPreparer> preparer() const;

    /// Give every ready memfd back to the kernel and forget the refill
    /// orders (memory pressure). Memfds being made are dropped at put().
    void drain();

    MemfdPoolCounters counters(std::string_view heap) const;
    /// Each heap that asked for ready memory, by name.
    std::vector<std::pair<std::string, MemfdPoolCounters>> heapCounters() const;
    MemfdPoolCounters total() const;
    const MemfdPoolLimits& limits() const { return limits_; }

private:
    struct Entry {
        uint64_t classBytes = 0;
        UniqueFd fd;
    };
    /// Memfds leaving the pool unused, closed (and discarded through the
    /// preparer) once the lock is dropped.
    class Closing;
    struct Stock {
        std::deque<Entry> ready;     // oldest first
        std::deque<uint64_t> orders; // classes to make, oldest first
        uint64_t readyBytes = 0;
        uint64_t orderedBytes = 0; // in orders
        uint64_t makingBytes = 0;  // taken by a worker, not put back yet
        MemfdPoolCounters counters;
        uint64_t making = 0; // memfds taken by a worker
        uint64_t committed() const { return readyBytes + orderedBytes + makingBytes; }
        uint64_t held() const { return ready.size() + orders.size() + making; }
        MemfdPoolCounters snapshot() const;
    };

    // Order a refill of @p classBytes when the budgets allow, giving back
    // ready memfds of other classes to make room (moved to @p closing);
    // false when they do not.
    bool orderLocked(Stock& stock, uint64_t classBytes, Closing& closing);
    Stock& stockLocked(std::string_view heap);

    const MemfdPoolLimits limits_;
    mutable std::mutex mutex_;
    std::map<std::string, Stock, std::less<>> stocks_; // guarded by mutex_
    uint64_t committedBytes_ = 0;                      // guarded by mutex_: all stocks' committed()
    uint64_t heldBuffers_ = 0;                         // guarded by mutex_: all stocks' held()
    std::shared_ptr<MemfdPreparer> preparer_;          // guarded by mutex_
    uint64_t drainEpoch_ = 0;                          // guarded by mutex_: drain() calls
};

/// Where a buffer of a size the pool serves orders the refill of its class
/// when it is first used: mapped by the CPU, or its fd handed to a user who
/// maps it where cenalloc cannot see (another process, a caller's mmap()).
/// A buffer freed untouched orders nothing, so allocations nobody maps do
/// not pay for memory made for them on the refill thread (a 1 MiB refill,
/// fallocate and populate, costs about 80 µs of CPU: on two cores, more
/// than such an allocation itself). Buffers hold it weakly: a buffer may
/// outlive its pool.
class RefillSink {
public:
    virtual ~RefillSink() = default;
    /// A buffer of @p bytes from heap @p heap (served from the pool or a
    /// miss) was used: make its class again.
    virtual void orderRefill(std::string_view heap, uint64_t bytes) = 0;
};

/// A memfd of @p bytes, made with MFD_ALLOW_SEALING and MFD_CLOEXEC,
/// unsealed. With @p populate its pages exist and are zero: fallocate()
/// allocates them and one MAP_POPULATE mapping makes the kernel clear them,
/// then the mapping is dropped. fallocate alone would leave the clearing to
/// the user's first touch: shmem_get_folio_gfp() (mm/shmem.c) gives a folio
/// new to SGP_FALLOC "the SGP_WRITE optimization", leaving it !uptodate,
/// and clears a !uptodate folio only for a later non-write lookup such as
/// the fault. Slow: off the allocation path. Without it the memfd only has
/// its size (what a small buffer gains is the memfd made ahead: its first
/// touch costs what any fresh memfd's does). Errors: those of
/// memfd_create/ftruncate/fallocate/mmap.
Result<UniqueFd> makeReadyMemfd(uint64_t bytes, bool populate = true);

} // namespace cenalloc
