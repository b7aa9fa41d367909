import XCTest
import Foundation
import TestSupport

final class InvalidateCLITests: XCTestCase {
    func server() throws -> RedisServer {
        let s = try RedisServer(.plain)
        try s.cli([], stdin: (1...20).map { "SET app:workspace:\($0) x EX 300\n" }.joined() + "SET app:lock:workspace:1 1 EX 10\nSET other:workspace:1 x\n")
        return s
    }

    func env() -> [String: String] { ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"] }

    func testDryRunThenYes() throws {
        let s = try server()
        defer { s.stop() }
        let e = env()
        let dry = try redisOps(["invalidate", "--port", String(s.port), "--match", "workspace:1*", "--dry-run", "--json"], env: e)
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let o = try ndjson(dry.stdout)[0]
        XCTAssertEqual(o["matched"] as? Int, 11)
        XCTAssertEqual(o["deleted"] as? Int, 0)
        XCTAssertEqual(o["dry_run"] as? Bool, true)
        XCTAssertEqual((o["sample"] as? [String])?.count, 10)
        XCTAssertTrue(dry.stdout.hasPrefix(#"{"matched":11,"deleted":0,"already_gone":0,"failed":0,"unknown":0,"cancelled":false,"dry_run":true,"sample":["app:workspace:1"#), dry.stdout)
        XCTAssertEqual(try s.cli(["DBSIZE"]), "22\n")
        let real = try redisOps(["invalidate", "--port", String(s.port), "--match", "workspace:1*", "--yes", "--json"], env: e)
        XCTAssertEqual(real.status, 0, real.stderr)
        XCTAssertTrue(real.stdout.hasPrefix(#"{"matched":11,"deleted":11,"already_gone":0,"failed":0,"unknown":0,"cancelled":false,"dry_run":false,"sample":["#), real.stdout)
        XCTAssertEqual(try s.cli(["DBSIZE"]), "11\n")
        let audit = try String(contentsOfFile: e["REDIS_OPS_AUDIT_LOG"]!, encoding: .utf8).split(separator: "\n")
            .filter { $0.contains(#""phase":"done""#) }
        XCTAssertEqual(audit.count, 2)
        XCTAssertTrue(audit[0].contains(#""action":"invalidate""#) && audit[0].contains(#""dry_run":true,"matched":11,"deleted":0"#), String(audit[0]))
        XCTAssertTrue(audit[1].contains(#""pattern":"workspace:1*","keys":["app:workspace:1"#), String(audit[1]))
        XCTAssertTrue(audit[1].contains(#""dry_run":false,"matched":11,"deleted":11,"already_gone":0,"failed":0,"unknown":0,"cancelled":false"#), String(audit[1]))
    }

    func testAuditPublishedOnTheConfiguredChannel() throws {
        let s = try server()
        defer { s.stop() }
        let home = NSTemporaryDirectory() + "/home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home + "/.config/redis-ops", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        try "[audit]\nlog = \"\(home)/audit.log\"\nchannel = \"ops:audit\"\n".write(toFile: home + "/.config/redis-ops/config.toml", atomically: true, encoding: .utf8)
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--count", "2", "--timeout", "15", "--json", "ops:audit"])
        try s.waitForSubscribers("ops:audit")
        let r = try redisOps(["invalidate", "--port", String(s.port), "--yes", "workspace:3"], env: ["HOME": home])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The intent, then the outcome, as in the log.
        let heard = try tail.wait(times: 0)
        let published = heard?.stdout.split(separator: "\n") ?? []
        XCTAssertEqual(published.count, 2, heard?.stdout ?? "")
        XCTAssertTrue(published.first?.contains(#"\"phase\":\"intent\""#) == true, heard?.stdout ?? "")
        XCTAssertTrue(published.last?.contains(#"\"phase\":\"done\""#) == true && published.last?.contains(#"\"deleted\":1"#) == true, heard?.stdout ?? "")
        XCTAssertTrue(try String(contentsOfFile: home + "/audit.log", encoding: .utf8).contains(#""keys":["app:workspace:3"]"#))
    }

    func testReadOnlyDryRunRecordsButPublishesNothing() throws {
        let s = try server()
        defer { s.stop() }
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--timeout", "3", "--json", "ops:audit"])
        // Listening for real: otherwise "nothing was published" would pass whatever happened.
        try s.waitForSubscribers("ops:audit")
        let r = try redisOps(["invalidate", "--read-only", "--dry-run", "--port", String(s.port), "--match", "workspace:*"],
                             env: ["REDIS_OPS_AUDIT_LOG": log, "REDIS_OPS_AUDIT_CHANNEL": "ops:audit"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try tail.wait(times: 0)?.stdout, "", "no PUBLISH in read-only mode")
        XCTAssertTrue(try String(contentsOfFile: log, encoding: .utf8).contains(#""dry_run":true,"matched":20"#))
    }

    func testRefusesWithoutYesOffATerminalAndInReadOnly() throws {
        let s = try server()
        defer { s.stop() }
        let r = try redisOps(["invalidate", "--port", String(s.port), "--match", "workspace:*"], env: env())
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.stderr.contains("refusing to delete without --yes"), r.stderr)
        let ro = try redisOps(["invalidate", "--read-only", "--port", String(s.port), "--match", "workspace:*", "--yes"], env: env())
        XCTAssertEqual(ro.status, 2)
        XCTAssertTrue(ro.stderr.contains("read-only"), ro.stderr)
        XCTAssertEqual(try s.cli(["DBSIZE"]), "22\n", "nothing deleted")
        XCTAssertEqual(try redisOps(["invalidate", "--port", String(s.port)]).status, 2, "nothing named")
    }

    func testExplicitKeysAndProtectedLocks() throws {
        let s = try server()
        defer { s.stop() }
        let r = try redisOps(["invalidate", "--port", String(s.port), "--yes", "--json", "workspace:2", "workspace:nope"], env: env())
        XCTAssertEqual(r.stdout, #"{"matched":1,"deleted":1,"already_gone":0,"failed":0,"unknown":0,"cancelled":false,"dry_run":false,"sample":["app:workspace:2"]}"# + "\n")
        let all = try redisOps(["invalidate", "--port", String(s.port), "--yes", "--match", "*"], env: env())
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertTrue(all.stderr.contains("1 protected key(s)"), all.stderr)
        XCTAssertEqual(try s.cli(["EXISTS", "app:lock:workspace:1"]), "1\n")
        XCTAssertEqual(try s.cli(["EXISTS", "other:workspace:1"]), "1\n")
    }

    func testConsoleDeletesOneKey() throws {
        let s = try server()
        defer { s.stop() }
        let e = env()
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)], env: e)
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("2")
        try pane.waitFor("keys") { $0.contains("21 keys match") }
        try pane.send("/")
        try pane.type("workspace:7")
        try pane.send("Enter")
        try pane.waitFor("filtered") { $0.contains("1 key matches") && $0.contains("filter: substring “workspace:7”") }
        try pane.send("d")
        try pane.waitFor("confirmation") { screen in
            screen.contains("Delete this key?") && screen.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "app:workspace:7" }
        }
        try pane.send("y")
        try pane.waitFor("deleted") { $0.contains("deleted app:workspace:7 (UNLINK, audited)") }
        // Audited as the CLI audits: action, the full key, the counts.
        let log = try String(contentsOfFile: e["REDIS_OPS_AUDIT_LOG"]!, encoding: .utf8)
        XCTAssertTrue(log.contains(#""action":"delete""#) && log.contains(#""keys":["app:workspace:7"],"dry_run":false,"matched":1,"deleted":1"#), log)
        XCTAssertEqual(try s.cli(["EXISTS", "app:workspace:7"]), "0\n")
        XCTAssertEqual(try s.cli(["EXISTS", "app:workspace:8"]), "1\n")
    }
}
