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

final class InvalidationTests: XCTestCase {
    func fill(_ c: RedisConnection) throws {
        var cmds: [[Bytes]] = awkward.map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "v")] }
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "app:workspacex"), Bytes(utf8: "not under workspace:")])
        cmds.append([Bytes(utf8: "SET"), Bytes(utf8: "app:lock:app:workspace:1"), Bytes(utf8: "w"), Bytes(utf8: "EX"), Bytes(utf8: "10")])
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
        let inv = Invalidator(schema: KeySchema(prefix: "app:"))
        let plan = try inv.plan(InvalidationRequest(glob: "workspace:*"), on: c)
        XCTAssertEqual(Set(plan.keys), Set(awkward))
        let dbBefore = try count(c)
        let rep = inv.execute(plan, on: c)
        XCTAssertEqual(rep.matched, awkward.count)
        XCTAssertEqual(rep.deleted, awkward.count)
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
        let inv = Invalidator(schema: KeySchema(prefix: "app:"))
        let plan = try inv.plan(InvalidationRequest(keys: [Bytes(utf8: "workspace:glob*?[x]"), Bytes(utf8: "workspace:missing")]), on: c)
        XCTAssertEqual(plan.keys, [Bytes(utf8: "app:workspace:glob*?[x]")], "a key with glob characters is taken literally")
        let before = try count(c)
        _ = try inv.plan(InvalidationRequest(glob: "*"), on: c)
        XCTAssertEqual(try count(c), before, "a dry run deletes nothing")
    }

    func testProtectedNamespacesUnlessNamed() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try fill(c)
        let inv = Invalidator(schema: KeySchema(prefix: "app:"))
        let all = try inv.plan(InvalidationRequest(glob: "*"), on: c)
        XCTAssertEqual(all.protectedSkipped, 2)
        XCTAssertFalse(all.keys.contains(Bytes(utf8: "app:lock:app:workspace:1")))
        XCTAssertFalse(all.keys.contains(Bytes(utf8: "app:ratelimit:ip:1")))
        let locks = try inv.plan(InvalidationRequest(glob: "lock:*"), on: c)
        XCTAssertEqual(locks.keys, [Bytes(utf8: "app:lock:app:workspace:1")])
    }

    func testNOPERMIsReportedAndNothingDeleted() throws {
        let s = try RedisServer(.acl(users: ["viewer on >pw ~* &* +@all -unlink -del", "default on nopass ~* &* +@all"], defaultPassword: nil))
        defer { s.stop() }
        try fill(try s.admin())
        let c = try RedisConnection(s.config(user: "viewer", password: "pw"))
        let inv = Invalidator(schema: KeySchema(prefix: "app:"))
        let plan = try inv.plan(InvalidationRequest(glob: "workspace:*"), on: c)
        var small = inv
        small.batchSize = 2
        let rep = small.execute(plan, on: c)
        XCTAssertEqual(rep.deleted, 0)
        XCTAssertEqual(rep.failed, 2, "stops after the first refused batch, no blind retries")
        XCTAssertTrue(rep.failure?.contains("NOPERM") == true)
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
        var inv = Invalidator(schema: KeySchema(prefix: "app:"))
        inv.batchSize = 10
        let plan = try inv.plan(InvalidationRequest(glob: "workspace:*"), on: c)
        XCTAssertEqual(plan.keys.count, 50)
        let rep = inv.execute(plan, on: c)
        XCTAssertEqual(rep.deleted, 0)
        XCTAssertEqual(rep.failed, 10, "stopped after the first batch")
        XCTAssertTrue(rep.failure?.hasPrefix("READONLY") == true, rep.failure ?? "")
        XCTAssertEqual(try primary.admin().call("DBSIZE").int, 50)
    }

    func testCancelledHalfwayReportsWhatWent() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        _ = try c.pipeline((0..<1000).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:\($0)"), Bytes(utf8: "{}")] })
        var inv = Invalidator(schema: KeySchema(prefix: "app:"))
        inv.batchSize = 100
        let plan = try inv.plan(InvalidationRequest(glob: "workspace:*"), on: c)
        var batches = 0
        var progress: [InvalidationProgress] = []
        let rep = inv.execute(plan, on: c, cancelled: { batches >= 3 }, progress: { progress.append($0); batches += 1 })
        XCTAssertTrue(rep.cancelled)
        XCTAssertEqual(rep.deleted, 300)
        XCTAssertEqual(try c.call("DBSIZE").int, 700)
        XCTAssertEqual(progress.last?.done, 300)
        XCTAssertEqual(progress.last?.total, 1000)
    }

    func testAuditRecord() throws {
        let path = NSTemporaryDirectory() + "/audit-\(UUID().uuidString)/audit.log"
        let log = AuditLog(path: path)
        var rep = InvalidationReport(matched: 3)
        rep.deleted = 2; rep.alreadyGone = 1
        try log.append(log.record(server: "redis://h:1", aclUser: "ops", what: InvalidationRequest(glob: "workspace:*"), report: rep, at: 1_795_708_800))
        try log.append(log.record(server: "redis://h:1", aclUser: nil, what: InvalidationRequest(keys: [Bytes(utf8: "workspace:1")]), report: rep))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix(#"{"ts":"2026-11-26T16:00:00.000Z","local_user":""#), String(lines[0]))
        XCTAssertTrue(lines[0].contains(#""acl_user":"ops","server":"redis://h:1","pattern":"workspace:*","dry_run":false,"matched":3,"deleted":2,"already_gone":1"#))
        XCTAssertTrue(lines[1].contains(#""keys":["workspace:1"]"#))
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

    func testLocksStuckFirst() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        try c.call("SET", "app:lock:app:workspace:1", "w1", "NX", "EX", "10")
        try c.call("SET", "app:lock:app:workspace:2", "w2", "NX", "EX", "3")
        try c.call("SET", "app:lock:app:workspace:3", "crashed", "NX")
        let rows = try LockRow.read(schema: KeySchema(prefix: "app:"), on: c)
        XCTAssertEqual(rows.map { $0.protects.lossyString }, ["app:workspace:3", "app:workspace:2", "app:workspace:1"])
        XCTAssertTrue(rows[0].isStuck(expectedMs: 10_000))
        XCTAssertEqual(rows[0].owner, Bytes(utf8: "crashed"))
        XCTAssertGreaterThanOrEqual(rows[1].heldMs(expectedMs: 10_000, elapsedMs: 0)!, 7000)
    }
}
