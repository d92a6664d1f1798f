// SPDX-License-Identifier: MIT
// Rendering bytes that came from untrusted peers (buffer names, anything read off the wire) as text and JSON.
#pragma once

#include <string>
#include <string_view>

#include <cenalloc/report.h>

namespace cenalloc {

// printableText() is public: cenalloc/report.h.

/// @p bytes as well-formed UTF-8 for JSON: each byte of an ill-formed
/// sequence becomes U+FFFD. Lossy only for ill-formed input; hexBytes()
/// keeps every byte.
std::string validUtf8(std::string_view bytes);

/// Whether @p bytes is well-formed UTF-8 (no overlong forms, surrogates or
/// code points beyond U+10FFFF).
bool isValidUtf8(std::string_view bytes);

/// @p bytes as lowercase hex, two digits a byte ("" for none).
std::string hexBytes(std::string_view bytes);

} // namespace cenalloc
