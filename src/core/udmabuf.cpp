// SPDX-License-Identifier: MIT
// UDMABUF_CREATE over sealed memfds, with the kernel's preconditions checked first so failures say why.
#include <cenalloc/udmabuf.h>

#include <cerrno>
#include <fcntl.h>
#include <linux/udmabuf.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/buffer.h>

namespace cenalloc {

namespace {

constexpr uint64_t kPage = 4096;

} // namespace

bool udmabufAvailable(std::string_view device) {
    std::string path(device);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    return fd.valid();
}

Result<UniqueFd> exportUdmabuf(BorrowedFd memfd, uint64_t offset, uint64_t size, bool cloexec,
                               std::string_view device) {
    // udmabuf_create() refuses these with a bare EINVAL; say which.
    if (size == 0 || offset % kPage != 0 || size % kPage != 0)
        return Error(EINVAL, fmt::format("udmabuf ranges are whole pages: offset {:#x}, size {:#x}", offset, size));
    int seals = ::fcntl(memfd.get(), F_GET_SEALS);
    if (seals < 0)
        return Error::fromErrno(fmt::format("fd {} is not a memfd", memfd.get()));
    if (!(seals & F_SEAL_SHRINK))
        return Error(EINVAL, "udmabuf needs a memfd sealed against shrinking (F_SEAL_SHRINK)");
    if (seals & F_SEAL_WRITE)
        return Error(EINVAL, "udmabuf refuses a memfd sealed against writing (F_SEAL_WRITE)");
    struct stat st {};
    if (::fstat(memfd.get(), &st) != 0)
        return Error::fromErrno("fstat");
    if (offset > static_cast<uint64_t>(st.st_size) || size > static_cast<uint64_t>(st.st_size) - offset)
        return Error(EINVAL, fmt::format("range {:#x}+{:#x} is outside the memfd's {:#x} bytes", offset, size,
                                         static_cast<uint64_t>(st.st_size)));

    std::string path(device);
    UniqueFd dev(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!dev.valid()) {
        if (errno == ENOENT)
            return Error(ENODEV, fmt::format("this host has no {} (CONFIG_UDMABUF)", path));
        return Error::fromErrno(fmt::format("opening {}", path));
    }
    udmabuf_create create{};
    create.memfd = static_cast<uint32_t>(memfd.get());
    create.flags = cloexec ? UDMABUF_FLAGS_CLOEXEC : 0;
    create.offset = offset;
    create.size = size;
    int fd = ::ioctl(dev.get(), UDMABUF_CREATE, &create);
    if (fd < 0)
        return Error::fromErrno(fmt::format("UDMABUF_CREATE of {:#x}+{:#x}", offset, size));
    return UniqueFd(fd);
}

Result<UniqueFd> exportUdmabuf(const Buffer& buffer, bool cloexec) {
    if (!buffer.fd().valid())
        return Error(EBADF, "the buffer's fd was handed to a client: export the client's fd");
    // A host kernel heap's buffer is a dma-buf already.
    if (buffer.inHostKernel())
        return buffer.dupFd(cloexec ? O_CLOEXEC : 0);
    return exportUdmabuf(buffer.fd(), 0, buffer.size(), cloexec);
}

} // namespace cenalloc
