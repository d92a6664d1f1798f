// SPDX-License-Identifier: MIT
// Tests of the daemon's request validation, each failure alone: its errno, no fd leaked, the daemon still serving.
#include <cerrno>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/operations.h"
#include "service/protocol.h"
#include "service/socket_io.h"
#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"
#include "support/sockets.h"

namespace cenalloc {
namespace {

using namespace wire;

struct RawReply {
    MessageHeader header{};
    int error = 0;
    std::string message;
    std::vector<std::byte> body;
    std::vector<UniqueFd> fds;
};

/// A client that writes whatever bytes a test gives it.
class RawClient {
public:
    explicit RawClient(const std::string& path) : fd_(test::connectRaw(path)) {}

    RawReply send(const std::vector<std::byte>& bytes, std::vector<int> fds = {}) {
        EXPECT_TRUE(sendDatagram(fd_, bytes, fds));
        RawReply reply;
        auto dg = receiveDatagram(fd_, kMaxFragmentSize);
        EXPECT_TRUE(dg) << dg.error().toString();
        if (!dg || dg->bytes.size() < sizeof(MessageHeader) + sizeof(ReplyPrefix))
            return reply;
        std::memcpy(&reply.header, dg->bytes.data(), sizeof reply.header);
        EXPECT_EQ(reply.header.magic, kMagic);
        EXPECT_EQ(reply.header.payloadSize, dg->bytes.size() - sizeof(MessageHeader));
        EXPECT_EQ(reply.header.flags, 0) << "small replies are not fragmented";
        Reader r(std::span(dg->bytes).subspan(sizeof(MessageHeader)));
        auto prefix = r.get<ReplyPrefix>();
        auto message = r.getString(prefix->messageLength);
        reply.error = reply.header.error;
        reply.message = message ? *message : "";
        size_t consumed = dg->bytes.size() - r.remaining();
        reply.body.assign(dg->bytes.begin() + static_cast<std::ptrdiff_t>(consumed), dg->bytes.end());
        reply.fds = std::move(dg->fds);
        return reply;
    }

    /// A valid request; the test then breaks one thing of it.
    template <typename T>
    static std::vector<std::byte> message(Op op, const T* payload, size_t payloadSize, uint16_t fdCount = 0,
                                          uint32_t sequence = 1) {
        MessageHeader h = makeHeader(op, static_cast<uint32_t>(payloadSize), fdCount, sequence);
        std::vector<std::byte> bytes(sizeof h + payloadSize);
        std::memcpy(bytes.data(), &h, sizeof h);
        if (payloadSize)
            std::memcpy(bytes.data() + sizeof h, payload, std::min(payloadSize, sizeof(T)));
        return bytes;
    }
    static std::vector<std::byte> message(Op op, uint16_t fdCount = 0) {
        return message<char>(op, nullptr, 0, fdCount);
    }

    int fd() const { return fd_.get(); }

private:
    UniqueFd fd_;
};

MessageHeader& headerOf(std::vector<std::byte>& bytes) {
    return *reinterpret_cast<MessageHeader*>(bytes.data());
}

AllocateRequest allocateRequest(const char* heap = "system", uint64_t length = 4096) {
    AllocateRequest r{};
    r.length = length;
    r.fdFlags = O_CLOEXEC | O_RDWR;
    std::strncpy(r.heap, heap, sizeof r.heap);
    return r;
}

class DaemonProtocol : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(daemon_.ok());
        raw_ = std::make_unique<RawClient>(daemon_.path());
        // A first request so that the connection's thread exists before the fd count is taken.
        ASSERT_EQ(raw_->send(RawClient::message(Op::ListHeaps)).error, 0);
        other_ = daemon_.connect();
        ASSERT_NE(other_, nullptr);
        snapshotFds();
    }

    /// Count the process's fds once both connections' threads are idle (a
    /// round trip on each: a thread closes the daemon's copy of a reply's fd
    /// right after sending the reply, before it reads the next request).
    void snapshotFds() {
        EXPECT_EQ(raw_->send(RawClient::message(Op::ListHeaps)).error, 0);
        EXPECT_TRUE(other_->heaps());
        fdsBefore_ = test::openFdCount();
    }

