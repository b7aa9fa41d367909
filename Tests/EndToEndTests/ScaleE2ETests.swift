import XCTest
import Foundation
import RedisClient
import RedisProtocol
import TestSupport

/// The console on a keyspace bigger than its window, with counters far beyond the old caps,
/// driven in tmux as an operator would.
final class ScaleE2ETests: XCTestCase {
    static let cacheKeys = 60_000
    static let counters = 25_000

    static let fixture = Shared { () throws -> RedisServer in
        let s = try RedisServer(.plain)
        let c = try s.admin()
        let load = BulkLoader(c, batch: 10_000)
        for i in 0..<cacheKeys { try load.add("SET", "app:workspace:\(i)", #"{"id":\#(i)}"#, "EX", "7000") }
        // Eleven keys for one workspace id prefix, far beyond the first rows by name.
        try load.add("SET", "app:workspace:98765", "{}", "EX", "3000")
        for i in 0..<10 { try load.add("SET", "app:workspace:98765\(i)", "{}", "EX", "3000") }
        for i in 0..<counters { try load.add("SET", "app:ratelimit:ip:10.\(i / 65536).\((i / 256) % 256).\(i % 256)", String(i % 90), "EX", "3000") }
        try load.add("SET", "app:ratelimit:ip:10.0.50.10x", "3", "EX", "3000")
        try load.flush()
        return s
    }
    var server: RedisServer!
    override func setUpWithError() throws { server = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }

    func console(_ args: [String] = []) throws -> TmuxPane {
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", String(server.port)] + args,
                                env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"])
        try pane.waitFor("console") { $0.contains("1 Events") }
        return pane
    }

    func testAFilterFindsEveryMatchingKeyOnTheServerAndAnExpireShowsWithinSeconds() throws {
        let pane = try console()
        defer { pane.kill() }
        try pane.send("2")
        let loaded = try pane.waitFor("the scan", timeout: 30) { $0.contains("keys match") && !$0.contains("scanning") }
        XCTAssertTrue(loaded.contains("showing the first 20,000, flagged first: narrow with / (the server is searched)"), loaded)
        XCTAssertFalse(loaded.contains("app:workspace:98765"), "not among the rows loaded")
        try pane.send("/")
        try pane.type("workspace:98765")
        try pane.send("Enter")
        let found = try pane.waitFor("every match", timeout: 10) { $0.contains("11 keys match") }
        for k in ["98765"] + (0..<10).map({ "98765\($0)" }) {
            XCTAssertTrue(found.contains("app:workspace:\(k) "), "app:workspace:\(k) missing:\n\(found)")
        }
        // Someone else gives one of them a new TTL: the row on screen shows it within seconds.
        let t0 = Date()
        try server.cli(["EXPIRE", "app:workspace:987653", "86000"])
        try pane.waitFor("the new TTL", timeout: 5) { screen in
            screen.split(separator: "\n").contains { $0.contains("app:workspace:987653 ") && $0.contains("23h5") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }

    func testEveryCounterIsThereAndAFilterFindsAny() throws {
        let pane = try console()
        defer { pane.kill() }
        try pane.send("3")
        let all = try pane.waitFor("every counter", timeout: 30) { $0.contains("25,001 counters") }
        XCTAssertFalse(all.contains("only the first"), all)
        try pane.send("/")
        try pane.type("10.0.50.10")
        try pane.send("Enter")
        let one = try pane.waitFor("the counter", timeout: 10) { $0.contains("ip:10.0.50.10x") }
        // 10.0.50.10, 10.0.50.100 to .109, and 10.0.50.10x: deep in the list, found at once.
        XCTAssertTrue(one.contains("filter “10.0.50.10”: 12"), one)
        XCTAssertTrue(one.contains("ip:10.0.50.10 "), one)
    }

    func testTheCLIAndTheConsoleRunTheSameWriteFlow() throws {
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let cli = try redisOps(["invalidate", "--port", String(server.port), "--match", "workspace:98765*", "--dry-run", "--audit-log", log])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", String(server.port), "--audit-log", log])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("2")
        try pane.invalidationDryRun("workspace:98765*", expecting: "Dry run: 11 keys would be deleted")
        try pane.send("Escape")
        try waitUntil("two records") { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").count == 2 }
        let records = try ndjson(try String(contentsOfFile: log, encoding: .utf8))
        // One flow: the same record, field for field, from the CLI and from the console.
        XCTAssertEqual(Set(records[0].keys), Set(records[1].keys))
        for field in ["action", "pattern", "dry_run", "matched", "deleted", "acl_user", "server"] {
            XCTAssertEqual("\(records[0][field] ?? "nil")", "\(records[1][field] ?? "nil")", field)
        }
        XCTAssertEqual(Set(records[0]["keys"] as? [String] ?? []), Set(records[1]["keys"] as? [String] ?? []))
        XCTAssertEqual((records[1]["keys"] as? [String])?.count, 11)
        XCTAssertEqual(try server.cli(["EXISTS", "app:workspace:98765"]), "1\n", "dry runs delete nothing")
    }
}

/// Esc in the middle of a big invalidation takes effect within one batch.
final class EscStopsAnInvalidationE2ETests: XCTestCase {
    func testEscStopsWithinABatchAndTheReportIsExact() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let c = try s.admin()
        // Enough keys that the paced deletion (~0.5M keys/s on an idle server) is still running
        // when Esc arrives: 200,000 could be gone before it did.
        let total = 600_000
        _ = try c.call([Bytes(utf8: "DEBUG"), Bytes(utf8: "POPULATE"), Bytes(utf8: String(total)), Bytes(utf8: "app:tmp"), Bytes(utf8: "1")])
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", String(s.port)],
                                env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("2")
        try pane.invalidationDryRun("tmp:*", expecting: "Dry run: 600,000 keys would be deleted", timeout: 30)
        try pane.type("600000")
        try pane.send("Enter")
        try waitUntil("deletion under way", timeout: 20) { Int(try c.call("DBSIZE").int ?? 0) < total - 20_000 }
        // The pace of the deletion, to turn "within 100 ms" into keys.
        let (n0, t0) = (Int(try c.call("DBSIZE").int ?? 0), Date())
        usleep(50_000)
        let before = Int(try c.call("DBSIZE").int ?? 0)
        let rate = Double(n0 - before) / Date().timeIntervalSince(t0)
        try pane.send("Escape")
        let done = try pane.waitFor("cancelled", timeout: 10) { $0.contains("Cancelled.") }
        let after = Int(try c.call("DBSIZE").int ?? 0)
        XCTAssertGreaterThan(after, 0, "it stopped before the end")
        // Esc reaches the console through tmux and ncurses' 25 ms wait for an escape sequence;
        // from there the run stops at the next batch. Within 100 ms of deletion, plus a batch.
        XCTAssertLessThanOrEqual(Double(before - after), rate * 0.1 + 4096, "deleted after Esc: \(before - after) at \(Int(rate)) keys/s")
        // The report is exact: what it says went, went.
        let line = try XCTUnwrap(done.split(separator: "\n").first { $0.contains("matched 600000 · deleted ") })
        let deleted = Int(line.components(separatedBy: "deleted ")[1].prefix { $0.isNumber })!
        XCTAssertEqual(deleted, total - after, line.description)
        XCTAssertTrue(done.contains("not attempted"))
    }
}
