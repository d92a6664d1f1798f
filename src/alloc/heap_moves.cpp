// SPDX-License-Identifier: MIT
// Heap-driven moves: planning the window a CMA heap clears, moving the buffers in it, and the explicit evacuation.
#include "alloc/heap_moves.h"

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "base/try.h"
#include "core/buffer_internal.h"
#include "core/registry.h"
#include "heaps/contiguous_heap.h"

namespace cenalloc {

namespace {

// A window is tried, and on a failure to place its buffers elsewhere the
// next cheapest, as cma_alloc() tries the next range when
// alloc_contig_range() reports the last one busy (mm/cma.c, "memory range
// at %p is busy, retrying"); a few, so a hopeless request stays cheap.
constexpr size_t kMaxWindows = 4;

// Planning locks every buffer in the heap and weighs every candidate window
// (a few per buffer) against every buffer: a heap holding more buffers than
// this moves none, so a client that fills a CMA pool with small buffers and
// asks for a large one makes the daemon hold a bounded number of other
// clients' buffers for bounded work. (ThreadSanitizer's deadlock detector
// also refuses more than 64 mutexes held by one thread.)
constexpr size_t kMaxOccupants = 48;

// A buffer whose storage lies in the heap, locked from the plan to the end
// of the moves so that nothing it holds changes meanwhile. The buffer is
// declared first: the lock is released before the last reference can go.
struct Occupant {
    std::shared_ptr<Buffer> buffer;
    std::unique_lock<std::mutex> lock;
    std::vector<PhysChunk> chunks;
    uint64_t bytes = 0;
    std::optional<std::string> blocker; // what keeps it in place; none: movable
};

// A window to clear and the occupants that must leave it.
struct Plan {
    PhysChunk window;
    std::vector<size_t> victims; // indexes into the occupants
    uint64_t movedBytes = 0;
};

uint64_t overlap(const PhysChunk& a, const PhysChunk& b) {
    const uint64_t from = std::max(a.address, b.address);
    const uint64_t to = std::min(a.end(), b.end());
    return to > from ? to - from : 0;
}

uint64_t overlapAll(const std::vector<PhysChunk>& chunks, const PhysChunk& window) {
    uint64_t bytes = 0;
    for (const PhysChunk& c : chunks)
        bytes += overlap(c, window);
    return bytes;
}

// The caller holds the buffer's lock (name() would take it).
std::string describeBuffer(const Buffer& buffer) {
    return fmt::format("buffer {} ('{}')", buffer.id(), BufferAccess::nameLocked(buffer));
}

// Every buffer of the registry whose storage lies in @p heap, locked; a
// buffer busy in another thread right now is not examined, so its bytes
// count as in use by something that cannot move.
Result<std::vector<Occupant>> lockOccupants(BufferRegistry& registry, const Heap& heap, const Buffer* self) {
    std::vector<Occupant> occupants;
    for (std::shared_ptr<Buffer>& buffer : registry.buffers()) {
        if (buffer.get() == self)
            continue; // its caller holds its lock; it is what the room is for
        std::unique_lock<std::mutex> lock = BufferAccess::tryLock(*buffer);
        if (!lock.owns_lock())
            continue;
        const Storage& storage = BufferAccess::storageLocked(*buffer);
        if (storage.empty() || storage.heap() != &heap)
            continue;
        if (occupants.size() == kMaxOccupants)
            return Error(ENOMEM, fmt::format("its buffers are too many to plan moves among (more than {}, each locked "
                                             "while the moves are planned); no buffer moved",
                                             kMaxOccupants));
        Occupant o;
        o.chunks = storage.chunks();
        o.bytes = storage.size();
        o.blocker = BufferAccess::heapMoveBlockerLocked(*buffer);
        o.buffer = std::move(buffer);
        o.lock = std::move(lock);
        occupants.push_back(std::move(o));
    }
    return occupants;
}

// The windows of @p length bytes aligned to @p alignment within
// [lowest, highest] that moving buffers can clear, cheapest first (fewest
// bytes moved, then lowest address). A window may hold free bytes and
// movable buffers only; a buffer partly inside moves whole.
std::vector<Plan> planWindows(const std::vector<PhysChunk>& free, const std::vector<Occupant>& occupants,
                              uint64_t length, uint64_t alignment, uint64_t lowest, uint64_t highest) {
    if (highest < lowest || highest - lowest < length - 1)
        return {};
    // An optimal window can slide down until its start or its end meets the
    // edge of a free range or of a buffer (or of the limits): only those
    // starts are tried.
    std::vector<uint64_t> edges{lowest, highest + 1};
    for (const PhysChunk& f : free)
        edges.insert(edges.end(), {f.address, f.end()});
    for (const Occupant& o : occupants)
        for (const PhysChunk& c : o.chunks)
            edges.insert(edges.end(), {c.address, c.end()});
    std::vector<uint64_t> starts;
    for (uint64_t edge : edges) {
        if (std::optional<uint64_t> up = alignUpChecked(edge, alignment))
            starts.push_back(*up);
        if (edge >= length)
            starts.push_back((edge - length) / alignment * alignment);
    }
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());

