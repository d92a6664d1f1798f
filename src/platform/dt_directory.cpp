// SPDX-License-Identifier: MIT
// Reading a live device tree from sysfs into a flattened blob.
#include "platform/dt_directory.h"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <libfdt.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

#include "base/try.h"
#include "platform/dt_tree.h"

namespace cenalloc {

namespace {

constexpr size_t kMaxProperty = 1 * MiB;
constexpr size_t kMaxTree = 64 * MiB;

struct DirNode {
    std::string name;
    std::vector<std::pair<std::string, std::vector<char>>> properties;
    std::vector<DirNode> children;
};

Error failure(int code, const std::filesystem::path& path, std::string_view what) {
    return Error::fromErrno(fmt::format("{}: {}", path.string(), what), code);
}

Result<std::vector<char>> readProperty(const std::filesystem::path& path, size_t& total) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return failure(errno, path, "cannot open");
    std::vector<char> value;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return failure(errno, path, "cannot read");
        if (n == 0)
            break;
        value.insert(value.end(), buffer, buffer + n);
        total += static_cast<size_t>(n);
        if (value.size() > kMaxProperty || total > kMaxTree)
            return Error(EFBIG, fmt::format("{}: too large for a device tree property", path.string()));
    }
    return value;
}

Result<DirNode> readNode(const std::filesystem::path& dir, std::string name, int depth, size_t& total) {
    if (depth >= kDtMaxDepth)
        return Error(EINVAL, fmt::format("{}: nested deeper than {} levels", dir.string(), kDtMaxDepth));
    DirNode node;
    node.name = std::move(name);
    DIR* d = ::opendir(dir.c_str());
    if (!d)
        return failure(errno, dir, "cannot list");
    std::vector<std::string> entries;
    while (dirent* e = ::readdir(d)) {
        std::string entry = e->d_name;
        if (entry != "." && entry != "..")
            entries.push_back(std::move(entry));
    }
    ::closedir(d);
    std::sort(entries.begin(), entries.end());
    for (const std::string& entry : entries) {
        std::filesystem::path path = dir / entry;
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0)
            return failure(errno, path, "cannot stat");
        if (S_ISDIR(st.st_mode)) {
            node.children.push_back(CENALLOC_TRY(readNode(path, entry, depth + 1, total)));
        } else if (S_ISREG(st.st_mode) && entry != "name") {
            node.properties.emplace_back(entry, CENALLOC_TRY(readProperty(path, total)));
        }
    }
    return node;
}

int writeNode(void* fdt, const DirNode& node) {
    if (int err = fdt_begin_node(fdt, node.name.c_str()); err != 0)
        return err;
    for (const auto& [name, value] : node.properties)
        if (int err = fdt_property(fdt, name.c_str(), value.data(), static_cast<int>(value.size())); err != 0)
            return err;
    for (const DirNode& child : node.children)
        if (int err = writeNode(fdt, child); err != 0)
            return err;
    return fdt_end_node(fdt);
}

} // namespace

Result<std::vector<std::byte>> readDeviceTreeDirectory(const std::filesystem::path& root) {
    size_t total = 0;
    DirNode tree = CENALLOC_TRY(readNode(root, "", 0, total));
    // Names, tags and padding on top of the values; grown if libfdt runs out.
    size_t size = total * 2 + 64 * KiB;
    for (int attempt = 0; attempt < 8; ++attempt, size *= 2) {
        std::vector<uint64_t> buffer((size + 7) / 8);
        void* fdt = buffer.data();
        int err = fdt_create(fdt, static_cast<int>(buffer.size() * 8));
        if (err == 0)
            err = fdt_finish_reservemap(fdt);
        if (err == 0)
            err = writeNode(fdt, tree);
        if (err == 0)
            err = fdt_finish(fdt);
        if (err == -FDT_ERR_NOSPACE)
            continue;
        if (err != 0)
            return Error(EINVAL, fmt::format("{}: cannot write it as a blob: {}", root.string(), fdt_strerror(err)));
        const std::byte* bytes = reinterpret_cast<const std::byte*>(buffer.data());
        return std::vector<std::byte>(bytes, bytes + fdt_totalsize(fdt));
    }
    return Error(EFBIG, fmt::format("{}: too large for a device tree blob", root.string()));
}

} // namespace cenalloc
