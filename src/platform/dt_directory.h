// SPDX-License-Identifier: MIT
// A device tree in directory form (/sys/firmware/devicetree/base) turned back into a flattened blob.
#pragma once

#include <cstddef>
#include <filesystem>
#include <vector>

#include <cenalloc/result.h>

namespace cenalloc {

/// Read the live device tree under @p root (directories are nodes, files
/// are properties) and write it as a flattened blob with libfdt, so the
/// device tree loader reads a live system exactly as it reads a .dtb.
/// Children and properties are written in name order: the directory form
/// keeps no order. The "name" files the kernel adds to every node are not
/// properties of the blob and are left out.
/// Errors: the errno of an unreadable entry, "<path>: ..."; EINVAL for
/// nesting deeper than the kernel's 64 levels; EFBIG for a property over
/// 1 MiB or a tree over 64 MiB.
Result<std::vector<std::byte>> readDeviceTreeDirectory(const std::filesystem::path& root);

} // namespace cenalloc