    /// The request failed with @p code, the daemon kept no fd, and both this
    /// connection and a new client are still served.
    void expectRejected(const RawReply& reply, int code) {
        EXPECT_EQ(reply.error, code) << reply.message;
        EXPECT_FALSE(reply.message.empty()) << "every error says what was wrong";
        EXPECT_TRUE(reply.fds.empty());
        EXPECT_EQ(raw_->send(RawClient::message(Op::ListHeaps)).error, 0) << "the connection still works";
        EXPECT_TRUE(other_->allocate("system", 4096)) << "another client is still served";
        EXPECT_TRUE(other_->heaps()); // see snapshotFds()
        EXPECT_EQ(test::openFdCountOnceDaemonClosed(BorrowedFd(raw_->fd())), fdsBefore_) << "the daemon leaked an fd";
    }

    test::InProcessDaemon daemon_;
    std::unique_ptr<RawClient> raw_;
    std::unique_ptr<Session> other_;
    size_t fdsBefore_ = 0;
};

TEST_F(DaemonProtocol, AValidRequestWorks) {
    auto req = allocateRequest();
    auto reply = raw_->send(RawClient::message(Op::Allocate, &req, sizeof req));
    ASSERT_EQ(reply.error, 0) << reply.message;
    ASSERT_EQ(reply.fds.size(), 1u);
    EXPECT_TRUE(test::hasCloexec(reply.fds[0].get())) << "received with MSG_CMSG_CLOEXEC";
    EXPECT_EQ(reply.header.sequence, 1u);
    EXPECT_EQ(reply.header.opcode, static_cast<uint16_t>(Op::Allocate));
    BufferReply body;
    ASSERT_EQ(reply.body.size(), sizeof body);
    std::memcpy(&body, reply.body.data(), sizeof body);
    EXPECT_EQ(body.size, 4096u);
    EXPECT_EQ(test::fdSize(reply.fds[0].get()), 4096u);
}

TEST_F(DaemonProtocol, BadMagicIsEinval) {
    auto bytes = RawClient::message(Op::ListHeaps);
    headerOf(bytes).magic = 0x12345678;
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, BadVersionIsEinval) {
    for (uint16_t version : {0, 2, 0xffff}) {
        SCOPED_TRACE(version);
        auto bytes = RawClient::message(Op::ListHeaps);
        headerOf(bytes).version = version;
        expectRejected(raw_->send(bytes), EINVAL);
    }
}

TEST_F(DaemonProtocol, UnknownOpcodeIsEinval) {
    for (uint16_t op : {0, kLastOp + 1, 0xffff}) {
        SCOPED_TRACE(op);
        auto bytes = RawClient::message(Op::ListHeaps);
        headerOf(bytes).opcode = op;
        expectRejected(raw_->send(bytes), EINVAL);
    }
}

TEST_F(DaemonProtocol, NonZeroReservedHeaderFieldsAreEinval) {
    auto bytes = RawClient::message(Op::ListHeaps);
    headerOf(bytes).reserved = 1ull << 63;
    expectRejected(raw_->send(bytes), EINVAL);
    bytes = RawClient::message(Op::ListHeaps);
    headerOf(bytes).error = EIO; // the error field is reserved in requests
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, EveryUndefinedFlagBitIsEinval) {
    for (int bit = 0; bit < 16; ++bit) {
        SCOPED_TRACE(bit);
        auto bytes = RawClient::message(Op::ListHeaps);
        headerOf(bytes).flags = static_cast<uint16_t>(1u << bit);
        expectRejected(raw_->send(bytes), EINVAL);
    }
}

