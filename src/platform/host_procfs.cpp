// SPDX-License-Identifier: MIT
// Parsers of what /proc says about memory: /proc/iomem, /proc/meminfo's CMA lines and the cma= boot parameter.
#include "platform/host_procfs.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/host_sysfs.h"

namespace cenalloc::host {

namespace {

// The lines of @p text, without their newlines.
template <typename F> void forEachLine(std::string_view text, F f) {
    while (!text.empty()) {
        size_t nl = text.find('\n');
        f(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    }
}

// The names arm64 and riscv give memblock's no-map RAM (top level) and
// reservations (nested in System RAM); see Iomem.
bool reservedName(std::string_view name) {
    return name == "reserved" || name == "Reserved" || name == "Reserved-memblock";
}

} // namespace

std::vector<Range> mergeRanges(std::vector<Range> ranges) {
    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.first < b.first; });
    std::vector<Range> out;
    for (const Range& r : ranges) {
        if (!out.empty() && (r.first <= out.back().last || r.first == out.back().last + 1)) {
            out.back().last = std::max(out.back().last, r.last);
            continue;
        }
        out.push_back(r);
    }
    return out;
}

std::vector<Range> Iomem::ram() const {
    std::vector<Range> all = systemRam;
    all.insert(all.end(), noMap.begin(), noMap.end());
    return mergeRanges(std::move(all));
}

Iomem parseIomem(std::string_view text) {
    Iomem out;
    bool inRam = false; // the current top-level entry is System RAM
    forEachLine(text, [&](std::string_view line) {
        size_t indent = line.find_first_not_of(' ');
        if (indent == std::string_view::npos)
            return;
        size_t colon = line.find(" : ");
        size_t dash = line.find('-', indent);
        if (colon == std::string_view::npos || dash == std::string_view::npos || dash > colon)
            return;
        std::string_view name = trim(line.substr(colon + 3));
        std::optional<uint64_t> first = parseUnsigned(line.substr(indent, dash - indent), 16);
        std::optional<uint64_t> last = parseUnsigned(line.substr(dash + 1, colon - dash - 1), 16);
        if (!first || !last || *last < *first)
            return;
        if (indent == 0) {
            inRam = name == "System RAM";
            if (!inRam && !reservedName(name))
                return;
            ++out.ramLines;
            if (*first == 0 && *last == 0) {
                ++out.hiddenLines;
                return;
            }
            (inRam ? out.systemRam : out.noMap).push_back({*first, *last});
            return;
        }
        if (inRam && reservedName(name) && !(*first == 0 && *last == 0))
            out.reserved.push_back({*first, *last});
    });
    out.reserved = mergeRanges(std::move(out.reserved));
    return out;
}

std::vector<MemoryBank> banksOf(std::vector<Range> ranges) {
    std::vector<MemoryBank> banks;
    for (const Range& r : mergeRanges(std::move(ranges))) {
        std::optional<uint64_t> base = alignUpChecked(r.first, kPageSize);
        uint64_t end = r.last == UINT64_MAX ? UINT64_MAX & ~(kPageSize - 1) : (r.last + 1) & ~(kPageSize - 1);
        if (!base || *base >= end)
            continue;
        if (!banks.empty() && *base <= banks.back().end()) {
            banks.back().size = std::max(banks.back().end(), end) - banks.back().base;
            continue;
        }
        banks.push_back({fmt::format("ram-{:x}", *base), *base, end - *base});
    }
    return banks;
}

std::optional<MeminfoCma> parseMeminfoCma(std::string_view text) {
    std::optional<uint64_t> total, free;
    forEachLine(text, [&](std::string_view line) {
        size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            return;
        std::string_view key = line.substr(0, colon);
        if (key != "CmaTotal" && key != "CmaFree")
            return;
        std::string_view value = trim(line.substr(colon + 1));
        if (value.size() > 3 && value.substr(value.size() - 3) == " kB")
            value.remove_suffix(3);
        std::optional<uint64_t> kb = parseUnsigned(value, 10);
        if (!kb || *kb > UINT64_MAX / KiB)
            return;
        (key == "CmaTotal" ? total : free) = *kb * KiB;
    });
    if (!total)
        return std::nullopt;
    return MeminfoCma{*total, free};
}

std::optional<uint64_t> memparse(std::string_view& text) {
    // lib/cmdline.c memparse: simple_strtoull(ptr, &endptr, 0), then a
    // suffix, each shifting by 10 more.
    int base = 10;
    std::string_view digits = text;
    if (digits.size() > 1 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
        base = 16;
        digits.remove_prefix(2);
    } else if (digits.size() > 1 && digits[0] == '0') {
        base = 8;
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (ec != std::errc() || end == digits.data())
        return std::nullopt;
    text = std::string_view(end, static_cast<size_t>(digits.data() + digits.size() - end));
    if (text.empty())
        return value;
    static constexpr std::string_view kSuffixes = "KMGTPE";
    size_t shift = kSuffixes.find(static_cast<char>(std::toupper(static_cast<unsigned char>(text.front()))));
    if (shift == std::string_view::npos)
        return value;
    text.remove_prefix(1);
    unsigned bits = 10 * static_cast<unsigned>(shift + 1);
    if (bits >= 64 || value > (UINT64_MAX >> bits))
        return std::nullopt;
    return value << bits;
}

std::optional<CmaParameter> parseCmaParameter(std::string_view cmdline) {
    std::optional<CmaParameter> found;
    size_t at = 0;
    while (at < cmdline.size()) {
        size_t start = cmdline.find_first_not_of(" \t\n", at);
        if (start == std::string_view::npos)
            break;
        size_t stop = cmdline.find_first_of(" \t\n", start);
        std::string_view word = cmdline.substr(start, stop == std::string_view::npos ? stop : stop - start);
        at = stop == std::string_view::npos ? cmdline.size() : stop;
        if (word.substr(0, 4) != "cma=")
            continue;
        // kernel/dma/contiguous.c early_cma: size[@base[-limit]]; without
        // a limit, limit = base + size (a fixed area).
        std::string_view rest = word.substr(4);
        CmaParameter p;
        std::optional<uint64_t> size = memparse(rest);
        if (!size) {
            found.reset();
            continue;
        }
        p.size = *size;
        if (!rest.empty() && rest.front() == '@') {
            rest.remove_prefix(1);
            std::optional<uint64_t> base = memparse(rest);
            if (!base) {
                found.reset();
                continue;
            }
            p.base = *base;
            if (!rest.empty() && rest.front() == '-') {
                rest.remove_prefix(1);
                p.limit = memparse(rest);
            } else if (*base <= UINT64_MAX - p.size) {
                p.limit = *base + p.size;
            }
        }
        found = p;
    }
    return found;
}

} // namespace cenalloc::host
