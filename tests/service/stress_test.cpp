// SPDX-License-Identifier: MIT
// Stress: 16 clients allocating, sharing fds, importing, attaching, mapping and releasing at once; back to baseline.
#include <atomic>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "support/daemon.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::baselineOf;

/// Fds the clients hand each other, as processes would over sockets.
class Exchange {
public:
    void put(UniqueFd fd) {
        std::lock_guard lock(mutex_);
        fds_.push_back(std::move(fd));
    }
    UniqueFd take() {
        std::lock_guard lock(mutex_);
        if (fds_.empty())
            return {};
        UniqueFd fd = std::move(fds_.front());
        fds_.pop_front();
        return fd;
    }
    void clear() {
        std::lock_guard lock(mutex_);
        fds_.clear();
    }

private:
    std::mutex mutex_;
    std::deque<UniqueFd> fds_;
};

constexpr const char* kHeaps[] = {"system", "system-dma32", "system-uncached", "linux,cma"};
constexpr const char* kDevices[] = {"gpu", "isp", "usb", "camera", "codec"};

/// One client's loop; returns a failure description, empty when all went well.
// @p sharedSession: other threads use the same session, so the release of
// a buffer by one of them (the exchange hands the same buffers around) takes
// this thread's attachments of it away too: ENOENT from attach, map, unmap,
// detach and release is then what the session must say, not a failure, and
// so is EBUSY from a release while another thread has it mapped.
std::string runClient(Session& s, Exchange& exchange, unsigned seed, int iterations, bool sharedSession = false) {
    std::mt19937 rng(seed);
    auto released = [&](const Error& e) { return sharedSession && e.code() == ENOENT; };
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    std::vector<UniqueFd> held;
    for (int i = 0; i < iterations; ++i) {
        // Allocate, eagerly or deferred.
        uint64_t size = (1 + pick(16)) * 4 * KiB;
        auto fd = pick(4) == 0 ? s.create(size, "stress") : s.allocate(kHeaps[pick(4)], size);
        if (!fd)
            return "allocate: " + fd.error().toString();
        // Share a copy with the others.
        if (pick(2) == 0) {
            UniqueFd copy(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
            exchange.put(std::move(copy));
        }
        held.push_back(std::move(*fd));
        // Use a buffer someone else shared, or one of ours.
        UniqueFd theirs = exchange.take();
        BorrowedFd target = theirs.valid() ? theirs.borrow() : held[pick(held.size())].borrow();
        if (auto id = s.import(target); !id)
            return "import: " + id.error().toString();
        auto att = s.attach(target, kDevices[pick(5)]);
        if (att) {
            auto m = s.map(*att, DmaDirection::Bidirectional);
            // A deferred buffer's attach set may have no heap left (EINVAL)
            // or memory may run out (ENOMEM) under this load: both fine.
            if (!m && m.error().code() != ENOMEM && m.error().code() != EINVAL && !released(m.error()))
                return "map: " + m.error().toString();
            if (m && pick(3) == 0) {
                if (auto ok = s.unmap(m->id); !ok && !released(ok.error()))
                    return "unmap: " + ok.error().toString();
                if (auto ok = s.detach(*att); !ok && !released(ok.error()))
                    return "detach: " + ok.error().toString();
            }
        } else if (att.error().code() != EBUSY && att.error().code() != EINVAL && !released(att.error())) {
            return "attach: " + att.error().toString();
        }
        if (auto ok = s.beginCpuAccess(target, kSyncRead); ok && pick(2) == 0)
            (void)s.endCpuAccess(target, kSyncRead);
        if (pick(3) == 0)
            if (auto ok = s.release(target);
                !ok && !released(ok.error()) && !(sharedSession && ok.error().code() == EBUSY))
                return "release: " + ok.error().toString(); // EBUSY: another thread's mapping of it
        if (pick(4) == 0 && i % 7 == 0) {
            if (auto info = s.bufinfo(); !info)
                return "bufinfo: " + info.error().toString();
        }
        // Drop some of ours; their claims go with the buffer when nobody holds it.
        if (held.size() > 8)
            held.erase(held.begin() + static_cast<std::ptrdiff_t>(pick(held.size())));
    }
    return {};
}

void stress(std::vector<std::unique_ptr<Session>>& sessions, Session& observer, int iterations) {
    const auto baseline = baselineOf(observer);
    Exchange exchange;
    std::vector<std::string> failures(sessions.size());
    std::vector<std::thread> threads;
    for (size_t t = 0; t < sessions.size(); ++t)
        threads.emplace_back(
            [&, t] { failures[t] = runClient(*sessions[t], exchange, static_cast<unsigned>(1234 + t), iterations); });
    for (auto& t : threads)
        t.join();
    for (size_t t = 0; t < failures.size(); ++t)
        EXPECT_EQ(failures[t], "") << "client " << t;
    exchange.clear();
    sessions.clear(); // every client goes, with its claims
    EXPECT_EQ(baselineOf(observer), baseline);
    auto stats = observer.stats();
    ASSERT_TRUE(stats);
    for (const char* heap : kHeaps)
        EXPECT_GT(test::findHeap(stats->heaps, heap)->stats.totalAllocations, 0u) << heap << " was exercised";
    EXPECT_TRUE(stats->lifetimeBugs.empty()) << stats->lifetimeBugs.front();
    auto info = observer.bufinfo();
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->empty());
}

