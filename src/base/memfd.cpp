// SPDX-License-Identifier: MIT
// Sealed memfd creation.
#include <cenalloc/memfd.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include "base/memfd_internal.h"
#include "base/try.h"

namespace cenalloc {

namespace {
constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;
}

Result<UniqueFd> createSealedMemfd(const char* name, uint64_t size) {
    return createSealedMemfd(name, size, 0);
}

Result<UniqueFd> openSealableMemfd(const char* name) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid())
        return Error(errno, fmt::format("memfd_create: {}", std::strerror(errno)));
    return fd;
}

Result<void> sizeAndSealMemfd(BorrowedFd fd, uint64_t size, int extraSeals) {
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        int e = errno;
        // ftruncate reports a size beyond RLIMIT_FSIZE or tmpfs limits as
        // EFBIG/EINVAL; to a buffer user that is simply memory exhaustion.
        return Error(e == EFBIG || e == EINVAL ? ENOMEM : e,
                     fmt::format("ftruncate to {} bytes: {}", size, std::strerror(e)));
    }
    return sealMemfd(fd, extraSeals);
}

Result<void> sealMemfd(BorrowedFd fd, int extraSeals) {
    // Seal before the fd leaves cenalloc: from here on nobody can resize
    // the buffer under a peer's mapping (which would SIGBUS the peer), and
    // F_SEAL_SEAL stops anyone from lifting the seals.
    if (::fcntl(fd.get(), F_ADD_SEALS, kSizeSeals | extraSeals | F_SEAL_SEAL) != 0)
        return Error(errno, fmt::format("sealing memfd: {}", std::strerror(errno)));
    return {};
}

Result<UniqueFd> createSealedMemfd(const char* name, uint64_t size, int extraSeals) {
    if (size == 0)
        return Error(EINVAL, "a memfd of 0 bytes cannot back a buffer");
    if (size > static_cast<uint64_t>(INT64_MAX))
        return Error(EINVAL, fmt::format("size {} does not fit in off_t", size));
    UniqueFd fd = CENALLOC_TRY(openSealableMemfd(name));
    CENALLOC_CHECK(sizeAndSealMemfd(fd.borrow(), size, extraSeals));
    return fd;
}

bool isSizeSealed(BorrowedFd fd) {
    int seals = ::fcntl(fd.get(), F_GET_SEALS);
    return seals >= 0 && (seals & kSizeSeals) == kSizeSeals;
}

} // namespace cenalloc
