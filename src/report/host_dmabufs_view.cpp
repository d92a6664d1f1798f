// SPDX-License-Identifier: MIT
// `cenalloc bufinfo --host` as text and JSON: the host's dma-bufs, who holds them, and totals.
#include "report/host_dmabufs.h"

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "report/table.h"
#include "report/untrusted_text.h"

namespace cenalloc {

namespace {

using nlohmann::json;

// Names, comms and even exporter names are bytes the kernel copied from
// someone (DMA_BUF_SET_NAME, PR_SET_NAME, a driver): JSON gets well-formed
// UTF-8 plus the exact bytes in hex, text gets printableText() (TextTable).

json optionalText(const std::string& s) {
    return s.empty() ? json(nullptr) : json(validUtf8(s));
}

std::string plural(size_t n, const char* one, const char* many) {
    return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string sizeText(const HostDmaBuf& b) {
    return b.sizeExact ? formatSize(b.size) : ">= " + formatSize(b.size);
}

std::string holderText(const HostDmaBufHolder& h) {
    std::string how;
    if (h.fds > 0)
        how = plural(h.fds, "fd", "fds");
    if (h.mappings > 0)
        how += (how.empty() ? "" : ", ") + plural(h.mappings, "map", "maps");
    return fmt::format("{} {} ({})", h.pid, h.comm, how);
}

/// The note for processes the scan could not read, or "" when there were none.
std::string uninspectableNote(const HostDmaBufScan& scan) {
    if (scan.uninspectable.empty())
        return {};
    return fmt::format("{} could not be inspected{}", plural(scan.uninspectable.size(), "process", "processes"),
                       scan.privileged ? "" : " (run as root to see them)");
}

} // namespace

json hostDmaBufsJson(const HostDmaBufScan& scan) {
    json buffers = json::array();
    for (const HostDmaBuf& b : scan.buffers) {
        json holders = json::array();
        for (const HostDmaBufHolder& h : b.holders)
            holders.push_back({{"pid", h.pid},
                               {"comm", validUtf8(h.comm)},
                               {"comm_hex", hexBytes(h.comm)},
                               {"fds", h.fds},
                               {"mappings", h.mappings},
                               {"mapped_bytes", h.mappedBytes}});
        buffers.push_back({{"inode", b.inode},
                           {"exporter", optionalText(b.exporter)},
                           {"size", b.size},
                           {"size_exact", b.sizeExact},
                           {"name", validUtf8(b.name)},
                           {"name_hex", hexBytes(b.name)},
                           {"file_count", b.fileCount ? json(*b.fileCount) : json(nullptr)},
                           {"holders", holders}});
    }
    json processes = json::array();
    for (const HostDmaBufProcess& p : scan.processes)
        processes.push_back({{"pid", p.pid},
                             {"comm", validUtf8(p.comm)},
                             {"comm_hex", hexBytes(p.comm)},
                             {"buffers", p.buffers},
                             {"bytes", p.bytes},
                             {"fd_bytes", p.fdBytes},
                             {"mapped_bytes", p.mappedBytes},
                             {"proportional_bytes", p.proportionalBytes}});
    json exporters = json::array();
    for (const HostDmaBufExporter& e : scan.exporters)
        exporters.push_back({{"exporter", optionalText(e.exporter)}, {"buffers", e.buffers}, {"bytes", e.bytes}});
    json j = {{"buffers", buffers},
              {"processes", processes},
              {"exporters", exporters},
              {"total_buffers", scan.buffers.size()},
              {"total_bytes", scan.totalBytes},
              {"processes_scanned", scan.processesScanned},
              {"uninspectable_processes", scan.uninspectable.size()},
              {"uninspectable_pids", scan.uninspectable},
              {"malformed_lines", scan.malformedLines},
              {"truncated_files", scan.truncatedFiles},
              {"sysfs_stats", scan.sysfsStats}};
    if (std::string note = uninspectableNote(scan); !note.empty())
        j["notes"] = json::array({note});
    return j;
}

std::string renderHostDmaBufs(const HostDmaBufScan& scan) {
    std::string out =
        fmt::format("host dma-bufs: {}, {}, held by {} ({} inspected; "
                    "/sys/kernel/dmabuf/buffers {})\n",
                    plural(scan.buffers.size(), "buffer", "buffers"), formatSize(scan.totalBytes),
                    plural(scan.processes.size(), "process", "processes"),
                    plural(scan.processesScanned, "process", "processes"), scan.sysfsStats ? "read" : "not present");
    if (!scan.buffers.empty()) {
        TextTable t({"inode", "exporter", "size", "name", "holders (pid comm: fds, maps)"});
        for (const HostDmaBuf& b : scan.buffers) {
            std::string holders;
            for (const HostDmaBufHolder& h : b.holders)
                holders += (holders.empty() ? "" : "; ") + holderText(h);
            t.addRow({std::to_string(b.inode), b.exporter.empty() ? "?" : b.exporter, sizeText(b),
                      b.name.empty() ? "-" : b.name, holders.empty() ? "none visible" : holders});
        }
        out += t.render();
    }
    if (!scan.processes.empty()) {
        TextTable t({"pid", "comm", "buffers", "size", "by fd", "mapped", "share"});
        for (const HostDmaBufProcess& p : scan.processes)
            t.addRow({std::to_string(p.pid), p.comm, std::to_string(p.buffers), formatSize(p.bytes),
                      formatSize(p.fdBytes), formatSize(p.mappedBytes), formatSize(p.proportionalBytes)});
        out += "\nper process:\n" + t.render();
    }
    if (!scan.exporters.empty()) {
        TextTable t({"exporter", "buffers", "size"});
        for (const HostDmaBufExporter& e : scan.exporters)
            t.addRow({e.exporter.empty() ? "?" : e.exporter, std::to_string(e.buffers), formatSize(e.bytes)});
        out += "\nper exporter:\n" + t.render();
    }
    if (scan.malformedLines > 0 || scan.truncatedFiles > 0)
        out += fmt::format("\nskipped: {} malformed {}, {} cut at the read limit\n", scan.malformedLines,
                           scan.malformedLines == 1 ? "line" : "lines", plural(scan.truncatedFiles, "file", "files"));
    if (std::string note = uninspectableNote(scan); !note.empty())
        out += "\nnote: " + note + "\n";
    return out;
}

} // namespace cenalloc
