// SPDX-License-Identifier: MIT
// Every dma-buf on the host and the processes holding it (by fd or by mapping), read from procfs and sysfs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <cenalloc/result.h>

// This reader sits in report/ (shared/DESIGN.md section 3): it is what
// `cenalloc bufinfo --host` shows (section 7, per-process attribution), no
// layer below needs it, and it is not part of the platform model (platform/
// describes banks, heaps and devices; who holds which buffer is the running
// system's state, not the machine's). It uses only base/.

namespace cenalloc {

/// One process's references to one dma-buf.
struct HostDmaBufHolder {
    pid_t pid = 0;
    /// /proc/PID/comm: bytes the process chose (prctl PR_SET_NAME); untrusted.
    std::string comm;
    /// File descriptors of the process that refer to the buffer.
    uint32_t fds = 0;
    /// Mappings (VMAs in /proc/PID/maps) of the buffer, and their total length.
    uint32_t mappings = 0;
    uint64_t mappedBytes = 0;
};

/// One dma-buf, identified by its inode number (unique per dma-buf: the
/// kernel gives each one its own inode, drivers/dma-buf/dma-buf.c
/// dma_buf_getfile()).
struct HostDmaBuf {
    uint64_t inode = 0;
    /// The exporter (fdinfo exp_name or sysfs exporter_name: "system",
    /// "udmabuf", a driver's name); empty when unknown (a buffer only mapped,
    /// on a kernel without /sys/kernel/dmabuf/buffers).
    std::string exporter;
    uint64_t size = 0;
    /// False when no fdinfo or sysfs entry gave the size: it is then the
    /// largest offset + length of the buffer's mappings, a lower bound.
    bool sizeExact = true;
    /// The name set with DMA_BUF_SET_NAME (at most 31 bytes; any bytes but
    /// NUL, so untrusted); empty when unnamed.
    std::string name;
    /// fdinfo "count": references to the buffer's file (fds in any process,
    /// mappings, kernel users) when an fdinfo was read.
    std::optional<uint64_t> fileCount;
    /// Processes holding it, by pid.
    std::vector<HostDmaBufHolder> holders;
};

/// What one process holds, over all its dma-bufs.
struct HostDmaBufProcess {
    pid_t pid = 0;
    std::string comm;
    /// Distinct buffers held by fd or by mapping, and the sum of their sizes.
    uint32_t buffers = 0;
    uint64_t bytes = 0;
    /// Sum of the sizes of the buffers it holds by fd.
    uint64_t fdBytes = 0;
    /// Total length of its mappings of dma-bufs.
    uint64_t mappedBytes = 0;
    /// Each buffer's size divided by the number of processes holding it
    /// (dmabuf_dump's PSS): the process's share.
    uint64_t proportionalBytes = 0;
};

/// The buffers of one exporter.
struct HostDmaBufExporter {
    std::string exporter; ///< empty: unknown
    uint32_t buffers = 0;
    uint64_t bytes = 0;
};

/// The result of one scan. A snapshot of a system that kept running: a
/// buffer freed or a process gone while it was taken may be missing.
struct HostDmaBufScan {
    /// By inode.
    std::vector<HostDmaBuf> buffers;
    /// Holding processes, most bytes first.
    std::vector<HostDmaBufProcess> processes;
    /// Most bytes first.
    std::vector<HostDmaBufExporter> exporters;
    uint64_t totalBytes = 0;
    /// Processes whose fds and maps were read.
    size_t processesScanned = 0;
    /// Processes this caller may not inspect (EACCES/EPERM: another user's,
    /// when not root), by pid.
    std::vector<pid_t> uninspectable;
    /// Processes that exited while the scan ran (skipped; for tests).
    size_t vanished = 0;
    /// fdinfo, maps and sysfs lines that did not parse (skipped).
    size_t malformedLines = 0;
    /// Files cut at the read limit (a maps file of many megabytes).
    size_t truncatedFiles = 0;
    /// Whether <sys>/kernel/dmabuf/buffers existed and was read.
    bool sysfsStats = false;
    /// Whether the scan ran as root (so root would see no more).
    bool privileged = false;
};

/// Where a scan reads and, for tests, a hook into it.
struct HostDmaBufScanOptions {
    std::filesystem::path procRoot = "/proc";
    std::filesystem::path sysRoot = "/sys";
    /// Called after the process list was read and before each process's
    /// files are: tests use it to make a process vanish mid-scan.
    std::function<void(pid_t)> beforeProcess;
};

/// Every dma-buf the scan can see: those held by fd or mapped by any
/// process it may inspect, and (where the kernel has it) every buffer of
/// /sys/kernel/dmabuf/buffers, held or not by anyone visible.
/// Processes that vanish are skipped; those it may not inspect are listed
/// in uninspectable; malformed lines are skipped and counted.
/// Errors: only when procRoot itself cannot be read.
Result<HostDmaBufScan> scanHostDmaBufs(const HostDmaBufScanOptions& options = {});

/// What the kernel prints in /proc/PID/fdinfo/FD for a dma-buf.
struct DmaBufFdInfo {
    uint64_t size = 0;
    std::optional<uint64_t> count;
    std::string exporter;
    std::string name;
    /// fs/proc/fd.c seq_show(): the file's inode (kernels since 5.14 or so).
    std::optional<uint64_t> inode;
};

/// @p text as a dma-buf's fdinfo, or nullopt when it is not one (no
/// exp_name line) or lacks its size. @p malformed counts lines skipped.
std::optional<DmaBufFdInfo> parseDmaBufFdInfo(std::string_view text, size_t* malformed = nullptr);

/// One line of /proc/PID/maps.
struct MapsLine {
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t offset = 0;
    uint32_t major = 0;
    uint32_t minor = 0;
    uint64_t inode = 0;
    /// The path column (may be empty), with the kernel's "\012" for a
    /// newline left as it is.
    std::string_view path;
};

/// @p line (without its newline) parsed, or nullopt when malformed.
std::optional<MapsLine> parseMapsLine(std::string_view line);

/// Whether a maps line is a dma-buf mapping; then @p name is the buffer's
/// name taken from the path ("" when unnamed).
bool isDmaBufMapping(const MapsLine& line, std::string* name = nullptr);

/// Whether @p target (what /proc/PID/fd/N links to) is a dma-buf.
bool isDmaBufLink(std::string_view target);

/// {"buffers": [...], "processes": [...], "exporters": [...], "total_bytes",
///  "processes_scanned", "uninspectable_processes", "uninspectable_pids",
///  "sysfs_stats", "notes"}
nlohmann::json hostDmaBufsJson(const HostDmaBufScan& scan);
/// Tables for people: buffers with their holders, per-process and
/// per-exporter totals, and a note for processes not inspected.
std::string renderHostDmaBufs(const HostDmaBufScan& scan);

} // namespace cenalloc