TEST_F(DaemonProtocol, NonZeroReservedPayloadFieldsAreEinval) {
    {
        auto req = allocateRequest();
        req.reserved = 1;
        expectRejected(raw_->send(RawClient::message(Op::Allocate, &req, sizeof req)), EINVAL);
    }
    {
        wire::CreateRequest req{4096, 1, 2, {}};
        expectRejected(raw_->send(RawClient::message(Op::Create, &req, sizeof req)), EINVAL);
    }
    {
        MapRequest req{1, 0, 9};
        expectRejected(raw_->send(RawClient::message(Op::Map, &req, sizeof req)), EINVAL);
    }
    {
        StatsRequest req{0, 1};
        expectRejected(raw_->send(RawClient::message(Op::Stats, &req, sizeof req)), EINVAL);
    }
    {
        HandshakeRequest req{1, 1, 0, 5};
        expectRejected(raw_->send(RawClient::message(Op::Handshake, &req, sizeof req)), EINVAL);
    }
    {
        HandshakeRequest req{1, 1, 0x4, 0}; // a capability nobody defined
        expectRejected(raw_->send(RawClient::message(Op::Handshake, &req, sizeof req)), EINVAL);
    }
    {
        AttachRequest req{};
        req.device[0] = 'g';
        req.reserved = 1;
        auto memfd = createSealedMemfd("x", 4096);
        snapshotFds();
        expectRejected(raw_->send(RawClient::message(Op::Attach, &req, sizeof req, 1), {memfd->get()}), EINVAL);
    }
    {
        AttachRequest req{};
        req.device[0] = 'g';
        req.flags = 0x2; // a flag nobody defined
        auto memfd = createSealedMemfd("x", 4096);
        snapshotFds();
        expectRejected(raw_->send(RawClient::message(Op::Attach, &req, sizeof req, 1), {memfd->get()}), EINVAL);
    }
    {
        AckMoveRequest req{1, 0}; // sequence 0 is no move's
        snapshotFds();
        expectRejected(raw_->send(RawClient::message(Op::AckMove, &req, sizeof req)), EINVAL);
    }
    {
        auto memfd = createSealedMemfd("x", 4096); // the fd is checked after the struct
        snapshotFds();
        SyncRequest req{kSyncRead, 1};
        expectRejected(raw_->send(RawClient::message(Op::BeginCpuAccess, &req, sizeof req, 1), {memfd->get()}), EINVAL);
    }
}

TEST_F(DaemonProtocol, UndefinedPayloadFlagsAndValuesAreEinval) {
    {
        StatsRequest req{0x2, 0};
        expectRejected(raw_->send(RawClient::message(Op::Stats, &req, sizeof req)), EINVAL);
    }
    {
        wire::CreateRequest req{4096, 3, 0, {}}; // cpu access 3 does not exist
        expectRejected(raw_->send(RawClient::message(Op::Create, &req, sizeof req)), EINVAL);
    }
    {
        MapRequest req{1, 3, 0}; // direction 3 does not exist
        expectRejected(raw_->send(RawClient::message(Op::Map, &req, sizeof req)), EINVAL);
    }
    {
        auto req = allocateRequest();
        req.heap[10] = 'x'; // junk after the name's NUL
        expectRejected(raw_->send(RawClient::message(Op::Allocate, &req, sizeof req)), EINVAL);
    }
}

wire::AllocForRequest allocForRequest(std::vector<const char*> devices, uint64_t size = 3 << 20) {
    wire::AllocForRequest r{};
    r.size = size;
    r.fdFlags = O_CLOEXEC | O_RDWR;
    r.cpuAccess = 1;
    r.deviceCount = static_cast<uint32_t>(devices.size());
    for (size_t i = 0; i < devices.size(); ++i)
        std::strncpy(r.devices[i], devices[i], sizeof r.devices[i]);
    std::strncpy(r.name, "for-devices", sizeof r.name);
    return r;
}

