// SPDX-License-Identifier: MIT
// The host dma-buf scan of `cenalloc bufinfo --host`: fdinfo and maps parsing, stand-in procfs/sysfs trees
// (processes that vanish or may not be read, malformed and hostile lines), totals, and this host's real /proc.
#include "report/host_dmabufs.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cenalloc/context.h>
#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

namespace cenalloc {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// ------------------------------------------------------------ parsing

// What dma_buf_show_fdinfo() prints after fs/proc/fd.c's own lines.
const std::string kSystemHeapFdInfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t4242\n"
                                      "size:\t1048576\ncount:\t2\nexp_name:\tsystem\nname:\tframe0\n";

TEST(HostDmaBufFdInfo, ParsesTheKernelsFields) {
    auto info = parseDmaBufFdInfo(kSystemHeapFdInfo);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size, 1 * MiB);
    EXPECT_EQ(info->count, 2u);
    EXPECT_EQ(info->exporter, "system");
    EXPECT_EQ(info->name, "frame0");
    EXPECT_EQ(info->inode, 4242u);
}

TEST(HostDmaBufFdInfo, UnnamedAndWithoutInodeLine) {
    // Kernels before fdinfo's "ino:" line, and a buffer never named.
    auto info = parseDmaBufFdInfo("pos:\t0\nflags:\t02\nmnt_id:\t9\nsize:\t8192\ncount:\t1\nexp_name:\tudmabuf\n");
    ASSERT_TRUE(info);
    EXPECT_EQ(info->exporter, "udmabuf");
    EXPECT_EQ(info->name, "");
    EXPECT_FALSE(info->inode);
}

TEST(HostDmaBufFdInfo, AnotherFileIsNotADmaBuf) {
    // A memfd's fdinfo: no exp_name.
    EXPECT_FALSE(parseDmaBufFdInfo("pos:\t0\nflags:\t0100002\nmnt_id:\t16\nino:\t77\nseals:\tF_SEAL_SHRINK\n"));
    EXPECT_FALSE(parseDmaBufFdInfo(""));
    // An exporter but no size cannot be accounted.
    EXPECT_FALSE(parseDmaBufFdInfo("exp_name:\tsystem\n"));
}

TEST(HostDmaBufFdInfo, ANameWithNewlinesCannotReplaceEarlierFields) {
    // DMA_BUF_SET_NAME takes any bytes but NUL, and the name is printed raw
    // and last: whatever it pretends to be comes after the real lines.
    const std::string text = "pos:\t0\nino:\t5\nsize:\t4096\ncount:\t1\nexp_name:\tsystem\n"
                             "name:\tx\nexp_name:\tevil\nsize:\t1\nino:\t6\nname:\ty\n";
    auto info = parseDmaBufFdInfo(text);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->exporter, "system");
    EXPECT_EQ(info->size, 4096u);
    EXPECT_EQ(info->inode, 5u);
    EXPECT_EQ(info->name, "x");
}

TEST(HostDmaBufFdInfo, MalformedLinesAreSkippedAndCounted) {
    size_t malformed = 0;
    auto info = parseDmaBufFdInfo("garbage without colon\nsize:\tlots\nsize:\t4096\ncount:\t-1\nexp_name:\tsystem\n"s +
                                      std::string(1000, 'z'),
                                  &malformed);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size, 4096u);
    EXPECT_FALSE(info->count);
    EXPECT_EQ(malformed, 4u);
}

TEST(HostDmaBufMaps, ParsesALineAsTheKernelPrintsIt) {
    auto m = parseMapsLine("7f1c2a000000-7f1c2a100000 rw-s 00001000 00:0e 4242                       /dmabuf:frame0");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->start, 0x7f1c2a000000u);
    EXPECT_EQ(m->end, 0x7f1c2a100000u);
    EXPECT_EQ(m->offset, 0x1000u);
    EXPECT_EQ(m->major, 0u);
    EXPECT_EQ(m->minor, 0xeu);
    EXPECT_EQ(m->inode, 4242u);
    EXPECT_EQ(m->path, "/dmabuf:frame0");
    std::string name;
    EXPECT_TRUE(isDmaBufMapping(*m, &name));
    EXPECT_EQ(name, "frame0");

    auto anon = parseMapsLine("7ffd1000-7ffd2000 r--p 00000000 00:00 0");
    ASSERT_TRUE(anon);
    EXPECT_EQ(anon->path, "");
    EXPECT_FALSE(isDmaBufMapping(*anon));
    auto named = parseMapsLine("5555-6666 r-xp 00000000 08:01 1234   /usr/bin/with space");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->path, "/usr/bin/with space");
}

