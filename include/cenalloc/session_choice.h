// SPDX-License-Identifier: MIT
// Which session a tool uses: the daemon when one answers, else in-process (what every cenalloc command does).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/platform_sources.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>

namespace cenalloc {

/// What a user asked for (the cenalloc CLI's options).
struct SessionChoice {
    /// --socket: talk to the cenallocd listening here, and fail if it does
    /// not answer.
    std::string socketPath;
    /// --platform/--dtb/--host: model that machine in-process.
    PlatformSource platform;
};

/// The session a command runs in:
///  - a socket path given: cenallocd there (its errors if it does not answer);
///  - a platform source given: in-process, on that platform;
///  - otherwise cenallocd at Session::defaultSocketPath() when one answers
///    there, else in-process on the built-in platform (a daemon that
///    answers wrongly is an error, not a reason to fall back).
/// @p notes (when given) receives what the platform loader noted.
/// Errors: those of Session::connect(), loadPlatformSource() and
/// Session::local().
CENALLOC_EXPORT Result<std::unique_ptr<Session>> openSession(const SessionChoice& choice,
                                                             std::vector<std::string>* notes);

} // namespace cenalloc
