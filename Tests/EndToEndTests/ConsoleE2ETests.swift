import XCTest
import Foundation
import TestSupport

/// The real binary in a real terminal (tmux), driven like a person would.
final class ConsoleE2ETests: XCTestCase {
    func console(_ s: RedisServer, _ extra: [String] = [], width: Int = 120, height: Int = 30) throws -> TmuxPane {
        let pane = try TmuxPane(width: width, height: height, command: [redisOpsBinary(), "--port", String(s.port)] + extra)
        try pane.waitFor("the console") { $0.contains("1 Events") && $0.contains("workspace:*:events (p)") && !$0.contains("(p) …") }
        return pane
    }

    func testPublishedMessageAppears() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try s.cli(["PUBLISH", "workspace:42:events", #"{"type":"member.added","userId":"u-42"}"#])
        let screen = try pane.waitFor("the message") { $0.contains(#"{"type":"member.added","userId":"u-42"}"#) }
        XCTAssertTrue(screen.contains("workspace:42:events"))
        XCTAssertTrue(screen.contains("1 msgs"), screen)
    }

    func testHostilePayloadChangesNeitherTitleNorScreen() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        let titleBefore = try pane.display("#{pane_title}")
        try s.cli(["PUBLISH", "workspace:1:events", "before"])
        try pane.waitFor("first message") { $0.contains("before") }
        try s.cli(["PUBLISH", "workspace:1:events", "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{1B}]52;c;cHduZWQ=\u{07}\u{9B}H after"])
        let screen = try pane.waitFor("escaped payload") { $0.contains("after") }
        XCTAssertEqual(try pane.display("#{pane_title}"), titleBefore, "the title did not change")
        XCTAssertFalse(try pane.display("#{pane_title}").contains("pwned"))
        XCTAssertTrue(screen.contains("before"), "the screen was not cleared:\n\(screen)")
        XCTAssertTrue(screen.contains("redis-ops"), "the header is intact")
        XCTAssertTrue(screen.contains(#"\e]0;pwned\x07\e[2J\e]52;c;cHduZWQ=\x07\u009bH after"#), screen)
        let buffers = try pane.tmuxCmd(["list-buffers"])
        XCTAssertFalse(buffers.contains("pwned"), "nothing reached the clipboard")
    }

    func testResizeToTinyAndBack() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try s.cli(["PUBLISH", "workspace:7:events", #"{"type":"plan.changed"}"#])
        try pane.waitFor("message") { $0.contains("plan.changed") }
        try pane.resize(30, 8)
        let small = try pane.waitFor("small layout") { $0.split(separator: "\n").first?.contains("redis-ops") == true && $0.contains("1 Even") }
        XCTAssertTrue(small.split(separator: "\n").allSatisfy { $0.count <= 30 })
        try pane.resize(12, 4)
        try pane.waitFor("too small") { $0.contains("too small") }
        try pane.resize(120, 30)
        let back = try pane.waitFor("full layout") { $0.contains("5 Server") && $0.contains("plan.changed") }
        XCTAssertTrue(back.contains("q quit"))
        XCTAssertNil(pane.exitStatus, "still running")
    }

    func testQuitExitsZeroAndRestoresTheTerminal() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        XCTAssertEqual(try pane.display("#{alternate_on}"), "1", "the console uses the alternate screen")
        try pane.send("q")
        XCTAssertEqual(try pane.waitForExit(), 0)
        XCTAssertEqual(try pane.display("#{alternate_on}"), "0", "back on the normal screen")
        XCTAssertEqual(try pane.display("#{cursor_flag}"), "1", "the cursor is visible again")
        let screen = try pane.waitFor("shell output") { $0.contains("EXITED") }
        XCTAssertFalse(screen.contains("1 Events"))
    }

    func testCtrlCExitsCleanly() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try pane.send("C-c")
        XCTAssertEqual(try pane.waitForExit(), 0)
        XCTAssertEqual(try pane.display("#{alternate_on}"), "0")
    }

    func testFilterSubscribeAndDetailInTheRealConsole() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try pane.send("s")
        try pane.type("audit")
        try pane.send("Enter")
        try pane.waitFor("subscribed") { $0.contains("audit") && !$0.contains("audit …") }
        try s.cli(["PUBLISH", "audit", #"{"type":"cache.invalidated","by":"ops"}"#])
        try s.cli(["PUBLISH", "workspace:1:events", #"{"type":"member.added"}"#])
        try pane.waitFor("both") { $0.contains("cache.invalidated") && $0.contains("member.added") }
        try pane.send("/")
        try pane.type("type=cache.invalidated")
        try pane.send("Enter")
        let filtered = try pane.waitFor("filtered") { !$0.contains(#"{"type":"member.added"}"#) && $0.contains("1 rows") }
        XCTAssertTrue(filtered.contains("cache.invalidated"))
        try pane.send("Enter")
        try pane.waitFor("detail") { $0.contains(#""by": "ops""#) }
        try pane.send("Escape")
        try pane.send("Escape")
        try pane.waitFor("unfiltered") { $0.contains("member.added") }
    }

    func testWriteTheFilteredBufferToNDJSON() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try s.cli(["PUBLISH", "workspace:1:events", #"{"type":"member.added","n":1}"#])
        try s.cli(["PUBLISH", "workspace:2:events", #"{"type":"plan.changed","n":2}"#])
        try s.cli(["PUBLISH", "workspace:3:events", #"{"type":"member.added","n":3}"#])
        try pane.waitFor("messages") { $0.contains("3 msgs") }
        try pane.send("/")
        try pane.type("type=member.added")
        try pane.send("Enter")
        let path = NSTemporaryDirectory() + "/tail-\(UUID().uuidString).ndjson"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try pane.send("w")
        try pane.send("C-u")
        try pane.type(path)
        try pane.send("Enter")
        try pane.waitFor("written") { $0.contains("wrote 2 messages") }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix(#"{"channel":"workspace:1:events","pattern":"workspace:*:events","payload":"{\"type\":\"member.added\",\"n\":1}","ts":""#), String(lines[0]))
    }

    func testKeysViewLoadsEveryPage() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.cli([], stdin: (1...2500).map { "SET app:workspace:\($0) x EX 300\n" }.joined() + "SET other:x 1\n")
        let pane = try console(s)
        defer { pane.kill() }
        try pane.send("2")
        // Several SCAN pages, their metadata fetched one round trip behind.
        let screen = try pane.waitFor("all pages", timeout: 20) { $0.contains("2,500 keys match") && !$0.contains("scanning") }
        XCTAssertFalse(screen.contains("other:x"))
        XCTAssertTrue(screen.contains("4m5") || screen.contains("4m4"), "TTLs came with the pages:\n\(screen)")
    }

    func testServerRestartShowsAGapMarker() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try console(s)
        defer { pane.kill() }
        try s.restart(downFor: 0.5)
        let screen = try pane.waitFor("gap marker", timeout: 20) { $0.contains("── gap") && $0.contains("may be lost") }
        XCTAssertTrue(screen.contains("gaps 1"), screen)
        try s.cli(["PUBLISH", "workspace:3:events", "after-restart"])
        try pane.waitFor("message after restart") { $0.contains("after-restart") }
    }
}
