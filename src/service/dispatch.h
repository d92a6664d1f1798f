// SPDX-License-Identifier: MIT
// Request decoding, validation and dispatch: one received datagram in, one reply out.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include <cenalloc/unique_fd.h>

#include "service/operations.h"
#include "service/protocol.h"
#include "service/service.h"
#include "service/socket_io.h"

namespace cenalloc {

/// A reply ready to be sent.
struct Reply {
    wire::MessageHeader header; ///< payloadSize and flags are set per fragment by replyDatagrams()
    /// ReplyPrefix, the message, and on success the op's body.
    std::vector<std::byte> payload;
    /// The buffer fd an Allocate or Create reply carries (invalid otherwise).
    UniqueFd fd;
    /// No reply yet: the op waits for other clients (Service::kParked). The
    /// caller keeps the request and runs it again when the service wakes
    /// the client or at Service::parkedDeadline(); nothing else of the
    /// client is read meanwhile.
    bool parked = false;
};

/// The event message telling a client of @p event (docs/protocol.md,
/// "Events"): kFlagEvent, opcode wire::kEventMove, sequence 0.
Reply eventMessage(const MoveEvent& event);

/// The client's side of eventMessage(): the move event datagram @p dg
/// carries. Errors: EPROTO for a datagram that is not a well-formed event
/// message (header, flags, no fds, a payload of exactly the size it says,
/// cut or with control data), and those of decoding the event.
Result<MoveEvent> decodeEventMessage(const Datagram& dg);

/// Validate @p request (header, payload size, fd count, reserved fields and
/// flags, the op's payload struct) and run it for @p client. Every
/// validation failure is EINVAL with a message saying what was wrong. The
/// service keeps none of the fds that arrived with the request: they stay
/// the caller's, to close (see FdCloser). Never fails otherwise: errors are
/// replies.
Reply handleRequest(ServiceClient& client, const Datagram& request);

/// An error reply for @p op (used by the daemon to refuse a connection).
Reply errorReply(wire::Op op, uint32_t sequence, const Error& error);

/// The datagrams that carry @p reply: one, or fragments of at most
/// wire::kMaxFragmentSize bytes each, all but the last flagged kFlagMore.
/// The fd goes with the first.
std::vector<std::vector<std::byte>> replyDatagrams(const Reply& reply);

/// Send @p reply on @p socket: the datagrams replyDatagrams() makes, each
/// gathered from a header on the stack and its slice of the payload (no
/// copies), the fd attached to the first. Errors: those of sendDatagram;
/// fragments after a failed one are not sent, and @p sent (when given)
/// says how many went before it (EAGAIN on a non-blocking socket: the
/// caller queues the rest, replyDatagrams() from that index).
Result<void> sendReply(BorrowedFd socket, const Reply& reply, size_t* sent = nullptr);

} // namespace cenalloc
