import XCTest
import Foundation
import TestSupport

final class KeysCLITests: XCTestCase {
    static let fixture = Shared { () throws -> RedisServer in
        let s = try RedisServer(.plain)
        try s.fillLikeTheApp()
        return s
    }
    var server: RedisServer!
    override func setUpWithError() throws { server = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }
    var port: String { String(server.port) }

    func testKeysJSONListsExactlyTheMatchingPrefixedKeys() throws {
        let r = try redisOps(["--port", port, "keys", "--match", "workspace:*", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(Set(rows.map { $0["key"] as! String }), Set((1...20).map { "app:workspace:\($0)" }))
        for row in rows {
            XCTAssertEqual(row["type"] as? String, "string")
            let ttl = row["ttl_ms"] as! Int
            XCTAssertTrue(ttl > 250_000 && ttl <= 300_000, "ttl \(ttl)")
            XCTAssertTrue((row["bytes"] as? Int ?? 0) > 0)
            XCTAssertEqual(Array(row.keys).sorted(), ["bytes", "key", "ttl_ms", "type"])
        }
        // The exact shape and field order of the contract.
        let first = r.stdout.split(separator: "\n")[0]
        XCTAssertTrue(first.hasPrefix("{\"key\":\"app:workspace:"), String(first))
        XCTAssertTrue(first.contains("\",\"type\":\"string\",\"ttl_ms\":"))
    }

    /// A glob that starts with the prefix is taken as a full one (as `keys` prints names and
    /// the console accepts them), and a note on stderr says so; stdout stays the contract's.
    func testAGlobWithThePrefixIsTakenAsFullAndSaysSo() throws {
        let r = try redisOps(["--port", port, "keys", "--match", "app:workspace:*", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(try ndjson(r.stdout).map { $0["key"] as! String }), Set((1...20).map { "app:workspace:\($0)" }))
        XCTAssertTrue(r.stderr.contains("'app:workspace:*' already starts with the prefix app:: taken as the full name"), r.stderr)
        XCTAssertEqual(try redisOps(["--port", port, "keys", "--match", "workspace:*"]).stderr, "", "no note for a relative glob")
        let dry = try redisOps(["--port", port, "invalidate", "--match", "app:workspace:*", "--dry-run", "--json"],
                               env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"])
        XCTAssertEqual(try ndjson(dry.stdout).first?["matched"] as? Int, 20, dry.stderr)
        XCTAssertTrue(dry.stderr.contains("taken as the full name"), dry.stderr)
    }

    func testKeysOutsideThePrefixNeverAppear() throws {
        let r = try redisOps(["keys", "--json", "--port", port])
        XCTAssertEqual(r.status, 0, r.stderr)
        let keys = try ndjson(r.stdout).map { $0["key"] as! String }
        XCTAssertTrue(keys.allSatisfy { $0.hasPrefix("app:") }, "\(keys)")
        XCTAssertTrue(keys.contains("app:lock:workspace:4"))
        XCTAssertTrue(keys.contains("app:ratelimit:ip:10.0.0.1"))
        XCTAssertFalse(keys.contains("other:workspace:1"))
        XCTAssertFalse(keys.contains("workspace:1"))
        let noTTL = try ndjson(r.stdout).first { ($0["key"] as! String) == "app:session:abc" }!
        XCTAssertEqual(noTTL["ttl_ms"] as? Int, -1)
        let hash = try ndjson(r.stdout).first { ($0["key"] as! String) == "app:user:1" }!
        XCTAssertEqual(hash["type"] as? String, "hash")
    }

    func testPrefixFromEnvironmentAndEmptyPrefix() throws {
        let r = try redisOps(["keys", "--json", "--port", port, "--match", "workspace:1"], env: ["REDIS_PREFIX": "other"])
        XCTAssertEqual(try ndjson(r.stdout).map { $0["key"] as! String }, ["other:workspace:1"])
        let e = try redisOps(["keys", "--json", "--port", port, "--prefix", "", "--match", "workspace:1"])
        XCTAssertEqual(try ndjson(e.stdout).map { $0["key"] as! String }, ["workspace:1"])
    }

    func testLimit() throws {
        let r = try redisOps(["keys", "--json", "--port", port, "--limit", "3"])
        XCTAssertEqual(try ndjson(r.stdout).count, 3)
    }

    func testBinaryAndHostileKeys() throws {
        let admin = try server.admin()
        let key: [UInt8] = Array("app:bin:".utf8) + [0xFF, 0x1B, 0x5B, 0x32, 0x4A, 0x0A]
        try admin.call([Array("SET".utf8), key, Array("v".utf8)])
        defer { _ = try? admin.call([Array("DEL".utf8), key]) }
        let r = try redisOps(["keys", "--json", "--port", port, "--match", "bin:*"])
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0]["key_base64"] as? String, Data(key).base64EncodedString())
        XCTAssertTrue(r.stdout.contains("app:bin:\\u00ff\\u001b[2J\\n"), r.stdout)
        // Text mode never writes the raw escape sequence to the terminal.
        let t = try redisOps(["keys", "--port", port, "--match", "bin:*"])
        XCTAssertFalse(t.stdoutBytes.contains(0x1B))
        XCTAssertTrue(t.stdout.contains("app:bin:\\xff\\e[2J\\n"), t.stdout)
    }

    func testGlobalOptionsBeforeOrAfterSubcommand() throws {
        let a = try redisOps(["--port", port, "--prefix", "app:", "keys", "--match", "user:*", "--json"])
        let b = try redisOps(["keys", "--match", "user:*", "--json", "--port", port])
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(try ndjson(a.stdout).map { $0["key"] as! String }, ["app:user:1"])
        XCTAssertEqual(try ndjson(b.stdout).map { $0["key"] as! String }, ["app:user:1"])
    }

    func testURLFlagAndREDIS_URLAndSeparateEnv() throws {
        for (args, env) in [(["--url", "redis://127.0.0.1:\(port)"], [String: String]()),
                            ([], ["REDIS_URL": "redis://127.0.0.1:\(port)/0"]),
                            ([], ["REDIS_HOST": "127.0.0.1", "REDIS_PORT": port])] {
            let r = try redisOps(["keys", "--json", "--match", "user:*"] + args, env: env)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try ndjson(r.stdout).map { $0["key"] as! String }, ["app:user:1"])
        }
    }

    func testInfoJSON() throws {
        let r = try redisOps(["info", "--json", "--port", port])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try ndjson(r.stdout)[0]
        for f in ["role", "used_memory", "maxmemory_policy", "keyspace_hits", "keyspace_misses", "hit_ratio", "evicted_keys",
                  "expired_keys", "connected_clients", "instantaneous_ops_per_sec"] {
            XCTAssertTrue(o.keys.contains(f), "missing \(f)")
        }
        XCTAssertEqual(o["role"] as? String, "master")
        XCTAssertEqual(o["maxmemory_policy"] as? String, "noeviction")
        let t = try redisOps(["info", "--port", port])
        XCTAssertTrue(t.stdout.contains("maxmemory-policy  noeviction"), t.stdout)
    }

    func testUsageErrorsExit2() throws {
        XCTAssertEqual(try redisOps(["keys", "--nope"]).status, 2)
        XCTAssertEqual(try redisOps(["keys", "--limit", "x"]).status, 2)
        XCTAssertEqual(try redisOps(["keys", "--url", "http://x"]).status, 2)
        XCTAssertEqual(try redisOps(["keys"], env: ["REDIS_PORT": "zz"]).status, 2)
    }

    func testUnreachableExit1() throws {
        let r = try redisOps(["keys", "--port", String(freePort())])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("connection refused"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one clear line")
    }
}

final class SecureCLITests: XCTestCase {
    static let fixture = Shared { () throws -> (TestCerts, RedisServer) in
        let certs = try TestCerts.shared.get()
        let s = try RedisServer(.tls(certs, requireClientCert: false), extraConfig: [
            "requirepass tok3n-secret",
            "user alice on >alice-pw ~app:* &* +@all",
        ])
        try s.cli(["-a", "tok3n-secret", "--no-auth-warning", "SET", "app:workspace:7", "{\"id\":7}", "EX", "300"])
        try s.cli(["-a", "tok3n-secret", "--no-auth-warning", "SET", "other:x", "1"])
        return (certs, s)
    }
    var certs: TestCerts!
    var server: RedisServer!
    override func setUpWithError() throws { (certs, server) = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.1.stop() } }
    var port: String { String(server.port) }

    func check(_ r: RunResult, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertEqual(try ndjson(r.stdout).map { $0["key"] as! String }, ["app:workspace:7"], file: file, line: line)
    }

    func testTLSWithCACertAndTokenFromEnvironment() throws {
        try check(try redisOps(["keys", "--json", "--tls", "--host", "localhost", "--port", port, "--cacert", certs.caCert],
                               env: ["REDIS_AUTH_TOKEN": "tok3n-secret"]))
    }

    func testRedissURL() throws {
        try check(try redisOps(["keys", "--json", "--url", "rediss://:tok3n-secret@localhost:\(port)", "--cacert", certs.caCert]))
        try check(try redisOps(["keys", "--json", "--cacert", certs.caCert], env: ["REDIS_URL": "rediss://:tok3n-secret@127.0.0.1:\(port)"]))
    }

    func testNodeEnvProduction() throws {
        try check(try redisOps(["keys", "--json", "--cacert", certs.caCert],
                               env: ["NODE_ENV": "production", "REDIS_HOST": "localhost", "REDIS_PORT": port, "REDIS_AUTH_TOKEN": "tok3n-secret"]))
    }

    func testACLUserWithPasswordFile() throws {
        let f = NSTemporaryDirectory() + "/pw-\(UUID().uuidString)"
        try "alice-pw\n".write(toFile: f, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: f) }
        try check(try redisOps(["keys", "--json", "--tls", "--port", port, "--cacert", certs.caCert, "--user", "alice", "--password-file", f]))
    }

