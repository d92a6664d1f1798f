// SPDX-License-Identifier: MIT
// The service's migrations across clients: dynamic attach, pins, migrate, forecast, and the move gate that waits for
// other clients' acknowledgements without holding a lock or a thread.
#include "service/service.h"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "base/try.h"
#include "service/protocol.h"
#include "service/service_state.h"

namespace cenalloc {

namespace {

// Attachments one session may hold: each costs the daemon memory, and a
// client that only ever attaches must hit a limit. Per uid over all its
// sessions, four sessions' worth (as for what mappings hold): a uid has up
// to max_clients_per_uid sessions, and every attachment of a buffer is one
// more for each request on that buffer to look through.
constexpr size_t kMaxAttachments = 4096;
constexpr uint64_t kMaxAttachmentsPerUid = 4 * kMaxAttachments;

std::string truncatedCause(std::string cause) {
    if (cause.size() > wire::kMaxEventCause)
        cause.resize(wire::kMaxEventCause);
    return cause;
}

} // namespace

template <typename Make> auto Service::chargedMoveLocked(ClientState& c, uint64_t size, Make make) {
    using R = decltype(make());
    if (c.trusted)
        return make();
    // Both storages exist while the bytes are copied: the new one counts
    // against the uid of whoever asked for the move, for as long as it does.
    Usage& usage = usage_[c.peer.uid];
    if (size > c.quota.bytes || usage.bytes > c.quota.bytes - size)
        return R(Error(EDQUOT,
                       fmt::format("moving the buffer needs {} of uid {}'s quota while both storages exist; "
                                   "it holds {} of {}",
                                   formatSize(size), c.peer.uid, formatSize(usage.bytes), formatSize(c.quota.bytes))));
    usage.bytes += size;
    R result = make();
    usage.bytes -= size;
    return result;
}

// ------------------------------------------------------------ the hooks

void Service::setHooks(ClientId clientId, ClientHooks hooks) {
    std::lock_guard lock(mutex_);
    if (auto client = clientLocked(clientId))
        (*client)->hooks = std::move(hooks);
}

void Service::enableEvents(ClientId clientId, bool enabled) {
    std::lock_guard lock(mutex_);
    if (auto client = clientLocked(clientId))
        (*client)->events = enabled;
}

std::optional<std::chrono::steady_clock::time_point> Service::parkedDeadline(ClientId clientId) const {
    std::lock_guard lock(mutex_);
    auto client = clientLocked(clientId);
    if (!client || !(*client)->parked)
        return std::nullopt;
    for (const auto& [bufferId, move] : moves_)
        if (move.ticket == *(*client)->parked)
            return move.deadline;
    return std::nullopt;
}

void Service::sendLocked(ClientId clientId, const MoveEvent& event) {
    auto client = clients_.find(clientId);
    if (client == clients_.end() || !client->second->events || !client->second->hooks.event)
        return;
    client->second->hooks.event(event);
}

void Service::wakeLocked(ClientId clientId) {
    auto client = clients_.find(clientId);
    if (client != clients_.end() && client->second->hooks.wake)
        client->second->hooks.wake();
}

// ----------------------------------------------------------- attachments

bool Service::liveLocked(const ClientState& client, const AttachmentRecord& record) const {
    return std::any_of(record.mappings.begin(), record.mappings.end(), [&](uint64_t id) {
        auto it = client.mappings.find(id);
        return it != client.mappings.end() && it->second.mapping.mapped();
    });
}

std::string Service::importerLocked(const ClientState& client, const AttachmentRecord& record) const {
    return fmt::format("'{}' of pid {} uid {}", record.device, client.peer.pid, client.peer.uid);
}

template <typename F> void Service::forEachRecordLocked(const Entry& entry, F f) {
    const uint64_t bufferId = entry.buffer->id();
    for (uint64_t holder : entry.holders) {
        auto client = clients_.find(holder);
        if (client == clients_.end())
            continue;
        ClientState& c = *client->second;
        auto claim = c.claims.find(bufferId);
        if (claim == c.claims.end())
            continue;
        for (uint64_t id : claim->second.attachments)
            f(c, id, c.attachments.at(id));
    }
}

Result<uint64_t> Service::attach(ClientId clientId, BorrowedFd fd, std::string_view deviceName, bool dynamic) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    const DmaDevice* device = CENALLOC_TRY(context_->device(deviceName));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    ClientState& c = *client;
    if (dynamic && !c.events)
        return Error(EPROTONOSUPPORT, "a dynamic attachment needs a session that receives move events (handshake "
                                      "capability 0x1)");
    if (c.attachments.size() >= kMaxAttachments)
        return Error(ENOSPC, fmt::format("this session holds {} attachments, the most it may", c.attachments.size()));
    if (const uint64_t held = usage_[c.peer.uid].attachments; !c.trusted && held >= kMaxAttachmentsPerUid)
        return Error(ENOSPC,
                     fmt::format("the sessions of uid {} hold {} attachments, the most they may", c.peer.uid, held));
    Buffer& buffer = *entry->buffer;
    const AttachForecast forecast = buffer.forecastAttach(*device);
    const bool moves = forecast.outcome == AttachForecast::Outcome::WouldMigrate;
    Told told;
    if (moves || forecast.outcome == AttachForecast::Outcome::Blocked)
        told = CENALLOC_TRY(moveGateLocked(c, *entry, fmt::format("attach of '{}'", device->name()), moves));
    else
        dropParkedLocked(c);
    const uint64_t id = c.nextAttachment;
    AttachOptions options;
    if (dynamic) {
        // Runs inside the buffer's attach or migrate, which the service
        // calls with its lock held.
        options.onMove = [this, clientId, id](const MoveNotification& n) {
            sendLocked(clientId, MoveEvent{MoveEvent::Kind::Moved, n.buffer, id, n.sequence, truncatedCause(n.reason)});
        };
        // The move gate waits for its acknowledgement; a move a CMA heap
        // needs for an allocation waits for nobody (and may run without the
        // service's lock), so it leaves this buffer where it is.
        options.acknowledgesMoves = true;
    }
    auto attach = [&] { return buffer.attach(*device, std::move(options)); };
    auto attached = moves ? chargedMoveLocked(c, buffer.size(), attach) : attach();
    if (!attached) {
        tellCancelledLocked(buffer.id(), told, attached.error().message());
        return attached.error();
    }
    Attachment attachment = std::move(*attached);
    Claim& claim = claimLocked(c, *entry);
    c.nextAttachment++;
    AttachmentRecord record;
    record.buffer = buffer.id();
    record.attachment = std::move(attachment);
    record.device = std::string(deviceName);
    record.dynamic = dynamic;
    c.attachments.emplace(id, std::move(record));
    usage_[c.peer.uid].attachments += 1;
    claim.attachments.insert(id);
    return id;
}

