// SPDX-License-Identifier: MIT
// Fd counts, buffer fd facts and mappings for the tests.
#include "support/fds.h"

#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>

namespace cenalloc::test {

size_t openFdCount(pid_t pid) {
    std::string path = pid ? "/proc/" + std::to_string(pid) + "/fd" : std::string("/proc/self/fd");
    DIR* dir = ::opendir(path.c_str());
    if (!dir)
        return 0;
    size_t n = 0;
    while (const dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.')
            ++n;
    ::closedir(dir);
    return n - (pid ? 0 : 1); // not counting opendir's own fd
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