    func testWrongCA() throws {
        let r = try redisOps(["keys", "--tls", "--port", port, "--cacert", certs.otherCACert], env: ["REDIS_AUTH_TOKEN": "tok3n-secret"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("certificate not trusted"), r.stderr)
        XCTAssertFalse(r.stderr.contains("tok3n-secret"))
    }

    func testCertificateForAnotherHostName() throws {
        let r = try redisOps(["keys", "--tls", "--port", port, "--cacert", certs.caCert, "--sni", "other.example"],
                             env: ["REDIS_AUTH_TOKEN": "tok3n-secret"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("host name mismatch"), r.stderr)
        let other = try RedisServer(.tls(certs.withOtherHostServerCert, requireClientCert: false))
        defer { other.stop() }
        let o = try redisOps(["keys", "--tls", "--host", "localhost", "--port", String(other.port), "--cacert", certs.caCert])
        XCTAssertEqual(o.status, 1)
        XCTAssertTrue(o.stderr.contains("host name mismatch") && o.stderr.contains("'localhost'"), o.stderr)
    }

    func testWrongPasswordNeverPrinted() throws {
        let r = try redisOps(["keys", "--url", "rediss://:WrongPassw0rd@localhost:\(port)", "--cacert", certs.caCert])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("authentication failed"), r.stderr)
        XCTAssertFalse(r.stderr.contains("WrongPassw0rd") || r.stdout.contains("WrongPassw0rd"))
        let t = try redisOps(["keys", "--tls", "--port", port, "--cacert", certs.caCert], env: ["REDIS_AUTH_TOKEN": "Sekrit-123"])
        XCTAssertEqual(t.status, 1)
        XCTAssertFalse(t.stderr.contains("Sekrit-123"))
    }

    func testInsecureWarns() throws {
        let r = try redisOps(["keys", "--json", "--tls", "--insecure", "--port", port, "--cacert", certs.otherCACert],
                             env: ["REDIS_AUTH_TOKEN": "tok3n-secret"])
        try check(r)
        XCTAssertTrue(r.stderr.contains("NOT verified"), r.stderr)
    }
}

final class TailCLITests: XCTestCase {
    func testTailCountJSONAndPatterns() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let port = String(s.port)
        let tail = BackgroundRun(["tail", "--port", port, "--pattern", "workspace:*:events", "--count", "2", "--json", "--timeout", "20"])
        // Publish until the tail has what it needs (it may still be subscribing).
        let r = try XCTUnwrap(try tail.wait { n in try s.cli(["PUBLISH", "workspace:\(n):events", "{\"type\":\"member.added\",\"n\":\(n)}"]) })
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0]["pattern"] as? String, "workspace:*:events")
        XCTAssertTrue((rows[0]["channel"] as! String).hasSuffix(":events"))
        XCTAssertTrue((rows[0]["payload"] as! String).contains("member.added"))
        XCTAssertNotNil((rows[0]["ts"] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression))
    }

    func testTailTimeoutAndBinaryPayload() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let port = String(s.port)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: RunResult?
        DispatchQueue.global().async {
            result = try? redisOps(["tail", "--port", port, "--timeout", "1.5", "--json", "ch"])
            done.signal()
        }
        try s.waitForSubscribers("ch")
        let admin = try s.admin()
        try admin.call([Array("PUBLISH".utf8), Array("ch".utf8), [0xFF, 0x00, 0x41]])
        done.wait()
        let r = try XCTUnwrap(result)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(rows.count, 1)
        XCTAssertTrue(rows[0]["pattern"] is NSNull)
        XCTAssertEqual(rows[0]["payload_base64"] as? String, Data([0xFF, 0x00, 0x41]).base64EncodedString())
        XCTAssertTrue(r.stdout.contains(#""payload":"\u00ff\u0000A""#), r.stdout)
    }

    /// No CHANNEL: the configured events pattern, as the console subscribes.
    func testTailWithNoChannelTakesTheEventsPattern() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let tail = BackgroundRun(["tail", "--port", String(s.port), "--count", "1", "--json", "--timeout", "20"])
        let r = try XCTUnwrap(try tail.wait { n in try s.cli(["PUBLISH", "workspace:\(n):events", "{\"type\":\"plan.changed\"}"]) })
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try ndjson(r.stdout).first?["pattern"] as? String, "workspace:*:events")
        XCTAssertTrue(r.stderr.contains("no CHANNEL given: subscribing to the events pattern workspace:*:events"), r.stderr)
        XCTAssertEqual(try redisOps(["tail", "--shard"]).status, 2, "sharded channels have no default")
    }
}

