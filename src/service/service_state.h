// SPDX-License-Identifier: MIT
// The service's bookkeeping records, shared by the files that implement Service.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include <cenalloc/buffer.h>

#include "service/service.h"

namespace cenalloc {

struct Service::PassKey {
    explicit PassKey() = default;
};

struct Service::Entry {
    std::shared_ptr<Buffer> buffer;
    InodeKey key;
    int watch = -1;
    /// Clients with a claim on the buffer.
    std::set<uint64_t> holders;
    /// The charge against the quota of the uid that allocated or created
    /// the buffer: it lasts as long as the buffer does, whatever becomes of
    /// the connection that made it (a client that reconnects keeping its
    /// fds holds them still).
    bool charged = false;
    uint32_t chargedUid = 0;
    uint64_t chargedBytes = 0;
    /// storage-fd handed a client the fd of bytes that live apart from the
    /// buffer's file (Buffer::bytesApart: the kernel's dma-buf, or a memfd
    /// of its own): that file can outlive the buffer, and the charge with it.
    bool storageOut = false;
};

struct Service::MappingRecord {
    uint64_t attachment = 0;
    Attachment::Mapping mapping;
    /// What it costs the daemon: its segments and its storage's chunks
    /// (ClientState::mappedPieces).
    uint64_t pieces = 0;
};

struct Service::AttachmentRecord {
    uint64_t buffer = 0;
    Attachment attachment;
    std::set<uint64_t> mappings;
    std::string device;
    bool dynamic = false;
    /// Pins the client holds (Service::pin), apart from the service's own.
    uint32_t clientPins = 0;
    /// It let a move's bound pass without acknowledging: from then on a
    /// static importer (its live mappings hold the storage: servicePin).
    bool demoted = false;
    bool servicePin = false; ///< the service pinned it for being demoted
};

/// A migration waiting for the acknowledgements of other clients' dynamic
/// importers (service_moves.cpp), one per buffer at most.
struct Service::PendingMove {
    uint64_t ticket = 0;
    ClientId mover = 0;
    uint32_t moverUid = 0;
    uint64_t buffer = 0;
    /// The buffer's move sequence the move will give it.
    uint64_t sequence = 0;
    std::string cause;
    /// (client, attachment) sent a Pending event and not heard from yet.
    std::set<std::pair<ClientId, uint64_t>> waiting;
    /// Everyone sent a Pending event (told of a cancel).
    std::set<std::pair<ClientId, uint64_t>> notified;
    std::chrono::steady_clock::time_point deadline;
};

struct Service::Claim {
    std::set<uint64_t> attachments;
    /// Open CPU-access brackets, oldest first, with the flags they began with.
    std::vector<std::pair<uint32_t, CpuAccessGuard>> cpuAccess;
};

struct Service::ClientState {
    uint64_t id = 0;
    Credentials peer;
    bool trusted = false;
    Quota quota;
    std::map<uint64_t, Claim> claims; // by buffer id
    std::map<uint64_t, AttachmentRecord> attachments;
    std::map<uint64_t, MappingRecord> mappings;
    /// Open CPU-access brackets over all its claims.
    size_t cpuAccessOpen = 0;
    /// MappingRecord::pieces over all its mappings.
    uint64_t mappedPieces = 0;
    uint64_t nextAttachment = 1;
    uint64_t nextMapping = 1;
    /// It asked for move events (handshake) or is in-process.
    bool events = false;
    ClientHooks hooks;
    /// The ticket of the pending move its parked request waits on.
    std::optional<uint64_t> parked;
};

} // namespace cenalloc