    std::vector<Plan> plans;
    for (uint64_t start : starts) {
        if (start < lowest || start > highest || highest - start < length - 1)
            continue;
        const PhysChunk window{start, length};
        uint64_t covered = overlapAll(free, window);
        Plan plan{window, {}, 0};
        for (size_t i = 0; i < occupants.size(); ++i) {
            const uint64_t inside = overlapAll(occupants[i].chunks, window);
            if (inside == 0 || occupants[i].blocker)
                continue;
            covered += inside;
            plan.victims.push_back(i);
            plan.movedBytes += occupants[i].bytes;
        }
        // Bytes neither free nor a movable buffer's: something stays there.
        if (covered == length)
            plans.push_back(std::move(plan));
    }
    std::stable_sort(plans.begin(), plans.end(), [](const Plan& a, const Plan& b) {
        return a.movedBytes != b.movedBytes ? a.movedBytes < b.movedBytes : a.window.address < b.window.address;
    });
    return plans;
}

// Hold @p plan's window in @p heap and move its victims out: new storage for
// every one first, while each old one still exists, so that a failure frees
// what was allocated and moves nothing; then the moves, whose old storage
// stays held in the window. The window stays held on success (the caller
// takes or releases it) and is released on failure.
Result<std::vector<EvacuatedBuffer>> clearWindow(ContiguousHeap& heap, const Plan& plan,
                                                 std::vector<Occupant>& occupants, const std::string& reason) {
    CENALLOC_CHECK(heap.holdWindow(plan.window));
    uint64_t victimBytes = 0;
    for (size_t i : plan.victims)
        victimBytes += overlapAll(occupants[i].chunks, plan.window);
    if (heap.heldBytes() + victimBytes != plan.window.size) {
        // Bytes of no buffer examined: one busy in another thread, or an
        // allocation since the plan (by a thread that holds no buffer lock).
        const uint64_t unknown = plan.window.size - heap.heldBytes() - victimBytes;
        heap.releaseWindow();
        return Error(EBUSY, fmt::format("{} at {} is in use by a buffer busy elsewhere right now", formatSize(unknown),
                                        formatAddress(plan.window.address)));
    }
    std::vector<Storage> fresh;
    for (size_t i : plan.victims) {
        Buffer& buffer = *occupants[i].buffer;
        auto storage = BufferAccess::opsLocked(buffer).storageElsewhere(buffer);
        if (!storage) {
            fresh.clear(); // back to their heaps, outside the window
            heap.releaseWindow();
            return storage.error().withContext(
                fmt::format("no other place for {} ({})", describeBuffer(buffer), formatSize(occupants[i].bytes)));
        }
        fresh.push_back(std::move(*storage));
    }
    std::vector<EvacuatedBuffer> moved;
    for (size_t k = 0; k < plan.victims.size(); ++k) {
        Occupant& o = occupants[plan.victims[k]];
        EvacuatedBuffer out;
        out.buffer = o.buffer->id();
        out.from = o.chunks;
        out.toHeap = fresh[k].heap()->name();
        out.to = fresh[k].chunks();
        out.notified = BufferAccess::dynamicImportersLocked(*o.buffer);
        BufferAccess::opsLocked(*o.buffer).adoptStorage(*o.buffer, std::move(fresh[k]), reason);
        moved.push_back(std::move(out));
    }
    return moved;
}

// The notifications of the moved buffers, taken while their locks are held.
BufferAccess::PendingMoves takeNotifications(std::vector<Occupant>& occupants) {
    BufferAccess::PendingMoves all;
    for (Occupant& o : occupants)
        for (auto& move : BufferAccess::takePendingMovesLocked(*o.buffer))
            all.push_back(std::move(move));
    return all;
}

void deliver(BufferAccess::PendingMoves moves) {
    for (auto& [callback, notification] : moves)
        callback(notification);
}

// The buffers that keep windows from being cleared, for the error: the
// first few, by id.
std::string blockersOf(const std::vector<Occupant>& occupants) {
    constexpr size_t kNamed = 4;
    std::vector<std::string> named;
    size_t more = 0;
    for (const Occupant& o : occupants) {
        if (!o.blocker)
            continue;
        if (named.size() == kNamed) {
            ++more;
            continue;
        }
        named.push_back(fmt::format("{} at {}: {}", describeBuffer(*o.buffer),
                                    formatAddress(o.chunks.empty() ? 0 : o.chunks.front().address), *o.blocker));
    }
    if (named.empty())
        return {};
    return fmt::format(" ({}{})", fmt::join(named, "; "), more ? fmt::format("; {} more", more) : std::string());
}

} // namespace

