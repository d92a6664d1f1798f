// SPDX-License-Identifier: MIT
// Datagrams with fds over SOCK_SEQPACKET Unix sockets (SCM_RIGHTS), shared by the daemon and the client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// One datagram as received.
struct Datagram {
    /// At most the maxSize asked for.
    std::vector<std::byte> bytes;
    /// Its length on the wire (more than bytes.size() when it was cut).
    size_t wireSize = 0;
    /// Every fd that arrived, O_CLOEXEC, owned here so that a rejected
    /// message closes them all.
    std::vector<UniqueFd> fds;
    /// MSG_CTRUNC: the sender attached more than fits; some fds were lost.
    bool controlTruncated = false;
    /// Control data other than SCM_RIGHTS arrived.
    bool foreignControl = false;
};

/// Receive one datagram of at most @p maxSize bytes (longer ones are cut;
/// wireSize tells). Blocks unless the socket is non-blocking.
/// Errors: ECONNRESET when the peer is gone (end of stream), errno of
/// recvmsg (EAGAIN for a timeout or a non-blocking socket).
Result<Datagram> receiveDatagram(BorrowedFd socket, size_t maxSize, int flags = 0);

/// Whether the next datagram queued on @p socket carries fds, without
/// receiving it: they stay in the datagram, none is installed here nor
/// released by this thread. False when none is queued (or on an error).
bool nextDatagramCarriesFds(BorrowedFd socket);

/// For a socket shut down for reading (nothing more can arrive): discard
/// the datagrams queued on it that carry no fds, up to the first that
/// does. True when none is left (its close then releases nothing a peer
/// sent), false when fds are queued or it cannot tell. Bounded: the
/// queue is the peer's send buffer.
bool discardQueuedWithoutFds(BorrowedFd socket);

/// Send one datagram with @p fds attached (SCM_RIGHTS), without SIGPIPE.
/// Errors: errno of sendmsg (EPIPE when the peer is gone, EAGAIN on timeout).
Result<void> sendDatagram(BorrowedFd socket, std::span<const std::byte> bytes, std::span<const int> fds = {});

/// The same, for a datagram made of @p head followed by @p body (one
/// sendmsg gathering both): a header need not be copied in front of its payload.
Result<void> sendDatagram(BorrowedFd socket, std::span<const std::byte> head, std::span<const std::byte> body,
                          std::span<const int> fds);

/// Give @p fd the close-on-exec flag @p fdFlags (O_CLOEXEC or not) asks for:
/// the service hands out every fd with O_CLOEXEC; dropping it is the
/// caller's explicit choice.
Result<UniqueFd> applyFdFlags(UniqueFd fd, uint32_t fdFlags);

} // namespace cenalloc
