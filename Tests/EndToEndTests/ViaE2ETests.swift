import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport

/// --via: every connection through `ssh -W` over one multiplexed ssh connection to a
/// bastion (a private sshd here), with the operator's own ssh configuration.
final class ViaE2ETests: XCTestCase {
    static let bastion = Shared { try SSHD() }
    override class func tearDown() { bastion.ifMade { $0.stop() } }

    func via() throws -> SSHD { try Self.bastion.get() }

    /// The connections to Redis are sshd's: no redis-ops process holds one of its own.
    func assertOnlyTheBastionConnects(to port: Int, _ sshd: SSHD, atLeast: Int, file: StaticString = #filePath, line: UInt = #line) {
        let holders = processesConnected(toPort: port)
        let sshdPids = sshd.pids()
        let total = holders.values.reduce(0, +)
        XCTAssertGreaterThanOrEqual(total, atLeast, "connections to :\(port): \(holders)", file: file, line: line)
        for (pid, n) in holders {
            let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            XCTAssertTrue(sshdPids.contains(pid) || name == "sshd", "pid \(pid) (\(name)) holds \(n) connection(s) to :\(port) — not through the bastion", file: file, line: line)
        }
    }

    func testEveryConnectionOfTheConsoleAndTheCLIGoesThroughTheBastion() throws {
        let sshd = try via()
        let s = try RedisServer(.plain)
        defer { s.stop() }
        try s.fillLikeTheApp()
        let args = ["--via", SSHD.alias, "--port", String(s.port)]
        let keys = try redisOps(["keys", "--json", "--match", "workspace:*"] + args, env: sshd.environment)
        XCTAssertEqual(keys.status, 0, keys.stderr)
        XCTAssertEqual(try ndjson(keys.stdout).count, 20)
        let pane = try TmuxPane(width: 140, height: 30, command: [redisOpsBinary()] + args, env: sshd.environment)
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try pane.send("2")
        try pane.waitFor("keys") { $0.contains("keys match") }
        // The subscriber, the interactive, bulk and writer workers: every one through sshd.
        try waitUntil("the console's connections", timeout: 10) { processesConnected(toPort: s.port).values.reduce(0, +) >= 4 }
        assertOnlyTheBastionConnects(to: s.port, sshd, atLeast: 4)
        try pane.send("q")
    }

