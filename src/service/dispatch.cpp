// SPDX-License-Identifier: MIT
// Request validation and dispatch to a ServiceClient; replies with an errno, a message and a body.
#include "service/dispatch.h"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

#include <fmt/format.h>

namespace cenalloc {

using namespace wire;

namespace {

Reply makeReply(Op op, uint32_t sequence, int error, std::string_view message, const std::vector<std::byte>& body,
                UniqueFd fd = {}) {
    Reply reply;
    reply.header = makeHeader(op, 0, fd.valid() ? 1 : 0, sequence);
    reply.header.error = error;
    message = message.substr(0, kMaxErrorMessage);
    Writer w;
    // Sized once: prefix, message (padded to 8) and body.
    w.bytes().reserve(sizeof(ReplyPrefix) + message.size() + 8 + body.size());
    w.put(ReplyPrefix{static_cast<uint32_t>(message.size()), 0});
    w.putBytes(message);
    reply.payload = std::move(w.bytes());
    reply.payload.insert(reply.payload.end(), body.begin(), body.end());
    reply.fd = std::move(fd);
    return reply;
}

Error invalid(std::string message) {
    return Error(EINVAL, std::move(message));
}

/// What one request asks, after the header was validated.
struct Request {
    Op op;
    std::span<const std::byte> payload;
    BorrowedFd fd; ///< the buffer fd of ops that take one
};

/// The body of a successful reply, or the error.
struct Outcome {
    std::vector<std::byte> body;
    UniqueFd fd;
};

Result<Outcome> empty(Result<void> done) {
    if (!done)
        return done.error();
    return Outcome{};
}

template <typename T> Outcome bodyOf(const T& value) {
    Writer w;
    w.put(value);
    return Outcome{std::move(w.bytes()), {}};
}

Result<Outcome> bufferReply(Result<ServiceBuffer> buffer) {
    if (!buffer)
        return buffer.error();
    Outcome out = bodyOf(BufferReply{buffer->id, buffer->size});
    out.fd = std::move(buffer->fd);
    return out;
}

Result<Outcome> run(ServiceClient& client, const Request& req) {
    switch (req.op) {
    case Op::Handshake: {
        auto r = decodePayload<HandshakeRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid("handshake: reserved field is not zero");
        if (r->minVersion > r->maxVersion)
            return invalid(fmt::format("handshake: version range {}..{} is empty", r->minVersion, r->maxVersion));
        if (kVersion < r->minVersion || kVersion > r->maxVersion)
            return Error(EPROTONOSUPPORT, fmt::format("the client speaks versions {}..{}, this daemon speaks {}",
                                                      r->minVersion, r->maxVersion, kVersion));
        return bodyOf(
            HandshakeReply{kVersion, static_cast<uint32_t>(kMaxRequestSize), static_cast<uint32_t>(::getpid()), 0});
    }
    case Op::ListHeaps: {
        if (auto ok = checkEmptyPayload(req.payload); !ok)
            return ok.error();
        auto heaps = client.heaps();
        if (!heaps)
            return heaps.error();
        Writer w;
        encodeHeaps(w, *heaps);
        return Outcome{std::move(w.bytes()), {}};
    }
    case Op::Allocate: {
        auto r = decodePayload<AllocateRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid("allocate: reserved field is not zero");
        auto heap = getName(r->heap, sizeof r->heap, "allocate: heap");
        if (!heap)
            return heap.error();
        return bufferReply(client.allocate(*heap, r->length, r->fdFlags, r->heapFlags));
    }
    case Op::Create: {
        auto r = decodePayload<CreateRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid("create: reserved field is not zero");
        if (r->cpuAccess > static_cast<uint32_t>(CpuAccess::Often))
            return invalid(fmt::format("create: cpu access {} is not 0 (none), 1 (rare) or 2 (often)", r->cpuAccess));
        auto name = getName(r->name, sizeof r->name, "create: name");
        if (!name)
            return name.error();
        return bufferReply(client.create(r->size, *name, static_cast<CpuAccess>(r->cpuAccess)));
    }
    case Op::Import: {
        if (auto ok = checkEmptyPayload(req.payload); !ok)
            return ok.error();
        auto id = client.import(req.fd);
        if (!id)
            return id.error();
        return bodyOf(IdReply{*id});
    }
    case Op::Release:
        if (auto ok = checkEmptyPayload(req.payload); !ok)
            return ok.error();
        return empty(client.release(req.fd));
    case Op::Attach: {
        auto r = decodePayload<AttachRequest>(req.payload);
        if (!r)
            return r.error();
        auto device = getName(r->device, sizeof r->device, "attach: device");
        if (!device)
            return device.error();
        auto id = client.attach(req.fd, *device);
        if (!id)
            return id.error();
        return bodyOf(IdReply{*id});
    }
    case Op::Detach: {
        auto r = decodePayload<IdRequest>(req.payload);
        if (!r)
            return r.error();
        return empty(client.detach(r->id));
    }
    case Op::Map: {
        auto r = decodePayload<MapRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid("map: reserved field is not zero");
        if (r->direction > static_cast<uint32_t>(DmaDirection::FromDevice))
            return invalid(fmt::format("map: direction {} is not 0, 1 or 2", r->direction));
        auto mapping = client.map(r->attachment, static_cast<DmaDirection>(r->direction));
        if (!mapping)
            return mapping.error();
        Writer w;
        encodeMapping(w, *mapping);
        return Outcome{std::move(w.bytes()), {}};
    }
    case Op::Unmap: {
        auto r = decodePayload<IdRequest>(req.payload);
        if (!r)
            return r.error();
        return empty(client.unmap(r->id));
    }
    case Op::BeginCpuAccess:
    case Op::EndCpuAccess: {
        auto r = decodePayload<SyncRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid(fmt::format("{}: reserved field is not zero", opName(static_cast<uint16_t>(req.op))));
        if (req.op == Op::BeginCpuAccess)
            return empty(client.beginCpuAccess(req.fd, r->flags));
        return empty(client.endCpuAccess(req.fd, r->flags));
    }
    case Op::SetName: {
        auto r = decodePayload<SetNameRequest>(req.payload);
        if (!r)
            return r.error();
        auto name = getName(r->name, sizeof r->name, "set-name: name");
        if (!name)
            return name.error();
        return empty(client.setName(req.fd, *name));
    }
    case Op::Bufinfo: {
        if (auto ok = checkEmptyPayload(req.payload); !ok)
            return ok.error();
        auto buffers = client.bufinfo();
        if (!buffers)
            return buffers.error();
        Writer w;
        encodeBufinfo(w, *buffers);
        return Outcome{std::move(w.bytes()), {}};
    }
    case Op::Stats: {
        auto r = decodePayload<StatsRequest>(req.payload);
        if (!r)
            return r.error();
        if (r->reserved != 0)
            return invalid("stats: reserved field is not zero");
        if (r->flags & ~kStatsResetWatermark)
            return invalid(fmt::format("stats: undefined flags {:#x}", r->flags & ~kStatsResetWatermark));
        auto stats = client.stats(r->flags & kStatsResetWatermark);
        if (!stats)
            return stats.error();
        Writer w;
        encodeStats(w, *stats);
        return Outcome{std::move(w.bytes()), {}};
    }
    case Op::Platform: {
        if (auto ok = checkEmptyPayload(req.payload); !ok)
            return ok.error();
        const Context& context = client.service().context();
        Writer w;
        encodePlatform(w, context.platform(), context.heapProperties());
        return Outcome{std::move(w.bytes()), {}};
    }
    }
    return invalid("unknown opcode"); // unreachable: the opcode was range-checked
}

} // namespace

Reply errorReply(Op op, uint32_t sequence, const Error& error) {
    return makeReply(op, sequence, error.code(), error.message(), {});
}

Reply handleRequest(ServiceClient& client, const Datagram& request) {
    MessageHeader h{};
    const bool haveHeader = request.bytes.size() >= sizeof h;
    if (haveHeader)
        std::memcpy(&h, request.bytes.data(), sizeof h);
    const auto op = static_cast<Op>(haveHeader ? h.opcode : 0);
    const uint32_t sequence = haveHeader ? h.sequence : 0;
    auto fail = [&](const Error& e) { return errorReply(op, sequence, e); };

    if (request.wireSize > kMaxRequestSize)
        return fail(invalid(
            fmt::format("a request of {} bytes is larger than the limit of {}", request.wireSize, kMaxRequestSize)));
    if (!haveHeader)
        return fail(invalid(
            fmt::format("a message of {} bytes is shorter than the {}-byte header", request.bytes.size(), sizeof h)));
    if (h.magic != kMagic)
        return fail(invalid(fmt::format("bad magic {:#010x} (expected {:#010x})", h.magic, kMagic)));
    if (h.version != kVersion)
        return fail(
            invalid(fmt::format("protocol version {} is not supported (this daemon speaks {})", h.version, kVersion)));
    if (h.error != 0)
        return fail(invalid("the error field of a request must be zero"));
    if (h.reserved != 0)
        return fail(invalid("the reserved header field is not zero"));
    if (h.flags & ~kValidRequestFlags)
        return fail(invalid(fmt::format("undefined header flags {:#x}", h.flags & ~kValidRequestFlags)));
    const size_t payloadSize = request.bytes.size() - sizeof h;
    if (h.payloadSize != payloadSize)
        return fail(invalid(
            fmt::format("the header announces {} payload bytes, the message has {}", h.payloadSize, payloadSize)));
    if (request.controlTruncated)
        return fail(invalid("the control data was truncated (too many fds attached)"));
    if (request.foreignControl)
        return fail(invalid("control data other than SCM_RIGHTS"));
    if (h.fdCount != request.fds.size())
        return fail(invalid(fmt::format("the header announces {} fd(s), {} arrived", h.fdCount, request.fds.size())));
    if (h.opcode < kFirstOp || h.opcode > kLastOp)
        return fail(invalid(fmt::format("unknown opcode {}", h.opcode)));
    const size_t wantFds = opTakesFd(op) ? 1 : 0;
    if (request.fds.size() != wantFds)
        return fail(
            invalid(fmt::format("{} takes {} fd(s), {} attached", opName(h.opcode), wantFds, request.fds.size())));

    Request req{op, std::span(request.bytes).subspan(sizeof h), wantFds ? request.fds[0].borrow() : BorrowedFd()};
    auto outcome = run(client, req);
    if (!outcome)
        return fail(outcome.error());
    return makeReply(op, sequence, 0, {}, outcome->body, std::move(outcome->fd));
}

namespace {

/// Calls @p send(header, slice) for each fragment of @p reply in order
/// until it returns false; the fd goes with the first.
template <typename Send> void forEachFragment(const Reply& reply, Send send) {
    const size_t room = kMaxFragmentSize - sizeof(MessageHeader);
    size_t offset = 0;
    bool first = true;
    do {
        size_t n = std::min(room, reply.payload.size() - offset);
        MessageHeader h = reply.header;
        h.payloadSize = static_cast<uint32_t>(n);
        h.fdCount = first && reply.fd.valid() ? 1 : 0;
        h.flags = offset + n < reply.payload.size() ? kFlagMore : 0;
        if (!send(h, std::span(reply.payload).subspan(offset, n)))
            return;
        first = false;
        offset += n;
    } while (offset < reply.payload.size());
}

} // namespace

std::vector<std::vector<std::byte>> replyDatagrams(const Reply& reply) {
    std::vector<std::vector<std::byte>> out;
    forEachFragment(reply, [&](const MessageHeader& h, std::span<const std::byte> slice) {
        std::vector<std::byte> dg(sizeof h + slice.size());
        std::memcpy(dg.data(), &h, sizeof h);
        if (!slice.empty())
            std::memcpy(dg.data() + sizeof h, slice.data(), slice.size());
        out.push_back(std::move(dg));
        return true;
    });
    return out;
}

Result<void> sendReply(BorrowedFd socket, const Reply& reply, size_t* sent) {
    Result<void> result;
    size_t count = 0;
    forEachFragment(reply, [&](const MessageHeader& h, std::span<const std::byte> slice) {
        int fd = reply.fd.get();
        result = sendDatagram(socket, std::as_bytes(std::span(&h, 1)), slice,
                              h.fdCount ? std::span<const int>(&fd, 1) : std::span<const int>());
        count += result.has_value();
        return result.has_value();
    });
    if (sent)
        *sent = count;
    return result;
}

} // namespace cenalloc
