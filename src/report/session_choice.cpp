// SPDX-License-Identifier: MIT
// Choosing between cenallocd and an in-process session.
#include <cenalloc/session_choice.h>

#include <cerrno>

namespace cenalloc {

Result<std::unique_ptr<Session>> openSession(const SessionChoice& choice, std::vector<std::string>* notes) {
    if (!choice.socketPath.empty())
        return Session::connect(choice.socketPath);
    const PlatformSource& p = choice.platform;
    if (!p.given()) {
        auto remote = Session::connect();
        if (remote)
            return remote;
        // No daemon is the normal case on a developer machine: fall back to
        // the embedded default. A daemon that answers wrongly is an error.
        int code = remote.error().code();
        if (code != ENOENT && code != ECONNREFUSED && code != ENOTDIR && code != EACCES)
            return remote.error();
    }
    auto platform = loadPlatformSource(p, notes);
    if (!platform)
        return platform.error();
    return Session::local(*platform);
}

} // namespace cenalloc
