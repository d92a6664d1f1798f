// SPDX-License-Identifier: MIT
// Sockets for the tests: a blocking connection to a daemon's path, and a TCP socket whose last close blocks.
#pragma once

#include <string>

#include <cenalloc/unique_fd.h>

#include "support/wait.h"

namespace cenalloc::test {

/// A blocking SOCK_SEQPACKET connection to the Unix socket at @p path (the
/// protocol's socket type); invalid on failure, with errno set.
UniqueFd connectSeqpacket(const std::string& path);

/// connectSeqpacket() that fails the test when it cannot connect.
UniqueFd connectRaw(const std::string& path);

/// Bind a SOCK_SEQPACKET socket at @p path and listen (@p backlog): what
/// a test hands a daemon as systemd's socket activation does. Invalid
/// (and the test failed) when it cannot.
UniqueFd listenSeqpacket(const std::string& path, int backlog = 64);

/// A loopback TCP connection whose last close blocks: SO_LINGER on and
/// data the peer does not read, so that the close waits until drain()
/// has read it all.
struct LingeringSocket {
    UniqueFd listener, socket, peer;
    /// What /proc/<pid>/fd links the socket to ("socket:[inode]"), in
    /// whichever process holds it and after socket is reset.
    std::string target;

    LingeringSocket();
    /// Read everything, until the other end is closed (its last close has
    /// finished). False when it was not within @p bound.
    bool drain(std::chrono::milliseconds bound = kPatience);
};

} // namespace cenalloc::test
