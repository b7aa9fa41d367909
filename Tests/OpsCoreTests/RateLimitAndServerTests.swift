import XCTest
import Foundation
@testable import OpsCore
@testable import OpsConfig
import RedisClient
import RedisProtocol
import TestSupport

final class RateLimitIntegrationTests: XCTestCase {
    static let fixture = Shared { () throws -> RedisServer in
        let s = try RedisServer(.plain)
        // Counters made by the application's exact script: blocked, at the limit, under it; and one with no TTL.
        for (id, hits) in [("ip:10.0.0.1", 75), ("user:42", 60), ("user:7", 10)] {
            for _ in 0..<hits { try s.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:\(id)", "60", "60"]) }
        }
        try s.cli(["SET", "app:ratelimit:ip:203.0.113.99", "150"])
        try s.cli(["SET", "app:workspace:1", "{}", "EX", "300"])
        return s
    }
    var server: RedisServer!
    override func setUpWithError() throws { server = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }

    func testReaderAgreesWithTheScript() throws {
        let c = try server.admin()
        let list = try RateLimitBoard(nodes: NodeSet(seed: c), schema: KeySchema(prefix: "app:")).scan().rows
        XCTAssertEqual(list.map { $0.identifier.lossyString }, ["ip:203.0.113.99", "ip:10.0.0.1", "user:42", "user:7"])
        let blocked = list[1]
        XCTAssertEqual(blocked.count, 75)
        XCTAssertTrue(blocked.isBlocked)
        XCTAssertFalse(blocked.isBroken)
        XCTAssertEqual(blocked.kind, .ip)
        guard case .expiresIn(let ms)? = blocked.ttl else { return XCTFail() }
        XCTAssertTrue(ms > 50_000 && ms <= 60_000)
        // What the script itself says for the next call: blocked, with the same TTL as Retry-After.
        let next = try c.call([Bytes(utf8: "EVAL"), Bytes(utf8: rateLimitLua), Bytes(utf8: "1"), blocked.key, Bytes(utf8: "60"), Bytes(utf8: "60")]).array!
        XCTAssertEqual(next[0].int, 0)
        XCTAssertEqual(list[2].state, .near, "60 of 60 is at the limit, not over it")
        XCTAssertFalse(list[2].isBlocked)
        XCTAssertEqual(list[3].state, .ok)
        XCTAssertTrue(list[0].isBroken)
        XCTAssertEqual(list[0].ttl, .persistent)
        XCTAssertTrue(list[0].isBlocked)
    }

    func testHeadlessJSONMatchesTheContract() throws {
        let r = try redisOps(["ratelimits", "--json", "--port", String(server.port)])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(rows.count, 4)
        XCTAssertTrue(r.stdout.split(separator: "\n")[1].hasPrefix(#"{"key":"app:ratelimit:ip:10.0.0.1","identifier":"ip:10.0.0.1","count":"#))
        XCTAssertEqual(rows.map { $0["blocked"] as? Bool }, [true, true, false, false], "blocked first")
        XCTAssertEqual(rows[0]["ttl_ms"] as? Int, -1)
        XCTAssertEqual(rows[1]["limit"] as? Int, 60)
        XCTAssertEqual(Set(rows[1].keys), ["key", "identifier", "count", "limit", "ttl_ms", "blocked", "state"])
        XCTAssertEqual(rows.map { $0["state"] as? String }, ["broken", "blocked", "near", "ok"], "the console's words")
        // A different limit changes the verdict.
        let h = try redisOps(["ratelimits", "--json", "--limit", "100", "--port", String(server.port)])
        XCTAssertTrue(h.stdout.contains(#""identifier":"ip:10.0.0.1","count":75,"limit":100"#), h.stdout)
        let text = try redisOps(["ratelimits", "--port", String(server.port)])
        XCTAssertTrue(text.stdout.contains("4 counters · 2 blocked · 1 broken"), text.stdout)
        XCTAssertEqual(try redisOps(["ratelimits", "--window", "0"]).status, 2)
    }
}

final class ServerRestrictionsTests: XCTestCase {
    func testConfigRenamedAwayLikeElastiCache() throws {
        let s = try RedisServer(.plain, extraConfig: ["rename-command CONFIG \"\"", "maxmemory-policy allkeys-lru"])
        defer { s.stop() }
        let c = try s.admin()
        XCTAssertThrowsError(try c.call("CONFIG", "GET", "maxmemory-policy"))
        let ov = try ServerOverview.fetch(c)
        XCTAssertNil(ov.infoError)
        XCTAssertEqual(ov.maxmemoryPolicy, "allkeys-lru")
        XCTAssertEqual(ov.maxmemoryPolicySource, "INFO")
        let r = try redisOps(["info", "--json", "--port", String(s.port)])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(#""maxmemory_policy":"allkeys-lru""#))
    }

    func testUserWithoutINFOOrSLOWLOG() throws {
        let s = try RedisServer(.acl(users: ["limited on >pw ~* &* +@all -info -slowlog", "nolog on >pw ~* &* +@all -slowlog"], defaultPassword: nil))
        defer { s.stop() }
        let c = try RedisConnection(s.config(user: "limited", password: "pw"))
        let ov = try ServerOverview.fetch(c)
        XCTAssertNotNil(ov.infoError)
        XCTAssertTrue(ov.infoError!.contains("NOPERM"))
        let r = try redisOps(["info", "--port", String(s.port), "--user", "limited"], env: ["REDIS_AUTH_TOKEN": "pw"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("INFO is not permitted"), r.stderr)
        let d = try RedisConnection(s.config(user: "nolog", password: "pw"))
        XCTAssertNil(try ServerOverview.fetch(d).infoError)
        XCTAssertNotNil(try d.pipeline([[Bytes(utf8: "SLOWLOG"), Bytes(utf8: "GET"), Bytes(utf8: "10")]])[0].errorReply)
    }

    func testSeriesGivesDeltasNotTotals() {
        func sample(_ t: Double, hits: Int, misses: Int, evicted: Int) -> ServerSample {
            ServerSample(at: t, overview: ServerOverview(info: ServerInfo(text: "keyspace_hits:\(hits)\r\nkeyspace_misses:\(misses)\r\nevicted_keys:\(evicted)\r\n"),
                                                         infoError: nil, maxmemoryPolicy: nil, maxmemoryPolicySource: nil))
        }
        var s = ServerSeries()
        s.add(sample(0, hits: 1_000_000, misses: 0, evicted: 0))      // a long happy history…
        s.add(sample(30, hits: 1_000_050, misses: 50, evicted: 100))
        s.add(sample(60, hits: 1_000_100, misses: 100, evicted: 200)) // …but the last minute is at 50 %
        XCTAssertEqual(s.hitRatio(over: 60)!, 0.5, accuracy: 0.001)
        XCTAssertEqual(s.rate("evicted_keys", over: 30)!, 100.0 / 30, accuracy: 0.01)
        XCTAssertEqual(sparkline([0, 1, 2, 3, 4, 5, 6, 7], width: 8), "▁▂▃▄▅▆▇█")
    }
}

final class ConfigFileTests: XCTestCase {
    let sample = """
    [conventions]
    prefix = "svc:"
    cache_ttl = 600
    ratelimit_limit = 100
    protected = ["lock:*"]

    [profiles.prod]
    url = "rediss://master.cache.example.com:6379"
    user = "ops"
    password_env = "PROD_TOKEN"
    read_only = true

    [profiles.prod.conventions]
    ratelimit_window = 30
    """

    func testParseAndMerge() throws {
        let c = try OpsConfigFile.parse(sample)
        XCTAssertEqual(c.conventions.prefix, "svc:")
        XCTAssertEqual(c.profiles["prod"]?.user, "ops")
        var given = ConnectionFlags()
        given.user = "alice"
        let (f, pw) = try c.flags(given, profile: "prod", environment: ["PROD_TOKEN": "t0k"])
        XCTAssertEqual(f.user, "alice", "flags win over the profile")
        XCTAssertEqual(f.url, "rediss://master.cache.example.com:6379")
        XCTAssertTrue(f.readOnly)
        XCTAssertEqual(pw, "t0k")
        let s = c.schema(prefix: "svc:", profile: "prod")
        XCTAssertEqual(s.cacheTTL, 600)
        XCTAssertEqual(s.rateLimit, 100)
        XCTAssertEqual(s.rateWindow, 30)
        XCTAssertEqual(s.protectedPatterns, ["lock:*"])
        XCTAssertEqual(s.lockTTL, 10, "defaults stay for what is not set")
        XCTAssertThrowsError(try c.flags(ConnectionFlags(), profile: "prod", environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("PROD_TOKEN"))
        }
        XCTAssertThrowsError(try c.flags(ConnectionFlags(), profile: "nope", environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("profiles: prod"))
        }
    }

    /// The example in the README is a configuration file that loads, with the meaning it says.
    func testTheReadmeExampleConfigLoads() throws {
        let c = try OpsConfigFile.parse(try fencedBlock(in: try repositoryText("README.md"), after: "```toml"), source: "README.md")
        let prod = try XCTUnwrap(c.profiles["prod"])
        XCTAssertEqual(prod.readOnly, true)
        XCTAssertEqual(prod.replicaReads, true)
        XCTAssertEqual(prod.passwordEnv, "PROD_REDIS_TOKEN")
        XCTAssertEqual(c.auditChannel, "ops:audit")
        XCTAssertEqual(c.schema(prefix: "app:", profile: "prod").rateLimit, 100)
    }

    func testAuditSection() throws {
        let c = try OpsConfigFile.parse("[audit]\nlog = \"/var/tmp/ops-audit.log\"\nchannel = \"ops:audit\"\n")
        XCTAssertEqual(c.auditLog, "/var/tmp/ops-audit.log")
        XCTAssertEqual(c.auditChannel, "ops:audit")
        XCTAssertThrowsError(try OpsConfigFile.parse("[audit]\nfile = \"x\"\n"))
    }

    func testPasswordsAreRefused() {
        XCTAssertThrowsError(try OpsConfigFile.parse("[profiles.x]\npassword = \"hunter2\"\n")) { e in
            XCTAssertTrue("\(e)".contains("never stored"))
            XCTAssertFalse("\(e)".contains("hunter2"))
        }
        XCTAssertThrowsError(try OpsConfigFile.parse("[profiles.x]\nurl = \"redis://:hunter2@h\"\n"))
        XCTAssertThrowsError(try OpsConfigFile.parse("[profiles.x]\nport = \"x\"\n"))
        XCTAssertThrowsError(try OpsConfigFile.parse("[conventionz]\n"))
        XCTAssertThrowsError(try OpsConfigFile.parse("[conventions\n"))
    }

    func testProfileEndToEnd() throws {
        let s = try RedisServer(.password("pr0file"))
        defer { s.stop() }
        try s.cli(["SET", "svc:workspace:1", "{}"])
        let home = NSTemporaryDirectory() + "/home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home + "/.config/redis-ops", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        try """
        [conventions]
        prefix = "svc:"
        [profiles.local]
        port = \(s.port)
        password_env = "LOCAL_TOKEN"
        """.write(toFile: home + "/.config/redis-ops/config.toml", atomically: true, encoding: .utf8)
        let r = try redisOps(["--profile", "local", "keys", "--json"], env: ["HOME": home, "LOCAL_TOKEN": "pr0file"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains(#""key":"svc:workspace:1""#), r.stdout)
        let missing = try redisOps(["--profile", "nope", "keys"], env: ["HOME": home])
        XCTAssertEqual(missing.status, 2)
        XCTAssertEqual(try redisOps(["keys", "--config", home + "/nope.toml"]).status, 2)
    }
}

final class LatencyHistoryReadTests: XCTestCase {
    /// LATENCY HISTORY is read with the rest of the Server view's pipeline.
    func testLatencyHistoryOfTheCommandEvent() throws {
        let s = try RedisServer(.plain, extraConfig: ["latency-monitor-threshold 5", "enable-debug-command yes"])
        defer { s.stop() }
        let c = try s.admin()
        _ = try c.call(["DEBUG", "SLEEP", "0.03"].map { Bytes(utf8: $0) })
        usleep(1_100_000)
        _ = try c.call(["DEBUG", "SLEEP", "0.02"].map { Bytes(utf8: $0) })
        let r = try ServerReading.read(c, clients: false)
        XCTAssertEqual(r.latency?.first?.event, "command")
        let h = try XCTUnwrap(r.latencyHistory["command"])
        XCTAssertEqual(h.count, 2, "one sample a second at most")
        XCTAssertTrue(h[0] >= 25 && h[1] >= 15, "\(h)")
    }
}
