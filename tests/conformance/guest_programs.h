// SPDX-License-Identifier: MIT
// What the programs run in the qemu guests of scripts/kernel-conformance and scripts/board-conformance share:
// running the cenalloc CLI, a child process that holds dma-bufs by fd and by mapping, and reading what
// `cenalloc bufinfo --host --json` says about the processes holding one.
#pragma once

#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cenalloc::guest {

/// A guest check's one optional argument, the cenalloc CLI to run (default
/// /cenalloc), with stdout line-buffered so its lines interleave with the
/// children's; nothing (and the usage printed) for more arguments.
inline std::optional<std::string> cliArgument(int argc, char** argv) {
    if (argc > 2) {
        std::fprintf(stderr, "usage: %s [CENALLOC]\n", argv[0]);
        return std::nullopt;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    return argc == 2 ? argv[1] : "/cenalloc";
}

/// A dma-buf the check made: its fd, inode and size, and what it was named.
struct HeldBuffer {
    int fd = -1;
    ino_t inode = 0;
    uint64_t size = 0;
    std::string name;
};

/// Allocate @p size bytes from the dma-buf heap at @p path (DMA_HEAP_IOCTL_ALLOC, read-write, close-on-exec)
/// into @p out, named @p name (DMA_BUF_SET_NAME_B). Returns 0 or the errno of the open or the ioctl.
inline int allocateFromHeap(const std::string& path, uint64_t size, const char* name, HeldBuffer* out) {
    int heap = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (heap < 0)
        return errno;
    dma_heap_allocation_data data{};
    data.len = size;
    data.fd_flags = O_RDWR | O_CLOEXEC;
    int error = ::ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) == 0 ? 0 : errno;
    ::close(heap);
    if (error != 0)
        return error;
    out->fd = static_cast<int>(data.fd);
    out->size = size;
    if (::ioctl(out->fd, DMA_BUF_SET_NAME_B, name) == 0)
        out->name = name;
    struct stat st {};
    if (::fstat(out->fd, &st) == 0)
        out->inode = st.st_ino;
    return 0;
}

/// A file's whole text; empty when it cannot be read.
inline std::string readText(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

/// In a child: exec @p args (args[0] is the program's path); on failure say
/// why on stderr and exit 127, as a shell does.
[[noreturn]] inline void execOrExit(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const std::string& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
}

/// What @p args (args[0] an absolute path) printed on stdout, and its exit
/// status in @p status (-1 when it could not be waited for). What it printed
/// on stderr goes to @p errors when given (notes with numbers of the run that
/// a compared output leaves out), else to this program's stderr.
inline std::string run(const std::vector<std::string>& args, int* status, std::string* errors = nullptr) {
    *status = -1;
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0)
        return {};
    int err = errors ? ::memfd_create("stderr", MFD_CLOEXEC) : -1;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        if (err >= 0)
            ::dup2(err, STDERR_FILENO);
        execOrExit(args);
    }
    ::close(out[1]);
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<size_t>(n));
    ::close(out[0]);
    int raw = 0;
    if (pid > 0 && ::waitpid(pid, &raw, 0) == pid)
        *status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    if (err >= 0) {
        errors->clear();
        off_t offset = 0;
        for (ssize_t n; (n = ::pread(err, buf, sizeof buf, offset)) > 0; offset += n)
            errors->append(buf, static_cast<size_t>(n));
        ::close(err);
    }
    return text;
}

/// A child named @p comm that maps every buffer shared, says so, and holds
/// the fds and mappings until the fd stored in @p *release is closed.
/// @p label prefixes the line printed when a mapping fails.
inline pid_t startHolder(const std::vector<HeldBuffer>& buffers, const char* comm, const char* label, int* release) {
    int ready[2], done[2];
    if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(done, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(ready[0]);
        ::close(done[1]);
        ::prctl(PR_SET_NAME, comm);
        char ok = 'k';
        for (const HeldBuffer& b : buffers)
            if (::mmap(nullptr, b.size, PROT_READ | PROT_WRITE, MAP_SHARED, b.fd, 0) == MAP_FAILED)
                ok = 'x';
        (void)!::write(ready[1], &ok, 1);
        char c;
        (void)!::read(done[0], &c, 1);
        ::_exit(0);
    }
    ::close(ready[1]);
    ::close(done[0]);
    char ok = 0;
    if (::read(ready[0], &ok, 1) != 1 || ok != 'k')
        std::printf("%s-child-mmap: failed\n", label);
    ::close(ready[0]);
    *release = done[1];
    return pid;
}

/// The buffer of `bufinfo --host --json` @p report with @p inode; null when absent.
inline const nlohmann::json* findBuffer(const nlohmann::json& report, ino_t inode) {
    for (const nlohmann::json& b : report["buffers"])
        if (b["inode"] == inode)
            return &b;
    return nullptr;
}

/// The holders of @p buffer (an entry of `bufinfo --host --json`) in words that are the same on every run:
/// "child(COMM) fds=N maps=N mapped=BYTES", the process @p child called child, this one parent.
inline std::string describeHolders(const nlohmann::json& buffer, pid_t child) {
    std::string holders;
    for (const nlohmann::json& h : buffer["holders"]) {
        std::string who = h["pid"] == child ? "child" : h["pid"] == ::getpid() ? "parent" : "other";
        holders += (holders.empty() ? "" : " ") + who + "(" + h["comm"].get<std::string>() +
                   ") fds=" + std::to_string(h["fds"].get<int>()) +
                   " maps=" + std::to_string(h["mappings"].get<int>()) +
                   " mapped=" + std::to_string(h["mapped_bytes"].get<uint64_t>());
    }
    return holders.empty() ? "none" : holders;
}

} // namespace cenalloc::guest