Result<void> Service::pin(ClientId clientId, uint64_t attachment) {
    std::lock_guard lock(mutex_);
    auto [c, record] = CENALLOC_TRY(attachmentLocked(clientId, attachment));
    CENALLOC_CHECK(record->attachment.pin());
    ++record->clientPins;
    return {};
}

Result<void> Service::unpin(ClientId clientId, uint64_t attachment) {
    std::lock_guard lock(mutex_);
    auto [c, record] = CENALLOC_TRY(attachmentLocked(clientId, attachment));
    // The service's own pin of a demoted importer is not the client's.
    if (record->clientPins == 0)
        return Error(EINVAL, fmt::format("attachment {} holds no pin", attachment));
    CENALLOC_CHECK(record->attachment.unpin());
    --record->clientPins;
    return {};
}

Result<AttachForecast> Service::forecast(ClientId clientId, BorrowedFd fd, std::string_view deviceName) {
    const DmaDevice* device = CENALLOC_TRY(context_->device(deviceName));
    std::shared_ptr<Buffer> buffer = CENALLOC_TRY(lookup(clientId, fd));
    return buffer->forecastAttach(*device);
}

Result<void> Service::migrate(ClientId clientId, BorrowedFd fd, std::string_view heap) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    std::lock_guard lock(mutex_);
    auto [client, entry] = CENALLOC_TRY(targetLocked(clientId, key, fd.get()));
    ClientState& c = *client;
    if (!context_->findHeap(heap))
        return Error(ENOENT, fmt::format("no heap '{}'", heap));
    if (!c.trusted && !config_.allows(heap, c.peer))
        return Error(EACCES, fmt::format("uid {} may not use heap '{}'", c.peer.uid, heap));
    Buffer& buffer = *entry->buffer;
    if (!buffer.hasStorage() || buffer.heapName() == heap) {
        dropParkedLocked(c);
        return buffer.migrate(heap); // an allocation, or nothing: no storage moves
    }
    // Only cenalloc's own deferred buffers move (a heap's stay where they
    // were allocated, a host kernel dma-buf is the kernel's): nobody is
    // asked to wait for a move the exporter refuses.
    const bool movable = std::string_view(buffer.exporterName()) == "cenalloc" && !buffer.inHostKernel();
    Told told = CENALLOC_TRY(moveGateLocked(c, *entry, fmt::format("migrate to '{}'", heap), movable));
    auto moved = chargedMoveLocked(c, buffer.size(), [&] { return buffer.migrate(heap); });
    if (!moved)
        tellCancelledLocked(buffer.id(), told, moved.error().message());
    return moved;
}

