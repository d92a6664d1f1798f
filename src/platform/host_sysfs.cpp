// SPDX-License-Identifier: MIT
// Reading what Linux exposes in /sys and /proc: small text files, directory listings, link targets, numbers.
#include "platform/host_sysfs.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

namespace cenalloc::host {

namespace fs = std::filesystem;

namespace {

// sysfs attributes are a line; /proc/iomem is the largest file read here.
constexpr size_t kMaxFile = 4 * MiB;

} // namespace

Result<std::string> readText(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return Error(errno, std::strerror(errno));
    std::string text;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error(errno, std::strerror(errno));
        if (n == 0)
            break;
        text.append(buffer, static_cast<size_t>(n));
        if (text.size() > kMaxFile)
            return Error(EFBIG, "too large");
    }
    return text;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> parseUnsigned(std::string_view s, int base) {
    s = trim(s);
    if (base == 16 && s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s.remove_prefix(2);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return std::nullopt;
    return v;
}

std::vector<std::string> listDirectory(const fs::path& dir, int* error) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        *error = errno;
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name != "." && name != "..")
            out.push_back(std::move(name));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    *error = 0;
    return out;
}

std::optional<std::string> linkText(const fs::path& link) {
    char buffer[4096];
    ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1);
    if (n < 0)
        return std::nullopt;
    return std::string(buffer, static_cast<size_t>(n));
}

std::optional<std::string> linkTarget(const fs::path& link) {
    std::optional<std::string> text = linkText(link);
    if (!text)
        return std::nullopt;
    return fs::path(*text).filename().string();
}

std::optional<std::string> devicePath(const fs::path& sys, const fs::path& entry) {
    std::error_code ec;
    fs::path root = fs::canonical(sys, ec);
    if (ec)
        return std::nullopt;
    fs::path real = fs::canonical(entry, ec);
    if (ec)
        return std::nullopt;
    fs::path relative = real.lexically_relative(root);
    if (relative.empty() || *relative.begin() == "..")
        return real.string();
    return (sys / relative).string();
}

} // namespace cenalloc::host
