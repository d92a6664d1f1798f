// SPDX-License-Identifier: MIT
// Reading a whole, size-limited file: what every loader of descriptions needs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <cenalloc/result.h>

namespace cenalloc {

/// The contents of @p path, which must be at most @p maxSize bytes.
/// @p what names the kind of file in messages ("a platform description").
/// Errors: the errno of open/fstat/read with the path named, EISDIR for a
/// directory, EFBIG when the file (or a pipe's stream) exceeds @p maxSize.
Result<std::string> readFileLimited(const std::filesystem::path& path, uint64_t maxSize, std::string_view what);

} // namespace cenalloc
