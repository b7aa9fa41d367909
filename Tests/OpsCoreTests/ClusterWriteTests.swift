import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport
import Synchronization

/// Invalidation on a cluster whose slots move under it: during the dry run, before the
/// write, and halfway through a migration.
final class ClusterWriteTests: XCTestCase {
    /// A hash tag whose slot is served by shard `shard` (0, 1, 2 by first slot).
    func tag(inShard shard: Int, of topology: Topology, avoiding: Set<Int> = []) -> (String, Int) {
        for i in 0..<100_000 {
            let t = "t\(i)"
            let slot = hashSlot(Bytes(utf8: "{\(t)}"))
            if topology.shardIndex(forSlot: slot) == shard && !avoiding.contains(slot) { return (t, slot) }
        }
        fatalError("no tag found")
    }

    func testAnInvalidationFollowsSlotsThatMoveDuringTheDryRunAndTheWrite() throws {
        let cl = try RedisCluster()
        defer { cl.stop() }
        let nodes = try NodeSet(config: cl.nodes[0].config())
        let topo = try XCTUnwrap(nodes.topology)
        XCTAssertEqual(topo.shards.count, 3)
        // Three slots with many keys: one in the shard scanned last, one in the first, one in the second.
        let (a, slotA) = tag(inShard: 2, of: topo)
        let (b, slotB) = tag(inShard: 0, of: topo)
        let (c, slotC) = tag(inShard: 1, of: topo)
        var keys: [Bytes] = []
        for t in [a, b, c] { for i in 0..<600 { keys.append(Bytes(utf8: "app:tmp:{\(t)}:\(i)")) } }
        for i in 0..<6000 { keys.append(Bytes(utf8: "app:tmp:\(i)")) }
        for (conn, ks) in try nodes.groupConnections(keys) {
            var i = 0
            while i < ks.count { _ = try conn.pipeline(ks[i..<min(ks.count, i + 2000)].map { [Bytes(utf8: "SET"), $0, Bytes(utf8: "x")] }); i += 2000 }
        }
        let ws = WriteSession(nodes: nodes, schema: KeySchema(prefix: "app:"),
                              context: WriteContext(server: "cluster", aclUser: nil, readOnly: false, audit: nil))
        ws.pacing.maxBatch = 64
        let ownerA = try cl.owner(ofSlot: slotA), ownerB = try cl.owner(ofSlot: slotB), ownerC = try cl.owner(ofSlot: slotC)
        let firstScanned = try cl.owner(ofSlot: topo.shards[0].firstSlot)
        // During the dry run, while the first shard is being scanned, slot A moves from the shard
        // scanned last to the one already scanned: its keys would be missed without a re-read.
        var moved = false
        let plan = try ws.plan(WriteRequest(action: .invalidate, glob: "tmp:*"), progress: { _ in
            if !moved { moved = true; try? cl.migrate(slot: slotA, from: ownerA, to: firstScanned) }
        })
        XCTAssertTrue(moved)
        XCTAssertEqual(plan.keys.count, keys.count, "the dry run found every key, moved ones included")
        XCTAssertEqual(Set(plan.keys), Set(keys))
        XCTAssertTrue(plan.notes.contains { $0.contains("moved during") }, "\(plan.notes)")
        // Before the write, slot B moves completely (MOVED), and slot C is left halfway (ASK / TRYAGAIN).
        try cl.migrate(slot: slotB, from: ownerB, to: ownerC == ownerB ? ownerA : ownerC)
        try cl.migrate(slot: slotC, from: ownerC, to: ownerB, keys: 300, finish: false)
        let r = try ws.execute(plan)
        XCTAssertNil(r.error, "\(r)")
        XCTAssertTrue(r.completed)
        XCTAssertEqual(r.deleted, keys.count, "\(r)")
        XCTAssertEqual(r.failed + r.unknown + r.alreadyGone, 0)
        // Not one key of the pattern is left, on any node.
        for n in cl.nodes {
            XCTAssertEqual(try n.cli(["--scan", "--pattern", "app:tmp:*"]).trimmingCharacters(in: .whitespacesAndNewlines), "", "left on \(n.port)")
        }
    }
}

/// Writes in a cluster that keeps moving, or stays down: bounded, never an endless loop.
final class ClusterOutcomeTests: XCTestCase {
    func session(_ port: Int, deadline: Double) throws -> WriteSession {
        let ws = WriteSession(nodes: try NodeSet(config: ConnectionConfig(host: "127.0.0.1", port: port, timeouts: Timeouts(connect: 2, io: 2))),
                              schema: KeySchema(prefix: "app:"), context: WriteContext(server: "t", aclUser: nil, readOnly: false, audit: nil))
        ws.reconnectDeadline = deadline
        return ws
    }

    /// A node that answers MOVED forever: each key is redirected a few times, with a growing
    /// pause, then counted failed (before, the keys were sent again without cap or pause).
    func testMOVEDIsFollowedAFewTimesWithAPauseThenStops() throws {
        let sent = Mutex(0)
        let fake = try scriptedRedis { cmd in
            if cmd.first == "UNLINK" { sent.withLock { $0 += 1 } }
            return "-MOVED 866 127.0.0.1:1\r\n"
        }
        defer { fake.stop() }
        let ws = try session(fake.port, deadline: 5)
        let keys = (0..<3).map { Bytes(utf8: "app:workspace:\($0)") }
        let t0 = Date()
        let r = try ws.execute(WritePlan(request: WriteRequest(action: .invalidate, keys: keys), keys: keys))
        XCTAssertEqual(r.failed, 3, "\(r)")
        XCTAssertEqual(r.deleted, 0)
        XCTAssertTrue(r.error?.contains("redirected more than 5 times") == true, r.error ?? "")
        XCTAssertLessThanOrEqual(sent.withLock { $0 }, 6 * 3, "at most a few rounds")
        XCTAssertGreaterThan(Date().timeIntervalSince(t0), 0.1, "with a pause between rounds")
    }

    /// A cluster that stays down: retried with backoff within the deadline, then stopped with
    /// an exact account (before: retried for ever).
    func testCLUSTERDOWNIsRetriedWithinADeadlineThenStops() throws {
        let fake = try scriptedRedis { _ in "-CLUSTERDOWN The cluster is down\r\n" }
        defer { fake.stop() }
        let ws = try session(fake.port, deadline: 1.5)
        let keys = (0..<40).map { Bytes(utf8: "app:workspace:\($0)") }
        let t0 = Date()
        let r = try ws.execute(WritePlan(request: WriteRequest(action: .invalidate, keys: keys), keys: keys))
        let took = Date().timeIntervalSince(t0)
        XCTAssertGreaterThanOrEqual(took, 1.5)
        XCTAssertLessThan(took, 10)
        XCTAssertTrue(r.error?.contains("CLUSTERDOWN") == true && r.error?.contains("did not accept writes") == true, r.error ?? "")
        XCTAssertEqual(r.deleted, 0)
        XCTAssertEqual(r.failed + r.notAttempted, 40, "every key accounted for: \(r)")
    }
}