TEST(HostDmaBufMaps, OnlyThePseudoFsDeviceIsADmaBuf) {
    // A regular file named "/dmabuf:x" on a disk is not a dma-buf.
    auto onDisk = parseMapsLine("1000-2000 rw-s 00000000 08:01 99 /dmabuf:x");
    ASSERT_TRUE(onDisk);
    EXPECT_FALSE(isDmaBufMapping(*onDisk));
    auto unnamed = parseMapsLine("1000-2000 rw-s 00000000 00:0e 99 /dmabuf:");
    ASSERT_TRUE(unnamed);
    std::string name = "stale";
    EXPECT_TRUE(isDmaBufMapping(*unnamed, &name));
    EXPECT_EQ(name, "");
    auto old = parseMapsLine("1000-2000 rw-s 00000000 00:0a 7 anon_inode:dmabuf");
    ASSERT_TRUE(old);
    EXPECT_TRUE(isDmaBufMapping(*old));
}

TEST(HostDmaBufMaps, TheKernelsNewlineEscapeIsUndone) {
    auto m = parseMapsLine("1000-2000 rw-s 00000000 00:0e 99 /dmabuf:a\\012b");
    ASSERT_TRUE(m);
    std::string name;
    ASSERT_TRUE(isDmaBufMapping(*m, &name));
    EXPECT_EQ(name, "a\nb");
}

TEST(HostDmaBufMaps, MalformedLinesAreRefused) {
    for (const char* line : {"", "garbage", "1000-2000", "1000-2000 rw-s", "1000-2000 rw-s 0 00:0e",
                             "zz00-2000 rw-s 00000000 00:0e 1 /dmabuf:x", "2000-1000 rw-s 00000000 00:0e 1 /dmabuf:x",
                             "1000-2000 rwzs 00000000 00:0e 1 /dmabuf:x", "1000-2000 rw-s 00000000 00-0e 1 /dmabuf:x",
                             "1000-2000 rw-s 00000000 00:0e x1 /dmabuf:x",
                             "1000-2000 rw-s 00000000 00:0e 99999999999999999999999 /dmabuf:x",
                             "1000-ffffffffffffffffffff rw-s 00000000 00:0e 1 /dmabuf:x"}) {
        SCOPED_TRACE(line);
        EXPECT_FALSE(parseMapsLine(line));
    }
}

TEST(HostDmaBufLinks, DmaBufTargets) {
    EXPECT_TRUE(isDmaBufLink("/dmabuf:"));
    EXPECT_TRUE(isDmaBufLink("/dmabuf:frame0"));
    EXPECT_TRUE(isDmaBufLink("anon_inode:dmabuf"));
    EXPECT_FALSE(isDmaBufLink("/memfd:cenalloc (deleted)"));
    EXPECT_FALSE(isDmaBufLink("anon_inode:[eventfd]"));
    EXPECT_FALSE(isDmaBufLink("/dev/dma_heap/system"));
}

// ------------------------------------------------- stand-in /proc and /sys

/// A temporary directory with proc/ and sys/ laid out as the kernel does.
class StandInTree {
public:
    StandInTree() {
        std::string pattern = (fs::temp_directory_path() / "cenalloc-hostbuf-XXXXXX").string();
        root_ = ::mkdtemp(pattern.data());
        // Readable by an unprivileged uid too (the unreadable-entry test drops to one).
        fs::permissions(root_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
        fs::create_directories(proc());
        fs::create_directories(sys());
    }
    ~StandInTree() {
        std::error_code ec;
        for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec))
            if (it->is_directory(ec) && !it->is_symlink(ec))
                fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(root_, ec);
    }
    fs::path proc() const { return root_ / "proc"; }
    fs::path sys() const { return root_ / "sys"; }
    HostDmaBufScanOptions options() const {
        HostDmaBufScanOptions o;
        o.procRoot = proc();
        o.sysRoot = sys();
        return o;
    }

    void addProcess(pid_t pid, const std::string& comm) {
        fs::path p = proc() / std::to_string(pid);
        fs::create_directories(p / "fd");
        fs::create_directories(p / "fdinfo");
        write(p / "comm", comm + "\n");
        write(p / "maps", "");
    }
    /// fd @p fd of @p pid links to @p target and has @p fdinfo.
    void addFd(pid_t pid, int fd, const std::string& target, const std::string& fdinfo) {
        fs::path p = proc() / std::to_string(pid);
        fs::create_symlink(target, p / "fd" / std::to_string(fd));
        write(p / "fdinfo" / std::to_string(fd), fdinfo);
    }
    void setMaps(pid_t pid, const std::string& maps) { write(proc() / std::to_string(pid) / "maps", maps); }
    void addSysfsBuffer(uint64_t inode, const std::string& exporter, uint64_t size) {
        fs::path b = sys() / "kernel/dmabuf/buffers" / std::to_string(inode);
        fs::create_directories(b);
        write(b / "exporter_name", exporter + "\n");
        write(b / "size", std::to_string(size) + "\n");
    }
    static void write(const fs::path& path, const std::string& content) {
        std::ofstream(path, std::ios::binary) << content;
    }

