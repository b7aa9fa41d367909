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

/// A node that comes back without the writes it had acknowledged (restarted from an older
/// dataset, as a replica promoted before it received them): in cluster mode too, those keys
/// are checked on it and written again, and taken off the counts meanwhile.
final class FailedOverAcknowledgementsTests: XCTestCase {
    func testAClusterPrimaryThatLosesAcknowledgedDeletesGetsThemAgain() throws {
        let cl = try RedisCluster(size: 3, replicas: 0, nodeTimeout: 5000)
        defer { cl.stop() }
        let nodes = try NodeSet(config: cl.nodes[0].config())
        let keys = (0..<30_000).map { Bytes(utf8: "app:tmp:\($0)") }
        for (conn, ks) in try nodes.groupConnections(keys) {
            var i = 0
            while i < ks.count { _ = try conn.pipeline(ks[i..<min(ks.count, i + 5000)].map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "x")] }); i += 5000 }
        }
        let victim = try XCTUnwrap(nodes.topology?.shards[1].primary)
        let v = cl.nodes.firstIndex { $0.port == victim.port }!
        try cl.nodes[v].cli(["SAVE"])   // the dataset it will come back with: every key still there
        let ws = WriteSession(nodes: nodes, schema: KeySchema(prefix: "app:"), context: WriteContext(server: "c", aclUser: nil, readOnly: false, audit: nil))
        ws.pacing.fixedBatch = 100
        ws.pacing.maxInFlight = 1
        ws.reconnectDeadline = 30
        var notes: [String] = []
        ws.onNotice = { notes.append($0) }
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "tmp:*"))
        var restarted = false
        let r = try ws.execute(plan, progress: { p in
            if !restarted && p.deleted > keys.count / 2 {
                restarted = true
                try? cl.nodes[v].restart()   // kill -9, then up again from its RDB: deletes it had acknowledged are undone
            }
        })
        XCTAssertTrue(restarted)
        XCTAssertNil(r.error, "\(r) \(notes)")
        XCTAssertEqual(r.deleted + r.alreadyGone + r.unknown, keys.count, "every key accounted for: \(r)")
        XCTAssertTrue(r.notes.contains { $0.hasPrefix("failover:") && $0.contains("written again") }, "\(r.notes)")
        try cl.waitUntilHealthy()
        for n in cl.nodes {
            XCTAssertEqual(try n.cli(["--scan", "--pattern", "app:tmp:*"]).trimmingCharacters(in: .whitespacesAndNewlines), "", "left on \(n.port)")
        }
        XCTAssertLessThanOrEqual(r.deleted, keys.count)
    }

    /// EXPIRE across a restart of the server (its dataset reloaded with the TTLs it had set):
    /// what it acknowledged is checked by PTTL, not sent again, and never counted twice.
    func testExpireAcrossARestartIsNotDoubleCounted() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let n = 20_000
        let c = try s.admin()
        var i = 0
        while i < n { _ = try c.pipeline((i..<min(n, i + 5000)).map { [Bytes(utf8: "SET"), Bytes(utf8: "app:workspace:\($0)"), Bytes(utf8: "x")] }); i += 5000 }
        let ws = WriteSession(nodes: try NodeSet(config: s.config()), schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "t", aclUser: nil, readOnly: false, audit: nil))
        ws.pacing.fixedBatch = 200
        ws.pacing.maxInFlight = 1
        ws.reconnectDeadline = 20
        let plan = try ws.plan(WriteRequest(action: .expire(ttl: 3600, onlyWithoutTTL: true), glob: "workspace:*"))
        XCTAssertEqual(plan.keys.count, n)
        var restarted = false
        let r = try ws.execute(plan, progress: { p in
            if !restarted && p.deleted > n / 2 {
                restarted = true
                _ = try? s.cli(["SAVE"])
                try? s.restart()
            }
        })
        XCTAssertTrue(restarted)
        XCTAssertNil(r.error, "\(r)")
        XCTAssertGreaterThanOrEqual(r.alreadyGone, 0)
        XCTAssertEqual(r.updated + r.alreadyGone + r.unknown, n, "every key once: \(r)")
        XCTAssertLessThanOrEqual(r.updated, n, "never counted twice")
        let noTTL = try s.cli(["EVAL", "local n=0 for _,k in ipairs(redis.call('KEYS','app:workspace:*')) do if redis.call('PTTL',k)==-1 then n=n+1 end end return n", "0"])
        XCTAssertEqual(noTTL, "0\n", "every key got its TTL")
    }
}

/// SCAN's COUNT follows the server's time per key, whatever the distance: it grows from its
/// cautious start on a fast server 50 ms away, and stays small under a tiny budget.
final class AdaptiveScanCountTests: XCTestCase {
    func testCountGrowsThroughATunnelAndShrinksWithTheBudget() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        _ = try s.cli(["DEBUG", "POPULATE", "60000", "app:bulk"])
        let tunnel = try TCPForwarder(to: s.port, delay: 0.025)
        defer { tunnel.stop() }
        func list(port: Int, budget: Double) throws -> (Int, ScanStats, Pacer) {
            var c = s.config()
            c.port = port
            let nodes = try NodeSet(config: c)
            let scan = KeyspaceScan(nodes: nodes, match: Bytes(utf8: "app:bulk:*"), reader: NameReader())
            scan.latencyBudget = budget
            var n = 0
            try scan.run { n += $0.count; return true }
            let target = try XCTUnwrap(nodes.scanTargets().first)
            return (n, scan.stats, nodes.pacer(for: target.endpoint, budget: budget))
        }
        let (far, farStats, farPacer) = try list(port: tunnel.port, budget: 0.002)
        XCTAssertEqual(far, 60_000)
        // The 50 ms round trip is not read as server time: that would be ~200 µs a key, and
        // COUNT would sit at its floor of 10. It follows the server's own figure instead.
        XCTAssertGreaterThan(farStats.maxCount, 50, "\(farStats)")
        let fitting = Int(0.002 * 0.25 / farPacer.estimate(.scan, units: 1))
        XCTAssertGreaterThanOrEqual(farStats.maxCount, min(50_000, fitting) / 4, "\(farStats) · \(farPacer.summary)")
        XCTAssertTrue(farPacer.summary.contains("scan") && farPacer.observed > 0)
        // A budget 100 times smaller keeps each SCAN far smaller (or at the floor of 10),
        // however fast or slow the machine.
        let (near, nearStats, _) = try list(port: s.port, budget: 0.00002)
        XCTAssertEqual(near, 60_000)
        XCTAssertLessThan(nearStats.maxCount * 4, farStats.maxCount, "\(nearStats) vs \(farStats)")
        XCTAssertGreaterThan(nearStats.scans, farStats.scans * 4)
    }
}
