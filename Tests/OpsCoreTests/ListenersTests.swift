import XCTest
import Foundation
@testable import OpsCore
import RedisClient
import RedisProtocol
import TestSupport

/// "Is the application's subscriber for workspace 42 connected?" — answered from the server.
final class ListenersTests: XCTestCase {
    let ws1 = Bytes(utf8: "workspace:1:events"), ws2 = Bytes(utf8: "workspace:2:events"), ws42 = Bytes(utf8: "workspace:42:events")
    let pattern = Bytes(utf8: "workspace:*:events")

    func testCountsChannelSubscribersPatternSubscribersAndActiveChannels() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        // The application: two subscribers on workspace 1, one on 42; a pattern subscriber.
        let a = try Subscriber(s.config()); try a.subscribe([ws1, ws42])
        let b = try Subscriber(s.config()); try b.subscribe([ws1])
        let p = try Subscriber(s.config()); try p.psubscribe([pattern])
        defer { a.close(); b.close(); p.close() }
        try waitUntil("subscribed", timeout: 5) { try s.cli(["PUBSUB", "NUMPAT"]) == "1\n" && s.cli(["PUBSUB", "NUMSUB", "workspace:1:events"]).contains("2") }
        let r = try Listeners.read(NodeSet(seed: s.admin()), channels: [ws2], patterns: [pattern])
        XCTAssertEqual(r.counts[ws1], 2)
        XCTAssertEqual(r.counts[ws42], 1)
        XCTAssertEqual(r.counts[ws2], 0, "asked for, nobody listening")
        XCTAssertEqual(r.discovered, [ws1, ws42], "the active channels under the pattern")
        XCTAssertEqual(r.discoveredTotal, 2)
        XCTAssertEqual(r.patternSubscriptions, 1)
    }

    func testManyActiveChannelsAreCappedAndSaySo() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let sub = try Subscriber(s.config())
        defer { sub.close() }
        try sub.subscribe((0..<(Listeners.maxChannels + 50)).map { Bytes(utf8: "workspace:\($0):events") })
        try waitUntil("subscribed", timeout: 5) { try s.cli(["PUBSUB", "CHANNELS", "workspace:*"]).split(separator: "\n").count == Listeners.maxChannels + 50 }
        let r = try Listeners.read(NodeSet(seed: s.admin()), channels: [], patterns: [pattern])
        XCTAssertEqual(r.discovered.count, Listeners.maxChannels)
        XCTAssertEqual(r.discoveredTotal, Listeners.maxChannels + 50)
        XCTAssertEqual(r.counts.count, Listeners.maxChannels, "counted for every channel listed")
    }

    func testInAClusterEveryNodeIsAskedAndTheCountsAdded() throws {
        let c = try RedisCluster()
        defer { c.stop() }
        // Subscribers on two different nodes: each node knows only its own.
        let a = try Subscriber(c.nodes[0].config()); try a.subscribe([ws1])
        let b = try Subscriber(c.nodes[2].config()); try b.subscribe([ws1, ws42])
        defer { a.close(); b.close() }
        try waitUntil("subscribed", timeout: 5) { try c.nodes[2].cli(["PUBSUB", "NUMSUB", "workspace:42:events"]).contains("1") }
        let r = try Listeners.read(NodeSet(seed: c.nodes[1].admin()), channels: [ws1], patterns: [pattern])
        XCTAssertEqual(r.nodes, 3)
        XCTAssertEqual(r.counts[ws1], 2)
        XCTAssertEqual(r.counts[ws42], 1)
        XCTAssertEqual(r.discovered, [ws1, ws42])
        // Sharded channels: SSUBSCRIBE on the owning shard, counted by SHARDNUMSUB on every node.
        let shardCh = Bytes(utf8: "workspace:7:events")
        let nodes = try NodeSet(seed: c.nodes[1].admin())
        let owner = try XCTUnwrap(nodes.topology?.primary(forSlot: hashSlot(shardCh)))
        let sa = try Subscriber(nodes.config(for: owner)); try sa.ssubscribe(shardCh)
        let sb = try Subscriber(nodes.config(for: owner)); try sb.ssubscribe(shardCh)
        defer { sa.close(); sb.close() }
        try waitUntil("ssubscribed", timeout: 5) {
            try Listeners.read(nodes, channels: [], patterns: [], shardChannels: [shardCh]).shardCounts[shardCh] == 2
        }
        let sr = try Listeners.read(nodes, channels: [ws1], patterns: [], shardChannels: [shardCh, ws42])
        XCTAssertEqual(sr.shardCounts[shardCh], 2)
        XCTAssertEqual(sr.shardCounts[ws42], 0, "a classic subscriber is not a shard subscriber")
        XCTAssertEqual(sr.counts[ws1], 2, "classic counts unchanged beside them")
    }

    func testCompletionFindsKeysByPrefixAndSaysWhenItSearchedOnlyPart() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        var script = ""
        for i in 0..<5000 { script += "SET app:other:\(i) x\n" }
        script += "SET app:workspace:42 a\nSET app:workspace:420 b\nSET app:workspace:5 c\nSET app:work*shop x\n"
        try s.cli([], stdin: script)
        let nodes = try NodeSet(seed: s.admin())
        let all = try Completion.keys(startingWith: Bytes(utf8: "app:workspace:4"), nodes: nodes)
        XCTAssertEqual(all, KeyCompletions(keys: [Bytes(utf8: "app:workspace:42"), Bytes(utf8: "app:workspace:420")], complete: true))
        XCTAssertEqual(try Completion.keys(startingWith: Bytes(utf8: "app:work*"), nodes: nodes).keys, [Bytes(utf8: "app:work*shop")],
                       "what is typed is literal, not a glob")
        let part = try Completion.keys(startingWith: Bytes(utf8: "app:workspace:"), nodes: nodes, maxScans: 1)
        XCTAssertFalse(part.complete, "one SCAN does not cover 5004 keys")
    }
}

