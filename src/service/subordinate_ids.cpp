// SPDX-License-Identifier: MIT
// SubordinateIds: the uid ranges /etc/subuid gives users for their user namespaces, to charge to their owners.
#include "service/subordinate_ids.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/file.h"

namespace cenalloc {

namespace {

// /etc/subuid has a line per user: a few MiB covers any real system.
constexpr uint64_t kMaxFileSize = 16 * 1024 * 1024;
// (uid_t)-1 is never a real uid; ranges end below it.
constexpr uint64_t kUidLimit = UINT32_MAX;

std::optional<uint64_t> decimal(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

std::optional<uint32_t> passwdUid(std::string_view name) {
    const std::string key(name);
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16 * 1024);
    while (::getpwnam_r(key.c_str(), &entry, buffer.data(), buffer.size(), &found) == ERANGE &&
           buffer.size() < 1024 * 1024)
        buffer.resize(buffer.size() * 2);
    if (!found)
        return std::nullopt;
    return static_cast<uint32_t>(found->pw_uid);
}

bool sameFile(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

} // namespace

SubordinateIds SubordinateIds::parse(std::string_view text, const ResolveName& resolve,
                                     std::vector<std::string>* problems) {
    SubordinateIds ids;
    auto skip = [&](size_t lineNumber, std::string why) {
        if (problems)
            problems->push_back(fmt::format("{}: {}", lineNumber, why));
    };
    size_t lineNumber = 0;
    while (!text.empty()) {
        const size_t eol = text.find('\n');
        const std::string_view line = trimmed(text.substr(0, eol));
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        ++lineNumber;
        if (line.empty() || line.front() == '#')
            continue;
        const size_t colon1 = line.find(':');
        const size_t colon2 = colon1 == std::string_view::npos ? colon1 : line.find(':', colon1 + 1);
        if (colon2 == std::string_view::npos || line.find(':', colon2 + 1) != std::string_view::npos) {
            skip(lineNumber, "not owner:first:count");
            continue;
        }
        const std::string_view owner = line.substr(0, colon1);
        const std::optional<uint64_t> first = decimal(line.substr(colon1 + 1, colon2 - colon1 - 1));
        const std::optional<uint64_t> count = decimal(line.substr(colon2 + 1));
        if (owner.empty() || !first || !count || *count == 0) {
            skip(lineNumber, "not owner:first:count with numbers and a count of at least 1");
            continue;
        }
        if (*first >= kUidLimit || *count > kUidLimit - *first) {
            skip(lineNumber, fmt::format("the range {}+{} goes past the last uid", *first, *count));
            continue;
        }
        // A numeric owner is a uid (shadow-utils accepts either).
        std::optional<uint32_t> uid;
        if (std::optional<uint64_t> n = decimal(owner); n && *n < kUidLimit)
            uid = static_cast<uint32_t>(*n);
        else
            uid = resolve(owner);
        if (!uid) {
            skip(lineNumber, fmt::format("no user '{}'", owner));
            continue;
        }
        if (*uid == 0)
            continue; // root's: its containers' uids stay their own
        ids.ranges_.push_back(Range{static_cast<uint32_t>(*first), *count, *uid});
    }
    return ids;
}

std::optional<uint32_t> SubordinateIds::ownerOf(uint32_t uid) const {
    // A few ranges per user: a scan costs less than the accept it is for.
    for (const Range& r : ranges_)
        if (uid >= r.first && uid - r.first < r.count)
            return r.owner;
    return std::nullopt;
}

SubordinateIdsFile::SubordinateIdsFile(std::filesystem::path path) : path_(std::move(path)) {}

void SubordinateIdsFile::refresh() {
    struct stat now {};
    if (::stat(path_.c_str(), &now) != 0) {
        if (read_ && !seen_)
            return; // still missing (or unreadable: said once)
        if (errno != ENOENT)
            problems_.push_back(fmt::format("{}: {}", path_.string(), std::strerror(errno)));
        ids_ = {};
        seen_.reset();
        read_ = true;
        return;
    }
    if (read_ && seen_ && sameFile(*seen_, now))
        return;
    read_ = true;
    seen_ = now;
    auto text = readFileLimited(path_, kMaxFileSize, "a subordinate uid file");
    if (!text) {
        problems_.push_back(text.error().toString());
        ids_ = {};
        return;
    }
    std::vector<std::string> skipped;
    ids_ = SubordinateIds::parse(*text, passwdUid, &skipped);
    for (std::string& s : skipped)
        problems_.push_back(fmt::format("{}:{}", path_.string(), s));
}

std::optional<uint32_t> SubordinateIdsFile::ownerOf(uint32_t uid) {
    refresh();
    return ids_.ownerOf(uid);
}

std::vector<std::string> SubordinateIdsFile::takeProblems() {
    return std::exchange(problems_, {});
}

} // namespace cenalloc
