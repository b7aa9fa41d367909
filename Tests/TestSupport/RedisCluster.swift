import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RedisClient
import RedisProtocol

/// A small local Redis Cluster: `primaries` primaries with `replicas` replicas each, on
/// loopback, slots assigned by `redis-cli --cluster create`, stopped with the test. With
/// `tls`, every node (and the cluster bus and replication) speaks TLS and announces the
/// host name `localhost`, as ElastiCache nodes announce theirs.
public final class RedisCluster: @unchecked Sendable {
    public private(set) var nodes: [RedisServer]
    public var ports: [Int] { nodes.map(\.port) }
    public let tls: TestCerts?

    public init(size: Int = 3, replicas: Int = 0, tls: TestCerts? = nil, nodeTimeout: Int = 5000) throws {
        self.tls = tls
        var ns: [RedisServer] = []
        var config = ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout \(nodeTimeout)",
                      "cluster-replica-validity-factor 0", "cluster-allow-replica-migration no"]
        if tls != nil {
            config += ["tls-cluster yes", "tls-replication yes", "cluster-announce-hostname localhost", "cluster-preferred-endpoint-type hostname"]
        }
        nodes = []
        for _ in 0..<(size * (1 + replicas)) {
            ns.append(try Self.start(tls: tls, config: config))
        }
        nodes = ns
        var args = ["--cluster", "create"] + ns.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", String(replicas), "--cluster-yes"]
        if let t = tls { args = ["--tls", "--cacert", t.caCert, "--sni", "localhost"] + args }
        let r = try run(try which("redis-cli"), args, timeout: 60)
        guard r.status == 0 else { stop(); throw TestSupportError("cluster create failed: \(r.stdout) \(r.stderr)") }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let ok = try ns.allSatisfy { try $0.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok") }
            let synced = try ns.allSatisfy { n in
                let info = try n.cli(["INFO", "replication"])
                return info.contains("role:master") || info.contains("master_link_status:up")
            }
            // A replica is listed in CLUSTER SLOTS once the cluster knows its replication
            // offset (gossip): wait for that too, as clients discover replicas there.
            let listed = try ok && synced && ns.allSatisfy { n in
                let t = Topology(clusterSlots: try RedisConnection(n.config()).call([Bytes(utf8: "CLUSTER"), Bytes(utf8: "SLOTS")]), fallbackHost: "127.0.0.1")
                return t.shards.count == size && t.shards.allSatisfy { $0.replicas.count == replicas }
            }
            if listed { return }
            usleep(100_000)
        }
        stop()
        throw TestSupportError("the cluster did not become ready")
    }

    /// A node on a port whose cluster-bus port (+10000) is valid and free too.
    static func start(tls: TestCerts?, config: [String]) throws -> RedisServer {
        var lastError: Error = TestSupportError("no port for a cluster node")
        for _ in 0..<20 {
            let port = Int.random(in: 20_000..<30_000)
            guard portIsFree(port), portIsFree(port + 10_000) else { continue }
            do {
                return try RedisServer(tls.map { .tls($0, requireClientCert: false) } ?? .plain, extraConfig: config, port: port)
            } catch { lastError = error }
        }
        throw lastError
    }

    /// Indices of the primaries and of the replicas, as the nodes see themselves now.
    public func primaries() throws -> [Int] { try nodes.indices.filter { try nodes[$0].cli(["ROLE"]).hasPrefix("master") } }
    public func replicaIndices() throws -> [Int] { try nodes.indices.filter { try nodes[$0].cli(["ROLE"]).hasPrefix("slave") } }

    /// Kills a node (SIGKILL), as a failed instance goes.
    public func kill(_ i: Int) { nodes[i].stop() }

    /// Waits until every live node agrees the cluster is whole again (after a failover).
    public func waitUntilHealthy(timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let live = nodes.filter { $0.port != 0 && $0.isRunning }
            if try live.allSatisfy({ try $0.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok") }) { return }
            usleep(100_000)
        }
        throw TestSupportError("the cluster did not recover")
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
