import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport

/// A password that changes under a running console and tail (ElastiCache's ROTATE then SET,
/// an IAM token expiring): they recover as soon as the new password can be read, without a
/// restart, and never hammer the server with the old one.
final class RotationE2ETests: XCTestCase {
    func server() throws -> RedisServer {
        try RedisServer(.acl(users: ["ops on >old-token ~* &* +@all"], defaultPassword: "admin-pw"))
    }

    func aclFailures(_ s: RedisServer) throws -> Int {
        let log = try s.cli(["ACL", "LOG", "200"])
        return log.components(separatedBy: "\n").filter { $0 == "auth" }.count
    }

    func rotate(_ s: RedisServer) throws {
        try s.cli(["ACL", "SETUSER", "ops", ">new-token", "<old-token"])
        try s.cli(["CLIENT", "KILL", "USER", "ops"])
    }

    func check(source: [String], update: (String) throws -> Void, label: String) throws {
        let s = try server()
        defer { s.stop() }
        let dir = NSTemporaryDirectory() + "/rot-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/token"
        try "old-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        let args = ["--port", String(s.port), "--user", "ops"] + source.map { $0.replacingOccurrences(of: "FILE", with: file) }
        let tail = BackgroundRun(["tail", "--json", "--timeout", "40", "--count", "2", "workspace:1:events"] + args)
        let pane = try TmuxPane(width: 140, height: 30, command: [redisOpsBinary()] + args)
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try s.waitForSubscribers("workspace:1:events", count: 1)   // the tail
        try waitUntil("the console's pattern subscriber", timeout: 10) { try s.cli(["PUBSUB", "NUMPAT"]) == "1\n" }
        try s.cli(["PUBLISH", "workspace:1:events", #"{"n":1}"#])
        let failuresBefore = try aclFailures(s)
        // The token rotates; the console and the tail are cut off and refused.
        try rotate(s)
        try pane.waitFor("the refusal said", timeout: 15) { $0.contains("authentication refused since") && $0.contains(label) }
        usleep(3_000_000)
        // The new token reaches the file (or what the command prints): back within seconds.
        let t0 = Date()
        try update(file)
        try pane.waitFor("the console back", timeout: 10) { $0.contains("● live") && !$0.contains("reconnecting") }
        try s.waitForSubscribers("workspace:1:events", count: 1, timeout: 10)
        try waitUntil("the console's subscriber back", timeout: 10) { try s.cli(["PUBSUB", "NUMPAT"]) == "1\n" }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        try s.cli(["PUBLISH", "workspace:1:events", #"{"n":2}"#])
        let r = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try ndjson(r.stdout)
        XCTAssertTrue(lines.contains { $0["gap"] != nil }, "the window without a subscriber is a gap record: \(r.stdout)")
        XCTAssertEqual(lines.filter { $0["payload"] != nil }.count, 2)
        XCTAssertTrue(r.stderr.contains("authentication refused since"), r.stderr)
        // Bounded: a handful of refused attempts in ~5 s for the console's and the tail's
        // connections together — not twice a second each.
        let failures = try aclFailures(s) - failuresBefore
        XCTAssertLessThanOrEqual(failures, 12, "failed AUTHs: \(failures)")
    }

    func testAPasswordFileUpdatedAfterRotationIsReadAgain() throws {
        try check(source: ["--password-file", "FILE"], update: { try "new-token\n".write(toFile: $0, atomically: true, encoding: .utf8) },
                  label: "the password file")
    }

    func testAPasswordCommandIsRunAgainAfterRotation() throws {
        try check(source: ["--password-command", "cat FILE"], update: { try "new-token\n".write(toFile: $0, atomically: true, encoding: .utf8) },
                  label: "the password command")
    }

    /// Scripts that would rather stop: --exit-on-auth-failure.
    func testExitOnAuthFailure() throws {
        let s = try server()
        defer { s.stop() }
        let file = NSTemporaryDirectory() + "/tok-\(UUID().uuidString)"
        try "old-token".write(toFile: file, atomically: true, encoding: .utf8)
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--user", "ops", "--password-file", file, "--exit-on-auth-failure", "--timeout", "30", "c"])
        try s.waitForSubscribers("c")
        try rotate(s)
        let r = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("WRONGPASS") || r.stderr.contains("invalid password"), r.stderr)
    }
}
