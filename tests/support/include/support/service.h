// SPDX-License-Identifier: MIT
// What the service tests observe of a daemon: heap statistics and baselines, raw requests, its closes of our fds.
#pragma once

#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>

#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "service/config.h"
#include "support/fake_kernel_heaps.h"
#include "service/operations.h"
#include "service/protocol.h"

namespace cenalloc::test {

constexpr uint32_t kRw = O_CLOEXEC | O_RDWR;

/// The heap called @p name in @p heaps, or null.
const HeapInfo* findHeap(const std::vector<HeapInfo>& heaps, std::string_view name);

/// Live buffers and bytes of every heap, and the allocator's live count:
/// what "back to baseline" compares.
struct Baseline {
    std::vector<std::pair<uint64_t, uint64_t>> heaps; // (liveBuffers, liveBytes)
    uint64_t liveBuffers = 0;
    std::vector<uint64_t> domainInUse;
    bool operator==(const Baseline&) const = default;
};
Baseline baselineOf(Session& session);
/// What every test ends with once it released everything: @p session sees
/// @p baseline again and no lifetime bug was recorded.
void expectBackTo(Session& session, const Baseline& baseline);
/// @p yaml parsed as a daemon configuration; the test fails when it does
/// not parse.
ServiceConfig configOf(const std::string& yaml);

/// A service placed on a stand-in of the host kernel's heaps: @p dir gets
/// node "system" (a heap of the model) and "zz" (none), so "system" is
/// placed, "linux,cma" has no node and "kernel:zz" matches nothing. The
/// page probe is off: stand-in nodes cannot allocate it.
ServiceConfig placedOnStandIn(const FakeKernelHeapDir& dir);
void PrintTo(const Baseline& b, std::ostream* os);

/// The statistics of @p heap as @p session lists them; the test fails when
/// there is no such heap.
HeapStats heapStats(Session& session, std::string_view heap);

/// Send one request as raw bytes on @p socket (@p payload after the header,
/// @p fds attached) and return the reply's errno: -1 when no reply came
/// (the daemon hung up, or died).
int rawRequest(BorrowedFd socket, wire::Op op, std::span<const std::byte> payload, std::span<const int> fds = {},
               uint32_t sequence = 7);
/// The same on a new connection to @p path (-1 when it cannot connect).
int rawRequest(const std::string& path, wire::Op op, std::span<const std::byte> payload, std::span<const int> fds = {},
               uint32_t sequence = 7);

/// The open fd count of this process once the daemon serving @p connection
/// (in this process) has closed every fd sent to it that it does not keep.
/// Buffers it closes before it replies; any other fd goes to its closer,
/// which closes a uid's fds in order on a thread of its own. So this sends
/// it one more, the read end of a pipe, as the uid's last (an Import: not
/// a buffer), and waits for the write end to report that the last reader
/// is gone (POLLERR): every fd sent before is closed then. Bounded by
/// kPatience; the test fails when the daemon never closes it.
size_t openFdCountOnceDaemonClosed(BorrowedFd connection);

} // namespace cenalloc::test
