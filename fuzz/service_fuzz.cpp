// SPDX-License-Identifier: MIT
// libFuzzer target: arbitrary bytes (and fds) as one request, or structured sequences of requests from two clients.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <unistd.h>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>
#include <linux/dma-buf.h>

#include <cenalloc/memfd.h>

#include "service/config.h"
#include "service/dispatch.h"
#include "service/operations.h"
#include "service/service.h"

namespace {

using namespace cenalloc;

// The first input byte says how the rest travels; the rest is the datagram.
constexpr uint8_t kFdCountMask = 0x3;     // 0..3 fds attached
constexpr uint8_t kForeignFd = 0x4;       // attach a memfd that is not a buffer instead of a buffer
constexpr uint8_t kCtrunc = 0x8;          // pretend the kernel set MSG_CTRUNC
constexpr uint8_t kForeignControl = 0x10; // pretend other control data arrived
constexpr uint8_t kRepairHeader = 0x20;   // make magic, version, sizes and fd count right so the payload is reached
constexpr uint8_t kSequence = 0x40;       // the rest is a sequence of requests from two clients (runSequence)
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
            auto b = service->allocate((*owner)->id(), *AllocRequest::make(heap, 64 * 1024, O_CLOEXEC | O_RDWR, 0));
            if (!b)
                die("buffer");
            buffers.push_back(std::move(b->fd));
        }
        auto d = service->create((*owner)->id(), *CreateRequest::make(128 * 1024, "deferred", CpuAccess::Rare));
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
        case wire::Op::ListHeaps: ok = bool(wire::decode<std::vector<HeapInfo>>(r)); break;
        case wire::Op::Stats: ok = bool(wire::decode<AllocatorStats>(r)); break;
        case wire::Op::Bufinfo: ok = bool(wire::decode<std::vector<BufferInfo>>(r)); break;
        case wire::Op::Platform: ok = bool(wire::decode<wire::PlatformBody>(r)); break;
        case wire::Op::Map: ok = bool(wire::decode<SessionMapping>(r)); break;
        case wire::Op::Describe: ok = bool(wire::decode<BufferInfo>(r)); break;
        case wire::Op::Allocate:
        case wire::Op::Create: ok = reply.fd.valid() && bool(r.get<wire::BufferReply>()); break;
        case wire::Op::AllocFor: ok = reply.fd.valid() && bool(wire::decode<wire::AllocForReply>(r)); break;
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

// ------------------------------------------------------------ sequences
//
// A sequence is a series of well-formed requests (each op with its payload,
// fds from a pool the two clients share as processes would pass them on)
// from two clients of different uids, with disconnects, reconnects and
// buffers dying in between, through the same decoding and dispatch as the
// daemon's. After it, everything the two held is let go, and the service
// must be back where it started: no buffer, charge, claim or lifetime bug
// left behind (what the random bytes alone rarely reach).

constexpr uint32_t kUids[2] = {1000, 1001};
constexpr size_t kMaxPoolFds = 24;
constexpr size_t kMaxSteps = 64;

struct Sequence {
    Harness& harness;
    FuzzedDataProvider in;
    std::unique_ptr<ServiceClient> clients[2];
    std::vector<UniqueFd> pool; // buffer fds the clients hold
    uint32_t sequence = 1;

    Sequence(Harness& h, const uint8_t* data, size_t size) : harness(h), in(data, size) {}

    void connect(int which) {
        clients[which].reset();
        auto c =
            harness.service->connect(Credentials{static_cast<int32_t>(100 + which), kUids[which], kUids[which], {}});
        if (!c)
            die("sequence connect");
        clients[which] = std::move(*c);
    }

    template <typename T> Reply send(int which, wire::Op op, const T* payload, int fd) {
        const uint32_t size = payload ? sizeof(T) : 0;
        // Older (shorter) and newer (zero-extended) clients too, now and then.
        const uint32_t cut = in.ConsumeBool() && size ? in.ConsumeIntegralInRange<uint32_t>(0, size + 8) : size;
        Datagram request;
        wire::MessageHeader h = wire::makeHeader(op, cut, fd >= 0 ? 1 : 0, sequence++);
        request.bytes.resize(sizeof h + cut);
        std::memcpy(request.bytes.data(), &h, sizeof h);
        if (cut)
            std::memcpy(request.bytes.data() + sizeof h, payload, std::min(cut, size));
        request.wireSize = request.bytes.size();
        if (fd >= 0)
            request.fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        Reply reply = handleRequest(*clients[which], request);
        checkReply(reply);
        if (reply.header.error == 0 && reply.header.sequence != h.sequence)
            die("reply to another request");
        return reply;
    }
    Reply send(int which, wire::Op op, int fd = -1) { return send<char>(which, op, nullptr, fd); }

