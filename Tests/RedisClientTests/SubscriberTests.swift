import XCTest
import Foundation
import Synchronization
@testable import RedisClient
import RedisProtocol
import TestSupport

/// Collects what a worker delivers.
final class CollectingSink: SubscriberSink, @unchecked Sendable {
    let state = Mutex<(messages: [ReceivedMessage], notices: [SubscriberNotice])>(([], []))
    func deliver(_ m: [ReceivedMessage]) { state.withLock { $0.messages += m } }
    func notice(_ n: SubscriberNotice) { state.withLock { $0.notices.append(n) } }
    var messages: [ReceivedMessage] { state.withLock { $0.messages } }
    var notices: [SubscriberNotice] { state.withLock { $0.notices } }

    func waitFor(_ what: String, timeout: Double = 10, _ cond: (CollectingSink) -> Bool) {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end { if cond(self) { return }; usleep(10_000) }
        XCTFail("timed out waiting for \(what); notices: \(notices)")
    }
    func subscribedCount() -> Int { notices.filter { if case .subscribed = $0 { return true }; return false }.count }
}

final class SubscriberTests: XCTestCase {
    /// Reads with the path the worker uses (messages straight from hiredis's objects) until `cond` holds.
    func readUntil(_ sub: Subscriber, _ cond: ([ReceivedMessage], [PubSubEvent]) -> Bool) throws -> ([ReceivedMessage], [PubSubEvent]) {
        var ms: [ReceivedMessage] = [], ev: [PubSubEvent] = []
        let end = Date().addingTimeInterval(5)
        while !cond(ms, ev) {
            if Date() > end { XCTFail("timed out: \(ms) \(ev)"); break }
            try sub.read(timeout: 0.5, messages: &ms, events: &ev, now: { 42 })
        }
        return (ms, ev)
    }

