// SPDX-License-Identifier: MIT
// `cenalloc explain --mapped-by`: what attaching devices would do to a buffer other devices have mapped.
#include "tools/cenalloc/explain_buffer.h"

#include <cerrno>
#include <memory>

#include <cenalloc/context.h>
#include <cenalloc/device.h>

namespace cenalloc::cli {

Result<MappedImporter> parseMappedImporter(std::string_view spec) {
    const size_t colon = spec.find(':');
    MappedImporter importer{std::string(spec.substr(0, colon)), MappedImporter::Kind::Static};
    if (importer.device.empty())
        return Error(EINVAL, "'" + printableText(spec) + "': no device before the kind");
    if (colon == std::string_view::npos)
        return importer;
    const std::string_view kind = spec.substr(colon + 1);
    if (kind == "static")
        importer.kind = MappedImporter::Kind::Static;
    else if (kind == "dynamic")
        importer.kind = MappedImporter::Kind::Dynamic;
    else if (kind == "pinned")
        importer.kind = MappedImporter::Kind::Pinned;
    else
        return Error(EINVAL, "'" + printableText(spec) + "': the kind is static, dynamic or pinned");
    return importer;
}

Result<BufferForecastReport> explainAgainstBuffer(const Platform& platform, std::span<const MappedImporter> mappedBy,
                                                  std::span<const std::string> devices, uint64_t size,
                                                  CpuAccess cpuAccess, const ReportOptions& options) {
    auto created = Context::create(platform);
    if (!created)
        return created.error();
    Context& context = **created;
    // Every device is looked up before anything is attached.
    std::vector<const DmaDevice*> importers, late;
    for (const MappedImporter& m : mappedBy) {
        auto device = context.device(m.device);
        if (!device)
            return device.error().withContext("--mapped-by");
        importers.push_back(*device);
    }
    for (const std::string& name : devices) {
        auto device = context.device(name);
        if (!device)
            return device.error().withContext("--devices");
        late.push_back(*device);
    }
    auto buffer = context.create(size, "explain", cpuAccess);
    if (!buffer)
        return buffer.error();

    // Declared after the buffer, so they go before it: mappings, then
    // attachments, then the buffer, as a user must release them.
    std::vector<Attachment> attachments;
    std::vector<Attachment::Mapping> mappings;
    for (size_t i = 0; i < mappedBy.size(); ++i) {
        const std::string where = "--mapped-by " + mappedBy[i].device;
        AttachOptions attachOptions;
        if (mappedBy[i].kind != MappedImporter::Kind::Static)
            attachOptions.onMove = [](const MoveNotification&) {};
        auto attachment = (*buffer)->attach(*importers[i], std::move(attachOptions));
        if (!attachment)
            return attachment.error().withContext(where);
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        if (!mapping)
            return mapping.error().withContext(where);
        if (mappedBy[i].kind == MappedImporter::Kind::Pinned)
            if (auto pinned = attachment->pin(); !pinned)
                return pinned.error().withContext(where);
        attachments.push_back(std::move(*attachment));
        mappings.push_back(std::move(*mapping));
    }

    std::vector<DeviceForecast> forecasts;
    BufferForecastReport report;
    report.attachable = true;
    for (const DmaDevice* device : late) {
        forecasts.push_back({device->name(), (*buffer)->forecastAttach(*device)});
        const auto outcome = forecasts.back().forecast.outcome;
        report.attachable = report.attachable && (outcome == AttachForecast::Outcome::Fits ||
                                                  outcome == AttachForecast::Outcome::WouldMigrate);
    }
    report.output = reportAttachForecasts((*buffer)->info(), forecasts, options);
    for (size_t i = 0; i < mappedBy.size(); ++i)
        if (mappedBy[i].kind == MappedImporter::Kind::Pinned)
            (void)attachments[i].unpin();
    mappings.clear();
    attachments.clear();
    return report;
}

} // namespace cenalloc::cli