TEST_F(DaemonProtocol, AllocForAnswersTheHeapItChoseAndTheBuffersFd) {
    auto req = allocForRequest({"display", "gpu"});
    auto reply = raw_->send(RawClient::message(Op::AllocFor, &req, sizeof req));
    ASSERT_EQ(reply.error, 0) << reply.message;
    ASSERT_EQ(reply.fds.size(), 1u);
    EXPECT_EQ(test::fdSize(reply.fds[0].get()), 3u << 20);
    Reader r(reply.body);
    auto body = decode<AllocForReply>(r);
    ASSERT_TRUE(body) << body.error().toString();
    EXPECT_EQ(r.remaining(), 0u);
    EXPECT_NE(body->buffer, 0u);
    EXPECT_EQ(body->size, 3u << 20);
    EXPECT_EQ(body->heap, "linux,cma");
    EXPECT_EQ(body->kernelHeap, "") << "the model's storage";
    EXPECT_NE(body->reason.find("display and gpu"), std::string::npos) << body->reason;

    // The client library says the same.
    auto request = cenalloc::AllocForRequest::make({"gpu"}, 5000, "via-session", CpuAccess::Often);
    ASSERT_TRUE(request);
    auto allocated = other_->allocateFor(*request);
    ASSERT_TRUE(allocated) << allocated.error().toString();
    EXPECT_EQ(allocated->size, 2 * 4096u);
    EXPECT_EQ(allocated->heap, "system");
    EXPECT_TRUE(test::hasCloexec(allocated->fd.get()));
    EXPECT_EQ(test::fdSize(allocated->fd.get()), 2 * 4096u);
    auto unknown = other_->allocateFor(*cenalloc::AllocForRequest::make({"toaster"}, 4096));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), ENODEV);
}

TEST_F(DaemonProtocol, HostileAllocForRequestsAreRefusedAndLeaveNothingBehind) {
    struct Case {
        const char* what;
        wire::AllocForRequest req;
        int code;
    };
    std::vector<Case> cases;
    auto add = [&](const char* what, auto change, int code = EINVAL) {
        auto req = allocForRequest({"display", "gpu"});
        change(req);
        cases.push_back({what, req, code});
    };
    add("reserved", [](auto& r) { r.reserved = 1; });
    add("cpu access 3", [](auto& r) { r.cpuAccess = 3; });
    add("no device", [](auto& r) { r.deviceCount = 0; });
    add("17 devices", [](auto& r) { r.deviceCount = 17; });
    add("a count beyond the names", [](auto& r) { r.deviceCount = 3; });
    add("a name past the count", [](auto& r) { r.deviceCount = 1; });
    add("a stray byte in an unused slot", [](auto& r) { r.devices[15][63] = 'x'; });
    add("a name without its NUL", [](auto& r) { std::memset(r.devices[0], 'd', sizeof r.devices[0]); });
    add("junk after a name's NUL", [](auto& r) { r.devices[1][40] = 'x'; });
    add("a device twice", [](auto& r) { std::strcpy(r.devices[1], "display"); });
    add("junk after the buffer name's NUL", [](auto& r) { r.name[31] = 'x'; });
    add("size 0", [](auto& r) { r.size = 0; });
    add("an overflowing size", [](auto& r) { r.size = UINT64_MAX; });
    add("fd flags", [](auto& r) { r.fdFlags = O_NONBLOCK; });
    add("more than any heap holds", [](auto& r) { r.size = uint64_t{1} << 40; });
    add(
        "an unknown device", [](auto& r) { std::strcpy(r.devices[1], "toaster"); }, ENODEV);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        expectRejected(raw_->send(RawClient::message(Op::AllocFor, &c.req, sizeof c.req)), c.code);
    }
    auto stats = other_->stats();
    ASSERT_TRUE(stats);
    // The heap display and gpu would get was never asked (the other client's checks allocate from system).
    for (const HeapInfo& heap : stats->heaps)
        EXPECT_TRUE(heap.name == "system" || heap.stats.totalAllocations == 0) << heap.name;
}

