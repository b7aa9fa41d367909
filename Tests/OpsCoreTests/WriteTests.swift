import XCTest
import Foundation
import Synchronization
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class WriteOutcomeTests: XCTestCase {
    func fill(_ c: RedisConnection, _ n: Int, _ ns: String = "workspace") throws {
        var i = 0
        while i < n {
            _ = try c.pipeline((i..<min(n, i + 10_000)).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:\(ns):\($0)"), Bytes(utf8: "{}")] })
            i += 10_000
        }
    }

    func session(_ s: RedisServer, io: Double, log: AuditLog) throws -> WriteSession {
        var cfg = s.config()
        cfg.timeouts = Timeouts(connect: 1, io: io)
        let ws = WriteSession(nodes: try NodeSet(config: cfg), schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "redis://test", aclUser: nil, readOnly: false, audit: log))
        ws.pacing.maxBatch = 200
        return ws
    }

    func lastRecord(_ log: AuditLog) throws -> [String: Any] {
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any])
    }

    /// The server stalls (SIGSTOP) with a batch in flight: the reply never comes. The run
    /// reconnects once it is back, makes sure the old connection runs nothing more, asks
    /// which of those keys still exist, and goes on.
    func testAStalledServerLeavesUnknownOutcomesAndTheBracketHolds() throws {
        let s = try RedisServer(.plain)
        defer { kill(s.pid, SIGCONT); s.stop() }
        try fill(try s.admin(), 50_000)
        let log = AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")
        let ws = try session(s, io: 1.5, log: log)
        ws.reconnectDeadline = 30
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        XCTAssertEqual(plan.keys.count, 50_000)
        let stopped = Atomic<Bool>(false)
        let pid = s.pid
        // The run asks `cancelled` before each batch: after 20 batches, the server stalls.
        var rounds = 0
        let r = try ws.execute(plan, cancelled: {
            rounds += 1
            if rounds == 20, !stopped.exchange(true, ordering: .relaxed) {
                kill(pid, SIGSTOP)
                DispatchQueue.global().asyncAfter(deadline: .now() + 4) { kill(pid, SIGCONT) }
            }
            return false
        })
        XCTAssertTrue(stopped.load(ordering: .relaxed))
        XCTAssertNil(r.error, "the server came back: the run went on")
        XCTAssertGreaterThan(r.unknown, 0, "the batch in flight when it stalled")
        let left = Int(try s.admin().call("DBSIZE").int ?? -1)
        let reallyDeleted = 50_000 - left
        XCTAssertEqual(left, 0)
        XCTAssertLessThanOrEqual(r.deleted, reallyDeleted)
        XCTAssertLessThanOrEqual(reallyDeleted, r.deleted + r.unknown)
        XCTAssertEqual(r.deleted + r.alreadyGone + r.unknown, 50_000, "every key accounted for")
        let rec = try lastRecord(log)
        XCTAssertEqual(rec["unknown"] as? Int, r.unknown)
        XCTAssertEqual(rec["deleted"] as? Int, r.deleted)
        XCTAssertTrue(r.text.contains("reply never arrived"), r.text)
    }

    /// The server does not come back in time: the run stops, and says what it cannot know.
    func testAServerThatStaysAwayStopsTheRunWithAnExactAccount() throws {
        let s = try RedisServer(.plain)
        defer { kill(s.pid, SIGCONT); s.stop() }
        try fill(try s.admin(), 30_000)
        let log = AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")
        let ws = try session(s, io: 1, log: log)
        ws.reconnectDeadline = 2
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        let stopped = Atomic<Bool>(false)
        let pid = s.pid
        var rounds = 0
        let r = try ws.execute(plan, cancelled: {
            rounds += 1
            if rounds == 10, !stopped.exchange(true, ordering: .relaxed) { kill(pid, SIGSTOP) }
            return false
        })
        kill(pid, SIGCONT)
        XCTAssertTrue(stopped.load(ordering: .relaxed))
        XCTAssertTrue(r.error?.contains("did not come back") == true, "\(r)")
        XCTAssertGreaterThan(r.unknown, 0)
        XCTAssertGreaterThan(r.notAttempted, 0)
        // Once the server has run what it had queued, the bracket holds.
        let admin = try s.admin()
        let reallyDeleted = 30_000 - Int(try admin.call("DBSIZE").int ?? -1)
        XCTAssertLessThanOrEqual(r.deleted, reallyDeleted)
        XCTAssertLessThanOrEqual(reallyDeleted, r.deleted + r.unknown)
        XCTAssertEqual(try lastRecord(log)["unknown"] as? Int, r.unknown)
    }

    func lock(_ c: RedisConnection, _ k: String, ttl: Int?) throws {
        if let ttl { try c.call("SET", k, "1", "EX", String(ttl)) } else { try c.call("SET", k, "1") }
    }

    func releaseRun(_ s: RedisServer, user: String? = nil, password: String? = nil) throws {
        let admin = try s.admin()
        let c = try RedisConnection(s.config(user: user, password: password))
        let ws = WriteSession(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "t", aclUser: user, readOnly: false, audit: nil))
        let board = LockBoard(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"))
        try lock(admin, "app:lock:workspace:1", ttl: 10)
        try lock(admin, "app:lock:workspace:2", ttl: 10)
        try lock(admin, "app:lock:workspace:3", ttl: nil)
        // What the operator was shown.
        let shown = Dictionary(uniqueKeysWithValues: try board.scan().rows.map { ($0.key, $0) })
        usleep(150_000)
        // Meanwhile workspace:2's lock expired and was taken again by another worker (TTL back to 10 s).
        try admin.call("DEL", "app:lock:workspace:2")
        try lock(admin, "app:lock:workspace:2", ttl: 10)
        func release(_ k: String) throws -> WriteReport {
            let key = Bytes(utf8: k)
            let row = shown[key]!
            var pttl: Int64 = -1
            if case .expiresIn(let ms)? = row.ttl { pttl = ms }
            let req = WriteRequest(action: .release([key: LockExpectation(value: row.value, pttl: pttl, readAt: row.readAt)]), keys: [key])
            return try ws.execute(WritePlan(request: req, keys: [key]))
        }
        XCTAssertEqual(try release("app:lock:workspace:1").deleted, 1, "still the lock shown: released")
        XCTAssertEqual(try admin.call("EXISTS", "app:lock:workspace:1").int, 0)
        let again = try release("app:lock:workspace:2")
        XCTAssertEqual(again.kept, 1, "re-acquired since shown: kept")
        XCTAssertEqual(again.deleted, 0)
        XCTAssertEqual(try admin.call("EXISTS", "app:lock:workspace:2").int, 1, "the new owner keeps its lock")
        XCTAssertEqual(try release("app:lock:workspace:3").deleted, 1, "a stuck lock (no TTL) still stuck: released")
        // A stuck lock that got a TTL meanwhile is not the one shown.
        try lock(admin, "app:lock:workspace:4", ttl: nil)
        let shown4 = try board.refresh([Bytes(utf8: "app:lock:workspace:4")])[0]
        try admin.call("EXPIRE", "app:lock:workspace:4", "10")
        let req = WriteRequest(action: .release([shown4.key: LockExpectation(value: shown4.value, pttl: -1, readAt: shown4.readAt)]), keys: [shown4.key])
        XCTAssertEqual(try ws.execute(WritePlan(request: req, keys: [shown4.key])).kept, 1)
    }

    func testReleaseKeepsALockReacquiredSinceItWasShown() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try releaseRun(s)
    }

    func testReleaseWithoutScriptingUsesATransaction() throws {
        let s = try RedisServer(.acl(users: ["ops on >pw ~* &* +@all -@scripting", "default on nopass ~* &* +@all"], defaultPassword: nil))
        defer { s.stop() }
        XCTAssertThrowsError(try RedisConnection(s.config(user: "ops", password: "pw")).call("EVAL", "return 1", "0"), "scripting is refused")
        try releaseRun(s, user: "ops", password: "pw")
    }

    func testExpireGivesTheTTLOnlyToKeysWithoutOne() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        for i in 0..<20 { try c.call("SET", "app:workspace:\(i)", "{}", "EX", "300") }
        for i in 0..<5 { try c.call("SET", "app:workspace:leak-\(i)", "{}") }
        let log = AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")
        let ws = WriteSession(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "t", aclUser: nil, readOnly: false, audit: log))
        let req = WriteRequest(action: .expire(ttl: 300, onlyWithoutTTL: true), glob: "workspace:*")
        let plan = try ws.plan(req)
        XCTAssertEqual(Set(plan.keys.map(\.lossyString)), Set((0..<5).map { "app:workspace:leak-\($0)" }), "the dry run lists only the leak")
        try c.call("PERSIST", "app:workspace:3")   // a key that lost its TTL after the dry run is not in the plan
        try c.call("EXPIRE", "app:workspace:leak-4", "60")   // one that got a TTL meanwhile keeps it (EXPIRE NX)
        let r = try ws.execute(plan)
        XCTAssertEqual(r.updated, 4)
        XCTAssertEqual(r.alreadyGone, 1, "already had a TTL: unchanged")
        for i in 0..<4 { XCTAssertGreaterThan(try c.call("TTL", "app:workspace:leak-\(i)").int ?? -1, 290) }
        XCTAssertLessThanOrEqual(try c.call("TTL", "app:workspace:leak-4").int ?? 0, 60)
        XCTAssertEqual(try c.call("TTL", "app:workspace:3").int, -1)
        let rec = try lastRecord(log)
        XCTAssertEqual(rec["action"] as? String, "expire")
        XCTAssertEqual(rec["updated"] as? Int, 4)
        XCTAssertEqual(rec["ttl_s"] as? Int, 300)
    }

    func testPacingFollowsTheLatencyBudget() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        func run(_ budgetMs: Double) throws -> Int {
            try fill(c, 60_000)
            let ws = WriteSession(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"),
                                  context: WriteContext(server: "t", aclUser: nil, readOnly: false, audit: nil))
            ws.pacing = Pacing(latencyBudgetMs: budgetMs)
            var biggest = 0
            let r = try ws.execute(try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*")), progress: { biggest = max(biggest, $0.batch) })
            XCTAssertEqual(r.deleted, 60_000)
            return biggest
        }
        let tight = try run(0.02), generous = try run(5)
        XCTAssertLessThan(tight, generous, "a tighter budget keeps batches smaller (\(tight) vs \(generous))")
        XCTAssertGreaterThanOrEqual(generous, 1024, "an idle server gets big batches")
    }

    func testReadOnlyRefusesEveryWriteButRecordsDryRuns() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try c.call("SET", "app:workspace:1", "{}")
        let log = AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")
        let ws = WriteSession(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "t", aclUser: nil, readOnly: true, audit: log))
        for action in [WriteAction.invalidate, .delete, .reset, .expire(ttl: 300, onlyWithoutTTL: true)] {
            let plan = WritePlan(request: WriteRequest(action: action, keys: [Bytes(utf8: "app:workspace:1")]), keys: [Bytes(utf8: "app:workspace:1")])
            let r = try ws.execute(plan)
            XCTAssertTrue(r.error?.contains("read-only mode") == true, "\(action)")
            XCTAssertEqual(r.deleted + r.updated, 0)
        }
        XCTAssertTrue(try ws.execute(WritePlan(request: .publish(channel: Bytes(utf8: "c"), payload: Bytes(utf8: "x")), keys: [])).error?.contains("read-only") == true)
        XCTAssertEqual(try c.call("TTL", "app:workspace:1").int, -1)
        XCTAssertEqual(try c.call("EXISTS", "app:workspace:1").int, 1)
        ws.recordDryRun(try ws.plan(WriteRequest(action: .invalidate, glob: "*")))
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 6, "refusals and the dry run are all recorded")
    }
}