final class RestrictedKeysCLITests: XCTestCase {
    func testSizeUnknownWhenMEMORYIsNotPermittedAndNoPermOnOtherKeys() throws {
        let s = try RedisServer(.acl(users: ["ops on >pw ~app:* &* +@all -memory", "default on nopass ~* &* +@all"], defaultPassword: nil))
        defer { s.stop() }
        try s.cli([], stdin: (1...2500).map { "SET app:workspace:\($0) x EX 300\n" }.joined())
        let r = try redisOps(["keys", "--json", "--port", String(s.port), "--user", "ops"], env: ["REDIS_AUTH_TOKEN": "pw"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(rows.count, 2500, "the whole listing, over several pipelined pages")
        XCTAssertTrue(rows.allSatisfy { $0["bytes"] is NSNull })
        XCTAssertTrue(rows.allSatisfy { ($0["ttl_ms"] as? Int ?? 0) > 0 })
        XCTAssertEqual(Set(rows.map { $0["key"] as! String }).count, 2500)
        let t = try redisOps(["keys", "--port", String(s.port), "--user", "ops", "--limit", "5"], env: ["REDIS_AUTH_TOKEN": "pw"])
        XCTAssertEqual(t.stdout.split(separator: "\n").count, 6)
        XCTAssertTrue(t.stderr.contains("warning: MEMORY USAGE was refused (NOPERM"), t.stderr)
        XCTAssertEqual(t.stderr.components(separatedBy: "MEMORY USAGE").count, 2, "one warning, not one per key")
    }
}

final class HostileServerCLITests: XCTestCase {
    func testServerTextNeverReachesTheTerminalRaw() throws {
        // An error reply full of terminal escapes, from a scripted server.
        // (The handshake pipelines PING, CLIENT SETNAME and CLIENT ID: three replies.)
        let evil = try FakeServer { _ in Array("-ERR \u{1B}]0;pwned\u{07}\u{1B}[2J gotcha\r\n-ERR no\r\n-ERR no\r\n".utf8) }
        defer { evil.stop() }
        let r = try redisOps(["keys", "--port", String(evil.port)])
        XCTAssertEqual(r.status, 1)
        XCTAssertFalse(r.stderr.utf8.contains(0x1B), r.stderr)
        XCTAssertFalse(r.stderr.utf8.contains(0x07))
        XCTAssertTrue(r.stderr.contains(#"ERR \e]0;pwned\x07\e[2J gotcha"#), r.stderr)
        // INFO values in the text overview.
        let info = "role:\u{1B}[2Jmaster\r\nredis_version:7.0\u{9B}1m\r\n"
        let fake = try FakeServer { n in
            switch n {
            case 1: return Array("+PONG\r\n+OK\r\n:5\r\n".utf8)
            // 2: the cluster probe (INFO cluster: no cluster_enabled, so a single server); 3: INFO.
            case 2, 3: return Array("$\(info.utf8.count)\r\n\(info)\r\n".utf8)
            default: return Array("-ERR unknown command 'CONFIG'\r\n".utf8)
            }
        }
        defer { fake.stop() }
        let t = try redisOps(["info", "--port", String(fake.port)])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertFalse(t.stdout.utf8.contains(0x1B), t.stdout)
        XCTAssertTrue(t.stdout.contains(#"role              \e[2Jmaster"#), t.stdout)
        XCTAssertTrue(t.stdout.contains(#"7.0\u009b1m"#), t.stdout)
    }
}