// ---------------------------------------------------------- the move gate

void Service::demoteLocked(ClientState& client, AttachmentRecord& record) {
    record.demoted = true;
    if (!record.servicePin && liveLocked(client, record) && record.attachment.pin())
        record.servicePin = true;
}

void Service::dropParkedLocked(ClientState& c) {
    if (!c.parked)
        return;
    for (const auto& [bufferId, move] : moves_) {
        if (move.ticket == *c.parked) {
            c.parked.reset();
            cancelMoveLocked(bufferId, "the move is no longer needed");
            return;
        }
    }
    c.parked.reset();
}

void Service::tellCancelledLocked(uint64_t bufferId, const Told& told, const std::string& why) {
    auto entry = entries_.find(bufferId);
    const uint64_t sequence = entry != entries_.end() ? entry->second->buffer->moveSequence() : 0;
    for (const auto& [clientId, attachment] : told)
        sendLocked(clientId,
                   MoveEvent{MoveEvent::Kind::Cancelled, bufferId, attachment, sequence, truncatedCause(why)});
}

Result<Service::Told> Service::moveGateLocked(ClientState& c, Entry& entry, std::string cause, bool canMove) {
    const uint64_t bufferId = entry.buffer->id();
    if (auto pending = moves_.find(bufferId); pending != moves_.end()) {
        PendingMove& move = pending->second;
        if (!c.parked || *c.parked != move.ticket)
            return Error(EBUSY, fmt::format("buffer {} is moving already (waiting for {} importer(s) to "
                                            "acknowledge)",
                                            bufferId, move.waiting.size()));
        if (!move.waiting.empty() && std::chrono::steady_clock::now() < move.deadline)
            return Error(kParked, "waiting for acknowledgements"); // woken early: park again
        // Resumed: everyone answered or went, or the bound passed.
        c.parked.reset();
        if (move.waiting.empty()) {
            Told told = move.notified;      // told of a failure, if the move fails
            cancelMoveLocked(bufferId, {}); // nobody is told: the move follows
            return told;
        }
        std::vector<std::string> late;
        for (const auto& [clientId, attachment] : move.waiting) {
            auto importer = clients_.find(clientId);
            if (importer == clients_.end())
                continue;
            auto record = importer->second->attachments.find(attachment);
            if (record == importer->second->attachments.end())
                continue;
            late.push_back(importerLocked(*importer->second, record->second));
            demoteLocked(*importer->second, record->second);
        }
        const uint64_t waitedMs = config_.moveAckTimeoutMs;
        std::string why = fmt::format("{} did not acknowledge move {} of buffer {} within {} ms: treated as a "
                                      "static importer from now on",
                                      fmt::join(late, ", "), move.sequence, bufferId, waitedMs);
        cancelMoveLocked(bufferId, why);
        return Error(EBUSY, fmt::format("buffer {} cannot move: {}", bufferId, why));
    }
    // What holds the storage in place, named with its client.
    std::vector<std::string> blockers;
    std::vector<std::pair<ClientState*, uint64_t>> waiters;
    forEachRecordLocked(entry, [&](ClientState& holder, uint64_t id, AttachmentRecord& record) {
        if (!liveLocked(holder, record) && record.clientPins == 0)
            return;
        if (record.clientPins > 0)
            blockers.push_back(fmt::format("{} pinned it", importerLocked(holder, record)));
        else if (!record.dynamic)
            blockers.push_back(fmt::format("{} holds a static mapping of it", importerLocked(holder, record)));
        else if (record.demoted)
            blockers.push_back(fmt::format("{} holds a mapping of it and is static since it let a move's bound pass",
                                           importerLocked(holder, record)));
        else if (holder.id != c.id)
            waiters.emplace_back(&holder, id);
    });
    if (!blockers.empty())
        return Error(EBUSY, fmt::format("buffer {} cannot move: {}", bufferId, fmt::join(blockers, "; ")));
    if (waiters.empty() || !canMove)
        return Told{}; // the caller's own dynamic mappings are told after the move
    if (!c.trusted) {
        Usage& usage = usage_[c.peer.uid];
        if (usage.pendingMoves >= c.quota.pendingMoves)
            return Error(EAGAIN, fmt::format("uid {} has {} migration(s) waiting for acknowledgements, the most it "
                                             "may",
                                             c.peer.uid, usage.pendingMoves));
    }
    for (auto [holder, id] : waiters) {
        const Usage& usage = usage_[holder->peer.uid];
        if (!holder->trusted && usage.unackedMoves >= holder->quota.unackedMoves)
            return Error(EBUSY, fmt::format("buffer {} cannot move: {} is not waited for: uid {} has {} move "
                                            "event(s) unacknowledged, the most it may",
                                            bufferId, importerLocked(*holder, holder->attachments.at(id)),
                                            holder->peer.uid, usage.unackedMoves));
    }
    PendingMove move;
    move.ticket = nextTicket_++;
    move.mover = c.id;
    move.moverUid = c.peer.uid;
    move.buffer = bufferId;
    move.sequence = entry.buffer->moveSequence() + 1;
    move.cause = truncatedCause(std::move(cause));
    move.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.moveAckTimeoutMs);
    ++usage_[c.peer.uid].pendingMoves;
    for (auto [holder, id] : waiters) {
        move.waiting.emplace(holder->id, id);
        move.notified.emplace(holder->id, id);
        ++usage_[holder->peer.uid].unackedMoves;
    }
    c.parked = move.ticket;
    PendingMove& stored = moves_.emplace(bufferId, std::move(move)).first->second;
    for (const auto& [clientId, id] : stored.notified)
        sendLocked(clientId, MoveEvent{MoveEvent::Kind::Pending, bufferId, id, stored.sequence, stored.cause});
    return Error(kParked, fmt::format("waiting for {} importer(s) to acknowledge", stored.waiting.size()));
}