bool heapMovesBuffers(const Heap& heap) {
    // The kernel's cma_alloc() (mm/cma.c) calls alloc_contig_range(pfn,
    // pfn + count, MIGRATE_CMA, ...) (mm/page_alloc.c), which isolates the
    // range and migrates the movable pages in it elsewhere
    // (__alloc_contig_migrate_range: migrate_pages(..., MR_CMA)). Pages a
    // driver pinned for the long term are not movable, which is why
    // FOLL_LONGTERM pinning first migrates pages out of CMA and ZONE_MOVABLE
    // (mm/gup.c, __gup_longterm_locked: check_and_migrate_movable_pages).
    // A carveout has no such pages: its memory is the devices' alone.
    const HeapProperties& p = heap.properties();
    return p.kind == HeapKind::Cma && !p.inHostKernel() && dynamic_cast<const ContiguousHeap*>(&heap) != nullptr;
}

Result<Storage> HeapMover::allocate(const std::shared_ptr<Heap>& heap, uint64_t length, const StorageLimits& limits,
                                    Buffer* self) {
    auto storage = heap->allocate(length, limits);
    if (storage || storage.error().code() != ENOMEM || !heapMovesBuffers(*heap))
        return storage;
    auto& contiguous = static_cast<ContiguousHeap&>(*heap);
    const HeapProperties& p = heap->properties();
    const uint64_t alignment = std::max(limits.alignment, kPageSize);
    const std::string reason = fmt::format("heap '{}' making room for {}", heap->name(), formatSize(length));
    BufferAccess::PendingMoves notifications;
    Result<Storage> made = Error(ENOMEM, "");
    {
        std::lock_guard guard(mutex_);
        auto locked = lockOccupants(*registry_, *heap, self);
        if (!locked)
            return storage.error().withContext(locked.error().message());
        std::vector<Occupant>& occupants = *locked;
        std::vector<Plan> plans = planWindows(contiguous.freeRanges(), occupants, length, alignment, p.lowestAddress,
                                              std::min(p.highestAddress, limits.highestAddress));
        if (plans.empty())
            return storage.error().withContext(
                fmt::format("no window of {} in it holds only free memory and buffers that can move{}",
                            formatSize(length), blockersOf(occupants)));
        std::optional<Error> firstFailure;
        for (size_t i = 0; i < plans.size() && i < kMaxWindows; ++i) {
            auto moved = clearWindow(contiguous, plans[i], occupants, reason);
            if (!moved) {
                if (!firstFailure)
                    firstFailure = moved.error();
                continue;
            }
            made = contiguous.takeWindow();
            break;
        }
        if (firstFailure && !made)
            return storage.error().withContext(
                fmt::format("moving the buffers in its way makes no room: {}", firstFailure->message()));
        notifications = takeNotifications(occupants);
        if (self && !notifications.empty())
            BufferAccess::queueMovesLocked(*self, std::move(notifications));
    } // the moved buffers are unlocked here
    deliver(std::move(notifications));
    return made;
}

Result<Evacuation> HeapMover::evacuate(const std::shared_ptr<Heap>& heap, PhysChunk range) {
    auto& contiguous = static_cast<ContiguousHeap&>(*heap);
    Evacuation out;
    out.heap = heap->name();
    out.range = range;
    BufferAccess::PendingMoves notifications;
    {
        std::lock_guard guard(mutex_);
        auto locked = lockOccupants(*registry_, *heap, nullptr);
        if (!locked)
            return locked.error().withContext(fmt::format("heap '{}'", heap->name()));
        std::vector<Occupant>& occupants = *locked;
        Plan plan{range, {}, 0};
        std::vector<std::string> blockers;
        for (size_t i = 0; i < occupants.size(); ++i) {
            if (overlapAll(occupants[i].chunks, range) == 0)
                continue;
            if (occupants[i].blocker)
                blockers.push_back(fmt::format("{} at {}: {}", describeBuffer(*occupants[i].buffer),
                                               formatAddress(occupants[i].chunks.front().address),
                                               *occupants[i].blocker));
            else
                plan.victims.push_back(i);
        }
        if (!blockers.empty())
            return Error(EBUSY, fmt::format("{} of heap '{}' at {} cannot be cleared: {}", formatSize(range.size),
                                            heap->name(), formatAddress(range.address), fmt::join(blockers, "; ")));
        auto moved = clearWindow(contiguous, plan, occupants,
                                 fmt::format("evacuation of {} of heap '{}' at {}", formatSize(range.size),
                                             heap->name(), formatAddress(range.address)));
        if (!moved)
            return moved.error().withContext(fmt::format("clearing {} of heap '{}' at {}", formatSize(range.size),
                                                         heap->name(), formatAddress(range.address)));
        contiguous.releaseWindow();
        out.moved = std::move(*moved);
        for (size_t k = 0; k < out.moved.size(); ++k)
            out.moved[k].name = BufferAccess::nameLocked(*occupants[plan.victims[k]].buffer);
        notifications = takeNotifications(occupants);
    }
    deliver(std::move(notifications));
    return out;
}

} // namespace cenalloc
