// SPDX-License-Identifier: MIT
// Escaping untrusted bytes for terminals and JSON.
#include "report/untrusted_text.h"

#include <cstdint>

namespace cenalloc {

namespace {

constexpr char kHex[] = "0123456789abcdef";

/// The length of the well-formed UTF-8 sequence at the start of @p s, and
/// its code point; 0 when it is ill-formed (RFC 3629, Unicode table 3-7).
size_t decodeOne(std::string_view s, uint32_t& codePoint) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
    const uint8_t b0 = byte(0);
    if (b0 < 0x80) {
        codePoint = b0;
        return 1;
    }
    size_t length;
    uint8_t low = 0x80, high = 0xbf; // the second byte's range
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        length = 2;
        codePoint = b0 & 0x1fu;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        length = 3;
        codePoint = b0 & 0x0fu;
        if (b0 == 0xe0)
            low = 0xa0; // no overlong forms
        if (b0 == 0xed)
            high = 0x9f; // no surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        length = 4;
        codePoint = b0 & 0x07u;
        if (b0 == 0xf0)
            low = 0x90;
        if (b0 == 0xf4)
            high = 0x8f; // nothing beyond U+10FFFF
    } else {
        return 0;
    }
    if (s.size() < length)
        return 0;
    for (size_t i = 1; i < length; ++i) {
        const uint8_t b = byte(i);
        if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xbf))
            return 0;
        codePoint = (codePoint << 6) | (b & 0x3fu);
    }
    return length;
}

/// Code points that change how a terminal shows what follows: C0 and C1
/// controls, DEL, and the bidirectional embeddings, overrides and isolates
/// (which can make text read differently from what it is).
bool isControl(uint32_t c) {
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) ||
           c == 0x200e || c == 0x200f || c == 0x061c;
}

void appendEscaped(std::string& out, uint8_t b) {
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
}

} // namespace

std::string printableText(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    while (!bytes.empty()) {
        uint32_t c = 0;
        size_t n = decodeOne(bytes, c);
        if (n == 0 || isControl(c)) {
            // Each byte of the sequence on its own, so that an escaped
            // control and the same bytes spelled out never look alike.
            const size_t count = n == 0 ? 1 : n;
            for (size_t i = 0; i < count; ++i)
                appendEscaped(out, static_cast<uint8_t>(bytes[i]));
            bytes.remove_prefix(count);
            continue;
        }
        if (c == '\\')
            out += "\\\\";
        else
            out.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
    }
    return out;
}

std::string validUtf8(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    while (!bytes.empty()) {
        uint32_t c = 0;
        size_t n = decodeOne(bytes, c);
        if (n == 0) {
            out += "\xef\xbf\xbd"; // U+FFFD REPLACEMENT CHARACTER
            bytes.remove_prefix(1);
            continue;
        }
        out.append(bytes.substr(0, n));
        bytes.remove_prefix(n);
    }
    return out;
}

bool isValidUtf8(std::string_view bytes) {
    while (!bytes.empty()) {
        uint32_t c = 0;
        size_t n = decodeOne(bytes, c);
        if (n == 0)
            return false;
        bytes.remove_prefix(n);
    }
    return true;
}

std::string hexBytes(std::string_view bytes) {
    std::string out;
    out.reserve(2 * bytes.size());
    for (char ch : bytes) {
        const auto b = static_cast<uint8_t>(ch);
        out += kHex[b >> 4];
        out += kHex[b & 0xf];
    }
    return out;
}

} // namespace cenalloc