    func testSubscribePatternsUnsubscribeAndPing() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let sub = try Subscriber(s.config())
        try sub.subscribe([Bytes(utf8: "workspace:1:events")])
        try sub.psubscribe([Bytes(utf8: "workspace:*:events")])
        var (_, ev) = try readUntil(sub) { $1.count >= 2 }
        XCTAssertEqual(ev[0], .subscribed(name: Bytes(utf8: "workspace:1:events"), isPattern: false, count: 1))
        XCTAssertEqual(ev[1], .subscribed(name: Bytes(utf8: "workspace:*:events"), isPattern: true, count: 2))
        let pub = try s.admin()
        let payload: Bytes = Bytes(utf8: "{\"type\":\"member.added\"}") + [0xFF, 0x00]
        try pub.call([Bytes(utf8: "PUBLISH"), Bytes(utf8: "workspace:1:events"), payload])
        let (ms, _) = try readUntil(sub) { m, _ in m.count >= 2 }
        XCTAssertEqual(ms.map(\.payload), [payload, payload])
        XCTAssertEqual(Set(ms.map { $0.pattern }), [nil, Bytes(utf8: "workspace:*:events")])
        XCTAssertTrue(ms.allSatisfy { $0.channel == Bytes(utf8: "workspace:1:events") && $0.receivedAt == 42 })
        try sub.ping()
        (_, ev) = try readUntil(sub) { !$1.isEmpty }
        XCTAssertEqual(ev, [.pong])
        try sub.unsubscribe([Bytes(utf8: "workspace:1:events")])
        try sub.punsubscribe([Bytes(utf8: "workspace:*:events")])
        (_, ev) = try readUntil(sub) { $1.count >= 2 }
        XCTAssertEqual(ev[1], .unsubscribed(name: Bytes(utf8: "workspace:*:events"), isPattern: true, count: 0))
    }

    func testWorkerResubscribesAfterClientKillWithGap() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let sink = CollectingSink()
        let binaryChannel: Bytes = [0x63, 0x68, 0x00, 0xFF, 0x20]
        let w = SubscriptionWorker(config: s.config(), channels: [binaryChannel], patterns: [Bytes(utf8: "workspace:*:events")],
                                   sink: sink, backoffBase: 0.05, backoffCap: 0.2)
        w.start()
        defer { w.stop() }
        sink.waitFor("subscriptions") { $0.subscribedCount() == 2 }
        let admin = try s.admin()
        try admin.call("CLIENT", "KILL", "TYPE", "pubsub")
        sink.waitFor("resubscription") { $0.subscribedCount() == 4 }
        XCTAssertTrue(sink.notices.contains { if case .gap = $0 { return true }; return false })
        XCTAssertTrue(sink.notices.contains { if case .disconnected = $0 { return true }; return false })
        try admin.call([Bytes(utf8: "PUBLISH"), binaryChannel, Bytes(utf8: "after")])
        try admin.call("PUBLISH", "workspace:9:events", "p")
        sink.waitFor("messages after resubscribe") { $0.messages.count == 2 }
        XCTAssertEqual(sink.messages[0].channel, binaryChannel)
        XCTAssertEqual(sink.messages[1].pattern, Bytes(utf8: "workspace:*:events"))
    }

    func testWorkerSurvivesServerRestart() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(), channels: [Bytes(utf8: "c")], patterns: [], sink: sink, backoffBase: 0.05, backoffCap: 0.3)
        w.start()
        defer { w.stop() }
        sink.waitFor("subscription") { $0.subscribedCount() == 1 }
        try s.restart(downFor: 0.5)
        sink.waitFor("resubscription") { $0.subscribedCount() == 2 }
        try s.admin().call("PUBLISH", "c", "back")
        sink.waitFor("message") { $0.messages.count == 1 }
        let gaps = sink.notices.compactMap { n -> (Double, Double)? in if case .gap(let a, let b, _) = n { return (a, b) }; return nil }
        XCTAssertEqual(gaps.count, 1)
        XCTAssertGreaterThanOrEqual(gaps[0].1 - gaps[0].0, 0.4)
    }

    func testWorkerAddsAndRemovesSubscriptionsLive() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(), channels: [Bytes(utf8: "a")], patterns: [], sink: sink)
        w.start()
        defer { w.stop() }
        sink.waitFor("a") { $0.subscribedCount() == 1 }
        w.subscribe(Bytes(utf8: "b*"), pattern: true)
        sink.waitFor("b*") { $0.subscribedCount() == 2 }
        w.unsubscribe(Bytes(utf8: "a"), pattern: false)
        sink.waitFor("unsubscribe a") { $0.notices.contains(.unsubscribed(name: Bytes(utf8: "a"), isPattern: false)) }
        try s.admin().call("PUBLISH", "a", "x")
        try s.admin().call("PUBLISH", "bz", "y")
        sink.waitFor("bz") { $0.messages.count == 1 }
        XCTAssertEqual(sink.messages[0].payload, Bytes(utf8: "y"))
        XCTAssertEqual(w.channels, [])
        XCTAssertEqual(w.patterns, [Bytes(utf8: "b*")])
    }

    func testNOPERMOnAChannelIsReportedNotRetried() throws {
        let s = try RedisServer(.acl(users: ["sub on >pw ~* resetchannels &workspace:* +@all", "default off"], defaultPassword: nil))
        defer { s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(user: "sub", password: "pw"), channels: [Bytes(utf8: "secret")],
                                   patterns: [Bytes(utf8: "workspace:*")], sink: sink)
        w.start()
        defer { w.stop() }
        sink.waitFor("refusal") { s in s.notices.contains { if case .refused = $0 { return true }; return false } }
        sink.waitFor("pattern subscribed") { $0.subscribedCount() == 1 }
        XCTAssertEqual(w.channels, [], "the refused channel is dropped")
        usleep(300_000)
        XCTAssertFalse(sink.notices.contains { if case .disconnected = $0 { return true }; return false })
    }

    func testWrongPasswordIsFatalNotALoop() throws {
        let s = try RedisServer(.password("right"))
        defer { s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(password: "wrong"), channels: [Bytes(utf8: "c")], patterns: [], sink: sink, backoffBase: 0.01)
        w.start()
        defer { w.stop() }
        sink.waitFor("fatal") { s in s.notices.contains { if case .fatal = $0 { return true }; return false } }
        usleep(200_000)
        XCTAssertEqual(sink.notices.count, 1)
    }
}

final class ProtocolFaultTests: XCTestCase {
    func testHugeBulkFromServerClosesConnection() throws {
        // Answers the handshake normally, then announces a 1 GB bulk string.
        let fake = try FakeServer { n in Array((n == 1 ? "+PONG\r\n:7\r\n" : "$1000000000\r\nxxxx").utf8) }
        defer { fake.stop() }
        var cfg = ConnectionConfig(host: "127.0.0.1", port: fake.port, clientName: nil)
        cfg.limits = DecoderLimits(maxElements: 1000, maxBulkBytes: 1 << 20)
        let c = try RedisConnection(cfg)
        XCTAssertThrowsError(try c.call("PING")) { e in
            guard case RedisError.protocolViolation(let m) = e else { return XCTFail("\(e)") }
            XCTAssertTrue(m.contains("1000000000 bytes"), m)
        }
        XCTAssertTrue(c.isBroken)
        XCTAssertThrowsError(try c.call("PING"), "a broken connection is not reused")
    }

    func testServerThatNeverAnswersTimesOut() throws {
        let fake = try FakeServer { _ in [] }
        defer { fake.stop() }
        let cfg = ConnectionConfig(host: "127.0.0.1", port: fake.port, timeouts: Timeouts(connect: 1, io: 0.3), clientName: nil)
        XCTAssertThrowsError(try RedisConnection(cfg)) { e in
            guard case RedisError.timeout = e else { return XCTFail("\(e)") }
        }
    }