private:
    fs::path root_;
};

std::string fdinfo(uint64_t inode, uint64_t size, const std::string& exporter, const std::string& name = {}) {
    std::string s = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t" + std::to_string(inode) + "\nsize:\t" +
                    std::to_string(size) + "\ncount:\t3\nexp_name:\t" + exporter + "\n";
    if (!name.empty())
        s += "name:\t" + name + "\n";
    return s;
}

std::string mapsLine(uint64_t start, uint64_t length, uint64_t inode, const std::string& name) {
    char line[256];
    std::snprintf(line, sizeof line, "%08llx-%08llx rw-s 00000000 00:0e %llu                          /dmabuf:%s\n",
                  static_cast<unsigned long long>(start), static_cast<unsigned long long>(start + length),
                  static_cast<unsigned long long>(inode), name.c_str());
    return line;
}

const HostDmaBuf* findBuffer(const HostDmaBufScan& scan, uint64_t inode) {
    for (const HostDmaBuf& b : scan.buffers)
        if (b.inode == inode)
            return &b;
    return nullptr;
}

const HostDmaBufHolder* findHolder(const HostDmaBuf& buffer, pid_t pid) {
    for (const HostDmaBufHolder& h : buffer.holders)
        if (h.pid == pid)
            return &h;
    return nullptr;
}

const HostDmaBufProcess* findProcess(const HostDmaBufScan& scan, pid_t pid) {
    for (const HostDmaBufProcess& p : scan.processes)
        if (p.pid == pid)
            return &p;
    return nullptr;
}

/// camera (pid 100) holds A (1 MiB, system) by two fds and maps it; encoder
/// (200) maps A and holds B (64 KiB, udmabuf) by fd; shell (300) holds a
/// memfd and an eventfd, no dma-buf; C (4 MiB, system) is only in sysfs.
void populate(StandInTree& tree) {
    tree.addProcess(100, "camera");
    tree.addFd(100, 3, "/dmabuf:frame0", fdinfo(11, 1 * MiB, "system", "frame0"));
    tree.addFd(100, 7, "/dmabuf:frame0", fdinfo(11, 1 * MiB, "system", "frame0"));
    tree.addFd(100, 8, "/dev/null", "pos:\t0\nflags:\t02\nmnt_id:\t20\nino:\t5\n");
    tree.setMaps(100, "55550000-55551000 r-xp 00000000 08:01 1234    /usr/bin/camera\n" +
                          mapsLine(0x7f0000000000, 1 * MiB, 11, "frame0"));
    tree.addProcess(200, "encoder");
    tree.addFd(200, 4, "/dmabuf:", fdinfo(12, 64 * KiB, "udmabuf"));
    tree.setMaps(200, mapsLine(0x7f1000000000, 512 * KiB, 11, "frame0") +
                          "7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]\n");
    tree.addProcess(300, "shell");
    tree.addFd(300, 3, "/memfd:cenalloc (deleted)", "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t9\n");
    tree.addFd(300, 4, "anon_inode:[eventfd]", "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t10\neventfd-count:\t0\n");
    tree.addSysfsBuffer(11, "system", 1 * MiB);
    tree.addSysfsBuffer(12, "udmabuf", 64 * KiB);
    tree.addSysfsBuffer(13, "system", 4 * MiB);
}

TEST(HostDmaBufScan, AttributesBuffersToTheirHoldersByFdAndMapping) {
    StandInTree tree;
    populate(tree);
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan) << scan.error().toString();
    EXPECT_EQ(scan->processesScanned, 3u);
    EXPECT_TRUE(scan->uninspectable.empty());
    EXPECT_EQ(scan->vanished, 0u);
    EXPECT_EQ(scan->malformedLines, 0u);
    EXPECT_TRUE(scan->sysfsStats);
    ASSERT_EQ(scan->buffers.size(), 3u);

    const HostDmaBuf* a = findBuffer(*scan, 11);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->exporter, "system");
    EXPECT_EQ(a->size, 1 * MiB);
    EXPECT_TRUE(a->sizeExact);
    EXPECT_EQ(a->name, "frame0");
    EXPECT_EQ(a->fileCount, 3u);
    ASSERT_EQ(a->holders.size(), 2u);
    const HostDmaBufHolder* camera = findHolder(*a, 100);
    ASSERT_TRUE(camera);
    EXPECT_EQ(camera->comm, "camera");
    EXPECT_EQ(camera->fds, 2u);
    EXPECT_EQ(camera->mappings, 1u);
    EXPECT_EQ(camera->mappedBytes, 1 * MiB);
    const HostDmaBufHolder* encoder = findHolder(*a, 200);
    ASSERT_TRUE(encoder);
    EXPECT_EQ(encoder->fds, 0u);
    EXPECT_EQ(encoder->mappings, 1u);
    EXPECT_EQ(encoder->mappedBytes, 512 * KiB);

    const HostDmaBuf* b = findBuffer(*scan, 12);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->exporter, "udmabuf");
    EXPECT_EQ(b->name, "");
    ASSERT_EQ(b->holders.size(), 1u);
    EXPECT_EQ(b->holders[0].pid, 200);
    EXPECT_EQ(b->holders[0].fds, 1u);

    const HostDmaBuf* c = findBuffer(*scan, 13);
    ASSERT_TRUE(c) << "a buffer only sysfs knows is still listed";
    EXPECT_TRUE(c->holders.empty());
    EXPECT_EQ(c->size, 4 * MiB);
}

