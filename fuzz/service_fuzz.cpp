// SPDX-License-Identifier: MIT
// libFuzzer target: arbitrary bytes (and fds) as one request to the daemon's decoding and dispatch.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>
#include <vector>

#include <cenalloc/memfd.h>

#include "service/config.h"
#include "service/dispatch.h"
#include "service/protocol.h"
#include "service/service.h"

namespace {

using namespace cenalloc;

// The first input byte says how the rest travels; the rest is the datagram.
constexpr uint8_t kFdCountMask = 0x3;     // 0..3 fds attached
constexpr uint8_t kForeignFd = 0x4;       // attach a memfd that is not a buffer instead of a buffer
constexpr uint8_t kCtrunc = 0x8;          // pretend the kernel set MSG_CTRUNC
constexpr uint8_t kForeignControl = 0x10; // pretend other control data arrived
constexpr uint8_t kRepairHeader = 0x20;   // make magic, version, sizes and fd count right so the payload is reached
constexpr int kRequestsPerClient = 2000;  // then the client goes, taking its claims with it

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "service_fuzz: %s\n", what);
    std::abort();
}

struct Harness {
    std::shared_ptr<Service> service;
    std::unique_ptr<ServiceClient> client;
    std::vector<UniqueFd> buffers; // a few live buffers whose fds requests may carry
    UniqueFd foreign;
    int requests = 0;

    Harness() {
        // Quotas keep allocations small so that iterations stay fast.
        auto config = parseServiceConfig("quota: {bytes: 64M, buffers: 256}\n", "<fuzz>");
        if (!config)
            die("config");
        auto created = Service::create(defaultPlatform(), *config);
        if (!created)
            die("service");
        service = std::move(*created);
        reconnect();
        auto owner = service->connect(Credentials{1, 0, 0, {}}, true);
        if (!owner)
            die("owner");
        for (const char* heap : {"system", "linux,cma"}) {
            auto b = (*owner)->allocate(heap, 64 * 1024, O_CLOEXEC | O_RDWR, 0);
            if (!b)
                die("buffer");
            buffers.push_back(std::move(b->fd));
        }
        auto d = (*owner)->create(128 * 1024, "deferred", CpuAccess::Rare);
        if (!d)
            die("deferred");
        buffers.push_back(std::move(d->fd));
        auto f = createSealedMemfd("foreign", 4096);
        if (!f)
            die("memfd");
        foreign = std::move(*f);
        // `owner` goes here; the buffers live on through their fds.
    }

    void reconnect() {
        client.reset();
        auto c = service->connect(Credentials{static_cast<int32_t>(::getpid()), 1000, 1000, {}});
        if (!c)
            die("connect");
        client = std::move(*c);
        requests = 0;
    }
};

void checkReply(const Reply& reply) {
    const wire::MessageHeader& h = reply.header;
    if (h.magic != wire::kMagic || h.version != wire::kVersion || h.reserved != 0 || h.error < 0)
        die("bad reply header");
    if (reply.payload.size() < sizeof(wire::ReplyPrefix))
        die("reply without prefix");
    wire::Reader r(reply.payload);
    auto prefix = r.get<wire::ReplyPrefix>();
    auto message = r.getString(prefix->messageLength);
    if (!message)
        die("reply message out of bounds");
    if (h.error != 0 && message->empty())
        die("error without a message");
    if (h.error != 0 && reply.fd.valid())
        die("error reply carries an fd");
    if (h.error == 0) {
        // Whatever the daemon encodes, the client library must decode.
        bool ok = true;
        switch (static_cast<wire::Op>(h.opcode)) {
        case wire::Op::ListHeaps: ok = bool(wire::decodeHeaps(r)); break;
        case wire::Op::Stats: ok = bool(wire::decodeStats(r)); break;
        case wire::Op::Bufinfo: ok = bool(wire::decodeBufinfo(r)); break;
        case wire::Op::Platform: ok = bool(wire::decodePlatform(r)); break;
        case wire::Op::Map: ok = bool(wire::decodeMapping(r)); break;
        case wire::Op::Allocate:
        case wire::Op::Create: ok = reply.fd.valid() && bool(r.get<wire::BufferReply>()); break;
        default: break;
        }
        if (!ok)
            die("the client cannot decode a successful reply");
    }
    size_t total = 0;
    for (const auto& dg : replyDatagrams(reply)) {
        if (dg.size() > wire::kMaxFragmentSize || dg.size() < sizeof(wire::MessageHeader))
            die("bad fragment");
        total += dg.size() - sizeof(wire::MessageHeader);
    }
    if (total != reply.payload.size())
        die("fragments lose bytes");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Harness harness;
    if (size == 0)
        return 0;
    const uint8_t mode = data[0];
    Datagram request;
    request.bytes.assign(reinterpret_cast<const std::byte*>(data + 1), reinterpret_cast<const std::byte*>(data + size));
    request.wireSize = request.bytes.size();
    size_t fdCount = mode & kFdCountMask;
    for (size_t i = 0; i < fdCount; ++i) {
        int source =
            (mode & kForeignFd) ? harness.foreign.get() : harness.buffers[(size + i) % harness.buffers.size()].get();
        request.fds.emplace_back(::fcntl(source, F_DUPFD_CLOEXEC, 0));
    }
    request.controlTruncated = mode & kCtrunc;
    request.foreignControl = mode & kForeignControl;
    if ((mode & kRepairHeader) && request.bytes.size() >= sizeof(wire::MessageHeader)) {
        wire::MessageHeader h;
        std::memcpy(&h, request.bytes.data(), sizeof h);
        h.magic = wire::kMagic;
        h.version = wire::kVersion;
        h.payloadSize = static_cast<uint32_t>(request.bytes.size() - sizeof h);
        h.fdCount = static_cast<uint16_t>(fdCount);
        h.error = 0;
        h.reserved = 0;
        h.opcode = static_cast<uint16_t>(wire::kFirstOp + h.opcode % (wire::kLastOp - wire::kFirstOp + 1));
        std::memcpy(request.bytes.data(), &h, sizeof h);
    }
    Reply reply = handleRequest(*harness.client, request);
    checkReply(reply);
    // The buffer fd a reply carries is the client's; dropping it ends the
    // buffer, which the next reap sees.
    reply.fd.reset();
    harness.service->reap();
    if (++harness.requests == kRequestsPerClient)
        harness.reconnect();
    return 0;
}
