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

    /// A message that arrives in the same read as the end of the connection (a server that
    /// dies right after a publish) is delivered, then the gap is reported.
    func testAMessageThatArrivesWithTheCloseIsNotLost() throws {
        let subscriptions = Counter()
        let fake = try FakeServer { _, bytes in
            // Each command of the chunk is answered; the first SUBSCRIBE gets its confirmation and
            // one message in the same packet as the end of the connection, later ones only the
            // confirmation (the message exists once: lost if not read before the close).
            var out = "", close = false
            for cmd in String(decoding: bytes, as: UTF8.self).components(separatedBy: "*").dropFirst() {
                let words = cmd.components(separatedBy: "\r\n").enumerated().filter { $0.offset % 2 == 0 && $0.offset > 0 }.map(\.element)
                switch words.first?.uppercased() ?? "" {
                case "PING": out += "+PONG\r\n"
                case "CLIENT": out += words.dropFirst().first?.uppercased() == "ID" ? ":5\r\n" : "+OK\r\n"
                case "INFO": out += "$13\r\nrole:master\r\n\r\n"
                case "SUBSCRIBE":
                    out += "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
                    if subscriptions.next() == 1 {
                        out += "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$6\r\nbefore\r\n"
                        close = true
                    }
                default: out += "-ERR unknown command\r\n"
                }
            }
            return (Array(out.utf8), close)
        }
        defer { fake.stop() }
        let r = try redisOps(["tail", "--port", String(fake.port), "--count", "1", "--timeout", "4", "--json", "c"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try ndjson(r.stdout)
        XCTAssertEqual(lines.first?["payload"] as? String, "before", r.stdout)
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

/// A thread-safe count, for scripted servers.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
}