    func testTLSStaysEndToEndThroughTheBastion() throws {
        let sshd = try via()
        let certs = try TestCerts.shared.get()
        let s = try RedisServer(.tls(certs, requireClientCert: false))
        defer { s.stop() }
        try s.cli(["SET", "app:workspace:1", "{}"])
        let base = ["keys", "--json", "--via", SSHD.alias, "--port", String(s.port), "--tls", "--sni", "localhost"]
        let ok = try redisOps(base + ["--cacert", certs.caCert], env: sshd.environment)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("app:workspace:1"))
        // The certificate is checked by us, not by the tunnel: a wrong CA fails as it would directly.
        let bad = try redisOps(base + ["--cacert", certs.otherCACert], env: sshd.environment)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("certificate not trusted"), bad.stderr)
        let wrongName = try redisOps(["keys", "--via", SSHD.alias, "--port", String(s.port), "--tls", "--cacert", certs.caCert, "--sni", "other.example"],
                                     env: sshd.environment)
        XCTAssertTrue(wrongName.stderr.contains("host name mismatch"), wrongName.stderr)
    }

    func testAClusterIsReachedNodeByNodeThroughTheBastion() throws {
        let sshd = try via()
        let cl = try RedisCluster(size: 3)
        defer { cl.stop() }
        let keys = (0..<300).map { "app:workspace:\($0)" }
        for k in keys { _ = try cl.cli(["-c", "SET", k, "{}"]) }
        let args = ["--via", SSHD.alias, "--port", String(cl.ports[0])]
        let r = try redisOps(["keys", "--json"] + args, env: sshd.environment)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(try ndjson(r.stdout).compactMap { $0["key"] as? String }), Set(keys), "every node listed through the bastion")
        let pane = try TmuxPane(width: 140, height: 30, command: [redisOpsBinary()] + args, env: sshd.environment)
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try pane.send("2")
        try pane.waitFor("keys") { $0.contains("300 keys match") }
        for p in cl.ports { assertOnlyTheBastionConnects(to: p, sshd, atLeast: 1) }
        let inv = try redisOps(["invalidate", "--match", "workspace:1*", "--yes", "--json", "--audit-log", NSTemporaryDirectory() + "/a-\(UUID()).log"] + args,
                               env: sshd.environment)
        XCTAssertEqual(inv.status, 0, inv.stderr)
        XCTAssertEqual(try ndjson(inv.stdout).first?["deleted"] as? Int, 111)
    }

    /// Failures name the hop: the key refused, the host key unknown, a node the bastion
    /// cannot reach — and with the bastion gone, nothing goes around it.
    func testFailuresNameTheHopAndNothingGoesAroundIt() throws {
        let sshd = try SSHD()   // its own: this test stops it
        defer { sshd.stop() }
        let s = try RedisServer(.plain)
        defer { s.stop() }
        func cfg(_ edit: (String) -> String) throws -> [String: String] {
            let path = sshd.dir + "/ssh_config-\(UUID().uuidString.prefix(6))"
            try edit(try String(contentsOfFile: sshd.configFile, encoding: .utf8)).write(toFile: path, atomically: true, encoding: .utf8)
            return ["REDIS_OPS_SSH_COMMAND": "ssh -F \(path)"]
        }
        // Another key: refused.
        let other = sshd.dir + "/other_key-\(UUID().uuidString.prefix(6))"
        _ = try TestSupport.run(try which("ssh-keygen"), ["-q", "-t", "ed25519", "-N", "", "-f", other])
        let denied = try redisOps(["keys", "--via", SSHD.alias, "--port", String(s.port)],
                                  env: try cfg { $0.replacingOccurrences(of: "IdentityFile \(sshd.dir)/user_key", with: "IdentityFile \(other)") })
        XCTAssertEqual(denied.status, 1)
        XCTAssertTrue(denied.stderr.contains("ssh to bastion: Permission denied (publickey)"), denied.stderr)
        // The host key unknown.
        let empty = sshd.dir + "/empty_known_hosts"
        FileManager.default.createFile(atPath: empty, contents: nil)
        let unknown = try redisOps(["keys", "--via", SSHD.alias, "--port", String(s.port)],
                                   env: try cfg { $0.replacingOccurrences(of: "UserKnownHostsFile \(sshd.knownHosts)", with: "UserKnownHostsFile \(empty)") })
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("host key for bastion is not known") && unknown.stderr.contains("ssh-keyscan"), unknown.stderr)
        // A node the bastion cannot reach.
        let closed = freePort()
        let unreachable = try redisOps(["keys", "--via", SSHD.alias, "--port", String(closed)], env: sshd.environment)
        XCTAssertEqual(unreachable.status, 1)
        XCTAssertTrue(unreachable.stderr.contains("the bastion bastion cannot reach node 127.0.0.1:\(closed)"), unreachable.stderr)
        // A console on it; then its master and the bastion go: every new connection fails and
        // says so — none is made around the bastion.
        let pane = try TmuxPane(width: 140, height: 30, command: [redisOpsBinary(), "--via", SSHD.alias, "--port", String(s.port)], env: sshd.environment)
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        let masters = try spawnWait("/usr/bin/pgrep", ["-f", "ControlPath=/tmp/redis-ops-ssh-"]).output.split(separator: "\n").compactMap { Int32($0) }
        XCTAssertFalse(masters.isEmpty, "the master runs")
        sshd.stop()
        for m in masters { kill(m, SIGKILL) }
        try s.cli(["CLIENT", "KILL", "TYPE", "normal"])
        try s.cli(["CLIENT", "KILL", "TYPE", "pubsub"])
        try pane.waitFor("the console says it cannot reach the server", timeout: 15) { $0.contains("reconnecting") || $0.contains("ssh") }
        usleep(1_000_000)
        XCTAssertEqual(processesConnected(toPort: s.port).values.reduce(0, +), 0, "no connection around the bastion")
        let cli = try redisOps(["info", "--via", SSHD.alias, "--port", String(s.port)], env: sshd.environment)
        XCTAssertEqual(cli.status, 1)
        XCTAssertTrue(cli.stderr.contains("ssh to bastion"), cli.stderr)
    }

    /// doctor through the bastion: dns and tcp are the bastion's (skipped), the ssh step says
    /// whether the hop and the node behind it hold, and a node it cannot reach fails there.
    func testDoctorWalksThePathThroughTheBastion() throws {
        let sshd = try via()
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let ok = try redisOps(["doctor", "--json", "--via", SSHD.alias, "--port", String(s.port)], env: sshd.environment)
        XCTAssertEqual(ok.status, 0, ok.stderr + ok.stdout)
        let steps = try ndjson(ok.stdout)
        XCTAssertEqual(steps.map { $0["step"] as? String ?? "" }, ["dns", "tcp", "ssh", "tls", "auth", "acl", "latency", "cluster", "pubsub"])
        XCTAssertEqual(steps[0]["status"] as? String, "skip")
        XCTAssertEqual(steps[2]["status"] as? String, "ok")
        XCTAssertTrue((steps[2]["detail"] as? String ?? "").contains("reached through it"), "\(steps[2])")
        let closed = freePort()
        let bad = try redisOps(["doctor", "--via", SSHD.alias, "--port", String(closed)], env: sshd.environment)
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stdout.contains("FAIL ssh"), bad.stdout)
        XCTAssertTrue(bad.stdout.contains("cannot reach node 127.0.0.1:\(closed)"), bad.stdout)
        XCTAssertTrue(bad.stdout.contains("→ the bastion cannot connect to the node"), bad.stdout)
    }
}
