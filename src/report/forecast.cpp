// SPDX-License-Identifier: MIT
// What attaching a device to an existing buffer would do (Buffer::forecastAttach), as text and JSON.
#include <fmt/format.h>

#include <cenalloc/units.h>

#include "report/report.h"
#include "report/untrusted_text.h"

namespace cenalloc {

namespace {

using nlohmann::json;

// Device and heap names come from a platform description, reasons may
// quote a peer one day (a daemon's forecast): text goes through
// printableText(), JSON through validUtf8(), as every report does.
std::string named(std::string_view name) {
    return "'" + printableText(name) + "'";
}

std::string nameList(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i)
        out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + named(names[i]);
    return out;
}

std::string verdict(const AttachForecast& f) {
    using Outcome = AttachForecast::Outcome;
    switch (f.outcome) {
    case Outcome::Fits:
        return f.fromHeap.empty() ? "fits: no storage yet, the first map allocates for every attached device"
                                  : fmt::format("fits: the storage from {} serves it", named(f.fromHeap));
    case Outcome::WouldMigrate:
        return fmt::format("would migrate from {} to {}, {}", named(f.fromHeap), named(f.toHeap),
                           f.notified.empty() ? "notifying no importer (no dynamic importer is attached)"
                                              : fmt::format("notifying {} (mappings invalidated, map again after "
                                                            "the move)",
                                                            nameList(f.notified)));
    case Outcome::Blocked:
        return fmt::format("blocked (EBUSY): the storage from {} must move and cannot: {}", named(f.fromHeap),
                           printableText(f.reason));
    case Outcome::Unsatisfiable: return fmt::format("unsatisfiable: {}", printableText(f.reason));
    }
    return "unknown outcome";
}

} // namespace

const char* attachOutcomeKey(AttachForecast::Outcome outcome) {
    using Outcome = AttachForecast::Outcome;
    switch (outcome) {
    case Outcome::Fits: return "fits";
    case Outcome::WouldMigrate: return "would_migrate";
    case Outcome::Blocked: return "blocked";
    case Outcome::Unsatisfiable: return "unsatisfiable";
    }
    return "unknown";
}

json deviceForecastJson(const DeviceForecast& d) {
    const AttachForecast& f = d.forecast;
    json notified = json::array();
    for (const std::string& name : f.notified)
        notified.push_back(validUtf8(name));
    return {{"device", validUtf8(d.device)},
            {"outcome", attachOutcomeKey(f.outcome)},
            {"from_heap", f.fromHeap.empty() ? json(nullptr) : json(validUtf8(f.fromHeap))},
            {"to_heap", f.outcome == AttachForecast::Outcome::WouldMigrate ? json(validUtf8(f.toHeap)) : json(nullptr)},
            {"notified", notified},
            {"reason", validUtf8(f.reason)}};
}

json attachForecastsJson(const BufferInfo& buffer, const std::vector<DeviceForecast>& forecasts) {
    json list = json::array();
    for (const DeviceForecast& d : forecasts)
        list.push_back(deviceForecastJson(d));
    return {{"buffer", bufinfoJson({buffer})["buffers"][0]}, {"forecasts", list}};
}

std::string renderAttachForecasts(const BufferInfo& buffer, const std::vector<DeviceForecast>& forecasts) {
    std::string where = buffer.hasStorage ? fmt::format("storage from {}", named(buffer.heap)) : "no storage yet";
    std::string attached = buffer.attachedDevices.empty() ? "none" : nameList(buffer.attachedDevices);
    std::string out =
        fmt::format("attaching to buffer {}{} ({}, {}; attached: {}):\n", buffer.id,
                    buffer.name.empty() ? "" : " " + named(buffer.name), formatSize(buffer.size), where, attached);
    for (const DeviceForecast& d : forecasts)
        out += fmt::format("  {}: {}\n", named(d.device), verdict(d.forecast));
    return out;
}

} // namespace cenalloc
