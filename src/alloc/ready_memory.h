// SPDX-License-Identifier: MIT
// ReadyMemory: a Context's pool of ready memfds and the background thread that refills it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/types.h>

#include <cenalloc/ready_pool.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

#include "base/memfd_pool.h"

namespace cenalloc {

/// MemfdPool with its refill thread, started at the first refill ordered (the
/// first use of a buffer of a pooled size: RefillSink) and stopped (joined, a refill in flight finished) by the
/// destructor. Watches MemAvailable: below the options' lowMemoryBytes the
/// pool is drained and not refilled until it recovers (checked before
/// refills and once a second while idle).
///
/// MemAvailable rather than PSI: PSI (/proc/pressure/memory) needs
/// CONFIG_PSI and reports the time tasks stalled on memory, which rises only
/// once reclaim already hurts; MemAvailable is in every kernel's meminfo and
/// says how much headroom is left, which is what a pool of optional memory
/// should yield to.
///
/// Fork: a child never uses the pool (its memfds are the parent's open
/// files: handing one out in both processes would share a buffer) nor its
/// thread (which does not exist there): in a process other than the
/// creator's, take() finds nothing and the destructor leaves the thread
/// object alone.
///
/// Process exit: a Context that is never destroyed (a preloaded shim's, a
/// leaked singleton's) must not leave its thread running while exit()
/// destroys the statics that thread uses. The first thread started
/// registers an atexit handler, stopAllThreads(), that stops and joins
/// every live refill thread of the process; after it has run, take() still
/// serves what is ready but starts no thread (refills it orders are never
/// made).
///
/// Thread safety: every method may be called concurrently.
class ReadyMemory final : public RefillSink {
public:
    explicit ReadyMemory(ReadyPoolOptions options);
    ~ReadyMemory() override;
    ReadyMemory(const ReadyMemory&) = delete;
    ReadyMemory& operator=(const ReadyMemory&) = delete;

    /// Whether allocations of @p bytes ask the pool (and their buffers owe
    /// it a refill at first use): the pool is on, the size within its
    /// limits, and this is the process that made it.
    bool serves(uint64_t bytes) const;

    /// A ready memfd of exactly @p bytes for heap @p heap, sealed like every
    /// buffer's (size seals, @p extraSeals, F_SEAL_SEAL); nothing when the
    /// pool does not serve the size or has none ready. Orders no refill: the
    /// buffer does at its first use (orderRefill). Errors: those of sealing
    /// it (MemfdPool::take).
    Result<std::optional<UniqueFd>> take(std::string_view heap, uint64_t bytes, int extraSeals);

    /// Order a memfd of the class of @p bytes for @p heap and wake (or
    /// start) the refill thread; nothing in a forked child.
    void orderRefill(std::string_view heap, uint64_t bytes) override;

    /// Who prepares each memfd made from now on (MemfdPreparer).
    void setPreparer(std::shared_ptr<MemfdPreparer> preparer);

    /// Per heap that asked for ready memory, then the whole pool's (heap "").
    std::vector<ReadyPoolStats> stats() const;

    /// Read MemAvailable now: drain the pool when it is low (what the
    /// refill thread does on its own; tests call it to be deterministic).
    void checkMemory();
    /// Block until no refill is ordered or being made.
    void waitIdle();

    /// What the atexit handler does: stop and join the refill thread of every
    /// ReadyMemory of this process, and start none from now on.
    static void stopAllThreads();

    struct Worker;

private:
    void run();
    bool lowMemory();
    /// Whether the refill thread may make a memfd of @p classBytes now
    /// (ReadyPoolOptions::refillBytesPerSecond), taking it from the budget
    /// if so. The refill thread only.
    bool withinBudget(uint64_t classBytes);
    void startWorker();

    const ReadyPoolOptions options_;
    MemfdPool pool_;
    const pid_t owner_;

    // The thread and what it synchronises on, on the heap: a forked child
    // must leave them alone (a condition variable the parent's thread
    // waited on at fork() counts a waiter the child never wakes, and
    // destroying it there blocks for ever), so its destructor leaks them.
    std::unique_ptr<Worker> worker_;
};

/// MemAvailable of /proc/meminfo in bytes; nothing when unreadable.
std::optional<uint64_t> readMemAvailable();

} // namespace cenalloc
