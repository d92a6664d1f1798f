// SPDX-License-Identifier: MIT
// Which session a tool uses: the daemon when one is reachable, else in-process.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <cenalloc/platform_sources.h>
#include <cenalloc/session.h>

namespace cenalloc {

/// What the user asked for on the command line.
struct SessionChoice {
    /// --socket: talk to this daemon, and fail if it does not answer.
    std::string socketPath;
    /// --platform/--dtb/--host: model that machine in-process.
    PlatformSource platform;
};

/// The session a command runs in:
///  - --socket PATH: cenallocd at PATH (errors if it does not answer);
///  - a platform source given: in-process, on that platform;
///  - otherwise cenallocd at the default socket when one answers, else
///    in-process on the built-in platform.
/// @p notes receives what the platform loader noted.
Result<std::unique_ptr<Session>> openSession(const SessionChoice& choice, std::vector<std::string>* notes);

} // namespace cenalloc
