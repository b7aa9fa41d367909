import XCTest
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Whether something listens on the port (the demo's server has a password: no command needed).
func portIsOpen(_ port: Int) -> Bool { canConnect(port: port) }

/// The demo server's password file: its private directory is random, found from the
/// redis-server the demo started on this port (its config file names the directory).
func demoPasswordFile(port: Int) throws -> String {
    var found: String?
    try waitUntil("the demo's password file", timeout: 20) {
        // redis-server shows itself as "redis-server 127.0.0.1:PORT" and works in its `dir`.
        for line in try spawnWait("/usr/bin/pgrep", ["-af", "redis-server"]).output.split(separator: "\n") where line.hasSuffix(":\(port)") {
            guard let pid = line.split(separator: " ").first,
                  let dir = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"),
                  dir.contains("redis-ops-demo-"), FileManager.default.fileExists(atPath: dir + "/password") else { continue }
            found = dir + "/password"
            return true
        }
        return false
    }
    return found!
}

final class DemoE2ETests: XCTestCase {
    func testDemoFillsTheKeyspaceStreamsEventsAndCleansUp() throws {
        let port = freePort()
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "demo", "--port", String(port), "--seed", "7", "--workspaces", "300"])
        defer { pane.kill() }
        try pane.waitFor("live events", timeout: 20) { $0.contains("workspace:") && $0.contains("\"type\":") }
        let pw = try demoPasswordFile(port: port)
        let password = try String(contentsOfFile: pw, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // The keyspace, read back through the headless subcommand.
        let ws = try redisOps(["keys", "--json", "--port", String(port), "--password-file", pw, "--match", "workspace:*"])
        let keys = try ndjson(ws.stdout)
        XCTAssertGreaterThanOrEqual(keys.count, 300)
        XCTAssertTrue(keys.contains { ($0["key"] as? String) == "app:workspace:leaked-1" && ($0["ttl_ms"] as? Int) == -1 })
        XCTAssertTrue(keys.filter { ($0["ttl_ms"] as? Int ?? 0) > 0 }.allSatisfy { ($0["ttl_ms"] as! Int) <= 300_000 || ($0["key"] as! String) == "app:workspace:long-ttl" })
        let all = try ndjson(try redisOps(["keys", "--json", "--port", String(port), "--password-file", pw]).stdout)
        let types = Set(all.compactMap { $0["type"] as? String })
        XCTAssertEqual(types, ["string", "hash", "list", "set", "zset", "stream"])
        XCTAssertTrue(all.contains { ($0["key"] as? String) == "app:lock:workspace:17" && ($0["ttl_ms"] as? Int) == -1 }, "the stuck lock, named as the application names it")
        XCTAssertFalse(all.contains { ($0["key"] as? String ?? "").hasPrefix("app:lock:app:") }, "prefixed once")
        let lock = try redisOps(["keys", "--json", "--port", String(port), "--password-file", pw, "--match", "lock:*"])
        XCTAssertFalse(lock.stdout.isEmpty)
        let held = try ndjson(lock.stdout).compactMap { $0["key"] as? String }
        for k in held.prefix(3) { XCTAssertEqual(try TestSupport.run(try which("redis-cli"), ["-p", String(port), "--no-auth-warning", "-a", password, "GET", k]).stdout, "1\n", "every lock holds \"1\"") }
        XCTAssertTrue(all.contains { ($0["key"] as? String) == "app:ratelimit:ip:198.51.100.7" })
        try pane.send("q")
        XCTAssertEqual(try pane.waitForExit(), 0)
        try waitUntil("the demo's redis-server to stop", timeout: 5) { !portIsOpen(port) }
    }

    func testACrashOfTheConsoleStopsTheDemoServer() throws {
        let port = freePort()
        let pane = try TmuxPane(width: 100, height: 24, command: [redisOpsBinary(), "demo", "--port", String(port), "--workspaces", "50"])
        defer { pane.kill() }
        try pane.waitFor("events", timeout: 20) { $0.contains("\"type\":") }
        let pid = try spawnWait("/usr/bin/pgrep", ["-f", "redis-ops demo --port \(port)"]).output.split(separator: "\n").first.flatMap { Int32($0) }
        kill(try XCTUnwrap(pid), SIGSEGV)
        XCTAssertEqual(try pane.waitForExit(), 128 + SIGSEGV)
        try waitUntil("the crash handler to stop the demo's redis-server", timeout: 5) { !portIsOpen(port) }
        XCTAssertEqual(try pane.display("#{alternate_on}"), "0")
    }

    func testNoConsoleModeRunsUntilSignalled() throws {
        let port = freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: redisOpsBinary())
        p.arguments = ["demo", "--no-console", "--port", String(port), "--workspaces", "50"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let end = Date().addingTimeInterval(15)
        while Date() < end && !portIsOpen(port) { usleep(100_000) }
        XCTAssertTrue(portIsOpen(port))
        // The demo server has a random password, in a file of a private (0700) directory.
        var said = ""
        while !said.contains("REDISCLI_AUTH"), Date() < end { said += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self) }
        let file = try XCTUnwrap(said.split(separator: "\n").first { $0.hasPrefix("password file: ") }.map { String($0.dropFirst(15)) }, said)
        let dir = (file as NSString).deletingLastPathComponent
        var st = stat()
        XCTAssertEqual(lstat(dir, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700, "a private directory")
        XCTAssertEqual(st.st_uid, getuid())
        XCTAssertTrue((dir as NSString).lastPathComponent.hasPrefix("redis-ops-demo-") && !(dir as NSString).lastPathComponent.hasSuffix("-\(p.processIdentifier)"),
                      "not a name anyone could guess from the pid: \(dir)")
        XCTAssertEqual(try redisOps(["info", "--port", String(port)]).status, 1, "no password, no access")
        let password = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertGreaterThanOrEqual(password.count, 32)
        // Events are flowing.
        let t = try redisOps(["tail", "--port", String(port), "--password-file", file, "--pattern", "workspace:*:events", "--count", "1", "--timeout", "10", "--json"])
        XCTAssertEqual(try ndjson(t.stdout).count, 1, t.stderr)
        // The application's consumer is connected (its own subscriber connection, app-sub),
        // on the channels of workspaces 1-30 only: the channels pane has someone to count.
        let cli = { (args: [String]) in try TestSupport.run(try which("redis-cli"), ["-p", String(port), "--no-auth-warning", "-a", password] + args).stdout }
        let numsub = { try cli(["PUBSUB", "NUMSUB", "workspace:1:events", "workspace:35:events"]).split(separator: "\n").map(String.init) }
        try waitUntil("the application's subscriber", timeout: 5) { try numsub()[1] == "1" }
        XCTAssertEqual(try numsub(), ["workspace:1:events", "1", "workspace:35:events", "0"])
        XCTAssertTrue(try cli(["CLIENT", "LIST"]).contains("name=app-sub"))
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        try waitUntil("the demo's redis-server to stop", timeout: 5) { !portIsOpen(port) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "its directory goes with it")
    }
}