/// A reply that never comes is an unknown outcome, checked when it can be — never "already
/// gone", never "nothing was changed".
final class LostReplyTests: XCTestCase {
    func session(through proxy: TCPForwarder, audit: AuditLog? = nil) throws -> WriteSession {
        let cfg = ConnectionConfig(host: "127.0.0.1", port: proxy.port, timeouts: Timeouts(connect: 2, io: 1))
        return WriteSession(nodes: try NodeSet(config: cfg), schema: KeySchema(prefix: "app:"),
                            context: WriteContext(server: "t", aclUser: nil, readOnly: false, audit: audit))
    }

    func testADeleteWhoseReplyIsLostIsUnknownAndChecked() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli(["SET", "app:workspace:1", "{}"])
        let proxy = try TCPForwarder(to: s.port)
        defer { proxy.stop() }
        let log = AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")
        let ws = try session(through: proxy, audit: log)
        let k = Bytes(utf8: "app:workspace:1")
        proxy.swallowReply(to: "UNLINK")   // the UNLINK reaches the server; its answer does not come back
        let r = try ws.execute(WritePlan(request: WriteRequest(action: .delete, keys: [k]), keys: [k]))
        XCTAssertEqual(try s.cli(["EXISTS", "app:workspace:1"]), "0\n", "the server did delete it")
        XCTAssertEqual(r.deleted, 0)
        XCTAssertEqual(r.alreadyGone, 0, "not 'already gone': we do not know who deleted it")
        XCTAssertEqual(r.unknown, 1)
        XCTAssertEqual(r.unresolved, 0, "checked after reconnecting")
        XCTAssertNil(r.error)
        XCTAssertTrue(r.text.contains("checked after reconnecting, they no longer exist"), r.text)
        let done = try XCTUnwrap(try ndjson(try String(contentsOfFile: log.path, encoding: .utf8)).last)
        XCTAssertEqual(done["unknown"] as? Int, 1)
        XCTAssertEqual(done["already_gone"] as? Int, 0)
    }

    func testAPublishWhoseReplyIsLostSaysItsOutcomeIsUnknown() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let proxy = try TCPForwarder(to: s.port)
        defer { proxy.stop() }
        let ws = try session(through: proxy)
        proxy.swallowReply(to: "PUBLISH")
        let r = try ws.execute(WritePlan(request: .publish(channel: Bytes(utf8: "c"), payload: Bytes(utf8: "x")), keys: []))
        XCTAssertEqual(r.unknown, 1)
        XCTAssertNotNil(r.error)
        XCTAssertFalse(r.error!.contains("nothing was changed"), r.error!)
        XCTAssertTrue(r.text.contains("whether it was published is unknown"), r.text)
    }
}
