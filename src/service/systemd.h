// SPDX-License-Identifier: MIT
// systemd without libsystemd: the socket it passes (socket activation) and the state it is told (sd_notify).
#pragma once

#include <string_view>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// The listening socket systemd passed (LISTEN_PID/LISTEN_FDS, as
/// sd_listen_fds(3) reads them; the variables are removed), or an invalid
/// fd when the process was not socket-activated. Errors: EINVAL when more
/// than one socket was passed or it is not a listening SOCK_SEQPACKET Unix
/// socket.
Result<UniqueFd> listenFdFromSystemd();

/// sd_notify(3) without libsystemd: send @p state ("READY=1",
/// "STOPPING=1") to $NOTIFY_SOCKET (a path, or "@name" for an abstract
/// socket) when it is set; nothing otherwise. Errors: errno of socket/sendto.
Result<void> notifySystemd(std::string_view state);

} // namespace cenalloc