/// The tour: the demo, every view, a filter, an inspector, an invalidation dry run that is
/// cancelled, a resize, and a clean exit that leaves no redis-server behind.
final class TourE2ETests: XCTestCase {
    func testTour() throws {
        let port = freePort()
        let pane = try TmuxPane(width: 120, height: 32, command: [redisOpsBinary(), "demo", "--port", String(port), "--seed", "5", "--workspaces", "400"])
        defer { pane.kill() }
        try pane.waitFor("events", timeout: 20) { $0.contains("\"type\":") }
        try pane.send("/")
        try pane.type("type=member.added")
        try pane.send("Enter")
        try pane.waitFor("filter") { $0.contains("filter “type=member.added”") }
        try pane.send("Escape")
        try pane.send("2")
        try pane.waitFor("keys loaded", timeout: 20) { $0.contains("break the conventions") && !$0.contains("scanning") }
        try pane.send("/")
        try pane.type("workspace:leaked-*")
        try pane.send("Enter")
        try pane.waitFor("filtered keys") { $0.contains("no TTL: leak?") }
        try pane.send("Enter")
        try pane.waitFor("inspector") { $0.contains("in memory · value ") && $0.contains("· TTL none") && $0.contains("\"plan\"") }
        try pane.send("Escape")
        try pane.send("Escape")
        let dry = try pane.invalidationDryRun("workspace:1*", expecting: "would be deleted (UNLINK)", timeout: 20)
        XCTAssertTrue(dry.contains("Type "))
        let pw = try demoPasswordFile(port: port)
        let before = try redisOps(["keys", "--json", "--port", String(port), "--password-file", pw, "--match", "workspace:1*"]).stdout.split(separator: "\n").count
        try pane.send("Escape")
        try pane.waitFor("cancelled") { $0.contains("cancelled — nothing was changed") }
        let after = try redisOps(["keys", "--json", "--port", String(port), "--password-file", pw, "--match", "workspace:1*"]).stdout.split(separator: "\n").count
        XCTAssertGreaterThanOrEqual(after, before - 5, "the dry run deleted nothing (only natural expiry)")
        try pane.send("3")
        try pane.waitFor("rate limits") { $0.contains("BLOCKED") && $0.contains("BROKEN") }
        try pane.send("4")
        try pane.waitFor("locks") { $0.contains("STUCK") && $0.contains("app:workspace:17") }
        try pane.send("5")
        try pane.waitFor("server") { $0.contains("hit ratio") && $0.contains("role master") }
        try pane.resize(40, 10)
        try pane.waitFor("small") { $0.contains("1 Even") }
        try pane.resize(120, 32)
        try pane.waitFor("big again") { $0.contains("5 Server") && $0.contains("hit ratio") }
        try pane.send("?")
        try pane.waitFor("help") { $0.contains("Help · Server") }
        try pane.send("Escape")
        try pane.send("q")
        XCTAssertEqual(try pane.waitForExit(), 0)
        try waitUntil("no demo redis-server left running", timeout: 5) { !portIsOpen(port) }
    }
}