    int pickFd() {
        if (pool.empty() || in.ConsumeIntegralInRange<int>(0, 15) == 0)
            return in.ConsumeBool() ? harness.foreign.get()
                                    : harness.buffers[in.ConsumeIntegralInRange<size_t>(0, 2)].get();
        return pool[in.ConsumeIntegralInRange<size_t>(0, pool.size() - 1)].get();
    }
    uint64_t smallId() { return in.ConsumeIntegralInRange<uint64_t>(0, 6); }
    void keep(Reply& reply) {
        if (reply.fd.valid() && pool.size() < kMaxPoolFds)
            pool.push_back(std::move(reply.fd));
    }

    void step() {
        static const char* const kHeaps[] = {"system", "system-uncached", "linux,cma", "no-such-heap"};
        static const char* const kDevices[] = {"gpu", "display", "camera", "vpu", "no-such-device"};
        static const uint32_t kFdFlags[] = {O_CLOEXEC | O_RDWR, O_CLOEXEC | O_RDONLY, O_RDWR, O_CLOEXEC | O_WRONLY,
                                            O_NONBLOCK};
        const int which = in.ConsumeBool() ? 1 : 0;
        switch (in.ConsumeIntegralInRange<int>(0, 19)) {
        case 0: {
            wire::AllocateRequest r{};
            r.length = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 4 * 1024 * 1024)
                                        : in.ConsumeIntegral<uint64_t>();
            r.fdFlags = kFdFlags[in.ConsumeIntegralInRange<size_t>(0, 4)];
            r.heapFlags = in.ConsumeIntegralInRange<uint64_t>(0, 1);
            std::strncpy(r.heap, kHeaps[in.ConsumeIntegralInRange<size_t>(0, 3)], sizeof r.heap);
            Reply reply = send(which, wire::Op::Allocate, &r, -1);
            keep(reply);
            break;
        }
        case 1: {
            wire::CreateRequest r{};
            r.size = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 4 * 1024 * 1024)
                                      : in.ConsumeIntegral<uint64_t>();
            r.cpuAccess = in.ConsumeIntegralInRange<uint32_t>(0, 3);
            std::string name = in.ConsumeRandomLengthString(sizeof r.name);
            std::memcpy(r.name, name.data(), std::min(name.size(), sizeof r.name));
            Reply reply = send(which, wire::Op::Create, &r, -1);
            keep(reply);
            break;
        }
        case 2: send(which, wire::Op::Import, pickFd()); break;
        case 3: send(which, wire::Op::Release, pickFd()); break;
        case 4: {
            wire::AttachRequest r{};
            std::strncpy(r.device, kDevices[in.ConsumeIntegralInRange<size_t>(0, 4)], sizeof r.device);
            send(which, wire::Op::Attach, &r, pickFd());
            break;
        }
        case 5: {
            wire::IdRequest r{smallId()};
            send(which, wire::Op::Detach, &r, -1);
            break;
        }
        case 6: {
            wire::MapRequest r{};
            r.attachment = smallId();
            r.direction = in.ConsumeIntegralInRange<uint32_t>(0, 3);
            send(which, wire::Op::Map, &r, -1);
            break;
        }
        case 7: {
            wire::IdRequest r{smallId()};
            send(which, wire::Op::Unmap, &r, -1);
            break;
        }
        case 8:
        case 9: {
            wire::SyncRequest r{};
            r.flags = in.ConsumeIntegralInRange<uint32_t>(0, 4);
            send(which, in.ConsumeBool() ? wire::Op::BeginCpuAccess : wire::Op::EndCpuAccess, &r, pickFd());
            break;
        }
        case 10: {
            wire::SetNameRequest r{};
            std::string name = in.ConsumeRandomLengthString(sizeof r.name);
            std::memcpy(r.name, name.data(), std::min(name.size(), sizeof r.name));
            send(which, wire::Op::SetName, &r, pickFd());
            break;
        }
        case 11: send(which, wire::Op::Bufinfo); break;
        case 12: {
            wire::StatsRequest r{};
            r.flags = in.ConsumeIntegralInRange<uint32_t>(0, 1);
            send(which, wire::Op::Stats, &r, -1);
            break;
        }
        case 13:
            // A buffer's last fd goes (here, or in the other process).
            if (!pool.empty())
                pool.erase(pool.begin() +
                           static_cast<std::ptrdiff_t>(in.ConsumeIntegralInRange<size_t>(0, pool.size() - 1)));
            break;
        case 14: connect(which); break; // hang up and come back: claims go, charges stay with the buffers
        case 15: {
            // Another fd of a buffer in the pool: a dup, or a reopen through /proc (as another process would).
            if (pool.empty() || pool.size() >= kMaxPoolFds)
                break;
            int fd = pool[in.ConsumeIntegralInRange<size_t>(0, pool.size() - 1)].get();
            UniqueFd again(in.ConsumeBool()
                               ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0)
                               : ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_RDONLY | O_CLOEXEC));
            if (again.valid())
                pool.push_back(std::move(again));
            break;
        }
        case 16: send(which, wire::Op::ListHeaps); break;
        case 17: send(which, wire::Op::Describe, pickFd()); break;
        case 18: {
            // Devices from the list (duplicates and unknown ones included), a count that may not match, and
            // now and then a stray byte in a slot past the count.
            wire::AllocForRequest r{};
            r.size = in.ConsumeBool() ? in.ConsumeIntegralInRange<uint64_t>(0, 4 * 1024 * 1024)
                                      : in.ConsumeIntegral<uint64_t>();
            r.fdFlags = kFdFlags[in.ConsumeIntegralInRange<size_t>(0, 4)];
            r.cpuAccess = in.ConsumeIntegralInRange<uint32_t>(0, 3);
            r.deviceCount = in.ConsumeIntegralInRange<uint32_t>(0, wire::kAllocForDevices + 1);
            const size_t filled = in.ConsumeIntegralInRange<size_t>(0, wire::kAllocForDevices);
            for (size_t i = 0; i < filled; ++i)
                std::strncpy(r.devices[i], kDevices[in.ConsumeIntegralInRange<size_t>(0, 4)], sizeof r.devices[i]);
            if (in.ConsumeBool())
                r.devices[in.ConsumeIntegralInRange<size_t>(0, wire::kAllocForDevices - 1)][63] = 'x';
            std::string name = in.ConsumeRandomLengthString(sizeof r.name);
            std::memcpy(r.name, name.data(), std::min(name.size(), sizeof r.name));
            Reply reply = send(which, wire::Op::AllocFor, &r, -1);
            keep(reply);
            break;
        }
        default: {
            // Any bytes at all, now and then, in the middle of a conversation.
            std::string bytes = in.ConsumeRandomLengthString(256);
            Datagram request;
            request.bytes.assign(reinterpret_cast<const std::byte*>(bytes.data()),
                                 reinterpret_cast<const std::byte*>(bytes.data() + bytes.size()));
            request.wireSize = request.bytes.size();
            checkReply(handleRequest(*clients[which], request));
            break;
        }
        }
        harness.service->reap();
    }

    void run() {
        const size_t before = harness.service->trackedBuffers();
        const uint64_t liveBefore = harness.service->context().liveBuffers();
        connect(0);
        connect(1);
        for (size_t i = 0; i < kMaxSteps && in.remaining_bytes() > 0; ++i)
            step();
        // Everything goes: the fds (the buffers die) and the clients.
        pool.clear();
        clients[0].reset();
        clients[1].reset();
        harness.service->reap();
        if (harness.service->trackedBuffers() != before)
            die("a buffer outlived every fd of it");
        if (harness.service->context().liveBuffers() != liveBefore)
            die("storage outlived its buffer");
        for (uint32_t uid : kUids) {
            auto usage = harness.service->usageOf(uid);
            if (usage.bytes != 0 || usage.buffers != 0)
                die("a charge outlived its buffer");
        }
        if (!harness.service->context().lifetimeBugs().empty())
            die("a lifetime bug");
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Harness harness;
    if (size == 0)
        return 0;
    const uint8_t mode = data[0];
    if (mode & kSequence) {
        Sequence(harness, data + 1, size - 1).run();
        return 0;
    }
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