TEST_F(DaemonProtocol, ALongerPayloadIsAcceptedOnlyWhenTheExtraBytesAreZero) {
    auto req = allocateRequest();
    auto bytes = RawClient::message(Op::Allocate, &req, sizeof req + 24);
    auto ok = raw_->send(bytes);
    EXPECT_EQ(ok.error, 0) << ok.message;
    EXPECT_EQ(ok.fds.size(), 1u);
    ok.fds.clear();
    snapshotFds();
    bytes.back() = std::byte{1};
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, AShorterPayloadIsZeroExtended) {
    // An "older" map request: only the attachment id; direction and
    // reserved read as zero (bidirectional).
    auto session = daemon_.connect();
    RawClient raw(daemon_.path());
    auto req = allocateRequest("system-dma32");
    auto allocated = raw.send(RawClient::message(Op::Allocate, &req, sizeof req));
    ASSERT_EQ(allocated.error, 0);
    AttachRequest attach{};
    std::strcpy(attach.device, "usb");
    auto attached = raw.send(RawClient::message(Op::Attach, &attach, sizeof attach, 1), {allocated.fds[0].get()});
    ASSERT_EQ(attached.error, 0) << attached.message;
    IdReply id;
    std::memcpy(&id, attached.body.data(), sizeof id);
    MapRequest map{id.id, 0, 0};
    auto mapped = raw.send(RawClient::message(Op::Map, &map, 8));
    ASSERT_EQ(mapped.error, 0) << mapped.message;
    Reader r(mapped.body);
    auto m = decode<SessionMapping>(r);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->direction, DmaDirection::Bidirectional);
    EXPECT_FALSE(m->segments.empty());
    // No payload at all for stats: flags zero, nothing reset.
    auto stats = raw.send(RawClient::message(Op::Stats));
    EXPECT_EQ(stats.error, 0) << stats.message;
}

TEST_F(DaemonProtocol, APayloadSizeThatDisagreesWithTheMessageIsEinval) {
    auto req = allocateRequest();
    auto bytes = RawClient::message(Op::Allocate, &req, sizeof req);
    headerOf(bytes).payloadSize = sizeof req - 8;
    expectRejected(raw_->send(bytes), EINVAL);
    headerOf(bytes).payloadSize = sizeof req + 8;
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, AMessageShorterThanTheHeaderIsEinval) {
    const auto whole = RawClient::message(Op::ListHeaps);
    // A copy of the first 20 bytes (resize() here trips a false -Warray-bounds in GCC 12's TSan build).
    const std::vector<std::byte> bytes(whole.begin(), whole.begin() + 20);
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, AZeroByteDatagramIsEinvalAndTheConnectionStaysOpen) {
    expectRejected(raw_->send({}), EINVAL);
}

TEST_F(DaemonProtocol, AnOversizedRequestIsEinval) {
    std::vector<std::byte> zeros(kMaxRequestSize);
    auto bytes = RawClient::message(Op::ListHeaps, zeros.data(), zeros.size());
    expectRejected(raw_->send(bytes), EINVAL);
}

TEST_F(DaemonProtocol, AnFdCountThatDisagreesWithTheFdsSentIsEinvalAndTheFdsAreClosed) {
    auto buffer = other_->allocate("system", 4096);
    ASSERT_TRUE(buffer);
    snapshotFds();
    // The header announces an fd, none is attached.
    expectRejected(raw_->send(RawClient::message(Op::Import, 1)), EINVAL);
    // One is attached, the header announces none.
    expectRejected(raw_->send(RawClient::message(Op::Import, 0), {buffer->get()}), EINVAL);
    // Two attached for an op that takes one.
    expectRejected(raw_->send(RawClient::message(Op::Import, 2), {buffer->get(), buffer->get()}), EINVAL);
    // An fd for an op that takes none.
    expectRejected(raw_->send(RawClient::message(Op::ListHeaps, 1), {buffer->get()}), EINVAL);
    // The fd was the only thing missing: the same request with it works.
    auto ok = raw_->send(RawClient::message(Op::Import, 1), {buffer->get()});
    EXPECT_EQ(ok.error, 0) << ok.message;
    EXPECT_EQ(test::openFdCount(), fdsBefore_);
}

