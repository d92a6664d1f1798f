// SPDX-License-Identifier: MIT
// libFuzzer target: arbitrary bytes (and fds) as one request or as an event message for the client's decoder, or
// structured sequences of requests from two clients, moves and their events among them.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
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
constexpr uint8_t kEvent = 0x80;          // the rest is an event message for the client's decoder (decodeEventMessage)
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
        // Quotas keep allocations small so that iterations stay fast, and
        // the move bounds low so that inputs reach them. A move's bound on
        // acknowledgements is the longest there is: an input never lasts it,
        // so what happens does not depend on the clock.
        auto config = parseServiceConfig(
            "quota: {bytes: 64M, buffers: 256, pending_moves: 2, unacked_moves: 3}\nmove_ack_timeout_ms: 60000\n",
            "<fuzz>");
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
        case wire::Op::Forecast: ok = bool(wire::decode<AttachForecast>(r)); break;
        case wire::Op::Handshake: ok = bool(r.get<wire::HandshakeReply>()); break;
        case wire::Op::Allocate:
        case wire::Op::Create: ok = reply.fd.valid() && bool(r.get<wire::BufferReply>()); break;
        case wire::Op::AllocFor: ok = reply.fd.valid() && bool(wire::decode<wire::AllocForReply>(r)); break;
        case wire::Op::StorageFd: ok = reply.fd.valid(); break;
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

/// The move counters of @p uid are back to 0: no migration waits, no
/// event waits for an answer.
void checkMovesSettled(Service& service, uint32_t uid) {
    auto usage = service.usageOf(uid);
    if (usage.pendingMoves != 0)
        die("a waiting migration outlived its input");
    if (usage.unackedMoves != 0)
        die("an unacknowledged move event outlived its input");
}

