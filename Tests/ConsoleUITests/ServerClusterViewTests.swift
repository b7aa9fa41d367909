import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore

/// The Server view in cluster mode: every node in one table first (a hot or full shard and a
/// cut-off replica stand out), the connected node's detail below it.
final class ServerClusterViewTests: XCTestCase {
    func nodeInfo(role: String, mem: Int, maxmemory: Int = 0, ops: Int, keys: Int, offset: Int, link: String = "up") -> ServerInfo {
        var t = "# Clients\r\nconnected_clients:7\r\n# Memory\r\nused_memory:\(mem)\r\nmaxmemory:\(maxmemory)\r\n"
        t += "# Stats\r\ninstantaneous_ops_per_sec:\(ops)\r\nkeyspace_hits:90\r\nkeyspace_misses:10\r\n"
        t += role == "master" ? "# Replication\r\nrole:master\r\nmaster_repl_offset:\(offset)\r\n"
                              : "# Replication\r\nrole:slave\r\nmaster_link_status:\(link)\r\nslave_repl_offset:\(offset)\r\n"
        t += "# Keyspace\r\ndb0:keys=\(keys),expires=\(keys),avg_ttl=0\r\n"
        return ServerInfo(text: t)
    }

    func testTheNodeTableComesFirstAndTheOutliersStandOut() {
        var nodes = ClusterNodes.parse("""
        a1 10.0.0.1:6379@16379,node-a.cache.example myself,master - 0 0 1 connected 0-5460
        b2 10.0.0.2:6379@16379,node-b.cache.example master - 0 0 2 connected 5461-10922
        c3 10.0.0.3:6379@16379,node-c.cache.example master - 0 0 3 connected 10923-16383
        a4 10.0.0.4:6379@16379,node-d.cache.example slave a1 0 0 1 connected
        b5 10.0.0.5:6379@16379,node-e.cache.example slave b2 0 0 2 connected
        c6 10.0.0.6:6379@16379,node-f.cache.example slave c3 0 0 3 connected
        """)
        let infos: [String: ServerInfo] = [
            "a1": nodeInfo(role: "master", mem: 100_000_000, ops: 1000, keys: 330_000, offset: 9_000_000),
            "b2": nodeInfo(role: "master", mem: 410_000_000, maxmemory: 440_000_000, ops: 1100, keys: 340_000, offset: 8_000_000),
            "c3": nodeInfo(role: "master", mem: 105_000_000, ops: 9000, keys: 331_000, offset: 7_000_000),
            "a4": nodeInfo(role: "slave", mem: 100_000_000, ops: 5, keys: 330_000, offset: 9_000_000),
            "b5": nodeInfo(role: "slave", mem: 400_000_000, ops: 5, keys: 339_000, offset: 1_000_000),
            "c6": nodeInfo(role: "slave", mem: 104_000_000, ops: 5, keys: 331_000, offset: 7_000_000, link: "down"),
        ]
        for i in nodes.indices { nodes[i].info = infos[nodes[i].id] }
        var s = makeState(120, 30)
        send(&s, [.char("5")], ChannelTail())
        var r = ServerReading(sample: ServerSample(at: s.now, overview: ServerOverview(info: ServerInfo(text: serverInfo(90, 10, 0, 100_000_000)), infoError: nil,
                                                                                      maxmemoryPolicy: "allkeys-lru", maxmemoryPolicySource: "INFO")))
        r.cluster = nodes
        r.clusterAt = s.now
        _ = Reducer.reduce(&s, .server(r), tail: ChannelTail())
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        assertSnapshot(g, named: "server-cluster")
        let lines = g.lines()
        let table = lines.firstIndex { $0.hasPrefix("NODES (CLUSTER NODES") }!
        let detail = lines.firstIndex { $0.hasPrefix("THIS NODE · 127.0.0.1:6379") }!
        let memory = lines.firstIndex { $0.hasPrefix("memory") }!
        XCTAssertLessThan(table, detail, "the table first")
        XCTAssertLessThan(detail, memory, "the connected node's detail below it")
        func row(_ host: String) -> Int { lines.firstIndex { $0.contains(host) }! }
        func roles(_ y: Int, _ text: String) -> Set<Role> {
            let cols = Array(lines[y])
            guard let start = (0..<cols.count).first(where: { String(cols[$0..<min(cols.count, $0 + text.count)]) == text }) else { return [] }
            return Set((start..<start + text.count).map { g[$0, y].role })
        }
        XCTAssertEqual(roles(row("node-b.cache.example"), "391 MB"), [.error], "b2 is over 90% of its maxmemory: full")
        XCTAssertEqual(roles(row("node-c.cache.example"), "9000"), [.warning], "c3 does far more ops than the median primary: hot")
        XCTAssertEqual(roles(row("node-a.cache.example"), "1000"), [.normal])
        XCTAssertTrue(lines[row("node-f.cache.example")].contains("LINK DOWN to 10.0.0.3:6379"))
        XCTAssertEqual(roles(row("node-f.cache.example"), "LINK DOWN"), [.error])
        XCTAssertTrue(lines[row("node-e.cache.example")].contains("lag 6.7 MB"), lines[row("node-e.cache.example")])
        XCTAssertEqual(roles(row("node-e.cache.example"), "lag 6.7 MB"), [.warning], "a replica 7 MB behind")
    }
}
