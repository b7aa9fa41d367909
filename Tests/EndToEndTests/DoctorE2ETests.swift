import XCTest
import Foundation
import TestSupport

/// `redis-ops doctor`: the path to the server step by step, against real servers broken in
/// each of the ways an operator meets — and the console's `:doctor`, the same walk.
final class DoctorE2ETests: XCTestCase {
    struct Step: Equatable { var step: String; var status: String; var detail: String; var hint: String? }

    func doctor(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, steps: [Step], stderr: String) {
        let r = try redisOps(["doctor", "--json"] + args, env: env)
        let steps = try ndjson(r.stdout).map { o in
            Step(step: o["step"] as? String ?? "?", status: o["status"] as? String ?? "?", detail: o["detail"] as? String ?? "",
                 hint: o["hint"] as? String)
        }
        return (r.status, steps, r.stderr)
    }

    func step(_ steps: [Step], _ name: String, file: StaticString = #filePath, line: UInt = #line) -> Step {
        guard let s = steps.first(where: { $0.step == name }) else {
            XCTFail("no \(name) step in \(steps.map(\.step))", file: file, line: line)
            return Step(step: name, status: "missing", detail: "", hint: nil)
        }
        return s
    }

    static let order = ["dns", "tcp", "tls", "auth", "acl", "latency", "cluster", "pubsub"]