/// Whatever the daemon sends as an event, the client must decode to the
/// same event.
void checkEventRoundTrip(const MoveEvent& event) {
    const Reply message = eventMessage(event);
    const auto datagrams = replyDatagrams(message);
    if (datagrams.size() != 1)
        die("an event in fragments");
    Datagram dg;
    dg.bytes = datagrams[0];
    dg.wireSize = dg.bytes.size();
    auto decoded = decodeEventMessage(dg);
    if (!decoded || !(*decoded == event))
        die("the client cannot decode an event the daemon sends");
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
    /// Per client: the move events its hooks received, not looked at yet,
    /// and its request the move gate parked (run again, as the daemon
    /// does, until it is answered; nothing else of it is read meanwhile).
    std::vector<MoveEvent> inbox[2];
    std::vector<std::pair<uint64_t, uint64_t>> pending[2]; // (attachment, sequence) of Pending events
    std::optional<Datagram> parked[2];
    /// Set: send() sends payloads whole (a composite step's requests).
    bool exact = false;

    Sequence(Harness& h, const uint8_t* data, size_t size) : harness(h), in(data, size) {}

    void connect(int which) {
        clients[which].reset();
        parked[which].reset();
        inbox[which].clear();
        pending[which].clear();
        auto c =
            harness.service->connect(Credentials{static_cast<int32_t>(100 + which), kUids[which], kUids[which], {}});
        if (!c)
            die("sequence connect");
        clients[which] = std::move(*c);
        // What a transport does: queue the events (the hooks may not call
        // the service), wake nothing (a parked request runs again at the
        // client's next step).
        constexpr size_t kMaxInbox = 64;
        harness.service->setHooks(clients[which]->id(), ClientHooks{[this, which](const MoveEvent& e) {
                                                                        if (inbox[which].size() < kMaxInbox)
                                                                            inbox[which].push_back(e);
                                                                    },
                                                                    {}});
    }

    /// The client looks at its events: each must survive the wire, and a
    /// Pending one is remembered for an acknowledgement.
    void readEvents(int which) {
        for (const MoveEvent& e : inbox[which]) {
            checkEventRoundTrip(e);
            if (e.kind == MoveEvent::Kind::Pending && pending[which].size() < 16)
                pending[which].emplace_back(e.attachment, e.sequence);
        }
        inbox[which].clear();
    }

    Reply run(int which, const Datagram& request) {
        Reply reply = handleRequest(*clients[which], request);
        if (!reply.parked)
            checkReply(reply);
        return reply;
    }

    template <typename T> Reply send(int which, wire::Op op, const T* payload, int fd) {
        const uint32_t size = payload ? sizeof(T) : 0;
        // Older (shorter) and newer (zero-extended) clients too, now and then.
        const uint32_t cut =
            !exact && in.ConsumeBool() && size ? in.ConsumeIntegralInRange<uint32_t>(0, size + 8) : size;
        Datagram request;
        wire::MessageHeader h = wire::makeHeader(op, cut, fd >= 0 ? 1 : 0, sequence++);
        request.bytes.resize(sizeof h + cut);
        std::memcpy(request.bytes.data(), &h, sizeof h);
        if (cut)
            std::memcpy(request.bytes.data() + sizeof h, payload, std::min(cut, size));
        request.wireSize = request.bytes.size();
        if (fd >= 0)
            request.fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        Reply reply = run(which, request);
        if (reply.parked) {
            if (op != wire::Op::Migrate && op != wire::Op::Attach)
                die("only a move waits");
            parked[which] = std::move(request);
            return reply;
        }
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
    /// A successful alloc-for reply passes the client library's strict
    /// check against the request it answers (ops::AllocFor::finish): the
    /// devices asked, in order, with bounded paths.
    static void checkAllocFor(const Reply& reply, const wire::AllocForRequest& request) {
        if (reply.parked || reply.header.error != 0)
            return;
        auto args = ops::AllocFor::parse(request);
        if (!args)
            die("the daemon served an alloc-for its own parse refuses");
        wire::Reader r(reply.payload);
        auto prefix = r.get<wire::ReplyPrefix>();
        if (!prefix || !r.getString(prefix->messageLength))
            die("alloc-for reply without prefix");
        auto body = wire::decode<wire::AllocForReply>(r);
        if (!body)
            die("the client cannot decode an alloc-for reply");
        UniqueFd fd(::fcntl(reply.fd.get(), F_DUPFD_CLOEXEC, 0));
        if (!fd.valid() || !ops::AllocFor::finish(std::move(*body), std::move(fd), *args))
            die("the client refuses the daemon's alloc-for reply");
    }

    void keep(Reply& reply) {
        if (reply.fd.valid() && pool.size() < kMaxPoolFds)
            pool.push_back(std::move(reply.fd));
    }

    /// The id a successful reply carries (wire::IdReply), or nullopt.
    static std::optional<uint64_t> idOf(const Reply& reply) {
        if (reply.parked || reply.header.error != 0)
            return std::nullopt;
        wire::Reader r(reply.payload);
        auto prefix = r.get<wire::ReplyPrefix>();
        if (!prefix || !r.getString(prefix->messageLength))
            return std::nullopt;
        auto id = r.get<wire::IdReply>();
        return id ? std::optional<uint64_t>(id->id) : std::nullopt;
    }

    /// Client @p which becomes a dynamic importer of a new buffer.
    void dynamicImporter(int which) {
        wire::HandshakeRequest h{wire::kVersion, wire::kVersion, wire::kCapMoveEvents, 0};
        send(which, wire::Op::Handshake, &h, -1);
        wire::CreateRequest c{};
        c.size = 64 * 1024;
        c.cpuAccess = 1;
        Reply created = send(which, wire::Op::Create, &c, -1);
        if (!created.fd.valid() || pool.size() >= kMaxPoolFds)
            return;
        const int fd = created.fd.get();
        keep(created);
        wire::AttachRequest a{};
        std::strncpy(a.device, in.ConsumeBool() ? "gpu" : "camera", sizeof a.device);
        a.flags = wire::kAttachDynamic;
        auto id = idOf(send(which, wire::Op::Attach, &a, fd));
        if (!id)
            return;
        wire::MapRequest m{};
        m.attachment = *id;
        send(which, wire::Op::Map, &m, -1);
        // And, now and then, the other client moves it at once (parked
        // until the importer answers, goes or the sequence ends).
        const int other = 1 - which;
        if (!parked[other] && in.ConsumeBool()) {
            wire::MigrateRequest r{};
            std::strncpy(r.heap, in.ConsumeBool() ? "linux,cma" : "system-uncached", sizeof r.heap);
            send(other, wire::Op::Migrate, &r, fd);
        }
    }

    void step() {
        static const char* const kHeaps[] = {"system", "system-uncached", "linux,cma", "no-such-heap"};
        static const char* const kDevices[] = {"gpu", "display", "camera", "vpu", "no-such-device"};
        static const uint32_t kFdFlags[] = {O_CLOEXEC | O_RDWR, O_CLOEXEC | O_RDONLY, O_RDWR, O_CLOEXEC | O_WRONLY,
                                            O_NONBLOCK};
        const int which = in.ConsumeBool() ? 1 : 0;
        readEvents(which);
        if (parked[which]) {
            // Its parked request, again: answered now, or parked still.
            Reply reply = run(which, *parked[which]);
            if (!reply.parked)
                parked[which].reset();
            harness.service->reap();
            return;
        }
        switch (in.ConsumeIntegralInRange<int>(0, 28)) {
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
            r.flags = in.ConsumeIntegralInRange<uint32_t>(0, 2); // static, dynamic, undefined
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
            // The handshake: capability bits (move events, and undefined ones).
            wire::HandshakeRequest r{};
            r.minVersion = in.ConsumeBool() ? wire::kVersion : in.ConsumeIntegral<uint16_t>();
            r.maxVersion = in.ConsumeBool() ? wire::kVersion : in.ConsumeIntegral<uint16_t>();
            r.capabilities = in.ConsumeBool() ? wire::kCapMoveEvents : in.ConsumeIntegral<uint32_t>();
            send(which, wire::Op::Handshake, &r, -1);
            break;
        }
        case 19: {
            wire::IdRequest r{smallId()};
            send(which, in.ConsumeBool() ? wire::Op::Pin : wire::Op::Unpin, &r, -1);
            break;
        }
        case 20:
        case 21: {
            wire::MigrateRequest r{};
            std::strncpy(r.heap, kHeaps[in.ConsumeIntegralInRange<size_t>(0, 3)], sizeof r.heap);
            send(which, wire::Op::Migrate, &r, pickFd());
            break;
        }
        case 22: {
            wire::ForecastRequest r{};
            std::strncpy(r.device, kDevices[in.ConsumeIntegralInRange<size_t>(0, 4)], sizeof r.device);
            send(which, wire::Op::Forecast, &r, pickFd());
            break;
        }
        case 23: {
            // Acknowledge a move it was told of, or one it was not.
            wire::AckMoveRequest r{smallId(), in.ConsumeIntegralInRange<uint64_t>(0, 4)};
            if (!pending[which].empty() && in.ConsumeBool()) {
                const size_t i = in.ConsumeIntegralInRange<size_t>(0, pending[which].size() - 1);
                r.attachment = pending[which][i].first;
                r.sequence = pending[which][i].second;
                pending[which].erase(pending[which].begin() + static_cast<std::ptrdiff_t>(i));
            }
            send(which, wire::Op::AckMove, &r, -1);
            break;
        }
        case 24:
        case 25: {
            // A dynamic importer of a new buffer in one step (events asked
            // for, the buffer made, a dynamic attach, a map): what a move by
            // the other client waits for, which single requests alone
            // rarely set up.
            exact = true;
            dynamicImporter(which);
            exact = false;
            break;
        }
        case 26: {
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
            checkAllocFor(reply, r);
            keep(reply);
            break;
        }
        case 27: {
            // The fd of a buffer's bytes, for any fd of the pool (read-only reopens included) or none.
            Reply reply = send(which, wire::Op::StorageFd, pickFd());
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
        for (int which : {0, 1}) {
            parked[which].reset();
            clients[which].reset();
        }
        harness.service->reap();
        if (harness.service->trackedBuffers() != before)
            die("a buffer outlived every fd of it");
        if (harness.service->context().liveBuffers() != liveBefore)
            die("storage outlived its buffer");
        for (uint32_t uid : kUids) {
            auto usage = harness.service->usageOf(uid);
            if (usage.bytes != 0 || usage.buffers != 0)
                die("a charge outlived its buffer");
            checkMovesSettled(*harness.service, uid);
        }
        if (!harness.service->context().lifetimeBugs().empty())
            die("a lifetime bug");
    }
};

// ------------------------------------------------------------ events
//
// Arbitrary bytes as a message from the daemon that the client's event
// decoder (decodeEventMessage) gets: it decodes an event or refuses it,
// never reads past the bytes, and what it decodes survives the wire.

void decodeEvent(uint8_t mode, const uint8_t* data, size_t size) {
    Datagram dg;
    dg.bytes.assign(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data + size));
    dg.wireSize = dg.bytes.size();
    static const UniqueFd nothing(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    for (size_t i = 0; i < (mode & kFdCountMask); ++i)
        dg.fds.emplace_back(::fcntl(nothing.get(), F_DUPFD_CLOEXEC, 0));
    dg.controlTruncated = mode & kCtrunc;
    dg.foreignControl = mode & kForeignControl;
    if ((mode & kRepairHeader) && dg.bytes.size() >= sizeof(wire::MessageHeader)) {
        wire::MessageHeader h;
        std::memcpy(&h, dg.bytes.data(), sizeof h);
        h.magic = wire::kMagic;
        h.version = wire::kVersion;
        h.opcode = wire::kEventMove;
        h.flags = wire::kFlagEvent;
        h.payloadSize = static_cast<uint32_t>(dg.bytes.size() - sizeof h);
        h.fdCount = 0;
        h.sequence = 0;
        h.error = 0;
        h.reserved = 0;
        std::memcpy(dg.bytes.data(), &h, sizeof h);
    }
    auto event = decodeEventMessage(dg);
    if (!event) {
        if (event.error().message().empty())
            die("an event refused without a message");
        return;
    }
    if (!dg.fds.empty() || dg.controlTruncated || dg.foreignControl)
        die("an event with fds or control data decoded");
    if (static_cast<uint32_t>(event->kind) > static_cast<uint32_t>(MoveEvent::Kind::Cancelled))
        die("an event of an undefined kind decoded");
    checkEventRoundTrip(*event);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Harness harness;
    if (size == 0)
        return 0;
    const uint8_t mode = data[0];
    if (mode & kEvent) {
        decodeEvent(mode, data + 1, size - 1);
        return 0;
    }
    if (mode & kSequence) {
        Sequence(harness, data + 1, size - 1).run();
        checkMovesSettled(*harness.service, 1000);
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
    checkMovesSettled(*harness.service, 1000);
    return 0;
}