void Service::settleLocked(ClientId clientId, uint64_t attachment) {
    for (auto& [bufferId, move] : moves_) {
        if (move.waiting.erase({clientId, attachment}) == 0)
            continue;
        if (auto client = clients_.find(clientId); client != clients_.end())
            --usage_[client->second->peer.uid].unackedMoves;
        move.notified.erase({clientId, attachment});
        if (move.waiting.empty())
            wakeLocked(move.mover);
        return;
    }
}

Result<void> Service::acknowledgeMove(ClientId clientId, uint64_t attachment, uint64_t sequence) {
    std::lock_guard lock(mutex_);
    auto [c, record] = CENALLOC_TRY(attachmentLocked(clientId, attachment));
    auto move = moves_.find(record->buffer);
    if (move == moves_.end() || move->second.sequence != sequence ||
        !move->second.waiting.contains({clientId, attachment}))
        return Error(ENOENT, fmt::format("no move of buffer {} to sequence {} waits for attachment {}", record->buffer,
                                         sequence, attachment));
    // Acknowledged: it is told of the move (Moved) once made, as every
    // dynamic importer is; a cancel still reaches it.
    move->second.waiting.erase({clientId, attachment});
    --usage_[c->peer.uid].unackedMoves;
    if (move->second.waiting.empty())
        wakeLocked(move->second.mover);
    return {};
}

void Service::cancelMoveLocked(uint64_t bufferId, const std::string& why) {
    auto it = moves_.find(bufferId);
    if (it == moves_.end())
        return;
    PendingMove move = std::move(it->second);
    moves_.erase(it);
    for (const auto& [clientId, attachment] : move.waiting)
        if (auto client = clients_.find(clientId); client != clients_.end())
            --usage_[client->second->peer.uid].unackedMoves;
    if (auto usage = usage_.find(move.moverUid); usage != usage_.end())
        --usage->second.pendingMoves;
    if (auto mover = clients_.find(move.mover); mover != clients_.end()) {
        if (mover->second->parked == move.ticket && !why.empty())
            wakeLocked(move.mover); // its request runs again and finds no move
        if (!why.empty() && mover->second->parked == move.ticket)
            mover->second->parked.reset();
    }
    if (why.empty())
        return;
    auto entry = entries_.find(bufferId);
    const uint64_t sequence = entry != entries_.end() ? entry->second->buffer->moveSequence() : move.sequence - 1;
    for (const auto& [clientId, attachment] : move.notified)
        sendLocked(clientId,
                   MoveEvent{MoveEvent::Kind::Cancelled, bufferId, attachment, sequence, truncatedCause(why)});
}

} // namespace cenalloc
