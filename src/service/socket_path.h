// SPDX-License-Identifier: MIT
// The daemon's socket path: binding it, its directory, a stale socket left by a daemon that died.
#pragma once

#include <string>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// A listening SOCK_SEQPACKET Unix socket bound at @p path, mode 0666 (who
/// may do what is decided on SO_PEERCRED). The directory is created (0755,
/// the last component only) when missing, as RuntimeDirectory= would; a
/// socket file a daemon that died left there is removed. Errors:
/// ENAMETOOLONG for an empty or too long path, EADDRINUSE when a daemon
/// listens there, EEXIST when it is not a socket, errno of
/// mkdir/socket/bind/chmod/listen.
Result<UniqueFd> listenOn(const std::string& path);

} // namespace cenalloc
