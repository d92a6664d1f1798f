// SPDX-License-Identifier: MIT
// systemd without libsystemd: the socket it passes (socket activation); sd_notify is public, in <cenalloc/daemon.h>.
#pragma once

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// The listening socket systemd passed (LISTEN_PID/LISTEN_FDS, as
/// sd_listen_fds(3) reads them; the variables are removed), or an invalid
/// fd when the process was not socket-activated. Errors: EINVAL when more
/// than one socket was passed or it is not a listening SOCK_SEQPACKET Unix
/// socket.
Result<UniqueFd> listenFdFromSystemd();

} // namespace cenalloc
