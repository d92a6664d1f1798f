// SPDX-License-Identifier: MIT
// Reports: what the cenalloc tools show, as text for people or JSON for programs.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/explain.h>
#include <cenalloc/export.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// The two forms of every report.
///  - Text, for people: aligned tables; every string that may have come
///    from a peer (a buffer name, a daemon's message) is shown through
///    printableText(), so no report can move the cursor or fake a line.
///  - Json, for programs: one object, pretty-printed with two spaces and
///    ending in a newline. Keys are snake_case and only ever added to,
///    never renamed; strings are well-formed UTF-8 (U+FFFD for each byte
///    of an ill-formed sequence; a buffer's "name_hex" keeps every byte).
enum class ReportFormat { Text, Json };

/// How to write a report.
struct ReportOptions {
    ReportFormat format = ReportFormat::Text;
    /// What the caller wants said beside the report (for instance what the
    /// platform loader noted). A JSON report carries them as the array
    /// "notes" when there are any; a text report does not: a tool shows
    /// them apart from it (the cenalloc CLI on stderr).
    std::vector<std::string> notes;
};

/// The platform model: memory, regions, IOMMUs and devices with their limits
/// (`cenalloc platform show`).
CENALLOC_EXPORT std::string reportPlatform(const Platform& platform, const ReportOptions& options = {});

/// Heaps with their properties and statistics (`cenalloc heaps`). @p source
/// says whose heaps they are (Session::describe(), or "platform NAME"): the
/// text's title, the JSON's "source".
CENALLOC_EXPORT std::string reportHeaps(std::string_view source, std::span<const HeapInfo> heaps,
                                        const ReportOptions& options = {});

/// Buffers as bufinfo lists them, with their attachments and mappings
/// (`cenalloc bufinfo`); JSON: {"buffers": [...]}.
CENALLOC_EXPORT std::string reportBuffers(std::span<const BufferInfo> buffers, const ReportOptions& options = {});

/// One buffer (`cenalloc alloc`): the text of a one-buffer listing; JSON:
/// the buffer's object of reportBuffers().
CENALLOC_EXPORT std::string reportBuffer(const BufferInfo& buffer, const ReportOptions& options = {});

/// IOMMU domain counters; JSON: {"domains": [...]}.
CENALLOC_EXPORT std::string reportDomains(std::span<const IommuDomainStats> domains, const ReportOptions& options = {});

/// Allocator statistics (`cenalloc stats`). @p source (Session::describe())
/// titles the text.
CENALLOC_EXPORT std::string reportStats(std::string_view source, const AllocatorStats& stats,
                                        const ReportOptions& options = {});

/// Why a set of devices can or cannot share a buffer, from which heap, and
/// who allocates (`cenalloc explain`).
CENALLOC_EXPORT std::string reportExplanation(const Explanation& explanation, const ReportOptions& options = {});

/// One device's forecast against a buffer: what Buffer::forecastAttach()
/// said attaching @c device would do.
struct DeviceForecast {
    std::string device;
    AttachForecast forecast;
};

/// What attaching each device of @p forecasts to @p buffer would do now
/// (`cenalloc explain --mapped-by`, the demo's late importer): fits (the
/// storage serves it, or there is none yet), would migrate (from which heap
/// to which, which dynamic importers would be told), blocked (what holds
/// the storage in place: a static mapping, a pin, a heap chosen by name) or
/// unsatisfiable (why no heap serves it with the devices attached).
/// JSON: {"buffer": the buffer's object of reportBuffers(), "forecasts":
/// [{"device", "outcome" ("fits", "would_migrate", "blocked",
/// "unsatisfiable"), "from_heap" (null without storage), "to_heap" (null
/// unless it would migrate), "notified": [device names], "reason"}]}.
CENALLOC_EXPORT std::string reportAttachForecasts(const BufferInfo& buffer, std::span<const DeviceForecast> forecasts,
                                                  const ReportOptions& options = {});

/// Every dma-buf on the running host and the processes holding it, by fd or
/// by mapping, read from /proc and /sys rather than asked of a session
/// (`cenalloc bufinfo --host`): the buffers with their holders, per-process
/// totals (with each process's proportional share) and per-exporter totals.
/// Processes this caller may not inspect are named in a note, not guessed.
/// Errors: only when /proc itself cannot be read.
CENALLOC_EXPORT Result<std::string> reportHostDmaBufs(const ReportOptions& options = {});

/// A buffer allocated for devices (`cenalloc alloc --for`): its heap, the
/// host kernel's heap node when the kernel made it, size, fd, inode,
/// exporter (what the kernel's fdinfo says for a real dma-buf), name, the
/// reason for the heap, and each device with its sysfs path and driver.
/// JSON: {"heap", "kernel_heap" (null for the model's storage), "size",
/// "fd", "inode", "exporter", "name", "reason", "devices": [{"name",
/// "sysfs", "driver"}]}. Errors: the errno of fstat of the buffer's fd.
CENALLOC_EXPORT Result<std::string> reportAllocatedFor(const AllocatedFor& allocated,
                                                       const ReportOptions& options = {});
/// The same for a buffer a session allocated for devices
/// (Session::allocateFor, in-process or through cenallocd): the same lines
/// and JSON, the fd being @p allocated's.
CENALLOC_EXPORT Result<std::string> reportAllocatedFor(const SessionAllocatedFor& allocated,
                                                       const ReportOptions& options = {});

/// The bufinfo entry of the buffer @p fd names, as @p session sees it
/// (found by the fd's inode). Errors: errno of fstat; those of
/// Session::bufinfo(); ENOENT when the session does not list the buffer.
CENALLOC_EXPORT Result<BufferInfo> describeBuffer(Session& session, BorrowedFd fd);

/// @p bytes for a terminal: printable ASCII and well-formed UTF-8 of
/// printable characters stay as they are; a backslash becomes "\\"; every
/// other byte (controls such as ESC, newline and NUL, C1 controls, the
/// bidirectional overrides, bytes of ill-formed UTF-8) becomes "\xNN".
/// The result is one line that cannot move the cursor or change the
/// terminal's state, and it tells apart any two different inputs. What a
/// tool prints of a message that may quote a peer goes through it.
CENALLOC_EXPORT std::string printableText(std::string_view bytes);

} // namespace cenalloc
