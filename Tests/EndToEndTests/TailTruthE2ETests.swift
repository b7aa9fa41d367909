import XCTest
import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class TailTruthE2ETests: XCTestCase {
    /// A script reading `tail --json` learns where messages may have been lost.
    func testTheGapIsARecordInTheStreamWhereItHappened() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--count", "2", "--timeout", "30", "--json", "c"])
        try s.waitForSubscribers("c")
        try s.cli(["PUBLISH", "c", "before"])
        try s.restart(downFor: 1)
        try s.waitForSubscribers("c", timeout: 20)
        try s.cli(["PUBLISH", "c", "after"])
        let r = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try ndjson(r.stdout)
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[0]["payload"] as? String, "before")
        let gap = try XCTUnwrap(lines[1]["gap"] as? [String: Any])
        XCTAssertEqual(lines[2]["payload"] as? String, "after")
        let from = try XCTUnwrap(gap["from"] as? String), to = try XCTUnwrap(gap["to"] as? String)
        XCTAssertLessThan(from, to)
        XCTAssertLessThanOrEqual(from, lines[2]["ts"] as! String)
        XCTAssertGreaterThanOrEqual(from, lines[0]["ts"] as! String, "from: the last message received")
        XCTAssertTrue((gap["reason"] as? String)?.contains("closed the connection") == true, "\(gap)")
        XCTAssertTrue(r.stderr.contains("may be lost"), r.stderr)
    }

    func testEveryConnectionFailureNamesItsCause() throws {
        let certs = try TestCerts.shared.get()
        let tls = try RedisServer(.tls(certs, requireClientCert: true))
        defer { tls.stop() }
        for _ in 0..<4 {
            let r = try redisOps(["keys", "--port", String(tls.port), "--tls", "--cacert", certs.caCert, "--sni", "localhost"])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.contains("the server requires a client certificate (give it with --cert and --key)"), r.stderr)
        }
        let plainOnTLS = try redisOps(["info", "--port", String(tls.port)])
        XCTAssertEqual(plainOnTLS.status, 1)
        XCTAssertTrue(plainOnTLS.stderr.contains("this port speaks TLS: connect with --tls"), plainOnTLS.stderr)

        let s = try RedisServer(.password("pw"))
        defer { s.stop() }
        let dir = NSTemporaryDirectory() + "/pw-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/token"
        try "pw\r\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        let crlf = try redisOps(["info", "--port", String(s.port), "--password-file", file])
        XCTAssertEqual(crlf.status, 0, "a password file saved with CR LF: \(crlf.stderr)")
        XCTAssertEqual(crlf.stderr, "")
        chmod(file, 0o644)
        let loose = try redisOps(["info", "--port", String(s.port), "--password-file", file])
        XCTAssertEqual(loose.status, 0)
        XCTAssertTrue(loose.stderr.contains("can be read by other users (mode 644); chmod 600 it"), loose.stderr)
        let url = try redisOps(["info", "--url", "redis://:pw@127.0.0.1:\(s.port)"])
        XCTAssertEqual(url.status, 0)
        XCTAssertTrue(url.stderr.contains("a password inside --url can be seen by other users"), url.stderr)
        XCTAssertFalse(url.stderr.contains("pw@"))
        let empty = try redisOps(["info", "--url", "redis://:@"])
        XCTAssertEqual(empty.status, 2)
        XCTAssertTrue(empty.stderr.contains("the password after ':' is empty"), empty.stderr)
    }

    /// Ctrl-S is a key like any other: terminal flow control is off.
    func testCtrlSDoesNotFreezeTheConsole() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("C-s")
        try pane.send("5")
        try pane.waitFor("still answering keys") { $0.contains("WHO IS CONNECTED") || $0.contains("reading INFO") || $0.contains("role master") }
        try s.cli(["PUBLISH", "workspace:1:events", "{}"])
        try pane.send("1")
        try pane.waitFor("and drawing") { $0.contains("1 msgs") }
    }
}
