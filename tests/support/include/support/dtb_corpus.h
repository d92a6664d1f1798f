// SPDX-License-Identifier: MIT
// Where the device tree tests find Debian's arm64 dtbs (scripts/fetch-dtbs).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace cenalloc::dtbtest {

/// $CENALLOC_DTB_DIR, or build/dtbs in the source tree (scripts/fetch-dtbs's default).
inline std::filesystem::path dtbDirectory() {
    if (const char* dir = std::getenv("CENALLOC_DTB_DIR"); dir && *dir)
        return dir;
    return std::filesystem::path(CENALLOC_SOURCE_DIR) / "build/dtbs";
}

/// Why the real-board tests cannot run, or empty when they can.
inline std::string dtbSkipReason() {
    std::filesystem::path dir = dtbDirectory();
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        return dir.string() + " does not exist: run scripts/fetch-dtbs (Debian's arm64 kernel package, about 60 MB) "
                              "or point CENALLOC_DTB_DIR at a directory of .dtb files";
    return {};
}

/// A board's blob, or empty when it is not in the directory.
inline std::string dtbPath(const std::string& relative) {
    std::filesystem::path p = dtbDirectory() / relative;
    return std::filesystem::exists(p) ? p.string() : std::string();
}

} // namespace cenalloc::dtbtest
