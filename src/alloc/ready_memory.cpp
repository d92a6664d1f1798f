// SPDX-License-Identifier: MIT
// ReadyMemory: a Context's pool of ready memfds and the background thread that refills it.
#include "alloc/ready_memory.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <pthread.h>
#include <unistd.h>

#include "base/file.h"

namespace cenalloc {

struct ReadyMemory::Worker {
    explicit Worker(pid_t creator) : owner(creator) {}

    /// Stop the thread and wait for it (a refill in flight is finished).
    /// Called with the registry's lock held, so that the destructor and the
    /// exit handler never join the same thread.
    void stopAndJoin() {
        {
            std::lock_guard lock(mutex);
            stop = true;
        }
        wake.notify_all();
        if (thread && thread->joinable())
            thread->join();
    }

    const pid_t owner;
    std::mutex mutex;
    std::condition_variable wake;                      // the thread: a refill was ordered, or stop
    std::condition_variable idle;                      // waitIdle(): the thread finished its work
    bool stop = false;                                 // guarded by mutex
    bool busy = false;                                 // guarded by mutex: the thread is making refills
    bool low = false;                                  // guarded by mutex: MemAvailable was low at the last check
    std::chrono::steady_clock::time_point lastCheck{}; // guarded by mutex
    std::unique_ptr<std::thread> thread;               // guarded by mutex; set once, by startWorker
    std::atomic<bool> started{false};                  // thread was set: read without the lock
    // The refill budget (ReadyPoolOptions::refillBytesPerSecond), used by the thread only: bytes it may still make
    // (negative after a memfd larger than what was left), and when it was last topped up.
    double budgetBytes = 0;
    std::chrono::steady_clock::time_point budgetAt{};
};

namespace {

/// Every ReadyMemory of the process whose thread was started and not yet
/// joined. Never destroyed: the exit handler and late destructors use it.
struct WorkerRegistry {
    std::mutex mutex;
    std::vector<ReadyMemory::Worker*> workers; // guarded by mutex
    bool exiting = false;                      // guarded by mutex: the exit handler ran
};

WorkerRegistry& registry() {
    static auto* r = new WorkerRegistry();
    return *r;
}

// This process's id without a syscall per call (glibc's getpid() no longer
// caches it, and the allocation path asks on every buffer): read once,
// then again in each child fork() makes (a pthread_atfork handler).
pid_t thisProcess() {
    static std::atomic<pid_t> pid = [] {
        ::pthread_atfork(nullptr, nullptr, [] { pid.store(::getpid(), std::memory_order_relaxed); });
        return ::getpid();
    }();
    return pid.load(std::memory_order_relaxed);
}

// How often MemAvailable is read: before refills at most this often, and
// once per kIdleCheck while the thread waits for work.
constexpr auto kCheckPeriod = std::chrono::milliseconds(100);
constexpr auto kIdleCheck = std::chrono::seconds(1);
// Orders the refill thread is woken for, when the class ordered still has
// kLowWater memfds ready or more.
constexpr size_t kWakeBatch = 4;
constexpr size_t kLowWater = 2;

// The budget of populated bytes the refill thread may make now (ReadyPoolOptions::refillBytesPerSecond): what
// was left at @p at, plus what @p rate gave since, up to a second's worth.
double budgetNow(double left, std::chrono::steady_clock::time_point at, std::chrono::steady_clock::time_point now,
                 uint64_t rate) {
    const double perSecond = static_cast<double>(rate);
    return std::min(perSecond, left + perSecond * std::chrono::duration<double>(now - at).count());
}

MemfdPoolLimits limitsOf(const ReadyPoolOptions& options) {
    return MemfdPoolLimits{options.heapBytes, options.totalBytes, options.minBytes, options.maxBuffers};
}

ReadyPoolStats statsOf(std::string heap, const MemfdPoolCounters& c) {
    ReadyPoolStats s;
    s.heap = std::move(heap);
    s.readyBytes = c.readyBytes;
    s.readyBuffers = c.readyBuffers;
    s.hits = c.hits;
    s.misses = c.misses;
    s.refills = c.refills;
    s.refillNanos = c.refillNanos;
    return s;
}

} // namespace

void ReadyMemory::stopAllThreads() {
    // A forked child's registry lists its parent's threads, which do not
    // exist there: only this process's own are joined.
    WorkerRegistry& r = registry();
    std::lock_guard lock(r.mutex);
    r.exiting = true;
    for (ReadyMemory::Worker* w : r.workers) {
        if (w->owner == thisProcess())
            w->stopAndJoin();
    }
    r.workers.clear();
}

std::optional<uint64_t> readMemAvailable() {
    auto text = readFileLimited("/proc/meminfo", 64 * 1024, "memory information");
    if (!text)
        return std::nullopt;
    constexpr std::string_view kKey = "MemAvailable:";
    const size_t at = text->find(kKey);
    if (at == std::string::npos)
        return std::nullopt; // kernels before 3.14
    const char* p = text->data() + at + kKey.size();
    const char* end = text->data() + text->size();
    while (p < end && *p == ' ')
        ++p;
    uint64_t kib = 0;
    auto [next, ec] = std::from_chars(p, end, kib);
    if (ec != std::errc() || next == p || kib > UINT64_MAX / 1024)
        return std::nullopt;
    return kib * 1024; // meminfo counts in kB (KiB)
}

ReadyMemory::ReadyMemory(ReadyPoolOptions options)
    : options_(std::move(options)), pool_(limitsOf(options_)), owner_(thisProcess()),
      worker_(std::make_unique<Worker>(owner_)) {
    worker_->budgetBytes = static_cast<double>(options_.refillBytesPerSecond);
    worker_->budgetAt = std::chrono::steady_clock::now();
}

ReadyMemory::~ReadyMemory() {
    if (thisProcess() != owner_) {
        // A forked child: the thread exists in the parent only, and
        // neither it nor what it waits on can be ended here. Leave them.
        (void)worker_.release();
        return;
    }
    WorkerRegistry& r = registry();
    std::lock_guard lock(r.mutex);
    std::erase(r.workers, worker_.get());
    worker_->stopAndJoin(); // finishes a refill in flight; nothing if the exit handler did
}

void ReadyMemory::startWorker() {
    static std::once_flag handler;
    WorkerRegistry& r = registry();
    std::lock_guard registryLock(r.mutex);
    if (r.exiting)
        return; // exit() is under way: no new thread
    Worker& w = *worker_;
    std::lock_guard lock(w.mutex);
    if (w.thread || w.stop)
        return;
    std::call_once(handler, [] { std::atexit([] { stopAllThreads(); }); });
    w.thread = std::make_unique<std::thread>([this] { run(); });
    w.started.store(true, std::memory_order_release);
    r.workers.push_back(&w);
}

bool ReadyMemory::serves(uint64_t bytes) const {
    return pool_.serves(bytes) && thisProcess() == owner_;
}

Result<std::optional<UniqueFd>> ReadyMemory::take(std::string_view heap, uint64_t bytes, int extraSeals) {
    if (!serves(bytes))
        return std::optional<UniqueFd>();
    return pool_.take(heap, bytes, extraSeals);
}

void ReadyMemory::orderRefill(std::string_view heap, uint64_t bytes) {
    if (thisProcess() != owner_)
        return; // a forked child's pool is never used
    const MemfdPool::Backlog backlog = pool_.order(heap, bytes, std::max<uint64_t>(options_.classDepth, 1));
    Worker& w = *worker_;
    if (!w.started.load(std::memory_order_acquire))
        startWorker();
    // Woken for a batch of orders, or at once when the class is running
    // out (its next allocations would miss): a wake-up per buffer, two
    // futex calls and a switch of threads, costs more CPU than making a
    // small buffer's memfd. Orders short of a batch wait at most kIdleCheck.
    if (backlog.orders >= kWakeBatch || backlog.readyOfClass < kLowWater)
        w.wake.notify_one();
}

std::vector<ReadyPoolStats> ReadyMemory::stats() const {
    std::vector<ReadyPoolStats> out;
    for (auto& [heap, counters] : pool_.heapCounters())
        out.push_back(statsOf(heap, counters));
    out.push_back(statsOf({}, pool_.total()));
    return out;
}

bool ReadyMemory::lowMemory() {
    const std::optional<uint64_t> available = options_.memAvailable ? options_.memAvailable() : readMemAvailable();
    return available && *available < options_.lowMemoryBytes;
}

void ReadyMemory::checkMemory() {
    if (thisProcess() != owner_)
        return; // a forked child's pool is never used
    Worker& w = *worker_;
    const bool low = lowMemory();
    if (low)
        pool_.drain();
    std::lock_guard lock(w.mutex);
    w.low = low;
    w.lastCheck = std::chrono::steady_clock::now();
}

void ReadyMemory::waitIdle() {
    if (thisProcess() != owner_)
        return; // the thread is the parent's
    Worker& w = *worker_;
    std::unique_lock lock(w.mutex);
    if (!w.thread)
        return;          // nothing was ever ordered
    w.wake.notify_one(); // orders short of a batch are made now
    w.idle.wait(lock, [&] { return w.stop || (!w.busy && !pool_.refillPending()); });
}

void ReadyMemory::setPreparer(std::shared_ptr<MemfdPreparer> preparer) {
    pool_.setPreparer(std::move(preparer));
}

bool ReadyMemory::withinBudget(uint64_t classBytes) {
    const uint64_t rate = options_.refillBytesPerSecond;
    if (rate == 0 || classBytes < options_.populateBytes)
        return true; // no bound, or a memfd made without its pages: no zeroing to pay for
    Worker& w = *worker_;
    const auto now = std::chrono::steady_clock::now();
    w.budgetBytes = budgetNow(w.budgetBytes, w.budgetAt, now, rate);
    w.budgetAt = now;
    if (w.budgetBytes <= 0)
        return false;
    w.budgetBytes -= static_cast<double>(classBytes);
    return true;
}

void ReadyMemory::run() {
    Worker& w = *worker_;
    std::unique_lock lock(w.mutex);
    while (!w.stop) {
        w.busy = true;
        const bool check = std::chrono::steady_clock::now() - w.lastCheck >= kCheckPeriod;
        lock.unlock();
        if (check)
            checkMemory();
        lock.lock();
        while (!w.stop) {
            const bool low = w.low;
            lock.unlock();
            std::optional<MemfdRefill> refill = pool_.takeRefill();
            if (refill && low) {
                pool_.abandon(*refill); // short of memory: make nothing
            } else if (refill && !withinBudget(refill->classBytes)) {
                pool_.abandon(*refill); // the refill budget is spent: the class's next use orders it again
            } else if (refill) {
                const auto start = std::chrono::steady_clock::now();
                auto fd = makeReadyMemfd(refill->classBytes, refill->classBytes >= options_.populateBytes);
                const std::shared_ptr<MemfdPreparer> preparer = pool_.preparer();
                if (fd && (!preparer || preparer->prepare(fd->borrow())))
                    pool_.put(*refill, std::move(*fd), std::chrono::steady_clock::now() - start);
                else
                    pool_.abandon(*refill); // the next use orders it again
            }
            lock.lock();
            if (!refill)
                break;
        }
        w.busy = false;
        w.idle.notify_all();
        if (w.stop)
            break;
        w.wake.wait_for(lock, kIdleCheck, [&] { return w.stop || pool_.refillPending(); });
    }
    w.busy = false;
    w.idle.notify_all();
}

} // namespace cenalloc