TEST(Stress, SixteenDaemonClientsShareBuffersAndEverythingReturnsToBaseline) {
    test::InProcessDaemon daemon;
    auto observer = daemon.connect();
    ASSERT_NE(observer, nullptr);
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < 16; ++i) {
        sessions.push_back(daemon.connect());
        ASSERT_NE(sessions.back(), nullptr);
    }
    stress(sessions, *observer, 120);
    EXPECT_EQ(daemon.server().service().trackedBuffers(), 0u);
}

TEST(Stress, SixteenThreadsShareOneLocalSession) {
    auto local = Session::local();
    ASSERT_TRUE(local);
    // One in-process session used by every thread at once: its methods are thread-safe.
    struct Shared final : Session {
        explicit Shared(Session& s) : s_(s) {}
        std::string describe() const override { return s_.describe(); }
        Result<std::vector<HeapInfo>> heaps() override { return s_.heaps(); }
        Result<UniqueFd> allocate(const AllocRequest& request) override { return s_.allocate(request); }
        Result<UniqueFd> create(const CreateRequest& request) override { return s_.create(request); }
        Result<SessionAllocatedFor> allocateFor(const AllocForRequest& request) override {
            return s_.allocateFor(request);
        }
        Result<uint64_t> import(BorrowedFd b) override { return s_.import(b); }
        Result<void> release(BorrowedFd b) override { return s_.release(b); }
        Result<uint64_t> attach(BorrowedFd b, std::string_view d) override { return s_.attach(b, d); }
        Result<void> detach(uint64_t a) override { return s_.detach(a); }
        Result<uint64_t> attach(BorrowedFd b, std::string_view d, SessionAttachOptions o) override {
            return s_.attach(b, d, o);
        }
        Result<void> pin(uint64_t a) override { return s_.pin(a); }
        Result<void> unpin(uint64_t a) override { return s_.unpin(a); }
        Result<void> migrate(BorrowedFd b, std::string_view h) override { return s_.migrate(b, h); }
        Result<AttachForecast> forecast(BorrowedFd b, std::string_view d) override { return s_.forecast(b, d); }
        Result<void> acknowledgeMove(uint64_t a, uint64_t q) override { return s_.acknowledgeMove(a, q); }
        BorrowedFd eventFd() override { return s_.eventFd(); }
        void setMoveCallback(MoveEventCallback c) override { s_.setMoveCallback(std::move(c)); }
        Result<size_t> dispatchEvents() override { return s_.dispatchEvents(); }
        Result<std::optional<MoveEvent>> nextEvent() override { return s_.nextEvent(); }
        Result<SessionMapping> map(uint64_t a, DmaDirection d) override { return s_.map(a, d); }
        Result<void> unmap(uint64_t m) override { return s_.unmap(m); }
        Result<void> beginCpuAccess(BorrowedFd b, SyncFlags f) override { return s_.beginCpuAccess(b, f); }
        Result<void> endCpuAccess(BorrowedFd b, SyncFlags f) override { return s_.endCpuAccess(b, f); }
        Result<void> setName(BorrowedFd b, const BufferName& n) override { return s_.setName(b, n); }
        Result<std::vector<BufferInfo>> bufinfo() override { return s_.bufinfo(); }
        Result<BufferInfo> describe(BorrowedFd b) override { return s_.describe(b); }
        Result<UniqueFd> storageFd(BorrowedFd b) override { return s_.storageFd(b); }
        Result<AllocatorStats> stats(bool r) override { return s_.stats(r); }
        Result<Explanation> explain(std::span<const std::string> d, uint64_t s, CpuAccess c) override {
            return s_.explain(d, s, c);
        }
        Session& s_;
    };
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < 16; ++i)
        sessions.push_back(std::make_unique<Shared>(**local));
    const auto baseline = baselineOf(**local);
    Exchange exchange;
    std::vector<std::string> failures(16);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < 16; ++t)
        threads.emplace_back([&, t] { failures[t] = runClient(*sessions[t], exchange, 99 + t, 60, true); });
    for (auto& t : threads)
        t.join();
    for (size_t t = 0; t < 16; ++t)
        EXPECT_EQ(failures[t], "") << "thread " << t;
    exchange.clear();
    // The session's own claims stay until released; the buffers go with their fds.
    auto stats = (**local).stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty());
    EXPECT_EQ(baselineOf(**local), baseline);
}

} // namespace
} // namespace cenalloc
