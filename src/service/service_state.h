// SPDX-License-Identifier: MIT
// The service's bookkeeping records, shared by the files that implement Service.
#pragma once

#include <cstdint>
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
};

struct Service::MappingRecord {
    uint64_t attachment = 0;
    Attachment::Mapping mapping;
};

struct Service::AttachmentRecord {
    uint64_t buffer = 0;
    Attachment attachment;
    std::set<uint64_t> mappings;
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
    uint64_t nextAttachment = 1;
    uint64_t nextMapping = 1;
};

} // namespace cenalloc
