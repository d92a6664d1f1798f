// SPDX-License-Identifier: MIT
// MemfdPool: bounded per-heap stocks of memfds whose pages the kernel has already allocated and zeroed.
#include "base/memfd_pool.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/memfd_internal.h"
#include "base/try.h"

namespace cenalloc {

namespace {

// Up to here every page multiple is its own class: small buffers are many
// and a 4 KiB step is already 1/16 of the largest of them.
constexpr uint64_t kExactClassLimit = 64 * 1024;
// Above it, classes step by 1/8 of the power of two below the size: at most
// 12.5% of a class is cut off by take()'s shrink.
constexpr unsigned kStepsPerDoubling = 8;
// Sizes beyond this have no class (their rounding would overflow); no
// budget comes near it.
constexpr uint64_t kLargestClassed = uint64_t{1} << 62;

void add(MemfdPoolCounters& sum, const MemfdPoolCounters& c) {
    sum.readyBytes += c.readyBytes;
    sum.readyBuffers += c.readyBuffers;
    sum.hits += c.hits;
    sum.misses += c.misses;
    sum.orders += c.orders;
    sum.refills += c.refills;
    sum.refillNanos += c.refillNanos;
    sum.drained += c.drained;
}

} // namespace

class MemfdPool::Closing {
public:
    Closing() = default;
    Closing(const Closing&) = delete;
    Closing& operator=(const Closing&) = delete;
    ~Closing() {
        for (UniqueFd& fd : fds_)
            if (preparer_)
                preparer_->discard(fd.borrow());
    }
    /// Under the pool's lock.
    void add(UniqueFd fd, const std::shared_ptr<MemfdPreparer>& preparer) {
        if (!preparer_)
            preparer_ = preparer;
        fds_.push_back(std::move(fd));
    }

private:
    // Destroyed after the discards: the fds close last.
    std::vector<UniqueFd> fds_;
    std::shared_ptr<MemfdPreparer> preparer_;
};

MemfdPool::MemfdPool(MemfdPoolLimits limits) : limits_(limits) {}

MemfdPool::~MemfdPool() = default;

uint64_t MemfdPool::classFor(uint64_t bytes) {
    assert(bytes != 0 && bytes <= kLargestClassed);
    if (bytes <= kExactClassLimit)
        return *alignUpChecked(bytes, kPageSize);
    const uint64_t below = std::bit_floor(bytes - 1); // below < bytes <= 2 * below
    return *alignUpChecked(bytes, below / kStepsPerDoubling);
}

bool MemfdPool::serves(uint64_t bytes) const {
    const uint64_t budget = std::min(limits_.heapBytes, limits_.totalBytes);
    if (budget == 0 || bytes == 0 || bytes < limits_.minBytes || bytes > budget || bytes > kLargestClassed)
        return false;
    return classFor(bytes) <= budget;
}

Result<std::optional<UniqueFd>> MemfdPool::take(std::string_view heap, uint64_t bytes, int extraSeals) {
    if (!serves(bytes))
        return std::optional<UniqueFd>();
    const uint64_t cls = classFor(bytes);
    std::optional<UniqueFd> fd;
    {
        std::lock_guard lock(mutex_);
        Stock& stock = stockLocked(heap);
        auto entry =
            std::find_if(stock.ready.begin(), stock.ready.end(), [&](const Entry& e) { return e.classBytes == cls; });
        if (entry != stock.ready.end()) {
            fd = std::move(entry->fd);
            stock.ready.erase(entry);
            stock.readyBytes -= cls;
            committedBytes_ -= cls;
            heldBuffers_ -= 1;
            ++stock.counters.hits;
        } else {
            ++stock.counters.misses;
        }
    }
    if (!fd)
        return fd;
    // Cut the class down to the request (tmpfs frees the pages past the
    // new end) and seal it as every buffer's memfd is sealed: from here on
    // it is a buffer's and never the pool's again. A class that is the
    // request's size (every one up to 64 KiB) needs no cut.
    if (bytes == cls)
        CENALLOC_CHECK(sealMemfd(fd->borrow(), extraSeals));
    else
        CENALLOC_CHECK(sizeAndSealMemfd(fd->borrow(), bytes, extraSeals));
    return fd;
}

MemfdPool::Stock& MemfdPool::stockLocked(std::string_view heap) {
    auto it = stocks_.find(heap);
    if (it == stocks_.end())
        it = stocks_.emplace(std::string(heap), Stock{}).first;
    return it->second;
}

MemfdPool::Backlog MemfdPool::order(std::string_view heap, uint64_t bytes, size_t depth) {
    if (!serves(bytes))
        return {};
    Closing closing; // evicted: closed once the lock is dropped
    std::lock_guard lock(mutex_);
    const uint64_t cls = classFor(bytes);
    Stock& stock = stockLocked(heap);
    const auto ready = static_cast<size_t>(
        std::count_if(stock.ready.begin(), stock.ready.end(), [&](const Entry& e) { return e.classBytes == cls; }));
    auto ordered = static_cast<size_t>(std::count(stock.orders.begin(), stock.orders.end(), cls));
    do {
        if (!orderLocked(stock, cls, closing))
            break;
        ++ordered;
    } while (ready + ordered < depth);
    Backlog backlog;
    for (const auto& [name, s] : stocks_)
        backlog.orders += s.orders.size();
    backlog.readyOfClass = ready;
    return backlog;
}

bool MemfdPool::orderLocked(Stock& stock, uint64_t cls, Closing& closing) {
    auto fits = [&] {
        return stock.committed() + cls <= limits_.heapBytes && committedBytes_ + cls <= limits_.totalBytes &&
               (limits_.maxBuffers == 0 || heldBuffers_ < limits_.maxBuffers);
    };
    // Make room by giving back the oldest memfds of other classes: the
    // stock follows the sizes asked for now.
    for (auto it = stock.ready.begin(); !fits() && it != stock.ready.end();) {
        if (it->classBytes == cls) {
            ++it;
            continue;
        }
        stock.readyBytes -= it->classBytes;
        committedBytes_ -= it->classBytes;
        heldBuffers_ -= 1;
        ++stock.counters.drained;
        closing.add(std::move(it->fd), preparer_);
        it = stock.ready.erase(it);
    }
    if (!fits())
        return false; // the budget is full of this class already, or made of orders
    stock.orders.push_back(cls);
    ++stock.counters.orders;
    stock.orderedBytes += cls;
    committedBytes_ += cls;
    heldBuffers_ += 1;
    return true;
}

std::optional<MemfdRefill> MemfdPool::takeRefill() {
    std::lock_guard lock(mutex_);
    for (auto& [heap, stock] : stocks_) {
        if (stock.orders.empty())
            continue;
        const uint64_t cls = stock.orders.front();
        stock.orders.pop_front();
        stock.orderedBytes -= cls;
        stock.makingBytes += cls;
        stock.making += 1;
        return MemfdRefill{heap, cls, drainEpoch_};
    }
    return std::nullopt;
}

void MemfdPool::put(const MemfdRefill& refill, UniqueFd fd, std::chrono::nanoseconds elapsed) {
    Closing closing; // a refill that a drain overtook: closed once the lock is dropped
    std::lock_guard lock(mutex_);
    auto it = stocks_.find(refill.heap);
    assert(it != stocks_.end()); // stocks are never removed
    Stock& stock = it->second;
    stock.makingBytes -= refill.classBytes;
    stock.making -= 1;
    stock.counters.refills += 1;
    stock.counters.refillNanos += static_cast<uint64_t>(elapsed.count());
    if (refill.epoch != drainEpoch_) {
        committedBytes_ -= refill.classBytes;
        heldBuffers_ -= 1;
        ++stock.counters.drained;
        closing.add(std::move(fd), preparer_);
        return;
    }
    stock.ready.push_back(Entry{refill.classBytes, std::move(fd)});
    stock.readyBytes += refill.classBytes;
}

void MemfdPool::abandon(const MemfdRefill& refill) {
    std::lock_guard lock(mutex_);
    auto it = stocks_.find(refill.heap);
    assert(it != stocks_.end());
    it->second.makingBytes -= refill.classBytes;
    it->second.making -= 1;
    committedBytes_ -= refill.classBytes;
    heldBuffers_ -= 1;
}

bool MemfdPool::refillPending() const {
    std::lock_guard lock(mutex_);
    return std::any_of(stocks_.begin(), stocks_.end(), [](const auto& s) { return !s.second.orders.empty(); });
}

void MemfdPool::setPreparer(std::shared_ptr<MemfdPreparer> preparer) {
    std::lock_guard lock(mutex_);
    preparer_ = std::move(preparer);
}

std::shared_ptr<MemfdPreparer> MemfdPool::preparer() const {
    std::lock_guard lock(mutex_);
    return preparer_;
}

void MemfdPool::drain() {
    Closing closing;
    {
        std::lock_guard lock(mutex_);
        ++drainEpoch_;
        for (auto& [heap, stock] : stocks_) {
            for (Entry& e : stock.ready)
                closing.add(std::move(e.fd), preparer_);
            stock.counters.drained += stock.ready.size();
            committedBytes_ -= stock.readyBytes + stock.orderedBytes;
            heldBuffers_ -= stock.ready.size() + stock.orders.size();
            stock.ready.clear();
            stock.orders.clear();
            stock.readyBytes = 0;
            stock.orderedBytes = 0;
        }
    }
}

MemfdPoolCounters MemfdPool::Stock::snapshot() const {
    MemfdPoolCounters c = counters;
    c.readyBytes = readyBytes;
    c.readyBuffers = ready.size();
    return c;
}

MemfdPoolCounters MemfdPool::counters(std::string_view heap) const {
    std::lock_guard lock(mutex_);
    auto it = stocks_.find(heap);
    return it == stocks_.end() ? MemfdPoolCounters{} : it->second.snapshot();
}

std::vector<std::pair<std::string, MemfdPoolCounters>> MemfdPool::heapCounters() const {
    std::vector<std::pair<std::string, MemfdPoolCounters>> out;
    std::lock_guard lock(mutex_);
    for (const auto& [heap, stock] : stocks_)
        out.emplace_back(heap, stock.snapshot());
    return out;
}

MemfdPoolCounters MemfdPool::total() const {
    MemfdPoolCounters sum;
    std::lock_guard lock(mutex_);
    for (const auto& [heap, stock] : stocks_)
        add(sum, stock.snapshot());
    return sum;
}

Result<UniqueFd> makeReadyMemfd(uint64_t bytes, bool populate) {
    if (bytes == 0 || bytes > kLargestClassed)
        return Error(EINVAL, fmt::format("no ready memfd of {} bytes", bytes));
    UniqueFd fd = CENALLOC_TRY(openSealableMemfd("cenalloc"));
    if (!populate) {
        if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
            return Error::fromErrno(fmt::format("ftruncate to {}", formatSize(bytes)));
        return fd;
    }
    // Mode 0 sets the size too: the memfd is the class's size from here.
    if (::fallocate(fd.get(), 0, 0, static_cast<off_t>(bytes)) != 0)
        return Error::fromErrno(fmt::format("fallocate of {}", formatSize(bytes)));
    // The read faults of one populated mapping clear every page fallocate
    // left !uptodate (see the header); nothing is written.
    void* data = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, fd.get(), 0);
    if (data == MAP_FAILED)
        return Error::fromErrno(fmt::format("populating {}", formatSize(bytes)));
    ::munmap(data, bytes);
    return fd;
}

} // namespace cenalloc
