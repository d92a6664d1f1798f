// SPDX-License-Identifier: MIT
// Size parsing and formatting.
#include <cenalloc/units.h>

#include <cctype>
#include <cerrno>

#include <fmt/format.h>

namespace cenalloc {

Result<uint64_t> parseSize(std::string_view text) {
    std::string_view s = text;
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    if (s.empty())
        return Error(EINVAL, "empty size");

    unsigned base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    uint64_t value = 0;
    size_t i = 0;
    for (; i < s.size(); ++i) {
        char c = s[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c)))
            digit = static_cast<unsigned>(std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
        else if (c == '_' && i > 0)
            continue; // 0x1_0000_0000 reads better than 0x100000000
        else
            break;
        if (value > (UINT64_MAX - digit) / base)
            return Error(ERANGE, fmt::format("size '{}' does not fit in 64 bits", text));
        value = value * base + digit;
    }
    if (i == 0)
        return Error(EINVAL, fmt::format("'{}' is not a size (expected e.g. 4096, 0x1000, 64K, 256M, 4G)", text));

    std::string_view rest = s.substr(i);
    while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front())))
        rest.remove_prefix(1); // "64 K" reads like "64K"
    std::string suffix;
    for (char c : rest) {
        if (std::isspace(static_cast<unsigned char>(c)))
            return Error(EINVAL, fmt::format("'{}' is not a size: space inside the suffix", text));
        suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    unsigned shift = 0;
    if (suffix.empty() || suffix == "B")
        shift = 0;
    else if (base == 16)
        return Error(EINVAL, fmt::format("'{}' is not a size: hex values take no suffix", text));
    else if (suffix == "K" || suffix == "KB" || suffix == "KIB")
        shift = 10;
    else if (suffix == "M" || suffix == "MB" || suffix == "MIB")
        shift = 20;
    else if (suffix == "G" || suffix == "GB" || suffix == "GIB")
        shift = 30;
    else if (suffix == "T" || suffix == "TB" || suffix == "TIB")
        shift = 40;
    else
        return Error(EINVAL, fmt::format("'{}' is not a size: unknown suffix '{}'", text, suffix));
    if (shift && value > (UINT64_MAX >> shift))
        return Error(ERANGE, fmt::format("size '{}' does not fit in 64 bits", text));
    return value << shift;
}

std::string formatSize(uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned unit = 0;
    uint64_t whole = bytes;
    while (whole >= 1024 && unit + 1 < std::size(kUnits)) {
        whole /= 1024;
        ++unit;
    }
    if (unit == 0)
        return fmt::format("{} B", bytes);
    uint64_t scale = uint64_t{1} << (10 * unit);
    if (bytes % scale == 0)
        return fmt::format("{} {}", bytes / scale, kUnits[unit]);
    return fmt::format("{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(scale), kUnits[unit]);
}

std::string formatAddress(uint64_t address) {
    return fmt::format("{:#018x}", address);
}

int maskBits(uint64_t mask) {
    int bits = 0;
    while (bits < 64 && (mask >> bits) != 0)
        ++bits;
    return bits;
}

} // namespace cenalloc
