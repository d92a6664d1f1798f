// SPDX-License-Identifier: MIT
// SubordinateIds: the uid ranges /etc/subuid gives users for their user namespaces, to charge to their owners.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

#include <cenalloc/result.h>

namespace cenalloc {

/// Who owns which uids: the ranges of subuid(5). A user given a range maps
/// it into user namespaces of its own (newuidmap(1)), and SO_PEERCRED shows
/// the daemon a process there by its uid in the daemon's namespace, the
/// subordinate one: without this, one user would have as many per-uid
/// budgets as it has subordinate uids (65536 by default with useradd).
///
/// Ranges owned by uid 0 are left out: root's ranges are its system
/// containers', whose uids are not root and stay themselves.
class SubordinateIds {
public:
    /// A user name's uid; nothing for an unknown name.
    using ResolveName = std::function<std::optional<uint32_t>(std::string_view name)>;
    struct Range {
        uint32_t first = 0;
        uint64_t count = 0;
        uint32_t owner = 0;
    };

    /// The lines of a subuid(5) file, "owner:first:count" with the owner a
    /// name or a uid; blank lines and '#' comments are skipped. A line that
    /// is none of these, names an unknown user or a range beyond the 32-bit
    /// uids is skipped and said in @p problems ("<line>: <why>").
    static SubordinateIds parse(std::string_view text, const ResolveName& resolve,
                                std::vector<std::string>* problems = nullptr);

    /// The owner of @p uid when a range holds it (the first such range in
    /// file order), else nothing.
    std::optional<uint32_t> ownerOf(uint32_t uid) const;
    const std::vector<Range>& ranges() const { return ranges_; }

private:
    std::vector<Range> ranges_; // file order, root's left out
};

/// SubordinateIds read from a file, read again when the file changes
/// (useradd adds a range for each user it makes).
///
/// Thread safety: none; the daemon's accepting thread owns it.
class SubordinateIdsFile {
public:
    /// Names are resolved with getpwnam_r.
    explicit SubordinateIdsFile(std::filesystem::path path);

    /// The owner of @p uid, after reading the file again if it changed since
    /// the last call (its inode, size or modification time). A missing file
    /// holds no ranges.
    std::optional<uint32_t> ownerOf(uint32_t uid);

    /// What the last read found wrong (unreadable file, skipped lines), to
    /// be logged once per read; cleared by the call.
    std::vector<std::string> takeProblems();

private:
    void refresh();

    std::filesystem::path path_;
    SubordinateIds ids_;
    std::optional<struct stat> seen_; // what the last read saw; nothing: missing
    bool read_ = false;
    std::vector<std::string> problems_;
};

} // namespace cenalloc
