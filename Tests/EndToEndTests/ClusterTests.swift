import XCTest
import Foundation
import TestSupport
import RedisClient
import RedisProtocol

final class ClusterTests: XCTestCase {
    static let fixture = Shared { () throws -> RedisCluster in
        let c = try RedisCluster()
        for i in 1...60 { try c.cli(["SET", "app:workspace:\(i)", "{\"id\":\(i)}", "EX", "300"]) }
        for i in 1...5 { try c.cli(["SET", "app:lock:workspace:\(i)", "1", "EX", "10"]) }
        for _ in 0..<65 { try c.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:ip:10.0.0.1", "60", "60"]) }
        for _ in 0..<3 { try c.cli(["EVAL", rateLimitLua, "1", "app:ratelimit:user:9", "60", "60"]) }
        return c
    }
    var cluster: RedisCluster!
    override func setUpWithError() throws { cluster = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }
    var port: String { String(cluster.ports[0]) }

    func testHashSlotsMatchTheServer() throws {
        for k in ["foo", "app:workspace:1", "{user1000}.following", "a{}b", "{}", "x{y}z{w}"] {
            let server = try cluster.nodes[0].cli(["CLUSTER", "KEYSLOT", k]).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(String(hashSlot(Bytes(utf8: k))), server, k)
        }
    }

    func testKeysScansEveryPrimary() throws {
        let counts = try cluster.nodes.map { Int(try $0.cli(["DBSIZE"]).trimmingCharacters(in: .whitespacesAndNewlines))! }
        XCTAssertTrue(counts.filter { $0 > 0 }.count >= 2, "keys are spread over the nodes: \(counts)")
        let r = try redisOps(["keys", "--json", "--port", port, "--match", "workspace:*"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(try ndjson(r.stdout).map { $0["key"] as! String }), Set((1...60).map { "app:workspace:\($0)" }))
        let rl = try ndjson(try redisOps(["ratelimits", "--json", "--port", port]).stdout)
        XCTAssertEqual(rl.map { $0["identifier"] as! String }, ["ip:10.0.0.1", "user:9"])
        XCTAssertEqual(rl[0]["blocked"] as? Bool, true)
    }

    func testInvalidateAcrossNodesAndExplicitKeysAnywhere() throws {
        try cluster.cli(["SET", "app:tmp:a", "1"])
        try cluster.cli(["SET", "app:tmp:b", "1"])
        try cluster.cli(["SET", "app:tmp:c", "1"])
        try cluster.cli(["SET", "app:tmp2:x", "1"])
        let r = try redisOps(["invalidate", "--port", port, "--match", "tmp:*", "--yes", "--json"],
                             env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix(#"{"matched":3,"deleted":3,"already_gone":0,"failed":0,"unknown":0,"cancelled":false,"dry_run":false"#), r.stdout)
        for k in ["a", "b", "c"] { XCTAssertEqual(try cluster.cli(["EXISTS", "app:tmp:\(k)"]), "0\n") }
        // An explicit key that lives on another node than the one connected to.
        let e = try redisOps(["invalidate", "--port", String(cluster.ports[2]), "--yes", "--json", "tmp2:x"],
                             env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"])
        XCTAssertTrue(e.stdout.hasPrefix(#"{"matched":1,"deleted":1"#), e.stdout + e.stderr)
        XCTAssertEqual(try cluster.cli(["EXISTS", "app:tmp2:x"]), "0\n")
    }

    func testTailHearsPublishesFromAnyNode() throws {
        let tail = BackgroundRun(["tail", "--port", port, "--pattern", "workspace:*:events", "--count", "1", "--json", "--timeout", "15"])
        let result = try tail.wait(every: 0.3) { n in try cluster.nodes[2].cli(["PUBLISH", "workspace:\(n):events", "{}"]) }
        XCTAssertEqual(try ndjson(try XCTUnwrap(result).stdout).count, 1)
    }

    func testConsoleKeysViewInClusterMode() throws {
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", port])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("2")
        try pane.waitFor("scan finished") { $0.contains(" keys match") && !$0.contains("scanning") }
        try pane.send("/")
        try pane.type("workspace:*")
        try pane.send("Enter")
        try pane.waitFor("every workspace key, whichever node holds it") { $0.contains("60 keys match") && $0.contains("filter: glob app:workspace:*") }
        try pane.send("3")
        try pane.waitFor("rate limits") { $0.contains("BLOCKED ip:10.0.0.1") }
    }
}
