// SPDX-License-Identifier: MIT
// Heap statistics, baselines and raw requests for the service tests.
#include "support/service.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "service/socket_io.h"
#include "support/fds.h"
#include "support/sockets.h"
#include "support/wait.h"

namespace cenalloc::test {

const HeapInfo* findHeap(const std::vector<HeapInfo>& heaps, std::string_view name) {
    auto it = std::find_if(heaps.begin(), heaps.end(), [&](const HeapInfo& h) { return h.name == name; });
    return it == heaps.end() ? nullptr : &*it;
}

Baseline baselineOf(Session& session) {
    Baseline b;
    auto stats = session.stats();
    EXPECT_TRUE(stats) << stats.error().toString();
    if (!stats)
        return b;
    for (const HeapInfo& h : stats->heaps)
        b.heaps.emplace_back(h.stats.liveBuffers, h.stats.liveBytes);
    for (const IommuDomainStats& d : stats->domains)
        b.domainInUse.push_back(d.inUseCount);
    b.liveBuffers = stats->liveBuffers;
    return b;
}

void expectBackTo(Session& session, const Baseline& baseline) {
    EXPECT_EQ(baselineOf(session), baseline);
    auto stats = session.stats();
    ASSERT_TRUE(stats) << stats.error().toString();
    EXPECT_TRUE(stats->lifetimeBugs.empty());
}

ServiceConfig configOf(const std::string& yaml) {
    auto config = parseServiceConfig(yaml, "test.yaml");
    EXPECT_TRUE(config) << config.error().toString();
    return config ? *config : ServiceConfig{};
}

ServiceConfig placedOnStandIn(const FakeKernelHeapDir& dir) {
    dir.addHeap("system");
    dir.addHeap("zz");
    ServiceConfig config;
    config.context.kernelHeapDir = dir.path();
    config.context.placeKernelHeaps = true;
    config.probeKernelHeaps = false;
    return config;
}

void PrintTo(const Baseline& b, std::ostream* os) {
    *os << "live " << b.liveBuffers << " heaps";
    for (auto [n, bytes] : b.heaps)
        *os << " " << n << "/" << bytes;
    *os << " domains in use";
    for (uint64_t n : b.domainInUse)
        *os << " " << n;
}

HeapStats heapStats(Session& session, std::string_view heap) {
    auto heaps = session.heaps();
    EXPECT_TRUE(heaps) << heaps.error().toString();
    if (!heaps)
        return {};
    const HeapInfo* info = findHeap(*heaps, heap);
    EXPECT_NE(info, nullptr) << heap;
    return info ? info->stats : HeapStats{};
}

int rawRequest(BorrowedFd socket, wire::Op op, std::span<const std::byte> payload, std::span<const int> fds,
               uint32_t sequence) {
    wire::MessageHeader h =
        wire::makeHeader(op, static_cast<uint32_t>(payload.size()), static_cast<uint16_t>(fds.size()), sequence);
    std::vector<std::byte> bytes(sizeof h + payload.size());
    std::memcpy(bytes.data(), &h, sizeof h);
    if (!payload.empty())
        std::memcpy(bytes.data() + sizeof h, payload.data(), payload.size());
    if (!sendDatagram(socket, bytes, fds))
        return -1;
    auto reply = receiveDatagram(socket, wire::kMaxFragmentSize);
    if (!reply || reply->bytes.size() < sizeof h)
        return -1;
    std::memcpy(&h, reply->bytes.data(), sizeof h);
    return h.error;
}

int rawRequest(const std::string& path, wire::Op op, std::span<const std::byte> payload, std::span<const int> fds,
               uint32_t sequence) {
    UniqueFd fd = connectSeqpacket(path);
    if (!fd.valid())
        return -1;
    return rawRequest(fd, op, payload, fds, sequence);
}

size_t openFdCountOnceDaemonClosed(BorrowedFd connection) {
    int ends[2];
    EXPECT_EQ(::pipe2(ends, O_CLOEXEC), 0) << std::strerror(errno);
    UniqueFd readEnd(ends[0]), writeEnd(ends[1]);
    const int sent = readEnd.get();
    EXPECT_EQ(rawRequest(connection, wire::Op::Import, {}, std::span<const int>(&sent, 1)), EBADF)
        << "a pipe is not a buffer";
    readEnd.reset(); // the daemon's copy is the last reader
    // No events asked for: poll reports POLLERR alone, once no reader is left.
    EXPECT_TRUE(waitForEvents(writeEnd, 0)) << "the daemon never closed the fds it was sent";
    writeEnd.reset();
    return openFdCount();
}

} // namespace cenalloc::test
