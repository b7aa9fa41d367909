import XCTest
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class DemoE2ETests: XCTestCase {
    func portIsOpen(_ port: Int) -> Bool {
        (try? redisOps(["info", "--json", "--port", String(port)], timeout: 5))?.status == 0
    }

    func testDemoFillsTheKeyspaceStreamsEventsAndCleansUp() throws {
        let port = freePort()
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "demo", "--port", String(port), "--seed", "7", "--workspaces", "300"])
        defer { pane.kill() }
        try pane.waitFor("live events", timeout: 20) { $0.contains("workspace:") && $0.contains("\"type\":") }
        // The keyspace, read back through the headless subcommand.
        let ws = try redisOps(["keys", "--json", "--port", String(port), "--match", "workspace:*"])
        let keys = try ndjson(ws.stdout)
        XCTAssertGreaterThanOrEqual(keys.count, 300)
        XCTAssertTrue(keys.contains { ($0["key"] as? String) == "app:workspace:leaked-1" && ($0["ttl_ms"] as? Int) == -1 })
        XCTAssertTrue(keys.filter { ($0["ttl_ms"] as? Int ?? 0) > 0 }.allSatisfy { ($0["ttl_ms"] as! Int) <= 300_000 || ($0["key"] as! String) == "app:workspace:long-ttl" })
        let all = try ndjson(try redisOps(["keys", "--json", "--port", String(port)]).stdout)
        let types = Set(all.compactMap { $0["type"] as? String })
        XCTAssertEqual(types, ["string", "hash", "list", "set", "zset", "stream"])
        XCTAssertTrue(all.contains { ($0["key"] as? String) == "app:lock:app:workspace:17" && ($0["ttl_ms"] as? Int) == -1 }, "the stuck lock")
        XCTAssertTrue(all.contains { ($0["key"] as? String) == "app:ratelimit:ip:198.51.100.7" })
        try pane.send("q")
        XCTAssertEqual(try pane.waitForExit(), 0)
        usleep(300_000)
        XCTAssertFalse(portIsOpen(port), "no redis-server from the demo is left running")
    }

    func testNoConsoleModeRunsUntilSignalled() throws {
        let port = freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: redisOpsBinary())
        p.arguments = ["demo", "--no-console", "--port", String(port), "--workspaces", "50"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let end = Date().addingTimeInterval(15)
        while Date() < end && !portIsOpen(port) { usleep(100_000) }
        XCTAssertTrue(portIsOpen(port))
        // Events are flowing.
        let t = try redisOps(["tail", "--port", String(port), "--pattern", "workspace:*:events", "--count", "1", "--timeout", "10", "--json"])
        XCTAssertEqual(try ndjson(t.stdout).count, 1)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        usleep(300_000)
        XCTAssertFalse(portIsOpen(port))
    }
}
