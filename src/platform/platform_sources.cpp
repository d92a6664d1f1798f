// SPDX-License-Identifier: MIT
// Choosing the platform loader: YAML, device tree blob, host, or the built-in platform.
#include <cenalloc/platform_sources.h>

#include <cerrno>

#include <fmt/format.h>

#include "base/try.h"

namespace cenalloc {

Result<Platform> loadPlatformSource(const PlatformSource& source, std::vector<std::string>* notes) {
    int given = (source.yamlPath.empty() ? 0 : 1) + (source.dtbPath.empty() ? 0 : 1) + (source.host ? 1 : 0);
    if (given > 1)
        return Error(EINVAL, "give at most one of a platform description, a device tree blob and the host");
    if (!source.overlayPath.empty() && source.dtbPath.empty() && !source.host)
        return Error(EINVAL, "an overlay applies to a device tree blob or to the host only");

    std::optional<Overlay> overlay;
    if (!source.overlayPath.empty()) {
        overlay = CENALLOC_TRY(loadOverlayFile(source.overlayPath));
    }
    const Overlay* o = overlay ? &*overlay : nullptr;

    if (!source.yamlPath.empty())
        return loadPlatformFile(source.yamlPath);
    if (!source.dtbPath.empty())
        return loadDeviceTreeFile(source.dtbPath, o, notes);
    if (source.host) {
        HostReport report;
        Result<Platform> p = loadHostPlatform(&report, o);
        if (notes) {
            for (const std::string& l : report.learned)
                notes->push_back("learned " + l);
            for (const std::string& l : report.notLearned)
                notes->push_back("could not learn " + l);
            for (const std::string& l : report.warnings)
                notes->push_back(l);
        }
        return p;
    }
    return defaultPlatform();
}

} // namespace cenalloc
