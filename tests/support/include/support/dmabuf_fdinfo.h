// SPDX-License-Identifier: MIT
// What the kernel prints about a dma-buf in /proc/self/fdinfo, for the tests and the guest check.
#pragma once

#include <fstream>
#include <string>

namespace cenalloc::test {

/// The value of the "@p field:" line /proc/self/fdinfo/@p fd shows ("exp_name",
/// "name", ...), or empty when there is none.
inline std::string dmaBufFdinfo(int fd, const std::string& field) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0)
            return line.substr(line.find_first_not_of(" \t", field.size() + 1));
    return {};
}

} // namespace cenalloc::test
