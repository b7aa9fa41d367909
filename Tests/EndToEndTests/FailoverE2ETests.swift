import XCTest
import Foundation
import TestSupport
import RedisClient
import RedisProtocol

/// Multi-AZ failover as ElastiCache does it: the replica is promoted and the primary
/// endpoint's name moves to it; the old primary comes back as a replica.
final class FailoverE2ETests: XCTestCase {
    /// A (primary) and B (its replica, in sync), and an endpoint that leads to A.
    func pair() throws -> (RedisServer, RedisServer, TCPForwarder) {
        let a = try RedisServer(.plain)
        let b = try RedisServer(.plain, extraConfig: ["replicaof 127.0.0.1 \(a.port)"])
        try waitUntil("B in sync with A", timeout: 20) { try b.cli(["INFO", "replication"]).contains("master_link_status:up") }
        return (a, b, try TCPForwarder(to: a.port))
    }

    func failover(_ a: RedisServer, _ b: RedisServer, _ fwd: TCPForwarder, dropConnections: Bool) throws {
        try b.cli(["REPLICAOF", "NO", "ONE"])
        fwd.switchTo(b.port, dropExisting: dropConnections)
        try a.cli(["REPLICAOF", "127.0.0.1", String(b.port)])
    }

    func testTheTailAndTheConsoleFollowTheEndpointToTheNewPrimary() throws {
        let (a, b, fwd) = try pair()
        defer { fwd.stop(); a.stop(); b.stop() }
        let tail = BackgroundRun(["tail", "--port", String(fwd.port), "--count", "2", "--timeout", "40", "--json", "workspace:1:events"])
        let pane = try TmuxPane(width: 130, height: 30, command: [redisOpsBinary(), "--port", String(fwd.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try a.waitForSubscribers("workspace:1:events")
        try a.cli(["PUBLISH", "workspace:1:events", #"{"type":"before"}"#])
        try pane.waitFor("before") { $0.contains(#""before""#) }
        try failover(a, b, fwd, dropConnections: true)
        try b.waitForSubscribers("workspace:1:events", timeout: 20)   // the tail (SUBSCRIBE)
        try waitUntil("the console's PSUBSCRIBE on B", timeout: 20) { try b.cli(["PUBSUB", "NUMPAT"]) == "1\n" }
        try b.cli(["PUBLISH", "workspace:1:events", #"{"type":"after"}"#])
        let r = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try ndjson(r.stdout)
        XCTAssertEqual(lines.count, 3, r.stdout)
        XCTAssertEqual(lines.first?["payload"] as? String, #"{"type":"before"}"#)
        XCTAssertEqual(lines.last?["payload"] as? String, #"{"type":"after"}"#)
        let gap = try XCTUnwrap(lines[1]["gap"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(gap["from"] as! String, lines[0]["ts"] as! String, "from: the last message before the switch")
        XCTAssertLessThanOrEqual(gap["to"] as! String, lines[2]["ts"] as! String, "to: subscribed again, before the next message")
        // The console: on B, live, with a gap marker where it happened.
        try pane.waitFor("the console on B", timeout: 20) { $0.contains(#""after""#) && $0.contains("── gap") && $0.contains("● live") }
    }

    func testADeleteDuringTheSwitchIsNeverLostSilently() throws {
        let (a, b, fwd) = try pair()
        defer { fwd.stop(); a.stop(); b.stop() }
        let admin = try a.admin()
        let total = 100_000
        var i = 0
        while i < total {
            _ = try admin.pipeline((i..<min(total, i + 10_000)).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:tmp:\($0)"), Bytes(utf8: "x")] })
            i += 10_000
        }
        try waitUntil("B has every key", timeout: 20) { try b.cli(["DBSIZE"]) == "\(total)\n" }
        // Small batches, so the switch lands in the middle of the run.
        let run = BackgroundRun(["invalidate", "--port", String(fwd.port), "--match", "tmp:*", "--yes", "--json", "--max-latency-ms", "0.01",
                                 "--audit-log", NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"])
        try waitUntil("deleting", timeout: 20) { Int(try a.cli(["DBSIZE"]).trimmingCharacters(in: .whitespacesAndNewlines))! < total - 5_000 }
        try failover(a, b, fwd, dropConnections: true)
        let r = try XCTUnwrap(run.wait(times: 0))
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let report = try XCTUnwrap(try ndjson(r.stdout).first)
        // Every key accounted for: deleted, gone already, or unknown (its reply lost in the switch).
        XCTAssertEqual((report["deleted"] as! Int) + (report["already_gone"] as! Int) + (report["unknown"] as! Int), total, "\(report)")
        XCTAssertEqual(report["failed"] as? Int, 0)
        XCTAssertEqual(try b.cli(["--scan", "--pattern", "app:tmp:*"]).trimmingCharacters(in: .whitespacesAndNewlines), "", "none left on the new primary")
        XCTAssertTrue(r.stderr.contains("connection lost during the write") || r.stderr.contains("unreachable"), r.stderr)
    }

    func testATailLeftOnTheDemotedPrimaryKeepsReceivingAndSaysSo() throws {
        let (a, b, fwd) = try pair()
        defer { fwd.stop(); a.stop(); b.stop() }
        let pane = try TmuxPane(width: 160, height: 30, command: [redisOpsBinary(), "--port", String(fwd.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try a.waitForSubscribers("workspace:1:events", count: 0)
        try waitUntil("the subscriber on A", timeout: 10) { try a.cli(["PUBSUB", "NUMPAT"]) == "1\n" }
        // The endpoint moves to B, but connections to A stay up; A becomes B's replica.
        try failover(a, b, fwd, dropConnections: false)
        // The console's command connections fail over (on ElastiCache the old primary's normal
        // clients go); the subscriber stays on A.
        try a.cli(["CLIENT", "KILL", "TYPE", "normal"])
        try waitUntil("A replicating from B", timeout: 20) { try a.cli(["INFO", "replication"]).contains("master_link_status:up") }
        try b.cli(["PUBLISH", "workspace:1:events", #"{"type":"via-replication"}"#])
        let screen = try pane.waitFor("still receiving, and saying where", timeout: 25) {
            $0.contains(#""via-replication""#) && $0.contains("tail on a replica (:\(a.port))")
        }
        XCTAssertTrue(screen.split(separator: "\n")[0].contains("master"), "the command connection is on the new primary")
    }
}