TEST(HostDmaBufScan, PerProcessAndPerExporterTotals) {
    StandInTree tree;
    populate(tree);
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->totalBytes, 1 * MiB + 64 * KiB + 4 * MiB);

    ASSERT_EQ(scan->processes.size(), 2u) << "the shell holds no dma-buf";
    EXPECT_EQ(scan->processes[0].pid, 200) << "most bytes first";
    const HostDmaBufProcess* camera = findProcess(*scan, 100);
    ASSERT_TRUE(camera);
    EXPECT_EQ(camera->buffers, 1u);
    EXPECT_EQ(camera->bytes, 1 * MiB);
    EXPECT_EQ(camera->fdBytes, 1 * MiB);
    EXPECT_EQ(camera->mappedBytes, 1 * MiB);
    EXPECT_EQ(camera->proportionalBytes, 512 * KiB) << "A is shared by two processes";
    const HostDmaBufProcess* encoder = findProcess(*scan, 200);
    ASSERT_TRUE(encoder);
    EXPECT_EQ(encoder->buffers, 2u);
    EXPECT_EQ(encoder->bytes, 1 * MiB + 64 * KiB);
    EXPECT_EQ(encoder->fdBytes, 64 * KiB);
    EXPECT_EQ(encoder->mappedBytes, 512 * KiB);
    EXPECT_EQ(encoder->proportionalBytes, 512 * KiB + 64 * KiB);
    EXPECT_EQ(findProcess(*scan, 300), nullptr);

    ASSERT_EQ(scan->exporters.size(), 2u);
    EXPECT_EQ(scan->exporters[0].exporter, "system");
    EXPECT_EQ(scan->exporters[0].buffers, 2u);
    EXPECT_EQ(scan->exporters[0].bytes, 5 * MiB);
    EXPECT_EQ(scan->exporters[1].exporter, "udmabuf");
    EXPECT_EQ(scan->exporters[1].buffers, 1u);
    EXPECT_EQ(scan->exporters[1].bytes, 64 * KiB);
}

TEST(HostDmaBufScan, AMappedOnlyBufferWithoutSysfsHasALowerBoundSize) {
    StandInTree tree;
    tree.addProcess(100, "viewer");
    tree.setMaps(100, mapsLine(0x10000, 64 * KiB, 21, "tile") + mapsLine(0x40000, 128 * KiB, 21, "tile"));
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_FALSE(scan->sysfsStats);
    ASSERT_EQ(scan->buffers.size(), 1u);
    const HostDmaBuf& b = scan->buffers[0];
    EXPECT_EQ(b.inode, 21u);
    EXPECT_EQ(b.exporter, "") << "only fdinfo and sysfs name the exporter";
    EXPECT_FALSE(b.sizeExact);
    EXPECT_EQ(b.size, 128 * KiB);
    EXPECT_EQ(b.name, "tile") << "the mapping's path carries the name";
    ASSERT_EQ(b.holders.size(), 1u);
    EXPECT_EQ(b.holders[0].mappings, 2u);
    EXPECT_EQ(b.holders[0].mappedBytes, 192 * KiB);
    EXPECT_NE(renderHostDmaBufs(*scan).find(">= 128 KiB"), std::string::npos);

    // With sysfs the size and the exporter are known.
    tree.addSysfsBuffer(21, "system", 256 * KiB);
    scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_TRUE(scan->buffers[0].sizeExact);
    EXPECT_EQ(scan->buffers[0].size, 256 * KiB);
    EXPECT_EQ(scan->buffers[0].exporter, "system");
}

