// SPDX-License-Identifier: MIT
// InodeWatcher: inotify on /proc/self/fd/N, IN_DELETE_SELF/IN_IGNORED, overflow recovery through fdinfo.
#include "service/tracker.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <string_view>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/try.h"

namespace cenalloc {

namespace {

// statx without a round trip to the filesystem's server: a client may
// send a file whose filesystem it serves itself (FUSE).
bool statxLocal(BorrowedFd fd, unsigned mask, struct statx& st) {
    return fd.get() >= 0 && ::statx(fd.get(), "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, mask, &st) == 0;
}

// A host kernel heap's buffer is a dma-buf, whose inode has no file type
// and lives in the dma-buf filesystem. Every file a FUSE server can make
// has a type, so only pseudo-filesystems, whose statfs answers at once,
// are asked for theirs.
bool isDmaBuf(BorrowedFd fd, const struct statx& st) {
    if ((st.stx_mode & S_IFMT) != 0)
        return false;
    struct statfs fs {};
    return ::fstatfs(fd.get(), &fs) == 0 && fs.f_type == DMA_BUF_MAGIC;
}

} // namespace

Result<InodeKey> inodeOf(BorrowedFd fd) {
    struct statx st {};
    if (!statxLocal(fd, STATX_TYPE | STATX_INO, st))
        return Error(EBADF, fmt::format("fd {} is not open", fd.get()));
    // A memfd is a regular file.
    if (!S_ISREG(st.stx_mode) && !isDmaBuf(fd, st))
        return Error(EBADF, fmt::format("fd {} is not a cenalloc buffer (neither a memfd nor a dma-buf)", fd.get()));
    return InodeKey{static_cast<uint64_t>(makedev(st.stx_dev_major, st.stx_dev_minor)),
                    static_cast<uint64_t>(st.stx_ino)};
}

bool closesWithoutBlocking(BorrowedFd fd) {
    // Seals exist only on shmem (memfd) and hugetlbfs files; asking is a
    // lookup in the file, not a call into a filesystem.
    if (::fcntl(fd.get(), F_GET_SEALS) >= 0)
        return true;
    struct statx st {};
    return statxLocal(fd, STATX_TYPE, st) && isDmaBuf(fd, st);
}

InodeKey inodeKeyOf(const struct ::stat& st) {
    return InodeKey{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

Result<InodeWatcher> InodeWatcher::create() {
    UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!fd.valid())
        return Error(errno, fmt::format("inotify_init1: {}", std::strerror(errno)));
    return InodeWatcher(std::move(fd));
}

Result<int> InodeWatcher::watch(BorrowedFd fd, BufferFile kind) const {
    // The magic link resolves to the buffer's own dentry, which has no path
    // to open by name; watching it takes no reference to the file. Built on
    // the stack: this runs for every buffer the service hands out.
    constexpr std::string_view kPrefix = "/proc/self/fd/";
    char path[kPrefix.size() + 16];
    std::memcpy(path, kPrefix.data(), kPrefix.size());
    auto [end, ec] = std::to_chars(path + kPrefix.size(), path + sizeof path - 1, fd.get());
    if (ec != std::errc())
        return Error(EBADF, fmt::format("fd {} is not open", fd.get()));
    *end = '\0';
    // A memfd's inode is unlinked: it reports IN_DELETE_SELF as its last
    // reference goes. A dma-buf's inode never is, and the watch pins it, so
    // its death is the close of its one struct file (every fd, every process
    // and every mapping share it): IN_CLOSE, once.
    const uint32_t mask = kind == BufferFile::Memfd ? IN_DELETE_SELF : IN_CLOSE | IN_ONESHOT;
    int wd = ::inotify_add_watch(fd_.get(), path, mask);
    if (wd < 0)
        return Error(errno, fmt::format("watching buffer inode: inotify_add_watch: {}{}", std::strerror(errno),
                                        errno == ENOSPC ? " (fs.inotify.max_user_watches reached)" : ""));
    return wd;
}

Result<InodeWatcher> InodeWatcher::share() const {
    UniqueFd fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid())
        return Error(errno, fmt::format("dup of the inotify fd: {}", std::strerror(errno)));
    return InodeWatcher(std::move(fd));
}

Result<std::vector<int>> InodeWatcher::readGone(bool& overflowed) {
    overflowed = false;
    std::vector<int> gone;
    alignas(struct inotify_event) char buffer[16 * 1024];
    for (;;) {
        ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0)
            return Error(errno, fmt::format("reading inotify events: {}", std::strerror(errno)));
        if (n == 0)
            break;
        for (char* p = buffer; p < buffer + n;) {
            inotify_event event;
            std::memcpy(&event, p, sizeof event);
            if (event.mask & IN_Q_OVERFLOW)
                overflowed = true;
            // IN_DELETE_SELF (IN_CLOSE for a dma-buf) comes first, then
            // IN_IGNORED as the watch goes; either means gone, and the caller
            // forgets a wd once.
            else if (event.mask & (IN_DELETE_SELF | IN_CLOSE | IN_IGNORED))
                gone.push_back(event.wd);
            p += sizeof(inotify_event) + event.len;
        }
    }
    return gone;
}

bool InodeWatcher::kernelReportsDmaBufCloses(UniqueFd probe) {
    auto watcher = create();
    if (!watcher)
        return false;
    auto wd = watcher->watch(probe.borrow(), BufferFile::DmaBuf);
    if (!wd)
        return false;
    probe.reset();
    bool overflowed = false;
    auto gone = watcher->readGone(overflowed);
    return gone && std::find(gone->begin(), gone->end(), *wd) != gone->end();
}

Result<std::set<int>> InodeWatcher::liveWatches() const {
    std::string path = fmt::format("/proc/self/fdinfo/{}", fd_.get());
    UniqueFd info(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!info.valid())
        return Error(errno, fmt::format("opening {}: {}", path, std::strerror(errno)));
    std::string text;
    char chunk[65536];
    for (;;) {
        ssize_t n = ::read(info.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error(errno, fmt::format("reading {}: {}", path, std::strerror(errno)));
        if (n == 0)
            break;
        text.append(chunk, static_cast<size_t>(n));
    }
    // One line per watch: "inotify wd:1a ino:... sdev:... mask:..." (wd in hex).
    std::set<int> live;
    constexpr std::string_view kPrefix = "inotify wd:";
    for (size_t at = text.find(kPrefix); at != std::string::npos; at = text.find(kPrefix, at + 1)) {
        const char* begin = text.data() + at + kPrefix.size();
        const char* end = text.data() + text.size();
        int wd = 0;
        auto [ptr, ec] = std::from_chars(begin, end, wd, 16);
        if (ec == std::errc())
            live.insert(wd);
    }
    return live;
}

Result<std::shared_ptr<PreparedWatches>> PreparedWatches::create(const InodeWatcher& watcher) {
    InodeWatcher shared = CENALLOC_TRY(watcher.share());
    return std::shared_ptr<PreparedWatches>(new PreparedWatches(std::move(shared)));
}

Result<void> PreparedWatches::prepare(BorrowedFd fd) {
    const InodeKey key = CENALLOC_TRY(inodeOf(fd));
    const int wd = CENALLOC_TRY(watcher_.watch(fd, BufferFile::Memfd));
    std::lock_guard lock(mutex_);
    byKey_[key] = wd;
    byWatch_[wd] = key;
    return {};
}

void PreparedWatches::discard(BorrowedFd fd) {
    auto key = inodeOf(fd);
    if (!key)
        return;
    std::lock_guard lock(mutex_);
    if (auto it = byKey_.find(*key); it != byKey_.end()) {
        byWatch_.erase(it->second);
        byKey_.erase(it);
    }
}

std::optional<int> PreparedWatches::claim(const InodeKey& key) {
    std::lock_guard lock(mutex_);
    auto it = byKey_.find(key);
    if (it == byKey_.end())
        return std::nullopt;
    const int wd = it->second;
    byWatch_.erase(wd);
    byKey_.erase(it);
    return wd;
}

void PreparedWatches::forget(int wd) {
    std::lock_guard lock(mutex_);
    if (auto it = byWatch_.find(wd); it != byWatch_.end()) {
        byKey_.erase(it->second);
        byWatch_.erase(it);
    }
}

void PreparedWatches::forgetAllBut(const std::set<int>& live) {
    std::lock_guard lock(mutex_);
    for (auto it = byWatch_.begin(); it != byWatch_.end();) {
        if (live.contains(it->first)) {
            ++it;
            continue;
        }
        byKey_.erase(it->second);
        it = byWatch_.erase(it);
    }
}

size_t PreparedWatches::size() const {
    std::lock_guard lock(mutex_);
    return byKey_.size();
}

} // namespace cenalloc
