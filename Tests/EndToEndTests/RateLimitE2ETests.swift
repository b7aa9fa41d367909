import XCTest
import Foundation
import TestSupport

final class RateLimitE2ETests: XCTestCase {
    func testBlockedIdentifierShownAndResetLetsTheNextCallThrough() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        for _ in 0..<70 { try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.9.8.7", "60", "60"]) }
        for _ in 0..<5 { try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:user:5", "60", "60"]) }
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("3")
        let screen = try pane.waitFor("blocked identifier") { $0.contains("BLOCKED ip:10.9.8.7") }
        XCTAssertTrue(screen.contains("2 counters · 1 blocked · 0 broken"), screen)
        XCTAssertTrue(screen.contains("70/60"))
        XCTAssertTrue(screen.contains("Retry-After"))
        // The application's script still blocks this client…
        XCTAssertTrue(try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.9.8.7", "60", "60"]).hasPrefix("0\n"))
        try pane.send("r")
        try pane.waitFor("confirmation") { $0.contains("Reset this counter?") && $0.contains("  app:ratelimit:ip:10.9.8.7") }
        try pane.send("y")
        try pane.waitFor("reset done") { $0.contains("next request starts a new window") }
        // …and lets it through after the reset.
        XCTAssertEqual(try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.9.8.7", "60", "60"]), "1\n1\n60\n")
    }

    func testReadOnlyRefusesTheReset() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        for _ in 0..<65 { try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.1.1.1", "60", "60"]) }
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port), "--read-only"])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("READ-ONLY") }
        try pane.send("3")
        try pane.waitFor("blocked") { $0.contains("BLOCKED") }
        try pane.send("r")
        try pane.waitFor("refusal") { $0.contains("read-only mode: resetting a counter is refused") }
        XCTAssertEqual(try s.cli(["GET", "app:ratelimit:ip:10.1.1.1"]), "65\n")
    }

    func testServerViewWithConfigDisabledAndNoSlowlog() throws {
        let s = try RedisServer(.acl(users: ["ops on >pw ~* &* +@all -slowlog", "default on nopass ~* &* +@all"], defaultPassword: nil),
                                extraConfig: ["rename-command CONFIG \"\""])
        defer { s.stop() }
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port), "--user", "ops"], env: ["REDIS_AUTH_TOKEN": "pw"])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("5")
        let screen = try pane.waitFor("server view") { $0.contains("policy noeviction") && $0.contains("not available: NOPERM") }
        XCTAssertTrue(screen.contains("role master"))
    }
}