TEST(HostDmaBufScan, AProcessThatVanishesMidScanIsSkippedSilently) {
    StandInTree tree;
    populate(tree);
    HostDmaBufScanOptions options = tree.options();
    // Listed, then gone before its files are read.
    options.beforeProcess = [&](pid_t pid) {
        if (pid == 200)
            fs::remove_all(tree.proc() / "200");
    };
    auto scan = scanHostDmaBufs(options);
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->vanished, 1u);
    EXPECT_EQ(scan->processesScanned, 2u);
    EXPECT_TRUE(scan->uninspectable.empty());
    EXPECT_EQ(findProcess(*scan, 200), nullptr);
    const HostDmaBuf* a = findBuffer(*scan, 11);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->holders.size(), 1u);
    EXPECT_EQ(renderHostDmaBufs(*scan).find("note:"), std::string::npos) << "nothing to say about a process gone";
    EXPECT_FALSE(hostDmaBufsJson(*scan).contains("notes"));
}

TEST(HostDmaBufScan, AProcessWhoseFilesAreMissingIsSkippedSilently) {
    StandInTree tree;
    populate(tree);
    // A pid the listing shows whose files are gone: no comm, no fd, no maps.
    fs::create_directories(tree.proc() / "400");
    // And one whose maps went away after its fds were read.
    tree.addProcess(500, "dying");
    tree.addFd(500, 3, "/dmabuf:late", fdinfo(31, 4096, "system", "late"));
    fs::remove(tree.proc() / "500" / "maps");
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->vanished, 2u);
    EXPECT_TRUE(scan->uninspectable.empty());
    EXPECT_EQ(findProcess(*scan, 500), nullptr) << "a process counts only when all of it was read";
    EXPECT_EQ(findBuffer(*scan, 31), nullptr);
}

TEST(HostDmaBufScan, AnFdClosedMidScanIsSkipped) {
    StandInTree tree;
    tree.addProcess(100, "app");
    tree.addFd(100, 3, "/dmabuf:a", fdinfo(41, 4096, "system", "a"));
    tree.addFd(100, 4, "/dmabuf:b", fdinfo(42, 4096, "system", "b"));
    fs::remove(tree.proc() / "100" / "fdinfo" / "4"); // closed between readlink and fdinfo
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->vanished, 0u);
    ASSERT_EQ(scan->buffers.size(), 1u);
    EXPECT_EQ(scan->buffers[0].inode, 41u);
}

/// Runs @p scan as an unprivileged uid (when root, where chmod denies
/// nothing) and returns the scan's JSON.
nlohmann::json scanUnprivileged(const HostDmaBufScanOptions& options) {
    if (::geteuid() != 0) {
        auto scan = scanHostDmaBufs(options);
        return scan ? hostDmaBufsJson(*scan) : nlohmann::json{{"error", scan.error().toString()}};
    }
    int pipeFds[2];
    if (::pipe2(pipeFds, O_CLOEXEC) != 0)
        return {{"error", "pipe"}};
    UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    pid_t child = ::fork();
    if (child == 0) {
        readEnd.reset();
        constexpr uid_t kNobody = 65534;
        std::string out;
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
            ::setresuid(kNobody, kNobody, kNobody) != 0) {
            out = R"({"error": "cannot drop privileges"})";
        } else {
            auto scan = scanHostDmaBufs(options);
            out = scan ? hostDmaBufsJson(*scan).dump() : nlohmann::json{{"error", scan.error().toString()}}.dump();
        }
        for (size_t done = 0; done < out.size();) {
            ssize_t n = ::write(writeEnd.get(), out.data() + done, out.size() - done);
            if (n <= 0)
                break;
            done += static_cast<size_t>(n);
        }
        ::_exit(0);
    }
    writeEnd.reset();
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(readEnd.get(), buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(child, &status, 0);
    return nlohmann::json::parse(text, nullptr, false);
}

