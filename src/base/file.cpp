// SPDX-License-Identifier: MIT
// readFileLimited.
#include "base/file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

namespace cenalloc {

Result<std::string> readFileLimited(const std::filesystem::path& path, uint64_t maxSize, std::string_view what) {
    const std::string name = path.string();
    UniqueFd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return Error(errno, fmt::format("cannot open '{}': {}", name, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return Error(errno, fmt::format("cannot stat '{}': {}", name, std::strerror(errno)));
    if (S_ISDIR(st.st_mode))
        return Error(EISDIR, fmt::format("cannot read '{}': {}", name, std::strerror(EISDIR)));
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > maxSize)
        return Error(EFBIG, fmt::format("'{}' is {}, too large for {} (at most {})", name,
                                        formatSize(static_cast<uint64_t>(st.st_size)), what, formatSize(maxSize)));
    std::string text;
    char buffer[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error(errno, fmt::format("cannot read '{}': {}", name, std::strerror(errno)));
        if (n == 0)
            break;
        // Pipes and character devices have no size to check up front.
        if (text.size() + static_cast<uint64_t>(n) > maxSize)
            return Error(EFBIG, fmt::format("'{}' is too large for {} (at most {})", name, what, formatSize(maxSize)));
        text.append(buffer, static_cast<size_t>(n));
    }
    return text;
}

} // namespace cenalloc
