// SPDX-License-Identifier: MIT
// Request validation and dispatch to the operations; replies with an errno, a message and a body.
#include "service/dispatch.h"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

#include <fmt/format.h>

#include "base/try.h"
#include "service/operations.h"

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

/// The body of a successful reply, or the error.
struct Outcome {
    std::vector<std::byte> body;
    UniqueFd fd;
};

/// Op @p O for @p client: its request decoded (the zero-extension rule,
/// reserved fields) and validated (O::parse), served, its answer encoded.
template <typename O> Result<Outcome> run(ServiceClient& client, std::span<const std::byte> payload, BorrowedFd fd) {
    typename O::Request request{};
    if constexpr (std::is_same_v<typename O::Request, None>)
        CENALLOC_CHECK(checkEmptyPayload(payload));
    else
        request = CENALLOC_TRY(decodeRequest<typename O::Request>(payload, O::kName));
    auto args = CENALLOC_TRY(O::parse(request));
    auto answer = CENALLOC_TRY(O::serve(client, args, fd));
    Writer w;
    encode(w, answer.body);
    return Outcome{std::move(w.bytes()), std::move(answer.fd)};
}

} // namespace

Reply eventMessage(const MoveEvent& event) {
    Reply reply;
    reply.header = makeHeader(kEventMove, 0, 0, 0);
    reply.header.flags = kFlagEvent;
    Writer w;
    encode(w, event);
    reply.payload = std::move(w.bytes());
    return reply;
}

Result<MoveEvent> decodeEventMessage(const Datagram& dg) {
    MessageHeader h{};
    if (dg.bytes.size() < sizeof h || dg.wireSize != dg.bytes.size() || dg.controlTruncated || dg.foreignControl)
        return Error(EPROTO, "malformed event from cenallocd");
    std::memcpy(&h, dg.bytes.data(), sizeof h);
    if (h.magic != kMagic || h.version != kVersion || h.opcode != kEventMove || h.sequence != 0 || h.error != 0 ||
        h.fdCount != 0 || !dg.fds.empty() || h.payloadSize != dg.bytes.size() - sizeof h || h.flags != kFlagEvent ||
        h.reserved != 0)
        return Error(EPROTO, "malformed event from cenallocd");
    Reader reader(std::span<const std::byte>(dg.bytes).subspan(sizeof h));
    return decode<MoveEvent>(reader);
}

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

    const auto payload = std::span(request.bytes).subspan(sizeof h);
    const BorrowedFd fd = wantFds ? request.fds[0].borrow() : BorrowedFd();
    Result<Outcome> outcome = invalid("unknown opcode"); // unreachable: the opcode was range-checked
    ops::withOp(h.opcode, [&]<typename O>() { outcome = run<O>(client, payload, fd); });
    if (!outcome && outcome.error().code() == Service::kParked && (op == Op::Attach || op == Op::Migrate)) {
        Reply parked;
        parked.parked = true;
        return parked;
    }
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
        h.flags = static_cast<uint16_t>(reply.header.flags | (offset + n < reply.payload.size() ? kFlagMore : 0));
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