    func testGarbageIsAProtocolError() throws {
        let fake = try FakeServer { _ in Array("?what\r\n".utf8) }
        defer { fake.stop() }
        XCTAssertThrowsError(try RedisConnection(ConnectionConfig(host: "127.0.0.1", port: fake.port, clientName: nil))) { e in
            guard case RedisError.protocolViolation = e else { return XCTFail("\(e)") }
        }
    }
}

final class TailTruthTests: XCTestCase {
    /// A hung server (SIGSTOP) is noticed within 6 s; the gap starts at the last sign of life
    /// (a message or a PONG), not when the loss was noticed.
    func testAHungServerIsNoticedWithinSixSecondsAndTheGapStartsAtTheLastSignOfLife() throws {
        let s = try RedisServer(.plain)
        defer { kill(s.pid, SIGCONT); s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(), channels: [Bytes(utf8: "c")], patterns: [], sink: sink, backoffBase: 0.1, backoffCap: 0.5)
        w.start()
        defer { w.stop() }
        sink.waitFor("subscription") { $0.subscribedCount() == 1 }
        try s.admin().call("PUBLISH", "c", "before")
        sink.waitFor("the message") { $0.messages.count == 1 }
        usleep(2_500_000)   // quiet: the worker PINGs, the PONG is a sign of life
        let stoppedAt = wallClockNow()
        kill(s.pid, SIGSTOP)
        sink.waitFor("the hang noticed", timeout: 8) { $0.notices.contains { if case .disconnected = $0 { return true }; return false } }
        let noticed = wallClockNow()
        XCTAssertLessThanOrEqual(noticed - stoppedAt, 6, "noticed within 6 s")
        let reason = sink.notices.compactMap { n -> String? in if case .disconnected(let r, _) = n { return r }; return nil }.first!
        XCTAssertTrue(reason.contains("no answer to PING"), reason)
        usleep(1_000_000)
        let resumedAt = wallClockNow()
        kill(s.pid, SIGCONT)
        sink.waitFor("subscribed again", timeout: 10) { $0.subscribedCount() == 2 }
        let gaps = sink.notices.compactMap { n -> (Double, Double, String)? in if case .gap(let a, let b, let r) = n { return (a, b, r) }; return nil }
        XCTAssertEqual(gaps.count, 1)
        let g = try XCTUnwrap(gaps.first)
        XCTAssertLessThanOrEqual(g.0, stoppedAt, "from: the last sign of life, before the hang")
        XCTAssertGreaterThan(g.0, stoppedAt - 3, "the PONGs of the quiet connection count")
        XCTAssertGreaterThanOrEqual(g.1, resumedAt, "to: subscribed again")
        XCTAssertTrue(g.2.contains("no answer to PING"), g.2)
    }

    /// The server cuts a subscriber that falls behind: the gap says so, with the limit.
    func testAnOutputBufferDropNamesTheLimit() throws {
        let s = try RedisServer(.plain, extraConfig: ["client-output-buffer-limit pubsub 64kb 32kb 1"])
        defer { s.stop() }
        let sink = CollectingSink()
        let w = SubscriptionWorker(config: s.config(), channels: [Bytes(utf8: "flood")], patterns: [], sink: sink, backoffBase: 0.05, backoffCap: 0.2)
        w.start()
        defer { w.stop() }
        sink.waitFor("subscription") { $0.subscribedCount() == 1 }
        try s.admin().call("PUBLISH", "flood", "first")
        sink.waitFor("first") { $0.messages.count == 1 }
        let lastBefore = sink.messages[0].receivedAt
        // One message alone is over the 64 KB hard limit: whatever the reader's speed, the
        // server queues it whole and closes the connection.
        _ = try s.admin().pipeline((0..<3).map { _ in [Bytes(utf8: "PUBLISH"), Bytes(utf8: "flood"), Bytes(repeating: 0x78, count: 200_000)] })
        sink.waitFor("the gap", timeout: 10) { $0.notices.contains { if case .gap = $0 { return true }; return false } }
        let g = try XCTUnwrap(sink.notices.compactMap { n -> (Double, Double, String)? in if case .gap(let a, let b, let r) = n { return (a, b, r) }; return nil }.first)
        XCTAssertTrue(g.2.contains("client-output-buffer-limit pubsub 65536 32768 1 (64 KB at once, or 32 KB for 1 s)"), g.2)
        XCTAssertTrue(g.2.contains("the server closed the connection"), g.2)
        XCTAssertGreaterThanOrEqual(g.0, lastBefore, "from: the last message received")
    }
}
