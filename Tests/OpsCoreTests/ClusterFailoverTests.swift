import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport

/// ElastiCache cluster mode fails over on its own: work in progress when a primary dies
/// continues on the promoted replica and completes with every key.
final class ClusterFailoverTests: XCTestCase {
    /// Six nodes (three primaries, three replicas), a short node timeout, `n` keys spread
    /// over every shard, every replica in sync.
    func filledCluster(_ n: Int) throws -> (RedisCluster, [Bytes]) {
        let cl = try RedisCluster(size: 3, replicas: 1, nodeTimeout: 1000)
        let nodes = try NodeSet(config: cl.nodes[0].config())
        let keys = (0..<n).map { Bytes(utf8: "app:tmp:\($0)") }
        for (conn, ks) in try nodes.groupConnections(keys) {
            var i = 0
            while i < ks.count { _ = try conn.pipeline(ks[i..<min(ks.count, i + 5000)].map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "x")] }); i += 5000 }
            _ = try conn.call([Bytes(utf8: "WAIT"), Bytes(utf8: "1"), Bytes(utf8: "5000")])
        }
        return (cl, keys)
    }

    /// The index of the node that is the primary at `endpoint`.
    func index(of ep: Endpoint, in cl: RedisCluster) -> Int { cl.nodes.firstIndex { $0.port == ep.port }! }

    func testAListingInProgressWhenItsPrimaryDiesCompletesWithEveryKey() throws {
        let (cl, keys) = try filledCluster(60_000)
        defer { cl.stop() }
        let nodes = try NodeSet(config: cl.nodes[0].config())
        let scan = KeyspaceScan(nodes: nodes, match: Bytes(utf8: "app:tmp:*"), reader: NameReader(), count: 200)
        var notices: [String] = []
        scan.onNotice = { notices.append($0) }
        var listed: [Bytes] = []
        var killed = false
        let firstShardPrimary = try XCTUnwrap(nodes.scanTargets().first).endpoint
        try scan.run { page in
            listed += page
            // Halfway through the first shard, its primary dies (kill -9).
            if !killed && listed.count > 5_000 { killed = true; cl.kill(self.index(of: firstShardPrimary, in: cl)) }
            return true
        }
        XCTAssertTrue(killed)
        XCTAssertEqual(listed.count, keys.count, "no key twice")
        XCTAssertEqual(Set(keys).subtracting(listed).count, 0, "every key")
        XCTAssertGreaterThanOrEqual(scan.stats.restarts, 1)
        XCTAssertEqual(notices.filter { $0.contains("failed") }.count, 1, "one notice for the failure, not one per retry: \(notices)")
        XCTAssertTrue(notices.contains { $0.hasPrefix("continuing the listing on") }, "\(notices)")
    }

    func testAnInvalidationInProgressWhenAPrimaryDiesDeletesEveryKey() throws {
        let (cl, keys) = try filledCluster(60_000)
        defer { cl.stop() }
        let nodes = try NodeSet(config: cl.nodes[0].config())
        let ws = WriteSession(nodes: nodes, schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "cluster", aclUser: nil, readOnly: false, audit: nil))
        ws.pacing.maxBatch = 200
        var notices: [String] = []
        ws.onNotice = { notices.append($0) }
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "tmp:*"))
        XCTAssertEqual(plan.keys.count, keys.count)
        let victim = try XCTUnwrap(nodes.topology?.shards[1].primary)
        var killed = false
        let r = try ws.execute(plan, progress: { p in
            if !killed && p.done > keys.count / 4 { killed = true; cl.kill(self.index(of: victim, in: cl)) }
        })
        XCTAssertTrue(killed)
        XCTAssertNil(r.error, "\(r) \(notices)")
        XCTAssertTrue(r.completed, "\(r)")
        XCTAssertEqual(r.failed, 0)
        XCTAssertEqual(r.deleted + r.alreadyGone + r.unknown, keys.count, "every key accounted for: \(r)")
        try cl.waitUntilHealthy()
        // Not one left anywhere, deletes the dead primary acknowledged but never replicated included.
        for n in cl.nodes where n.isRunning {
            XCTAssertEqual(try n.cli(["--scan", "--pattern", "app:tmp:*"]).trimmingCharacters(in: .whitespacesAndNewlines), "", "left on \(n.port)")
        }
    }
}