TEST(HostDmaBufScan, AnUnreadableProcessIsCountedAndNoted) {
    StandInTree tree;
    populate(tree);
    // Another user's process: its fd directory may not be read.
    fs::permissions(tree.proc() / "200" / "fd", fs::perms::none);
    nlohmann::json j = scanUnprivileged(tree.options());
    ASSERT_FALSE(j.is_discarded());
    ASSERT_FALSE(j.contains("error")) << j.dump();
    EXPECT_EQ(j["uninspectable_processes"], 1);
    EXPECT_EQ(j["uninspectable_pids"], nlohmann::json::array({200}));
    EXPECT_EQ(j["processes_scanned"], 2);
    ASSERT_TRUE(j.contains("notes"));
    EXPECT_EQ(j["notes"][0], "1 process could not be inspected (run as root to see them)");
    for (const auto& p : j["processes"])
        EXPECT_NE(p["pid"], 200);

    // The same with maps unreadable (fds fine): nothing of it is shown.
    fs::permissions(tree.proc() / "200" / "fd", fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
    fs::permissions(tree.proc() / "200" / "maps", fs::perms::none);
    j = scanUnprivileged(tree.options());
    ASSERT_FALSE(j.contains("error")) << j.dump();
    EXPECT_EQ(j["uninspectable_pids"], nlohmann::json::array({200}));
    for (const auto& p : j["processes"])
        EXPECT_NE(p["pid"], 200);
}

TEST(HostDmaBufScan, TheNoteForRootDoesNotSuggestRoot) {
    HostDmaBufScan scan;
    scan.uninspectable = {7, 8};
    scan.privileged = true;
    EXPECT_NE(renderHostDmaBufs(scan).find("note: 2 processes could not be inspected\n"), std::string::npos);
    scan.privileged = false;
    EXPECT_NE(renderHostDmaBufs(scan).find("note: 2 processes could not be inspected (run as root to see them)\n"),
              std::string::npos);
}

TEST(HostDmaBufScan, MalformedAndOverlongLinesAreSkipped) {
    StandInTree tree;
    tree.addProcess(100, "app");
    tree.setMaps(100, "this is not a maps line\n" + std::string(20000, 'x') + "\n" + mapsLine(0x10000, 4096, 51, "ok") +
                          "1000-2000 rw-s 00000000 00:0e\n" +
                          "1000-2000 rw-s 00000000 00:0e 52 /dmabuf:" + std::string(9000, 'n') + "\n" +
                          mapsLine(0x20000, 4096, 53, "last-without-newline").substr(0, 80));
    tree.addFd(100, 3, "/dmabuf:f", "junk\nsize:\t4096\nexp_name:\tsystem\nino:\t54\n");
    tree.addFd(100, 4, "/dmabuf:g", "junk only\n");
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->malformedLines, 6u) << "four maps lines, two fdinfo lines";
    EXPECT_NE(findBuffer(*scan, 51), nullptr);
    EXPECT_EQ(findBuffer(*scan, 52), nullptr) << "a line over the limit is skipped whole";
    EXPECT_NE(findBuffer(*scan, 53), nullptr) << "a last line without its newline still counts";
    EXPECT_NE(findBuffer(*scan, 54), nullptr);
    EXPECT_EQ(scan->buffers.size(), 3u);
    EXPECT_NE(renderHostDmaBufs(*scan).find("skipped: 6 malformed lines"), std::string::npos);
}

TEST(HostDmaBufScan, SymlinksAndFifosInTheTreeNeitherHangNorRunAway) {
    StandInTree tree;
    // /proc/PID/maps is never a symlink: one to an endless file is refused.
    tree.addProcess(100, "app");
    fs::remove(tree.proc() / "100" / "maps");
    fs::create_symlink("/dev/zero", tree.proc() / "100" / "maps");
    // An fdinfo that is a FIFO nobody writes is read as empty, not waited on.
    tree.addProcess(200, "other");
    ASSERT_EQ(::symlink("/dmabuf:x", (tree.proc() / "200" / "fd" / "3").c_str()), 0);
    ASSERT_EQ(::mkfifo((tree.proc() / "200" / "fdinfo" / "3").c_str(), 0644), 0);
    tree.addFd(200, 4, "/dmabuf:y", fdinfo(71, 4096, "system", "y"));
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    EXPECT_EQ(scan->uninspectable, std::vector<pid_t>{100});
    ASSERT_EQ(scan->buffers.size(), 1u);
    EXPECT_EQ(scan->buffers[0].inode, 71u);
}

TEST(HostDmaBufScan, AMissingProcRootIsAnError) {
    HostDmaBufScanOptions options;
    options.procRoot = "/nonexistent/cenalloc-proc";
    auto scan = scanHostDmaBufs(options);
    ASSERT_FALSE(scan);
    EXPECT_EQ(scan.error().code(), ENOENT);
}

// --------------------------------------------------------------- views

bool hasRawControl(const std::string& text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        auto b = static_cast<unsigned char>(c);
        return (b < 0x20 && b != '\n') || b == 0x7f;
    });
}

TEST(HostDmaBufView, HostileNamesAndCommsAreEscaped) {
    StandInTree tree;
    const std::string clear = "\x1b[2Jowned";
    tree.addProcess(100, "evil\x1b]0;x\x07");
    tree.addFd(100, 3, "/dmabuf:" + clear + "\nline", fdinfo(61, 4096, "system", clear));
    tree.setMaps(100, mapsLine(0x10000, 4096, 62, "\xff\xfe"));
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    const HostDmaBuf* a = findBuffer(*scan, 61);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->name, clear + "\nline") << "the fd's link has the name's exact bytes";

    std::string text = renderHostDmaBufs(*scan);
    EXPECT_FALSE(hasRawControl(text)) << text;
    EXPECT_NE(text.find("\\x1b[2Jowned\\x0aline"), std::string::npos) << text;
    // Every buffer row is one line: the newline in the name did not split it.
    EXPECT_EQ(text.find("\nline"), std::string::npos) << text;

    nlohmann::json j = hostDmaBufsJson(*scan);
    EXPECT_NO_THROW((void)j.dump());
    EXPECT_EQ(j["buffers"][0]["name_hex"], "1b5b324a6f776e65640a6c696e65");
    EXPECT_EQ(j["buffers"][1]["name"], "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_EQ(j["buffers"][1]["name_hex"], "fffe");
    EXPECT_EQ(j["processes"][0]["comm_hex"], "6576696c1b5d303b7807");
}

