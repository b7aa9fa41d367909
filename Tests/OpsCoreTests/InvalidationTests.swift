import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport

let awkward: [Bytes] = [
    Bytes(utf8: "app:workspace:with space"), Bytes(utf8: "app:workspace:\"quoted\" 'single'"), Bytes(utf8: "app:workspace:new\nline"),
    Bytes(utf8: "app:workspace:glob*?[x]"), Bytes(utf8: "app:workspace:") + [0xFF, 0x00, 0x1B, 0x5B], Bytes(utf8: "app:workspace:back\\slash"),
]

/// A write session on one server, recording into a private audit log.
func writeSession(_ c: RedisConnection, readOnly: Bool = false, audit: AuditLog? = nil) throws -> WriteSession {
    WriteSession(nodes: try NodeSet(seed: c), schema: KeySchema(prefix: "app:"),
                 context: WriteContext(server: "redis://test", aclUser: nil, readOnly: readOnly,
                                       audit: audit ?? AuditLog(path: NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log")))
}

final class InvalidationTests: XCTestCase {
    func fill(_ c: RedisConnection) throws {
        var cmds: [[Bytes]] = awkward.map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "v")] }
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "app:workspacex"), Bytes(utf8: "not under workspace:")])
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "app:lock:workspace:1"), Bytes(utf8: "1"), Bytes(utf8: "EX"), Bytes(utf8: "10")])
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "app:ratelimit:ip:1"), Bytes(utf8: "5")])
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "other:workspace:1"), Bytes(utf8: "outside the prefix")])
        _ = try c.pipeline(cmds)
    }

    func count(_ c: RedisConnection) throws -> Int { Int(try c.call("DBSIZE").int ?? -1) }

    func testAwkwardNamesAreMatchedAndDeletedExactly() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try fill(c)
        let ws = try writeSession(c)
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        XCTAssertEqual(Set(plan.keys), Set(awkward))
        let dbBefore = try count(c)
        let rep = try ws.execute(plan)
        XCTAssertEqual(rep.matched, awkward.count)
        XCTAssertEqual(rep.deleted, awkward.count)
        XCTAssertTrue(rep.completed)
        XCTAssertEqual(try count(c), dbBefore - awkward.count)
        for k in awkward { XCTAssertEqual(try c.call([Bytes(utf8: "EXISTS"), k]).int, 0) }
        XCTAssertEqual(try c.call("EXISTS", "app:workspacex").int, 1)
        XCTAssertEqual(try c.call("EXISTS", "other:workspace:1").int, 1)
    }

    func testExplicitKeysAreLiteralAndDryRunDeletesNothing() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try fill(c)
        let ws = try writeSession(c)
        let plan = try ws.plan(WriteRequest(action: .invalidate, keys: [Bytes(utf8: "app:workspace:glob*?[x]"), Bytes(utf8: "app:workspace:missing")]))
        XCTAssertEqual(plan.keys, [Bytes(utf8: "app:workspace:glob*?[x]")], "a key with glob characters is taken literally")
        let before = try count(c)
        let dry = ws.recordDryRun(try ws.plan(WriteRequest(action: .invalidate, glob: "*")))
        XCTAssertTrue(dry.dryRun)
        XCTAssertEqual(try count(c), before, "a dry run deletes nothing")
    }

    func testProtectedNamespacesUnlessNamed() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try fill(c)
        let ws = try writeSession(c)
        let all = try ws.plan(WriteRequest(action: .invalidate, glob: "*"))
        XCTAssertEqual(all.protectedSkipped, 2)
        XCTAssertFalse(all.keys.contains(Bytes(utf8: "app:lock:workspace:1")))
        XCTAssertFalse(all.keys.contains(Bytes(utf8: "app:ratelimit:ip:1")))
        let locks = try ws.plan(WriteRequest(action: .invalidate, glob: "lock:*"))
        XCTAssertEqual(locks.keys, [Bytes(utf8: "app:lock:workspace:1")])
    }

    func testNOPERMIsReportedAndNothingDeleted() throws {
        let s = try RedisServer(.acl(users: ["viewer on >pw ~* &* +@all -unlink -del", "default on nopass ~* &* +@all"], defaultPassword: nil))
        defer { s.stop() }
        try fill(try s.admin())
        let c = try RedisConnection(s.config(user: "viewer", password: "pw"))
        let ws = try writeSession(c)
        ws.pacing.fixedBatch = 2
        ws.pacing.maxInFlight = 1
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        let rep = try ws.execute(plan)
        XCTAssertEqual(rep.deleted, 0)
        XCTAssertEqual(rep.failed, 2, "stops after the first refused batch, no blind retries")
        XCTAssertEqual(rep.notAttempted, awkward.count - 2)
        XCTAssertTrue(rep.error?.contains("NOPERM") == true)
        XCTAssertEqual(try s.admin().call("DBSIZE").int, Int64(awkward.count + 4))
    }

    func testREADONLYStopsTheRunWithoutRetries() throws {
        // A replica answers writes with READONLY, as a node does during a failover.
        let primary = try RedisServer(.plain)
        defer { primary.stop() }
        _ = try primary.admin().pipeline((0..<50).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:\($0)"), Bytes(utf8: "{}")] })
        let replica = try RedisServer(.plain, extraConfig: ["replicaof 127.0.0.1 \(primary.port)"])
        defer { replica.stop() }
        let c = try replica.admin()
        let end = Date().addingTimeInterval(10)
        while Date() < end, try c.call("DBSIZE").int != 50 { usleep(50_000) }
        let ws = try writeSession(c)
        ws.pacing.fixedBatch = 10
        ws.pacing.maxInFlight = 1
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        XCTAssertEqual(plan.keys.count, 50)
        let rep = try ws.execute(plan)
        XCTAssertEqual(rep.deleted, 0)
        XCTAssertEqual(rep.failed, 10, "stopped after the first batch")
        XCTAssertEqual(rep.notAttempted, 40)
        XCTAssertTrue(rep.error?.hasPrefix("READONLY") == true, rep.error ?? "")
        XCTAssertEqual(try primary.admin().call("DBSIZE").int, 50)
    }

    func testCancelledHalfwayReportsWhatWent() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        _ = try c.pipeline((0..<1000).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:\($0)"), Bytes(utf8: "{}")] })
        let ws = try writeSession(c)
        ws.pacing.fixedBatch = 100
        ws.pacing.maxInFlight = 1
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        var checks = 0
        var progress: [WriteProgress] = []
        // The run looks at `cancelled` before each batch: Esc stops it within one batch.
        let rep = try ws.execute(plan, cancelled: { checks += 1; return checks > 3 }, progress: { progress.append($0) })
        XCTAssertTrue(rep.cancelled)
        XCTAssertEqual(rep.deleted, 300)
        XCTAssertEqual(rep.notAttempted, 700)
        XCTAssertEqual(try c.call("DBSIZE").int, 700)
        XCTAssertEqual(progress.last?.done, 300)
        XCTAssertEqual(progress.last?.total, 1000)
    }

    func testEveryWriteAndDryRunIsAuditedWithItsKeys() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        _ = try c.pipeline((0..<1500).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:\($0)"), Bytes(utf8: "{}")] })
        try c.call([Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:") + [0xFF, 0xFE], Bytes(utf8: "x")])
        let path = NSTemporaryDirectory() + "/audit-\(UUID().uuidString)/audit.log"
        let log = AuditLog(path: path)
        let ws = try writeSession(c, audit: log)
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "workspace:*"))
        ws.recordDryRun(plan)
        let rep = try ws.execute(plan)
        XCTAssertEqual(rep.deleted, 1501)
        // The dry run: one `done` record. The write: its `intent` (flushed before the first
        // UNLINK), then its `done` record with the same id.
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let records = try lines.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(records.map { $0["phase"] as? String }, ["done", "intent", "done"])
        XCTAssertEqual(records.map { $0["dry_run"] as? Bool }, [true, false, false])
        XCTAssertEqual(records[1]["id"] as? String, records[2]["id"] as? String, "intent and outcome share an id")
        XCTAssertNotEqual(records[0]["id"] as? String, records[1]["id"] as? String)
        XCTAssertEqual(records[1]["keys_file"] as? String, records[2]["keys_file"] as? String, "one keys file for the write")
        for (i, o) in records.enumerated() {
            XCTAssertEqual(o["action"] as? String, "invalidate")
            XCTAssertEqual(o["pattern"] as? String, "workspace:*")
            XCTAssertEqual((o["keys"] as? [Any])?.count, 1000, "the first 1000 keys inline")
            XCTAssertEqual(o["matched"] as? Int, 1501)
            for k in ["ts", "id", "local_user", "acl_user", "server"] { XCTAssertNotNil(o[k], k) }
            if i != 1 {
                XCTAssertEqual(o["deleted"] as? Int, i == 0 ? 0 : 1501)
                for k in ["already_gone", "failed", "unknown", "cancelled"] { XCTAssertNotNil(o[k], k) }
            }
            // Every key, in a file next to the log: one JSON string (or base64 object) per line.
            let file = try XCTUnwrap(o["keys_file"] as? String)
            XCTAssertEqual((file as NSString).deletingLastPathComponent, (path as NSString).deletingLastPathComponent)
            let keys = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(keys.count, 1501)
            XCTAssertTrue(keys.contains(#"{"base64":"YXBwOndvcmtzcGFjZTr//g=="}"#), "a name that is not UTF-8 as its exact bytes")
        }
        XCTAssertTrue(lines[0].contains(#""keys":["app:workspace:"#), "full key names, with the prefix")
    }

    func testInspectorPagesEveryType() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try c.call("SET", "app:workspace:1", #"{"id":1,"name":"Acme"}"#, "EX", "300")
        try c.call([Bytes(utf8: "SET"), Bytes(utf8: "app:big"), Bytes(repeating: 65, count: 200_000)])
        _ = try c.pipeline((0..<250).map { [Bytes(utf8: "HSET"), Bytes(utf8: "app:h"), Bytes(utf8: "f\($0)"), Bytes(utf8: "v\($0)")] })
        _ = try c.pipeline((0..<150).map { [Bytes(utf8: "RPUSH"), Bytes(utf8: "app:l"), Bytes(utf8: "item\($0)")] })
        try c.call("SADD", "app:s", "a", "b")
        try c.call("ZADD", "app:z", "1", "one", "2", "two")
        for i in 0..<3 { try c.call("XADD", "app:x", "*", "event", "e\(i)") }
        let str = try KeyInspector.inspect(Bytes(utf8: "app:workspace:1"), on: c)
        XCTAssertEqual(str.type, "string")
        XCTAssertEqual(str.string, Bytes(utf8: #"{"id":1,"name":"Acme"}"#))
        guard case .expiresIn? = str.ttl else { return XCTFail() }
        let big = try KeyInspector.inspect(Bytes(utf8: "app:big"), on: c)
        XCTAssertEqual(big.string?.count, KeyInspector.maxString, "never fetched whole")
        XCTAssertTrue(big.stringTruncated)
        XCTAssertEqual(big.length, 200_000)
        var h = try KeyInspector.inspect(Bytes(utf8: "app:h"), on: c)
        XCTAssertEqual(h.length, 250)
        var seen = Set(h.items.map(\.0))
        while let n = h.next { h = try KeyInspector.inspect(Bytes(utf8: "app:h"), cursor: n, on: c); seen.formUnion(h.items.map(\.0)) }
        XCTAssertEqual(seen.count, 250, "HSCAN pages cover the hash")
        let l = try KeyInspector.inspect(Bytes(utf8: "app:l"), on: c)
        XCTAssertEqual(l.items.count, 100)
        XCTAssertEqual(l.next, Bytes(utf8: "100"))
        let l2 = try KeyInspector.inspect(Bytes(utf8: "app:l"), cursor: l.next, on: c)
        XCTAssertEqual(l2.items.first?.1, Bytes(utf8: "item100"))
        XCTAssertNil(l2.next)
        XCTAssertEqual(try KeyInspector.inspect(Bytes(utf8: "app:s"), on: c).length, 2)
        let z = try KeyInspector.inspect(Bytes(utf8: "app:z"), on: c)
        XCTAssertEqual(z.items.map(\.0), [Bytes(utf8: "one"), Bytes(utf8: "two")])
        XCTAssertEqual(z.items.map(\.1), [Bytes(utf8: "1"), Bytes(utf8: "2")])
        let x = try KeyInspector.inspect(Bytes(utf8: "app:x"), on: c)
        XCTAssertEqual(x.items.count, 3)
        XCTAssertEqual(x.items[0].1, Bytes(utf8: "event=e0"))
    }

    func testLocksStuckFirstAndTheProtectedKeyFollowsTheApplication() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        // The app's `lock:${key}` for the cache key `workspace:{id}`, prefixed once, value "1".
        try c.call("SET", "app:lock:workspace:1", "1", "NX", "EX", "10")
        try c.call("SET", "app:lock:workspace:2", "1", "NX", "EX", "3")
        try c.call("SET", "app:lock:workspace:3", "1", "NX")
        let reading = try LockBoard(nodes: NodeSet(seed: c), schema: KeySchema(prefix: "app:")).scan()
        let rows = reading.rows
        XCTAssertEqual(rows.map { $0.protects.lossyString }, ["app:workspace:3", "app:workspace:2", "app:workspace:1"])
        XCTAssertTrue(rows[0].isStuck(expectedMs: 10_000))
        XCTAssertEqual(rows[0].value, Bytes(utf8: "1"))
        XCTAssertNil(rows[0].heldMs(expectedMs: 10_000, now: rows[0].readAt), "no TTL: its age cannot be read from it")
        XCTAssertGreaterThanOrEqual(rows[1].heldMs(expectedMs: 10_000, now: rows[1].readAt)!, 7000)
    }
}
