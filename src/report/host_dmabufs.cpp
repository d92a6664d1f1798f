// SPDX-License-Identifier: MIT
// The host dma-buf scan: /proc/PID/{fd,fdinfo,maps} of every process and /sys/kernel/dmabuf/buffers.
//
// The approach is Android's dmabuf_dump (system/memory/libmeminfo/
// libdmabufinfo): a buffer is held by fd when one of a process's fds is a
// dma-buf file, and by mapping when one of its VMAs maps one; buffers are
// told apart by inode number. What the kernel prints, and where:
//
// - /proc/PID/fd/N links to "/dmabuf:<name>" ("/dmabuf:" when unnamed):
//   drivers/dma-buf/dma-buf.c dmabuffs_dname() formats "/%s:%s" from the
//   dentry name "dmabuf" (dma_buf_getfile(): alloc_file_pseudo(..., "dmabuf",
//   ...)) and the buffer's name. Kernels before the dma-buf pseudo-fs (5.3)
//   made them anon_inode files: "anon_inode:dmabuf".
// - /proc/PID/fdinfo/N holds "pos:", "flags:", "mnt_id:", "ino:" (fs/proc/fd.c
//   seq_show(); "ino" is the file's i_ino), then the exporter's lines,
//   drivers/dma-buf/dma-buf.c dma_buf_show_fdinfo(): "size:\t%zu",
//   "count:\t%ld" (file references less procfs's own), "exp_name:\t%s" and,
//   only when named, "name:\t%s" — the name raw, any bytes but NUL.
// - dma_buf_getfile() gives every buffer its own inode number (an atomic
//   counter replacing get_next_ino()), so the inode identifies the buffer.
// - Reading another process's fd links, fdinfo or maps needs
//   PTRACE_MODE_READ_FSCREDS (fs/proc/fd.c proc_fdinfo_access_allowed(),
//   fs/proc/task_mmu.c proc_maps_open() -> proc_mem_open()): EACCES for
//   another user's processes unless root. A task that is gone gives ENOENT
//   or ESRCH.
// - /proc/PID/maps lines are "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu "
//   then padding and the path (fs/proc/task_mmu.c show_vma_header_prefix()
//   and show_map_vma(); seq_file_path() escapes only '\n', as "\012"). A
//   dma-buf's path is its d_dname, "/dmabuf:<name>", its dev that of the
//   dma-buf pseudo-fs: fs/libfs.c pseudo_fs_get_tree() -> get_tree_nodev(),
//   an anonymous superblock, major 0.
// - /sys/kernel/dmabuf/buffers/<ino>/{exporter_name,size}, one directory per
//   buffer: drivers/dma-buf/dma-buf-sysfs-stats.c (exporter_name_show(),
//   size_show()), CONFIG_DMABUF_SYSFS_STATS. Deprecated since commit
//   e0a9f1fe206a ("dma-buf: deprecate DMABUF_SYSFS_STATS"; Kconfig "DMA-BUF
//   sysfs statistics (DEPRECATED)") and proposed for removal after 6.18, so
//   it is read where present and never required.
#include "report/host_dmabufs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <memory>
#include <set>

#include <cenalloc/unique_fd.h>