/// Through a tunnel, round trips are the cost: what a key press needs from the server takes
/// one, however many keys or commands it carries.
final class OneRoundTripTests: XCTestCase {
    func testInspectRefreshAndLookupTakeOneRoundTripEach() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        var script = "HSET app:user:1 a 1 b 2\nRPUSH app:list:1 x y z\n"
        for i in 0..<40 { script += "SET app:workspace:\(i) {} EX 300\n" }
        try s.cli([], stdin: script)
        let proxy = try TCPForwarder(to: s.port)
        defer { proxy.stop() }
        let nodes = try NodeSet(config: ConnectionConfig(host: "127.0.0.1", port: proxy.port))
        let schema = KeySchema(prefix: "app:")
        func turns(_ body: () throws -> Void) rethrows -> Int {
            usleep(50_000)
            let before = proxy.turns
            try body()
            usleep(50_000)
            return proxy.turns - before
        }
        for key in ["app:user:1", "app:list:1", "app:workspace:3"] {
            XCTAssertEqual(try turns { _ = try KeyInspector.inspect(Bytes(utf8: key), nodes: nodes) }, 1, "inspect \(key)")
        }
        let v = try KeyInspector.inspect(Bytes(utf8: "app:user:1"), nodes: nodes)
        XCTAssertEqual(v.type, "hash")
        XCTAssertEqual(v.items.count, 2)
        let keys = (0..<40).map { Bytes(utf8: "app:workspace:\($0)") } + [Bytes(utf8: "app:gone")]
        var rows: [KeyInfo] = []
        XCTAssertEqual(try turns { rows = try KeyBrowser(nodes: nodes, schema: schema).refresh(keys) }, 1, "the rows on screen")
        XCTAssertEqual(rows.count, 41)
        XCTAssertTrue(rows.last!.isGone)
        XCTAssertEqual(try turns { _ = try KeyBoard(nodes: nodes, schema: schema, pattern: "workspace:*", maxRows: 10,
                                                       reader: { CounterReader(schema: schema) }, order: { _, _ in false }).refresh(keys) }, 1)
    }
}