TEST_F(DaemonProtocol, TruncatedControlDataIsEinvalAndEveryReceivedFdIsClosed) {
    auto buffer = other_->allocate("system", 4096);
    ASSERT_TRUE(buffer);
    // More fds than the daemon's control buffer takes: MSG_CTRUNC.
    std::vector<UniqueFd> many;
    std::vector<int> raw;
    for (int i = 0; i < 16; ++i) {
        many.emplace_back(::fcntl(buffer->get(), F_DUPFD_CLOEXEC, 0));
        raw.push_back(many.back().get());
    }
    snapshotFds();
    // sendDatagram caps at 8; build this one by hand.
    auto bytes = RawClient::message(Op::Import, 16);
    iovec iov{bytes.data(), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * 16);
    std::memcpy(CMSG_DATA(c), raw.data(), sizeof(int) * 16);
    ASSERT_EQ(::sendmsg(raw_->fd(), &msg, 0), static_cast<ssize_t>(bytes.size()));
    auto dg = receiveDatagram(BorrowedFd(raw_->fd()), kMaxFragmentSize);
    ASSERT_TRUE(dg);
    MessageHeader h;
    std::memcpy(&h, dg->bytes.data(), sizeof h);
    RawReply reply;
    reply.error = h.error;
    reply.message = "control data";
    expectRejected(reply, EINVAL);
    many.clear();
    snapshotFds();
    auto ok = raw_->send(RawClient::message(Op::Import, 1), {buffer->get()});
    EXPECT_EQ(ok.error, 0) << ok.message;
    EXPECT_EQ(test::openFdCount(), fdsBefore_);
}

TEST_F(DaemonProtocol, AnOpThatNeedsAnFdGetsEbadfForAForeignOne) {
    auto memfd = createSealedMemfd("stranger", 4096);
    ASSERT_TRUE(memfd);
    snapshotFds();
    expectRejected(raw_->send(RawClient::message(Op::Import, 1), {memfd->get()}), EBADF);
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd a(pipeFds[0]), b(pipeFds[1]);
    snapshotFds();
    expectRejected(raw_->send(RawClient::message(Op::Release, 1), {a.get()}), EBADF);
}

TEST_F(DaemonProtocol, AClosedFdIsEbadfForTheClientAndTheConnectionGoesOn) {
    int closed = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(closed, 0);
    ::close(closed);
    for (int i = 0; i < 2; ++i) {
        auto id = other_->import(BorrowedFd(closed));
        ASSERT_FALSE(id);
        EXPECT_EQ(id.error().code(), EBADF) << id.error().message();
    }
    EXPECT_TRUE(other_->allocate("system", 4096)) << "the connection still works";
}

TEST_F(DaemonProtocol, AHandshakeForAnotherVersionIsRefused) {
    HandshakeRequest req{2, 5, 0, 0};
    expectRejected(raw_->send(RawClient::message(Op::Handshake, &req, sizeof req)), EPROTONOSUPPORT);
    HandshakeRequest empty{3, 2, 0, 0};
    expectRejected(raw_->send(RawClient::message(Op::Handshake, &empty, sizeof empty)), EINVAL);
    HandshakeRequest ok{1, 7, 0, 0};
    auto reply = raw_->send(RawClient::message(Op::Handshake, &ok, sizeof ok));
    ASSERT_EQ(reply.error, 0);
    HandshakeReply body;
    std::memcpy(&body, reply.body.data(), sizeof body);
    EXPECT_EQ(body.version, kVersion);
    EXPECT_EQ(body.serverPid, static_cast<uint32_t>(::getpid()));
}

TEST_F(DaemonProtocol, LargeRepliesArriveInFragments) {
    auto session = daemon_.connect();
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 600; ++i) {
        auto fd = session->allocate("system", 4096);
        ASSERT_TRUE(fd);
        ASSERT_TRUE(session->setName(*fd, fmt::format("buffer-with-a-long-name-{:06}", i)));
        fds.push_back(std::move(*fd));
    }
    auto info = session->bufinfo(); // well over 64 KiB of reply
    ASSERT_TRUE(info) << info.error().toString();
    ASSERT_EQ(info->size(), 600u);
    EXPECT_EQ(info->back().name, "buffer-with-a-long-name-000599");
}

