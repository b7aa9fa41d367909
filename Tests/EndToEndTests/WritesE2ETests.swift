import XCTest
import Foundation
import TestSupport

final class RestrictedUsersListEveryKeyTests: XCTestCase {
    func testAUserWithoutTYPEOrWithoutKeyAccessStillSeesEveryKey() throws {
        let s = try RedisServer(.acl(users: ["notype on >pw ~* &* +@all -type", "nokeys on >pw ~other:* &* +@all", "default on nopass ~* &* +@all"],
                                     defaultPassword: nil))
        defer { s.stop() }
        try s.cli([], stdin: (1...1200).map { "SET app:workspace:\($0) x EX 300\n" }.joined())
        for user in ["notype", "nokeys"] {
            let r = try redisOps(["keys", "--json", "--port", String(s.port), "--user", user], env: ["REDIS_AUTH_TOKEN": "pw"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let rows = try ndjson(r.stdout)
            XCTAssertEqual(rows.count, 1200, "\(user): every key is listed")
            XCTAssertTrue(rows.allSatisfy { $0["type"] is NSNull }, "\(user): the type is unknown, not invented")
            XCTAssertEqual(r.stderr.components(separatedBy: "warning:").count - 1, user == "notype" ? 1 : 3, "\(user): one warning per refused command: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("TYPE was refused (NOPERM"), r.stderr)
        }
    }
}

final class NonUTF8NamesTests: XCTestCase {
    func testKeysThatAreNotUTF8CanBeNamedByBase64OrEscapes() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let admin = try s.admin()
        for tail: [UInt8] in [[0xFF, 0xFE], [0xC3, 0x28], [0x80]] {
            try admin.call([Array("SET".utf8), Array("app:workspace:".utf8) + tail, Array("x".utf8)])
        }
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let plain = try redisOps(["invalidate", "--port", String(s.port), "--yes", "--json", "--audit-log", log, "workspace:\u{FF}\u{FE}"])
        XCTAssertTrue(plain.stdout.hasPrefix(#"{"matched":0"#), "typed as text, the bytes are not those: \(plain.stdout)")
        let b64 = Data(Array("workspace:".utf8) + [0xFF, 0xFE]).base64EncodedString()
        let r = try redisOps(["invalidate", "--port", String(s.port), "--yes", "--json", "--audit-log", log, "--key-base64", b64])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix(#"{"matched":1,"deleted":1"#), r.stdout)
        let e = try redisOps(["invalidate", "--port", String(s.port), "--yes", "--json", "--audit-log", log, "--escaped", #"workspace:\xc3("#, #"workspace:\x80"#])
        XCTAssertTrue(e.stdout.hasPrefix(#"{"matched":2,"deleted":2"#), e.stdout + e.stderr)
        XCTAssertEqual(try s.cli(["DBSIZE"]), "0\n")
        XCTAssertEqual(try redisOps(["invalidate", "--port", String(s.port), "--escaped", #"bad\q"#]).status, 2)
        // The audit log names them by their exact bytes.
        let records = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(records.contains(#""keys":[{"base64":"YXBwOndvcmtzcGFjZTr//g=="}]"#), records)
    }
}

final class ExpireAndPublishCLITests: XCTestCase {
    func testExpireGivesTheConventionTTLToTheLeakOnly() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli([], stdin: (1...10).map { "SET app:workspace:\($0) x EX 300\n" }.joined() + (1...4).map { "SET app:workspace:leak-\($0) x\n" }.joined())
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let dry = try redisOps(["expire", "--port", String(s.port), "--match", "workspace:*", "--dry-run", "--json", "--audit-log", log])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.hasPrefix(#"{"matched":4,"updated":0,"#), dry.stdout)
        XCTAssertEqual(try s.cli(["TTL", "app:workspace:leak-1"]), "-1\n")
        XCTAssertEqual(try redisOps(["expire", "--port", String(s.port), "--match", "workspace:*", "--read-only", "--yes"]).status, 2)
        let r = try redisOps(["expire", "--port", String(s.port), "--match", "workspace:*", "--yes", "--json", "--audit-log", log])
        XCTAssertTrue(r.stdout.hasPrefix(#"{"matched":4,"updated":4,"#), r.stdout)
        XCTAssertEqual(try s.cli(["TTL", "app:workspace:leak-1"]), "300\n")
        let records = try doneRecords(log)
        XCTAssertEqual(records.map { $0["action"] as? String }, ["expire", "expire"])
        XCTAssertEqual(records.map { $0["dry_run"] as? Bool }, [true, false])
        XCTAssertEqual(records[1]["ttl_s"] as? Int, 300)
    }

    func testPublishIsAuditedAndRefusedInReadOnly() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--count", "1", "--timeout", "10", "--json", "workspace:7:events"])
        try s.waitForSubscribers("workspace:7:events")
        let r = try redisOps(["publish", "--port", String(s.port), "--json", "--audit-log", log, "workspace:7:events", #"{"type":"redis-ops.test"}"#])
        XCTAssertEqual(r.stdout, #"{"channel":"workspace:7:events","receivers":1}"# + "\n", r.stderr)
        XCTAssertTrue(try tail.wait(times: 0)?.stdout.contains("redis-ops.test") == true)
        let ro = try redisOps(["publish", "--port", String(s.port), "--read-only", "--audit-log", log, "c", "x"])
        XCTAssertEqual(ro.status, 2)
        XCTAssertTrue(ro.stderr.contains("read-only"), ro.stderr)
        let rec = try doneRecords(log)
        XCTAssertEqual(rec.count, 1, "--read-only refuses publish before anything starts")
        XCTAssertEqual(rec[0]["action"] as? String, "publish")
        XCTAssertEqual(rec[0]["channel"] as? String, "workspace:7:events")
        XCTAssertEqual(rec[0]["receivers"] as? Int, 1)
    }
}

/// Every write the console makes leaves its record, as the CLI's do; the Audit overlay shows them.
final class ConsoleWritesAreAuditedE2ETests: XCTestCase {
    func testResetReleaseExpirePublishAndDryRunsAreAllRecorded() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        for _ in 0..<70 { try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.9.8.7", "60", "60"]) }
        try s.cli(["SET", "app:lock:workspace:5", "1"])
        try s.cli(["SET", "app:workspace:leak", "{}"])
        try s.cli(["SET", "app:workspace:1", "{}", "EX", "300"])
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", String(s.port), "--audit-log", log])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        // r in Rate limits
        try pane.send("3")
        try pane.waitFor("counter") { $0.contains("BLOCKED ip:10.9.8.7") }
        try pane.send("r"); try pane.send("y")
        try pane.waitFor("reset") { $0.contains("next request starts a new window") }
        // d in Locks: a stuck lock, released only if unchanged
        try pane.send("4")
        try pane.waitFor("lock") { $0.contains("STUCK") }
        try pane.send("d")
        try pane.waitFor("the question") { $0.contains("Release this lock?") && $0.contains("  app:lock:workspace:5") && $0.contains("value “1” · no TTL (stuck)") }
        try pane.send("y")
        try pane.waitFor("released") { $0.contains("released app:lock:workspace:5") }
        // e on the leaked cache entry
        try pane.send("2")
        try pane.waitFor("keys") { $0.contains("keys match") && !$0.contains("scanning") }
        try pane.send("/"); try pane.type("leak"); try pane.send("Enter")
        try pane.waitFor("the leak") { $0.contains("1 key matches") }
        try pane.send("e")
        try pane.waitFor("the question") { $0.contains("cache TTL (300 s)") }
        try pane.send("y")
        try pane.waitFor("expired") { $0.contains("now expires in 300 s") }
        // D: a dry run, abandoned
        try pane.send("Escape")
        try pane.invalidationDryRun("workspace:*")
        try pane.send("Escape")
        // p in Events
        try pane.send("1")
        try pane.send("p"); try pane.type("workspace:7:events"); try pane.send("Enter")
        try pane.send("Enter")
        try pane.waitFor("the question") { $0.contains("Publish") }
        try pane.send("y")
        try pane.waitFor("published") { $0.contains("published: 0 subscribers received it") || $0.contains("published: 1 subscriber") }
        try waitUntil("five records") { ((try? doneRecords(log)) ?? []).count == 5 }
        let records = try doneRecords(log)
        XCTAssertEqual(records.map { $0["action"] as? String }, ["reset", "release", "expire", "invalidate", "publish"])
        XCTAssertEqual(records.map { $0["dry_run"] as? Bool }, [false, false, false, true, false])
        XCTAssertEqual(records[0]["keys"] as? [String], ["app:ratelimit:ip:10.9.8.7"])
        XCTAssertEqual(records[1]["keys"] as? [String], ["app:lock:workspace:5"])
        XCTAssertEqual(records[2]["keys"] as? [String], ["app:workspace:leak"])
        XCTAssertEqual(Set(records[3]["keys"] as? [String] ?? []), ["app:workspace:leak", "app:workspace:1"])
        XCTAssertEqual(try s.cli(["EXISTS", "app:lock:workspace:5"]), "0\n")
        XCTAssertEqual(try s.cli(["TTL", "app:workspace:leak"]).trimmingCharacters(in: .whitespacesAndNewlines).count, 3)
        // The Audit overlay: newest first, with the keys of the selected record.
        try pane.send("A")
        let overlay = try pane.waitFor("the audit overlay") { $0.contains("Audit log · newest first") && $0.contains("publish") }
        let lines = overlay.split(separator: "\n")
        let publishLine = try XCTUnwrap(lines.firstIndex { $0.contains("publish ·") })
        let resetLine = try XCTUnwrap(lines.firstIndex { $0.contains("reset ·") })
        XCTAssertLessThan(publishLine, resetLine, "newest first")
        try pane.send("j"); try pane.send("j"); try pane.send("j"); try pane.send("j")
        try pane.waitFor("the reset's keys") { $0.contains("1 key in the record") && $0.contains("app:ratelimit:ip:10.9.8.7") }
        try pane.send("Escape")
        try pane.send(":"); try pane.type("audit"); try pane.send("Enter")
        try pane.waitFor(":audit opens it too") { $0.contains("Audit log · newest first") }
    }
}