TEST(HostDmaBufView, JsonListsBuffersHoldersAndTotals) {
    StandInTree tree;
    populate(tree);
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    nlohmann::json j = hostDmaBufsJson(*scan);
    EXPECT_EQ(j["total_buffers"], 3);
    EXPECT_EQ(j["total_bytes"], 1 * MiB + 64 * KiB + 4 * MiB);
    EXPECT_EQ(j["sysfs_stats"], true);
    EXPECT_EQ(j["uninspectable_processes"], 0);
    const nlohmann::json& a = j["buffers"][0];
    EXPECT_EQ(a["inode"], 11);
    EXPECT_EQ(a["exporter"], "system");
    EXPECT_EQ(a["size"], 1 * MiB);
    EXPECT_EQ(a["size_exact"], true);
    EXPECT_EQ(a["name"], "frame0");
    EXPECT_EQ(a["file_count"], 3);
    ASSERT_EQ(a["holders"].size(), 2u);
    EXPECT_EQ(a["holders"][0]["pid"], 100);
    EXPECT_EQ(a["holders"][0]["comm"], "camera");
    EXPECT_EQ(a["holders"][0]["fds"], 2);
    EXPECT_EQ(a["holders"][0]["mappings"], 1);
    EXPECT_EQ(j["buffers"][2]["holders"].size(), 0u);
    EXPECT_EQ(j["processes"][0]["pid"], 200);
    EXPECT_EQ(j["processes"][0]["proportional_bytes"], 512 * KiB + 64 * KiB);
    EXPECT_EQ(j["exporters"][0]["exporter"], "system");
    EXPECT_EQ(j["exporters"][0]["bytes"], 5 * MiB);
}

TEST(HostDmaBufView, TextShowsBuffersHoldersAndTotals) {
    StandInTree tree;
    populate(tree);
    auto scan = scanHostDmaBufs(tree.options());
    ASSERT_TRUE(scan);
    std::string text = renderHostDmaBufs(*scan);
    SCOPED_TRACE(text);
    EXPECT_NE(text.find("host dma-bufs: 3 buffers, 5.1 MiB, held by 2 processes (3 processes inspected; "
                        "/sys/kernel/dmabuf/buffers read)"),
              std::string::npos);
    EXPECT_NE(text.find("100 camera (2 fds, 1 map); 200 encoder (1 map)"), std::string::npos);
    EXPECT_NE(text.find("200 encoder (1 fd)"), std::string::npos);
    EXPECT_NE(text.find("none visible"), std::string::npos);
    EXPECT_NE(text.find("per process:"), std::string::npos);
    EXPECT_NE(text.find("per exporter:"), std::string::npos);
    EXPECT_EQ(text.find("note:"), std::string::npos);
}

// ------------------------------------------------------------ this host

/// A child process that holds @p fd (inherited) and a shared mapping of its
/// first @p length bytes until the returned pipe end is closed.
struct Holder {
    pid_t pid = -1;
    UniqueFd release; // close to let the child exit

    static Holder start(int fd, size_t length) {
        int ready[2], done[2];
        if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(done, O_CLOEXEC) != 0)
            return {};
        pid_t pid = ::fork();
        if (pid == 0) {
            ::close(ready[0]);
            ::close(done[1]);
            void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            char status = p == MAP_FAILED ? 'x' : 'k';
            (void)!::write(ready[1], &status, 1);
            char c;
            (void)!::read(done[0], &c, 1); // returns at EOF: the parent closed its end
            ::_exit(0);
        }
        ::close(ready[1]);
        ::close(done[0]);
        Holder h;
        h.pid = pid;
        h.release.reset(done[1]);
        char status = 0;
        bool mapped = ::read(ready[0], &status, 1) == 1 && status == 'k';
        ::close(ready[0]);
        if (!mapped) {
            h.stop();
            h.pid = -1;
        }
        return h;
    }
    void stop() {
        release.reset();
        if (pid > 0)
            ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    ~Holder() { stop(); }
    Holder() = default;
    Holder(Holder&& other) noexcept : pid(other.pid), release(std::move(other.release)) { other.pid = -1; }
    Holder& operator=(Holder&&) = delete;
};