TEST(DaemonConnect, ASocketNobodyListensOnIsEnoentOrEconnrefused) {
    auto missing = Session::connect("/tmp/cenalloc-test-no-such-socket.sock");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    std::string path = test::testSocketPath("dead");
    {
        UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
    auto refused = Session::connect(path);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ECONNREFUSED);
    ::unlink(path.c_str());
}

TEST(DaemonConnect, APeerSpeakingAnotherProtocolIsEproto) {
    std::string path = test::testSocketPath("alien");
    UniqueFd listener = test::listenSeqpacket(path, 1);
    ASSERT_TRUE(listener.valid());
    std::thread alien([&] {
        UniqueFd c(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        char buf[256];
        (void)::recv(c.get(), buf, sizeof buf, 0);
        const char answer[64] = "HTTP/1.1 400 Bad Request";
        (void)::send(c.get(), answer, sizeof answer, MSG_NOSIGNAL);
        (void)::recv(c.get(), buf, sizeof buf, 0); // until the client hangs up
    });
    auto session = Session::connect(path);
    ASSERT_FALSE(session);
    EXPECT_EQ(session.error().code(), EPROTO) << session.error().toString();
    alien.join();
    ::unlink(path.c_str());
}

TEST(DaemonConnect, DescribeNamesTheSocketAndTheProtocol) {
    test::InProcessDaemon daemon;
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(session->describe(), fmt::format("cenallocd at {} (protocol 1)", daemon.path()));
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

TEST(DaemonExplain, IsTheExplanationTheDaemonsOwnPlatformGives) {
    auto platform = loadPlatformFile(CENALLOC_SOURCE_DIR "/examples/platforms/rpi4.yaml");
    ASSERT_TRUE(platform) << platform.error().toString();
    test::InProcessDaemon daemon(ServiceConfig{}, *platform);
    auto remote = daemon.connect();
    ASSERT_NE(remote, nullptr);
    auto local = Session::local(*platform);
    ASSERT_TRUE(local);
    auto heaps = remote->heaps();
    ASSERT_TRUE(heaps);
    EXPECT_NE(test::findHeap(*heaps, "linux,cma"), nullptr);
    std::vector<std::vector<std::string>> sets;
    for (const Device& a : platform->devices) {
        sets.push_back({a.name});
        for (const Device& b : platform->devices)
            if (a.name < b.name)
                sets.push_back({a.name, b.name});
    }
    for (const auto& devices : sets) {
        SCOPED_TRACE(devices.size() == 1 ? devices[0] : devices[0] + "+" + devices[1]);
        auto a = remote->explain(devices, 8 * MiB, CpuAccess::Rare);
        auto b = (*local)->explain(devices, 8 * MiB, CpuAccess::Rare);
        ASSERT_EQ(a.has_value(), b.has_value());
        if (!a)
            continue;
        EXPECT_EQ(a->satisfiable, b->satisfiable);
        EXPECT_EQ(a->heap, b->heap);
        EXPECT_EQ(a->ranking, b->ranking);
        EXPECT_EQ(a->allocatingDevice, b->allocatingDevice);
        EXPECT_EQ(a->allocatingReason, b->allocatingReason);
        EXPECT_EQ(a->constraints, b->constraints);
        ASSERT_EQ(a->heaps.size(), b->heaps.size());
        for (size_t i = 0; i < a->heaps.size(); ++i)
            EXPECT_EQ(a->heaps[i].combined.reason(), b->heaps[i].combined.reason());
    }
    auto unknown = remote->explain(std::vector<std::string>{"no-such-device"}, 4096, CpuAccess::Rare);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), ENOENT);
}

} // namespace
} // namespace cenalloc
