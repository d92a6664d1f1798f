// SPDX-License-Identifier: MIT
// The daemon's log levels, their names, and where its log lines go.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <cenalloc/result.h>

namespace cenalloc {

enum class LogLevel { Error = 0, Warning = 1, Info = 2, Debug = 3 };
/// "error", "warning", "info", "debug".
const char* logLevelName(LogLevel level);
/// The inverse. Errors: EINVAL naming the accepted words.
Result<LogLevel> parseLogLevel(std::string_view text);
/// Where the server's log lines go (the tool decides: stderr, the journal).
using LogSink = std::function<void(LogLevel level, const std::string& message)>;

} // namespace cenalloc
