import XCTest
import Foundation
import TestSupport
import RedisClient
import RedisProtocol

/// Cluster mode as ElastiCache runs it: three shards, each with a replica.
final class ClusterReplicaTests: XCTestCase {
    static let fixture = Shared { () throws -> RedisCluster in
        let c = try RedisCluster(size: 3, replicas: 1, nodeTimeout: 2000)
        let nodes = try NodeSet(config: c.nodes[0].config())
        let keys = (0..<3000).map { Bytes(utf8: "app:workspace:\($0)") }
        for (conn, ks) in try nodes.groupConnections(keys) {
            _ = try conn.pipeline(ks.map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "{}"), Bytes(utf8: "EX"), Bytes(utf8: "300")] })
            _ = try conn.call([Bytes(utf8: "WAIT"), Bytes(utf8: "1"), Bytes(utf8: "5000")])
        }
        return c
    }
    var cluster: RedisCluster!
    override func setUpWithError() throws { cluster = try Self.fixture.get() }
    override class func tearDown() { fixture.ifMade { $0.stop() } }
    var port: String { String(cluster.ports[0]) }

    func testInfoListsEveryNodeWithItsRoleSlotsAndLoad() throws {
        let r = try redisOps(["info", "--json", "--port", port])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(obj["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 6, r.stdout)
        let primaries = nodes.filter { $0["role"] as? String == "primary" }, replicas = nodes.filter { $0["role"] as? String == "replica" }
        XCTAssertEqual(primaries.count, 3)
        XCTAssertEqual(replicas.count, 3)
        XCTAssertEqual(primaries.map { $0["slots"] as! Int }.reduce(0, +), 16384, "every slot, once")
        XCTAssertEqual(primaries.map { $0["keys"] as! Int }.reduce(0, +), 3000)
        for rep in replicas {
            let p = try XCTUnwrap(rep["primary"] as? String)
            XCTAssertTrue(primaries.contains { $0["address"] as? String == p }, "a replica names its primary")
            XCTAssertEqual(rep["link_status"] as? String, "up")
            XCTAssertNotNil(rep["lag_bytes"] as? Int)
            XCTAssertEqual(rep["keys"] as? Int, primaries.first { $0["address"] as? String == p }?["keys"] as? Int, "in sync")
        }
        for n in nodes {
            for f in ["id", "address", "used_memory", "instantaneous_ops_per_sec", "connected_clients", "repl_offset", "slot_ranges"] {
                XCTAssertNotNil(n[f], "\(f) in \(n)")
            }
        }
        // The table for people says the same.
        let text = try redisOps(["info", "--port", port]).stdout
        XCTAssertEqual(text.split(separator: "\n").filter { $0.contains(" replica ") }.count, 3, text)
    }

    func testReplicaReadsListEveryKeyWithoutScanningAPrimary() throws {
        for n in cluster.nodes { try n.cli(["CONFIG", "RESETSTAT"]) }
        let r = try redisOps(["keys", "--json", "--port", port, "--replica-reads"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(Set(try ndjson(r.stdout).map { $0["key"] as! String }).count, 3000, "every key")
        XCTAssertEqual(r.stderr, "", "no fallback note: every shard has a replica")
        func calls(_ n: RedisServer, _ cmd: String) throws -> Int {
            let stats = try n.cli(["INFO", "commandstats"])
            guard let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(cmd):") }),
                  let part = line.split(separator: ",").first, let v = Int(part.split(separator: "=").last ?? "") else { return 0 }
            return v
        }
        for i in try cluster.primaries() {
            XCTAssertEqual(try calls(cluster.nodes[i], "scan"), 0, "SCAN on primary :\(cluster.nodes[i].port)")
            XCTAssertEqual(try calls(cluster.nodes[i], "pttl"), 0, "per-key reads on primary :\(cluster.nodes[i].port)")
        }
        for i in try cluster.replicaIndices() {
            XCTAssertGreaterThan(try calls(cluster.nodes[i], "scan"), 0, "SCAN on replica :\(cluster.nodes[i].port)")
        }
        // Without the flag, the primaries do the work.
        for n in cluster.nodes { try n.cli(["CONFIG", "RESETSTAT"]) }
        _ = try redisOps(["keys", "--json", "--port", port])
        for i in try cluster.replicaIndices() { XCTAssertEqual(try calls(cluster.nodes[i], "scan"), 0) }
    }

    func testReplicaReadsFromAProfile() throws {
        let dir = NSTemporaryDirectory() + "/cfg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cfg = dir + "/config.toml"
        try "[profiles.prod]\nport = \(port)\nreplica_reads = true\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        for n in cluster.nodes { try n.cli(["CONFIG", "RESETSTAT"]) }
        let r = try redisOps(["keys", "--json", "--config", cfg, "--profile", "prod"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try ndjson(r.stdout).count, 3000)
        for i in try cluster.primaries() {
            XCTAssertFalse(try cluster.nodes[i].cli(["INFO", "commandstats"]).contains("cmdstat_scan:"), "no SCAN on a primary")
        }
    }

    func testWithoutReplicasReplicaReadsFallBackAndSaySo() throws {
        let plain = try RedisCluster()
        defer { plain.stop() }
        try plain.cli(["SET", "app:workspace:1", "x"])
        let r = try redisOps(["keys", "--json", "--port", String(plain.ports[0]), "--replica-reads"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try ndjson(r.stdout).count, 1)
        XCTAssertTrue(r.stderr.contains("no replicas found; listings read from the primaries"), r.stderr)
    }

    /// SPUBLISH reaches only the shard's nodes: the tail subscribes where each channel lives,
    /// and follows a channel whose slot moves (the server ends the subscription there).
    func testShardedTailFollowsItsChannelAcrossASlotMigration() throws {
        let ch = "workspace:7:events"
        let slot = Int(try cluster.nodes[0].cli(["CLUSTER", "KEYSLOT", ch]).trimmingCharacters(in: .whitespacesAndNewlines))!
        let from = try cluster.owner(ofSlot: slot)
        let other = "workspace:8:events"
        let tail = BackgroundRun(["tail", "--shard", "--json", "--count", "3", "--timeout", "40", "--port", port, ch, other])
        func spublish(_ c: String, _ payload: String) throws -> Int {
            Int(try cluster.cli(["SPUBLISH", c, payload]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        try waitUntil("subscribed on the owner", timeout: 15) { try spublish(ch, "{}") > 0 }
        // The probe messages above reached the tail too; start counting from a clean state.
        _ = try spublish(other, #"{"n":"other"}"#)
        // The slot moves to another primary: the old owner ends the subscription.
        let to = try cluster.primaries().first { $0 != from }!
        try cluster.migrate(slot: slot, from: from, to: to)
        try waitUntil("subscribed on the new owner", timeout: 15) { try self.cluster.nodes[to].cli(["PUBSUB", "SHARDNUMSUB", ch]).contains("1") }
        _ = try spublish(ch, #"{"n":"after"}"#)
        let r = try XCTUnwrap(tail.wait(times: 0))
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try ndjson(r.stdout)
        XCTAssertTrue(lines.contains { ($0["payload"] as? String) == #"{"n":"other"}"# }, r.stdout)
        XCTAssertTrue(lines.contains { ($0["payload"] as? String) == #"{"n":"after"}"# }, "received after the move: \(r.stdout)")
        let gap = try XCTUnwrap(lines.compactMap { $0["gap"] as? [String: Any] }.first, r.stdout)
        XCTAssertTrue((gap["reason"] as! String).contains("slot moved"), "\(gap)")
    }

    /// The Server view on a real cluster: every node in the table, primaries with their
    /// slots and each replica under its primary, then the connected node's detail.
    func testTheServerViewListsEveryNode() throws {
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", port])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try pane.send("5")
        let screen = try pane.waitFor("the node table") { s in
            self.cluster.ports.allSatisfy { s.contains("127.0.0.1:\($0)") } && s.contains("THIS NODE")
        }
        let lines = screen.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.contains(" primary ") }.count, 3, screen)
        XCTAssertEqual(lines.filter { $0.contains(" replica ") && $0.contains("lag") }.count, 3, screen)
        XCTAssertTrue(lines.filter { $0.contains(" primary ") }.allSatisfy { $0.contains("546") }, "each primary with its ~5461 slots")
        XCTAssertLessThan(lines.firstIndex { $0.hasPrefix("NODES") }!, lines.firstIndex { $0.hasPrefix("THIS NODE") }!)
        XCTAssertTrue(screen.contains("cluster 3 shards/6 nodes"), "the header says what it is connected to")
    }

    func testTheConsoleSubscribesToAShardedChannelWithS() throws {
        let pane = try TmuxPane(width: 140, height: 30, command: [redisOpsBinary(), "--port", port])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") && $0.contains("● live") }
        try pane.send("s")
        try pane.type("shard workspace:9:events")
        try pane.send("Enter")
        let ch = "workspace:9:events"
        try waitUntil("SSUBSCRIBEd", timeout: 15) {
            Int(try self.cluster.cli(["SPUBLISH", ch, #"{"type":"sharded"}"#]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 0
        }
        let screen = try pane.waitFor("the message") { $0.contains(#"{"type":"sharded"}"#) }
        XCTAssertTrue(screen.contains("workspace:9:events (shard)"), screen)
        XCTAssertTrue(screen.contains("workspace:*:events (p)"), "the classic subscription is still there")
    }
}
