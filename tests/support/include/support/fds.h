// SPDX-License-Identifier: MIT
// File descriptors in the tests: how many are open, a buffer fd's size and flags, a whole-buffer mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <sys/types.h>

namespace cenalloc::test {

/// Open fds of process @p pid (this one by default, without the one this
/// count itself uses, nor a ready pool's: the memfds of its stock, a bounded
/// number, ReadyPoolOptions::maxBuffers, made on a thread of its own at
/// moments a test cannot see, which become counted buffers when taken; and
/// /proc/meminfo, open for a moment while that thread reads it).
size_t openFdCount(pid_t pid = 0);
/// openFdCount() of this process, without those open on @p target (what
/// /proc/self/fd links them to, e.g. "socket:[1234]"): a count that one
/// file, closed at a moment of its own, does not change.
size_t openFdCountExcept(std::string_view target);
/// Every open fd of this process, a ready pool's stock included.
size_t everyOpenFdCount();

/// st_size of @p fd (0 when fstat fails).
uint64_t fdSize(int fd);

/// Whether @p fd has FD_CLOEXEC.
bool hasCloexec(int fd);

/// The byte a pattern buffer holds at offset @p i (what fillPattern()
/// writes): one that moves or is copied wrong shows.
unsigned char patternByte(size_t i);
/// Write patternByte(i) into the first @p size bytes of buffer @p fd;
/// false when it cannot be mapped.
bool fillPattern(int fd, size_t size);
/// Whether the first @p size bytes of buffer @p fd are patternByte(i).
bool holdsPattern(int fd, size_t size);

/// A shared read-write mapping of a whole buffer fd; unmapped on destruction.
class Mapped {
public:
    Mapped(int fd, size_t size);
    ~Mapped() { reset(); }
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    void reset();
    bool valid() const { return data_ != nullptr; }
    unsigned char* bytes() const { return static_cast<unsigned char*>(data_); }

private:
    void* data_ = nullptr;
    size_t size_ = 0;
};

} // namespace cenalloc::test
