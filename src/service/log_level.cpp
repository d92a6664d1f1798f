// SPDX-License-Identifier: MIT
// Log level names, both ways.
#include <cenalloc/daemon.h>

#include <cerrno>

#include <fmt/format.h>

namespace cenalloc {

const char* logLevelName(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "?";
}

Result<LogLevel> parseLogLevel(std::string_view text) {
    for (LogLevel level : {LogLevel::Error, LogLevel::Warning, LogLevel::Info, LogLevel::Debug})
        if (text == logLevelName(level))
            return level;
    return Error(EINVAL, fmt::format("log level '{}': expected error, warning, info or debug", text));
}

} // namespace cenalloc
