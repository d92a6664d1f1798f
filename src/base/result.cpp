// SPDX-License-Identifier: MIT
// Error formatting and errno names.
#include <cenalloc/result.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace cenalloc {

std::string errnoName(int code) {
    switch (code) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EFAULT: return "EFAULT";
    case ENODEV: return "ENODEV";
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EBADF: return "EBADF";
    case EIO: return "EIO";
    case ENODATA: return "ENODATA";
    case ENOTTY: return "ENOTTY";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EAGAIN: return "EAGAIN";
    case ESRCH: return "ESRCH";
    case ERANGE: return "ERANGE";
    case EOVERFLOW: return "EOVERFLOW";
    case ENOTSUP: return "ENOTSUP";
    case EPROTO: return "EPROTO";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return fmt::format("errno {}", code);
    }
}

Error Error::fromErrno(std::string_view what, int code) {
    return Error(code, fmt::format("{}: {}", what, std::strerror(code)));
}

std::string Error::toString() const {
    return fmt::format("{} ({})", message_, errnoName(code_));
}

} // namespace cenalloc
