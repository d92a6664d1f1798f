// SPDX-License-Identifier: MIT
// Fd counts, buffer fd facts and mappings for the tests.
#include "support/fds.h"

#include <dirent.h>
#include <fcntl.h>
#include <cstdlib>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cenalloc::test {

namespace {

// Whether fd @p name of this process is left out of the count: a ready
// pool's (ReadyMemory) — a memfd of its stock, made "cenalloc" with
// MFD_ALLOW_SEALING and left unsealed until it becomes a buffer (every
// buffer's memfd is sealed before it leaves cenalloc), or /proc/meminfo,
// open for a moment while its thread reads MemAvailable — or one closed
// since the directory was read (readlink fails): another thread's, open
// for a moment.
// Also left out: one that is @p except (a /proc link target), if given.
bool uncounted(const char* name, std::string_view except) {
    char link[64] = {};
    const std::string path = std::string("/proc/self/fd/") + name;
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    const std::string_view target(link, n > 0 ? static_cast<size_t>(n) : 0);
    if (n <= 0 || target == "/proc/meminfo" || (!except.empty() && target == except))
        return true;
    return target == "/memfd:cenalloc (deleted)" && ::fcntl(std::atoi(name), F_GET_SEALS) == 0;
}

size_t countFds(pid_t pid, bool poolStock, std::string_view except = {}) {
    std::string path = pid ? "/proc/" + std::to_string(pid) + "/fd" : std::string("/proc/self/fd");
    DIR* dir = ::opendir(path.c_str());
    if (!dir)
        return 0;
    size_t n = 0;
    while (const dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.' && (pid || poolStock || !uncounted(e->d_name, except)))
            ++n;
    ::closedir(dir);
    return n - (pid ? 0 : 1); // not counting opendir's own fd
}

} // namespace

size_t openFdCount(pid_t pid) {
    return countFds(pid, false);
}

size_t openFdCountExcept(std::string_view target) {
    return countFds(0, false, target);
}

size_t everyOpenFdCount() {
    return countFds(0, true);
}

uint64_t fdSize(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool hasCloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

Mapped::Mapped(int fd, size_t size) : size_(size) {
    data_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (data_ == MAP_FAILED)
        data_ = nullptr;
}

void Mapped::reset() {
    if (data_)
        ::munmap(data_, size_);
    data_ = nullptr;
}

unsigned char patternByte(size_t i) {
    return static_cast<unsigned char>((i * 7 + 13) & 0xff);
}

bool fillPattern(int fd, size_t size) {
    Mapped m(fd, size);
    if (!m.valid())
        return false;
    for (size_t i = 0; i < size; ++i)
        m.bytes()[i] = patternByte(i);
    return true;
}

bool holdsPattern(int fd, size_t size) {
    Mapped m(fd, size);
    if (!m.valid())
        return false;
    for (size_t i = 0; i < size; ++i)
        if (m.bytes()[i] != patternByte(i))
            return false;
    return true;
}

} // namespace cenalloc::test