TEST(HostDmaBufReal, ThisHostsProcIsScannedAndMemfdBuffersAreNotDmaBufs) {
    // cenalloc's own buffers are sealed memfds, not dma-bufs: held by fd and
    // mapped in a child, they must not be listed.
    auto context = Context::create();
    ASSERT_TRUE(context) << context.error().toString();
    auto buffer = (*context)->allocate("system", 64 * KiB);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    Holder holder = Holder::start((*buffer)->fd().get(), 64 * KiB);
    ASSERT_GT(holder.pid, 0);

    auto scan = scanHostDmaBufs();
    ASSERT_TRUE(scan) << scan.error().toString();
    EXPECT_GE(scan->processesScanned, 2u) << "this process and the holder at least";
    EXPECT_EQ(std::count(scan->uninspectable.begin(), scan->uninspectable.end(), ::getpid()), 0);
    EXPECT_EQ(std::count(scan->uninspectable.begin(), scan->uninspectable.end(), holder.pid), 0);
    for (const HostDmaBuf& b : scan->buffers)
        for (const HostDmaBufHolder& h : b.holders) {
            EXPECT_NE(h.pid, holder.pid) << "memfd buffer listed as dma-buf " << b.inode;
            EXPECT_NE(h.pid, ::getpid()) << "memfd buffer listed as dma-buf " << b.inode;
        }
    EXPECT_NO_THROW((void)hostDmaBufsJson(*scan).dump());
    EXPECT_FALSE(renderHostDmaBufs(*scan).empty());
}

/// A real dma-buf of @p size named @p name from the host's system heap or
/// udmabuf, or an invalid fd (and @p why) when the host has neither.
UniqueFd realDmaBuf(uint64_t size, const char* name, std::string& exporter, std::string& why) {
    UniqueFd heap(::open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC));
    UniqueFd buf;
    if (heap.valid()) {
        dma_heap_allocation_data data{};
        data.len = size;
        data.fd_flags = O_RDWR | O_CLOEXEC;
        if (::ioctl(heap.get(), DMA_HEAP_IOCTL_ALLOC, &data) == 0) {
            buf.reset(static_cast<int>(data.fd));
            exporter = "system";
        }
    }
    if (!buf.valid()) {
        UniqueFd dev(::open("/dev/udmabuf", O_RDWR | O_CLOEXEC));
        UniqueFd memfd(::memfd_create("hostbuf-test", MFD_ALLOW_SEALING | MFD_CLOEXEC));
        if (dev.valid() && memfd.valid() && ::ftruncate(memfd.get(), static_cast<off_t>(size)) == 0 &&
            ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
            udmabuf_create create{};
            create.memfd = static_cast<uint32_t>(memfd.get());
            create.flags = UDMABUF_FLAGS_CLOEXEC;
            create.size = size;
            int fd = ::ioctl(dev.get(), UDMABUF_CREATE, &create);
            if (fd >= 0) {
                buf.reset(fd);
                exporter = "udmabuf";
            }
        }
    }
    if (!buf.valid()) {
        why = "this host has neither /dev/dma_heap/system nor a usable /dev/udmabuf: no real dma-buf to hold";
        return buf;
    }
    (void)::ioctl(buf.get(), DMA_BUF_SET_NAME_B, name);
    return buf;
}

TEST(HostDmaBufReal, AChildHoldingARealDmaBufIsNamedAsItsHolder) {
    std::string exporter, why;
    UniqueFd buf = realDmaBuf(256 * KiB, "hostbuf-test", exporter, why);
    if (!buf.valid())
        GTEST_SKIP() << why;
    struct stat st {};
    ASSERT_EQ(::fstat(buf.get(), &st), 0);
    Holder holder = Holder::start(buf.get(), 256 * KiB);
    ASSERT_GT(holder.pid, 0);
    buf.reset(); // the child alone holds it now

    auto scan = scanHostDmaBufs();
    ASSERT_TRUE(scan) << scan.error().toString();
    const HostDmaBuf* b = findBuffer(*scan, st.st_ino);
    ASSERT_TRUE(b) << renderHostDmaBufs(*scan);
    EXPECT_EQ(b->exporter, exporter);
    EXPECT_EQ(b->size, 256 * KiB);
    EXPECT_TRUE(b->sizeExact);
    EXPECT_EQ(b->name, "hostbuf-test");
    ASSERT_EQ(b->holders.size(), 1u);
    EXPECT_EQ(b->holders[0].pid, holder.pid);
    EXPECT_EQ(b->holders[0].fds, 1u);
    EXPECT_EQ(b->holders[0].mappings, 1u);
    EXPECT_EQ(b->holders[0].mappedBytes, 256 * KiB);
    const HostDmaBufProcess* p = findProcess(*scan, holder.pid);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->bytes, 256 * KiB);
}

} // namespace
} // namespace cenalloc