    func testAHealthyServerPassesEveryStepInOrderAndNothingIsWritten() throws {
        let s = try RedisServer(.password("s3cret-token"))
        defer { s.stop() }
        let r = try doctor(["--port", String(s.port)], env: ["REDIS_AUTH_TOKEN": "s3cret-token"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.steps.map(\.step), Self.order)
        for st in r.steps where !["tls", "cluster"].contains(st.step) { XCTAssertEqual(st.status, "ok", "\(st)") }
        XCTAssertEqual(step(r.steps, "tls").status, "skip")
        XCTAssertEqual(step(r.steps, "cluster").detail, "not a cluster")
        XCTAssertTrue(step(r.steps, "acl").detail.contains("UNLINK"), step(r.steps, "acl").detail)
        XCTAssertTrue(step(r.steps, "latency").detail.contains("round trip"))
        // The write probes were only queued in a discarded MULTI: the server ran none of them.
        let stats = try s.cli(["-a", "s3cret-token", "--no-auth-warning", "INFO", "commandstats"])
        XCTAssertFalse(stats.contains("cmdstat_unlink"), stats)
        XCTAssertFalse(stats.contains("cmdstat_expire"), stats)
        XCTAssertTrue(stats.contains("cmdstat_discard"), stats)
        XCTAssertFalse(r.steps.contains { $0.detail.contains("s3cret-token") })

        // Text: one line per step, `ok`/`FAIL`/`skip`, the step, the detail.
        let text = try redisOps(["doctor", "--port", String(s.port)], env: ["REDIS_AUTH_TOKEN": "s3cret-token"])
        XCTAssertEqual(text.status, 0, text.stderr)
        let lines = text.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("ok   auth     authenticated as the default user") }, text.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("skip cluster  not a cluster") }, text.stdout)
    }

    func testAWrongPasswordFailsAtAuthWithAHintAndExitsOne() throws {
        let s = try RedisServer(.password("right"))
        defer { s.stop() }
        let r = try doctor(["--port", String(s.port)], env: ["REDIS_AUTH_TOKEN": "wrong-token-value"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(step(r.steps, "tcp").status, "ok")
        let auth = step(r.steps, "auth")
        XCTAssertEqual(auth.status, "fail")
        XCTAssertNotNil(auth.hint)
        for later in ["acl", "latency", "cluster", "pubsub"] { XCTAssertEqual(step(r.steps, later).status, "skip") }
        XCTAssertFalse(r.steps.contains { $0.detail.contains("wrong-token-value") || ($0.hint ?? "").contains("wrong-token-value") })
        XCTAssertTrue(r.stderr.contains("auth failed"), r.stderr)
        // No password at all: the server's NOAUTH, with a hint to give one.
        let none = try doctor(["--port", String(s.port)])
        XCTAssertEqual(none.status, 1)
        XCTAssertEqual(step(none.steps, "auth").status, "fail")
        XCTAssertTrue(step(none.steps, "auth").hint?.contains("requires a password") ?? false, "\(step(none.steps, "auth"))")
    }

    func testNothingListeningFailsAtTCP() throws {
        let port = freePort()
        let r = try doctor(["--port", String(port)])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(step(r.steps, "dns").status, "ok")
        XCTAssertEqual(step(r.steps, "tcp").status, "fail")
        XCTAssertTrue(step(r.steps, "tcp").detail.contains("connection refused"), step(r.steps, "tcp").detail)
        XCTAssertEqual(r.steps.map(\.step), Self.order)
    }

    func testAnUnknownHostFailsAtDNS() throws {
        let r = try doctor(["--host", "no-such-host.invalid", "--port", "6379", "--no-tls"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(step(r.steps, "dns").status, "fail")
        XCTAssertTrue(step(r.steps, "dns").hint?.contains("--via") ?? false)
    }

    func testTLSWrongCAPlainClientOnATLSPortAndAGoodHandshake() throws {
        let certs = try TestCerts.shared.get()
        let s = try RedisServer(.tls(certs, requireClientCert: false))
        defer { s.stop() }
        let base = ["--port", String(s.port), "--sni", "localhost"]
        let good = try doctor(base + ["--tls", "--cacert", certs.caCert])
        let tls = step(good.steps, "tls")
        XCTAssertTrue(tls.detail.contains("certificate valid for localhost (checked)"), tls.detail)
        XCTAssertTrue(tls.detail.contains("redis-ops test ca"), tls.detail)
        // The test certificates last two days: flagged, though the console still works.
        XCTAssertEqual(tls.status, "fail")
        XCTAssertTrue(tls.detail.contains("expires in"), tls.detail)
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertEqual(step(good.steps, "auth").status, "ok")

        let wrongCA = try doctor(base + ["--tls", "--cacert", certs.otherCACert])
        XCTAssertEqual(wrongCA.status, 1)
        XCTAssertEqual(step(wrongCA.steps, "tls").status, "fail")
        XCTAssertTrue(step(wrongCA.steps, "tls").hint?.contains("--cacert") ?? false)
        XCTAssertEqual(step(wrongCA.steps, "auth").status, "skip")

        let plain = try doctor(["--port", String(s.port)])
        XCTAssertEqual(plain.status, 1)
        XCTAssertEqual(step(plain.steps, "tls").detail, "the port speaks TLS but TLS is off")
        XCTAssertTrue(step(plain.steps, "tls").hint?.contains("--tls") ?? false)
    }

    func testAnACLUserWithoutSCANFailsAtACLNamingTheCommandAndTheGrant() throws {
        let s = try RedisServer(.acl(users: ["noscan on >pw ~app:* &* +@all -scan", "reader on >pw ~app:* &* +@read +@connection +info +slowlog +client +pubsub +subscribe +psubscribe +multi +discard",
                                             "default off"], defaultPassword: nil))
        defer { s.stop() }
        let r = try doctor(["--port", String(s.port), "--user", "noscan"], env: ["REDIS_AUTH_TOKEN": "pw"])
        XCTAssertEqual(r.status, 1)
        let acl = step(r.steps, "acl")
        XCTAssertEqual(acl.status, "fail")
        XCTAssertTrue(acl.detail.contains("SCAN (NOPERM"), acl.detail)
        XCTAssertTrue(acl.hint?.contains("+scan") ?? false, "\(acl)")
        XCTAssertTrue(step(r.steps, "auth").detail.hasPrefix("authenticated as user noscan"), step(r.steps, "auth").detail)

        // A read-only ACL: the console works (exit 0); the writes it may not make are named.
        let ro = try doctor(["--port", String(s.port), "--user", "reader"], env: ["REDIS_AUTH_TOKEN": "pw"])
        let roACL = step(ro.steps, "acl")
        XCTAssertEqual(roACL.status, "ok", "\(roACL)")
        XCTAssertTrue(roACL.detail.contains("UNLINK (NOPERM: cannot delete or invalidate)"), roACL.detail)
        XCTAssertEqual(step(ro.steps, "pubsub").status, "fail")   // no PUBLISH for this user
        XCTAssertEqual(ro.status, 0, "\(ro.steps)")
    }

    func testReadOnlyModeSubscribesButDoesNotPublish() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let r = try doctor(["--port", String(s.port), "--read-only"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(step(r.steps, "pubsub").detail.contains("PUBLISH not tried (read-only mode)"), step(r.steps, "pubsub").detail)
        let stats = try s.cli(["INFO", "commandstats"])
        XCTAssertFalse(stats.contains("cmdstat_publish"), stats)
        XCTAssertTrue(stats.contains("cmdstat_subscribe"), stats)
    }

    func testAClusterWithANodeDownFailsAtClusterNamingIt() throws {
        let c = try RedisCluster(size: 3)
        defer { c.stop() }
        let ok = try doctor(["--port", String(c.ports[0])])
        XCTAssertEqual(ok.status, 0, "\(ok.steps)")
        XCTAssertTrue(step(ok.steps, "cluster").detail.hasPrefix("3 shard(s), 3 node(s), state ok; 16384 of 16384 slots served"), step(ok.steps, "cluster").detail)
        c.nodes[2].stop()
        let down = try doctor(["--port", String(c.ports[0])])
        XCTAssertEqual(down.status, 1)
        let cl = step(down.steps, "cluster")
        XCTAssertEqual(cl.status, "fail")
        XCTAssertTrue(cl.detail.contains("unreachable: 127.0.0.1:\(c.ports[2])"), cl.detail)
    }

    func testTheConsoleRunsTheSameWalkInAnOverlay() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("● live") }
        try pane.send(":")
        try pane.type("doctor")
        try pane.send("Enter")
        let screen = try pane.waitFor("the walk") { $0.contains("every step the console needs is ok") }
        for name in ["dns", "tcp", "tls", "auth", "acl", "latency", "cluster", "pubsub"] {
            XCTAssertTrue(screen.contains(where: { _ in true }) && screen.split(separator: "\n").contains { $0.contains(" \(name) ") }, "no \(name) line:\n\(screen)")
        }
        XCTAssertTrue(screen.contains("a message went round a private channel"), screen)
        try pane.send("Escape")
        _ = try pane.waitFor("closed") { !$0.contains("Doctor ·") }
        // Stopped server: the walk says where it breaks, without taking the console down.
        s.stop()
        try pane.send(":")
        try pane.type("doctor")
        try pane.send("Enter")
        let broken = try pane.waitFor("tcp failure") { $0.contains("the console cannot work here: tcp failed") }
        XCTAssertTrue(broken.contains("connection refused"), broken)
        try pane.send("Escape")
        try pane.send("q")
    }
}