namespace cenalloc {

namespace {

// Read limits: what any of these files holds on a real system is far below
// them, and a hostile or broken tree cannot make a scan hold more.
constexpr size_t kMaxCommBytes = 256;           // TASK_COMM_LEN is 16
constexpr size_t kMaxFdInfoBytes = 64 * 1024;   // a handful of lines, plus any lock lines
constexpr size_t kMaxSysfsBytes = 4096;         // one sysfs page
constexpr size_t kMaxLinkBytes = 4096;          // PATH_MAX; a dma-buf's link is under 64
constexpr size_t kMaxMapsLineBytes = 8192;      // PATH_MAX plus the fixed columns
constexpr uint64_t kMaxMapsBytes = 64ull << 20; // 65530 maps (vm.max_map_count) of long paths
constexpr size_t kReadChunk = 64 * 1024;

constexpr std::string_view kDmaBufPathPrefix = "/dmabuf:";
constexpr std::string_view kAnonDmaBufPath = "anon_inode:dmabuf";

/// How reading one process went.
enum class Outcome { Ok, Vanished, Denied };

Outcome classify(int error) {
    // ENOENT/ESRCH: the task (or its fd) is gone; anything else that stops
    // a read (EACCES, EPERM, EIO, a tree that is not what it should be)
    // leaves the process uninspected.
    return error == ENOENT || error == ESRCH ? Outcome::Vanished : Outcome::Denied;
}

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

/// A directory stream over @p fd (which it takes over).
DirPtr openDirStream(UniqueFd fd) {
    DIR* d = ::fdopendir(fd.get());
    if (!d)
        return nullptr;
    (void)fd.release(); // the stream owns it now
    return DirPtr(d);
}

std::optional<uint64_t> parseDecimal(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n'))
        s.remove_suffix(1);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

/// A /proc entry name that is a pid or an fd number.
std::optional<uint64_t> parseNumberName(const char* name) {
    std::string_view s(name);
    if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    return parseDecimal(s);
}

/// At most @p limit bytes of the file @p name under @p dirFd into @p out.
/// Returns 0 or the errno of open/read; @p truncated when the file had more.
/// Files under /proc/PID and /sys are never symlinks, so none is followed
/// (nor blocked on: O_NONBLOCK), whatever a stand-in or a hostile tree holds.
int readBounded(int dirFd, const char* name, size_t limit, std::string& out, bool* truncated = nullptr) {
    out.clear();
    UniqueFd fd(::openat(dirFd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
    if (!fd.valid())
        return errno;
    out.resize(limit + 1);
    size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int error = errno;
            out.clear();
            return error;
        }
        if (n == 0)
            break;
        got += static_cast<size_t>(n);
    }
    if (truncated)
        *truncated = got > limit;
    out.resize(std::min(got, limit));
    return 0;
}

std::string_view stripNewline(std::string_view s) {
    if (!s.empty() && s.back() == '\n')
        s.remove_suffix(1);
    return s;
}

/// seq_file_path() writes a '\n' in a path as "\012"; every other byte is raw.
std::string unescapeMapsPath(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s.substr(i, 4) == "\\012") {
            out += '\n';
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

/// What one process holds, before it is merged with the others.
struct ProcessRefs {
    pid_t pid = 0;
    std::string comm;
    struct FdRef {
        uint32_t fds = 0;
        DmaBufFdInfo info;
        std::optional<std::string> linkName; // the name in the fd's link, exact bytes
    };
    struct MapRef {
        uint32_t mappings = 0;
        uint64_t bytes = 0;
        uint64_t extent = 0; // largest offset + length: a lower bound of the size
        std::string name;
    };
    std::map<uint64_t, FdRef> fds;
    std::map<uint64_t, MapRef> maps;
};

struct ScanState {
    size_t malformed = 0;
    size_t truncated = 0;
};

Outcome readFds(int pidDir, ProcessRefs& refs, ScanState& state) {
    UniqueFd fdDirFd(::openat(pidDir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!fdDirFd.valid())
        return classify(errno);
    int fdDir = fdDirFd.get();
    DirPtr dir = openDirStream(std::move(fdDirFd));
    if (!dir)
        return classify(errno);
    std::string link(kMaxLinkBytes, '\0');
    std::string fdinfo;
    for (;;) {
        errno = 0;
        dirent* entry = ::readdir(dir.get());
        if (!entry) {
            if (errno != 0)
                return classify(errno);
            break;
        }
        auto fdNumber = parseNumberName(entry->d_name);
        if (!fdNumber)
            continue;
        ssize_t n = ::readlinkat(fdDir, entry->d_name, link.data(), link.size());
        if (n < 0) {
            if (errno == ENOENT)
                continue; // closed since the listing
            return classify(errno);
        }
        std::string_view target(link.data(), static_cast<size_t>(n));
        if (static_cast<size_t>(n) == link.size() || !isDmaBufLink(target))
            continue;
        std::optional<std::string> linkName;
        if (target.starts_with(kDmaBufPathPrefix))
            linkName = std::string(target.substr(kDmaBufPathPrefix.size()));

        std::string infoPath = std::string("fdinfo/") + entry->d_name;
        bool truncated = false;
        if (int error = readBounded(pidDir, infoPath.c_str(), kMaxFdInfoBytes, fdinfo, &truncated); error != 0) {
            if (error == ENOENT)
                continue;
            return classify(error);
        }
        if (truncated)
            ++state.truncated;
        auto info = parseDmaBufFdInfo(fdinfo, &state.malformed);
        if (!info)
            continue; // not a dma-buf after all (a file really named "/dmabuf:...")
        if (!info->inode) {
            // fdinfo without "ino:" (older kernels): the inode of the file
            // the link resolves to.
            struct stat st {};
            if (::fstatat(fdDir, entry->d_name, &st, 0) != 0) {
                if (errno == ENOENT)
                    continue;
                return classify(errno);
            }
            info->inode = st.st_ino;
        }
        ProcessRefs::FdRef& ref = refs.fds[*info->inode];
        ++ref.fds;
        ref.info = std::move(*info);
        if (linkName)
            ref.linkName = std::move(linkName);
    }
    return Outcome::Ok;
}

void addMapping(std::string_view line, ProcessRefs& refs, ScanState& state) {
    auto parsed = parseMapsLine(line);
    if (!parsed) {
        ++state.malformed;
        return;
    }
    std::string name;
    if (!isDmaBufMapping(*parsed, &name))
        return;
    uint64_t length = parsed->end - parsed->start;
    ProcessRefs::MapRef& ref = refs.maps[parsed->inode];
    ++ref.mappings;
    ref.bytes += length;
    ref.extent = std::max(ref.extent, parsed->offset + length);
    ref.name = std::move(name);
}

Outcome readMaps(int pidDir, ProcessRefs& refs, ScanState& state) {
    UniqueFd fd(::openat(pidDir, "maps", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
    if (!fd.valid())
        return classify(errno);
    // Streamed: a process may have tens of thousands of mappings.
    std::string pending;
    std::string chunk(kReadChunk, '\0');
    uint64_t total = 0;
    bool overlong = false; // skipping the rest of a line longer than the limit
    for (;;) {
        ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return classify(errno);
        if (n == 0)
            break;
        total += static_cast<uint64_t>(n);
        std::string_view data(chunk.data(), static_cast<size_t>(n));
        while (!data.empty()) {
            size_t newline = data.find('\n');
            std::string_view piece = data.substr(0, newline);
            if (!overlong) {
                if (pending.size() + piece.size() > kMaxMapsLineBytes) {
                    overlong = true;
                    pending.clear();
                } else {
                    pending.append(piece);
                }
            }
            if (newline == std::string_view::npos)
                break;
            if (overlong)
                ++state.malformed;
            else
                addMapping(pending, refs, state);
            pending.clear();
            overlong = false;
            data.remove_prefix(newline + 1);
        }
        if (total >= kMaxMapsBytes) {
            ++state.truncated;
            return Outcome::Ok;
        }
    }
    if (overlong)
        ++state.malformed;
    else if (!pending.empty())
        addMapping(pending, refs, state);
    return Outcome::Ok;
}

Outcome readProcess(int procDir, const char* pidName, ProcessRefs& refs, ScanState& state) {
    // Every file is opened relative to this directory fd, so all of them
    // are the same process's: a pid reused meanwhile gives ESRCH/ENOENT
    // here, not another process's files.
    UniqueFd pidDir(::openat(procDir, pidName, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!pidDir.valid())
        return classify(errno);
    std::string comm;
    if (int error = readBounded(pidDir.get(), "comm", kMaxCommBytes, comm); error != 0)
        return classify(error);
    refs.comm = std::string(stripNewline(comm));
    if (Outcome o = readFds(pidDir.get(), refs, state); o != Outcome::Ok)
        return o;
    return readMaps(pidDir.get(), refs, state);
}

struct SysfsBuffer {
    std::string exporter;
    uint64_t size = 0;
};

/// <sys>/kernel/dmabuf/buffers, or nullopt when the kernel has none.
std::optional<std::map<uint64_t, SysfsBuffer>> readSysfsBuffers(const std::filesystem::path& sysRoot,
                                                                ScanState& state) {
    std::filesystem::path path = sysRoot / "kernel/dmabuf/buffers";
    UniqueFd dirFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirFd.valid())
        return std::nullopt;
    int buffersDir = dirFd.get();
    DirPtr dir = openDirStream(std::move(dirFd));
    if (!dir)
        return std::nullopt;
    std::map<uint64_t, SysfsBuffer> out;
    std::string text;
    while (dirent* entry = ::readdir(dir.get())) {
        auto inode = parseNumberName(entry->d_name);
        if (!inode)
            continue;
        UniqueFd bufferDir(::openat(buffersDir, entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
        if (!bufferDir.valid())
            continue; // freed since the listing
        SysfsBuffer b;
        if (readBounded(bufferDir.get(), "exporter_name", kMaxSysfsBytes, text) != 0)
            continue;
        b.exporter = std::string(stripNewline(text));
        if (readBounded(bufferDir.get(), "size", kMaxSysfsBytes, text) != 0)
            continue;
        auto size = parseDecimal(text);
        if (!size) {
            ++state.malformed;
            continue;
        }
        b.size = *size;
        out[*inode] = std::move(b);
    }
    return out;
}

/// The buffers, holders and totals from what each process holds.
HostDmaBufScan merge(std::vector<ProcessRefs>& processes, std::optional<std::map<uint64_t, SysfsBuffer>> sysfs) {
    HostDmaBufScan scan;
    std::map<uint64_t, HostDmaBuf> buffers;
    std::set<uint64_t> named; // buffers whose name came from an fd (exact), not a mapping
    if (sysfs) {
        scan.sysfsStats = true;
        for (auto& [inode, b] : *sysfs) {
            HostDmaBuf& buf = buffers[inode];
            buf.inode = inode;
            buf.exporter = std::move(b.exporter);
            buf.size = b.size;
        }
    }
    for (const ProcessRefs& p : processes) {
        for (const auto& [inode, ref] : p.fds) {
            auto [it, inserted] = buffers.try_emplace(inode);
            HostDmaBuf& buf = it->second;
            buf.inode = inode;
            if (buf.exporter.empty())
                buf.exporter = ref.info.exporter;
            if (inserted || !buf.sizeExact) {
                buf.size = ref.info.size;
                buf.sizeExact = true;
            }
            if (!buf.fileCount)
                buf.fileCount = ref.info.count;
            if (!named.contains(inode)) {
                // The link has the name's exact bytes (a newline included);
                // fdinfo's line ends at the first newline.
                buf.name = ref.linkName ? *ref.linkName : ref.info.name;
                named.insert(inode);
            }
        }
        for (const auto& [inode, ref] : p.maps) {
            auto [it, inserted] = buffers.try_emplace(inode);
            HostDmaBuf& buf = it->second;
            buf.inode = inode;
            if (inserted) {
                buf.sizeExact = false;
                buf.size = ref.extent;
            } else if (!buf.sizeExact) {
                buf.size = std::max(buf.size, ref.extent);
            }
            if (!named.contains(inode) && buf.name.empty())
                buf.name = ref.name;
        }
    }
    for (const ProcessRefs& p : processes) {
        std::set<uint64_t> held;
        for (const auto& [inode, ref] : p.fds)
            held.insert(inode);
        for (const auto& [inode, ref] : p.maps)
            held.insert(inode);
        for (uint64_t inode : held) {
            HostDmaBufHolder h;
            h.pid = p.pid;
            h.comm = p.comm;
            if (auto f = p.fds.find(inode); f != p.fds.end())
                h.fds = f->second.fds;
            if (auto m = p.maps.find(inode); m != p.maps.end()) {
                h.mappings = m->second.mappings;
                h.mappedBytes = m->second.bytes;
            }
            buffers[inode].holders.push_back(std::move(h));
        }
    }
    std::map<pid_t, HostDmaBufProcess> perProcess;
    std::map<std::string, HostDmaBufExporter> perExporter;
    for (auto& [inode, buf] : buffers) {
        scan.totalBytes += buf.size;
        HostDmaBufExporter& e = perExporter[buf.exporter];
        e.exporter = buf.exporter;
        ++e.buffers;
        e.bytes += buf.size;
        for (const HostDmaBufHolder& h : buf.holders) {
            HostDmaBufProcess& p = perProcess[h.pid];
            p.pid = h.pid;
            p.comm = h.comm;
            ++p.buffers;
            p.bytes += buf.size;
            if (h.fds > 0)
                p.fdBytes += buf.size;
            p.mappedBytes += h.mappedBytes;
            p.proportionalBytes += buf.size / buf.holders.size();
        }
        scan.buffers.push_back(std::move(buf));
    }
    for (auto& [pid, p] : perProcess)
        scan.processes.push_back(std::move(p));
    std::stable_sort(scan.processes.begin(), scan.processes.end(),
                     [](const HostDmaBufProcess& a, const HostDmaBufProcess& b) { return a.bytes > b.bytes; });
    for (auto& [name, e] : perExporter)
        scan.exporters.push_back(std::move(e));
    std::stable_sort(scan.exporters.begin(), scan.exporters.end(),
                     [](const HostDmaBufExporter& a, const HostDmaBufExporter& b) { return a.bytes > b.bytes; });
    return scan;
}

} // namespace

bool isDmaBufLink(std::string_view target) {
    return target.starts_with(kDmaBufPathPrefix) || target == kAnonDmaBufPath;
}

std::optional<DmaBufFdInfo> parseDmaBufFdInfo(std::string_view text, size_t* malformed) {
    DmaBufFdInfo info;
    bool haveSize = false, haveExporter = false, haveName = false;
    auto bad = [&] {
        if (malformed)
            ++*malformed;
    };
    while (!text.empty()) {
        size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            bad();
            continue;
        }
        std::string_view key = line.substr(0, colon);
        std::string_view value = line.substr(colon + 1);
        // The first of each key counts: the kernel prints each once, and a
        // name (printed last, any bytes) with a newline in it must not be
        // able to stand in for the lines before it.
        if (key == "size" && !haveSize) {
            auto v = parseDecimal(value);
            if (!v) {
                bad();
                continue;
            }
            info.size = *v;
            haveSize = true;
        } else if (key == "count" && !info.count) {
            auto v = parseDecimal(value);
            if (!v) {
                bad();
                continue;
            }
            info.count = *v;
        } else if (key == "ino" && !info.inode) {
            auto v = parseDecimal(value);
            if (!v) {
                bad();
                continue;
            }
            info.inode = *v;
        } else if (key == "exp_name" && !haveExporter) {
            if (!value.empty() && value.front() == '\t')
                value.remove_prefix(1);
            info.exporter = std::string(value);
            haveExporter = true;
        } else if (key == "name" && haveExporter && !haveName) {
            if (!value.empty() && value.front() == '\t')
                value.remove_prefix(1);
            info.name = std::string(value);
            haveName = true;
        }
    }
    if (!haveExporter || !haveSize)
        return std::nullopt;
    return info;
}

std::optional<MapsLine> parseMapsLine(std::string_view line) {
    MapsLine m;
    size_t pos = 0;
    auto number = [&](uint64_t& out, int base, char stop) {
        size_t end = line.find(stop, pos);
        if (end == std::string_view::npos && stop != '\0')
            return false;
        if (end == std::string_view::npos)
            end = line.size();
        if (end == pos)
            return false;
        auto [p, ec] = std::from_chars(line.data() + pos, line.data() + end, out, base);
        if (ec != std::errc() || p != line.data() + end)
            return false;
        pos = end + 1;
        return true;
    };
    uint64_t major = 0, minor = 0;
    if (!number(m.start, 16, '-') || !number(m.end, 16, ' ') || m.end < m.start)
        return std::nullopt;
    // Permissions: r/-, w/-, x/-, s/p.
    if (line.size() < pos + 5 || line[pos + 4] != ' ')
        return std::nullopt;
    std::string_view perms = line.substr(pos, 4);
    if ((perms[0] != 'r' && perms[0] != '-') || (perms[1] != 'w' && perms[1] != '-') ||
        (perms[2] != 'x' && perms[2] != '-') || (perms[3] != 's' && perms[3] != 'p'))
        return std::nullopt;
    pos += 5;
    if (!number(m.offset, 16, ' ') || !number(major, 16, ':') || !number(minor, 16, ' '))
        return std::nullopt;
    if (major > UINT32_MAX || minor > UINT32_MAX)
        return std::nullopt;
    m.major = static_cast<uint32_t>(major);
    m.minor = static_cast<uint32_t>(minor);
    // The inode ends at a space (padding, then the path) or the line's end.
    size_t end = line.find(' ', pos);
    std::string_view inodeText = line.substr(pos, end == std::string_view::npos ? line.size() - pos : end - pos);
    auto inode = parseDecimal(inodeText);
    if (!inode || inodeText.empty())
        return std::nullopt;
    m.inode = *inode;
    if (end != std::string_view::npos) {
        std::string_view rest = line.substr(end);
        size_t first = rest.find_first_not_of(' ');
        m.path = first == std::string_view::npos ? std::string_view() : rest.substr(first);
    }
    return m;
}

bool isDmaBufMapping(const MapsLine& line, std::string* name) {
    // A regular file someone named "/dmabuf:x" lives on a filesystem with a
    // device; the dma-buf pseudo-fs has an anonymous one (major 0).
    if (line.major != 0 || line.inode == 0)
        return false;
    if (line.path.starts_with(kDmaBufPathPrefix)) {
        if (name)
            *name = unescapeMapsPath(line.path.substr(kDmaBufPathPrefix.size()));
        return true;
    }
    if (line.path == kAnonDmaBufPath) {
        if (name)
            name->clear();
        return true;
    }
    return false;
}

Result<HostDmaBufScan> scanHostDmaBufs(const HostDmaBufScanOptions& options) {
    UniqueFd procFd(::open(options.procRoot.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!procFd.valid())
        return Error::fromErrno(options.procRoot.string());
    int procDir = procFd.get();
    DirPtr dir = openDirStream(std::move(procFd));
    if (!dir)
        return Error::fromErrno(options.procRoot.string());
    std::vector<std::string> pids;
    for (;;) {
        errno = 0;
        dirent* entry = ::readdir(dir.get());
        if (!entry) {
            if (errno != 0)
                return Error::fromErrno("reading " + options.procRoot.string());
            break;
        }
        if (parseNumberName(entry->d_name))
            pids.emplace_back(entry->d_name);
    }
    std::sort(pids.begin(), pids.end(), [](const std::string& a, const std::string& b) {
        return a.size() != b.size() ? a.size() < b.size() : a < b;
    });

    ScanState state;
    std::vector<ProcessRefs> processes;
    size_t scanned = 0, vanished = 0;
    std::vector<pid_t> uninspectable;
    for (const std::string& pidName : pids) {
        auto pid = static_cast<pid_t>(*parseNumberName(pidName.c_str()));
        if (options.beforeProcess)
            options.beforeProcess(pid);
        ProcessRefs refs;
        refs.pid = pid;
        // A process's lines count only when all of it was read.
        ScanState mine;
        switch (readProcess(procDir, pidName.c_str(), refs, mine)) {
        case Outcome::Ok:
            ++scanned;
            state.malformed += mine.malformed;
            state.truncated += mine.truncated;
            if (!refs.fds.empty() || !refs.maps.empty())
                processes.push_back(std::move(refs));
            break;
        case Outcome::Vanished: ++vanished; break;
        case Outcome::Denied: uninspectable.push_back(pid); break;
        }
    }
    auto sysfs = readSysfsBuffers(options.sysRoot, state);
    HostDmaBufScan scan = merge(processes, std::move(sysfs));
    scan.processesScanned = scanned;
    scan.vanished = vanished;
    scan.uninspectable = std::move(uninspectable);
    scan.malformedLines = state.malformed;
    scan.truncatedFiles = state.truncated;
    scan.privileged = ::geteuid() == 0;
    return scan;
}

} // namespace cenalloc
