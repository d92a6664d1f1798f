// SPDX-License-Identifier: MIT
// UniqueFd: closing and transfer of owned file descriptors.
#include <cenalloc/unique_fd.h>

#include <unistd.h>

namespace cenalloc {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
    if (this != &other)
        reset(other.release());
    return *this;
}

void UniqueFd::reset(int fd) {
    // Never retry close(): on Linux the descriptor is released even when
    // close() reports EINTR, and a retry could close someone else's fd.
    if (fd_ >= 0 && fd_ != fd)
        ::close(fd_);
    fd_ = fd;
}

} // namespace cenalloc
