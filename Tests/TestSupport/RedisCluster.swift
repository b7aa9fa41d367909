import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small local Redis Cluster: three primaries on loopback, slots assigned by
/// `redis-cli --cluster create`, stopped with the test.
public final class RedisCluster: @unchecked Sendable {
    public let nodes: [RedisServer]
    public var ports: [Int] { nodes.map(\.port) }

    public init(size: Int = 3) throws {
        var ns: [RedisServer] = []
        for _ in 0..<size {
            ns.append(try RedisServer(.plain, extraConfig: ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 5000"]))
        }
        nodes = ns
        let r = try run(try which("redis-cli"), ["--cluster", "create"] + ns.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "0", "--cluster-yes"], timeout: 60)
        guard r.status == 0 else { stop(); throw TestSupportError("cluster create failed: \(r.stdout) \(r.stderr)") }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try ns.allSatisfy({ try $0.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok") }) { return }
            usleep(100_000)
        }
        stop()
        throw TestSupportError("the cluster did not become ready")
    }

    /// redis-cli in cluster mode (-c follows redirections).
    @discardableResult
    public func cli(_ args: [String], stdin: String? = nil) throws -> String {
        try nodes[0].cli(["-c"] + args, stdin: stdin)
    }

    public func stop() { for n in nodes { n.stop() } }

    /// The node id of each node (CLUSTER MYID).
    public func id(_ i: Int) throws -> String { try nodes[i].cli(["CLUSTER", "MYID"]).trimmingCharacters(in: .whitespacesAndNewlines) }

    /// The index of the node that serves a slot now (from each node's own line of CLUSTER NODES).
    public func owner(ofSlot slot: Int) throws -> Int {
        for i in nodes.indices {
            for line in try nodes[i].cli(["CLUSTER", "NODES"]).split(separator: "\n") where line.contains("myself") {
                for part in line.split(separator: " ").dropFirst(8) {
                    let range = part.split(separator: "-")
                    if range.count == 2, let a = Int(range[0]), let b = Int(range[1]), a <= slot && slot <= b { return i }
                    if range.count == 1, let a = Int(range[0]), a == slot { return i }
                }
            }
        }
        throw TestSupportError("no node serves slot \(slot)")
    }

    /// Moves a slot's keys from one node to another with MIGRATE, as `redis-cli --cluster
    /// reshard` does; with `finish: false` it stops halfway (the slot migrating/importing).
    public func migrate(slot: Int, from: Int, to: Int, keys limit: Int = .max, finish: Bool = true) throws {
        let fromID = try id(from), toID = try id(to)
        try nodes[to].cli(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", fromID])
        try nodes[from].cli(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", toID])
        var moved = 0
        while moved < limit {
            let keys = try nodes[from].cli(["--raw", "CLUSTER", "GETKEYSINSLOT", String(slot), String(min(100, limit - moved))])
                .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            if keys.isEmpty { break }
            try nodes[from].cli(["MIGRATE", "127.0.0.1", String(nodes[to].port), "", "0", "5000", "KEYS"] + keys)
            moved += keys.count
        }
        if finish {
            for n in nodes { try n.cli(["CLUSTER", "SETSLOT", String(slot), "NODE", toID]) }
        }
    }
    deinit { stop() }
}
