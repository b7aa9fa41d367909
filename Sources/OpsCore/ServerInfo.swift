import RedisProtocol
import RedisClient

/// The parsed output of INFO: section -> field -> value, plus a flat view.
public struct ServerInfo: Sendable, Equatable {
    public var fields: [String: String] = [:]
    public var sections: [String] = []

    public init(text: String) {
        for raw in text.replyLines {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.hasPrefix("#") { sections.append(line.dropFirst().trimmingCharacters(in: " ")); continue }
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
    }

    public subscript(_ k: String) -> String? { fields[k] }
    public func int(_ k: String) -> Int64? { fields[k].flatMap { Int64($0) } }
    public func double(_ k: String) -> Double? { fields[k].flatMap { Double($0) } }

    /// keys per db: db0:keys=1,expires=0,avg_ttl=0
    public var keyspace: [(db: String, keys: Int64, expires: Int64)] {
        fields.keys.filter { $0.hasPrefix("db") && Int($0.dropFirst(2)) != nil }.sorted {
            Int($0.dropFirst(2))! < Int($1.dropFirst(2))!
        }.map { db in
            var keys: Int64 = 0, expires: Int64 = 0
            for part in fields[db]!.split(separator: ",") {
                let kv = part.split(separator: "=", maxSplits: 1)
                if kv.count == 2 {
                    if kv[0] == "keys" { keys = Int64(kv[1]) ?? 0 }
                    if kv[0] == "expires" { expires = Int64(kv[1]) ?? 0 }
                }
            }
            return (db, keys, expires)
        }
    }

    /// Hit ratio since boot (nil when there were no lookups).
    public var hitRatio: Double? {
        guard let h = int("keyspace_hits"), let m = int("keyspace_misses"), h + m > 0 else { return nil }
        return Double(h) / Double(h + m)
    }
}

extension StringProtocol {
    func trimmingCharacters(in s: String) -> String {
        var sub = Substring(self)
        while let f = sub.first, s.contains(f) { sub = sub.dropFirst() }
        while let l = sub.last, s.contains(l) { sub = sub.dropLast() }
        return String(sub)
    }
}

/// The server overview: INFO, with what cannot be read shown as unknown.
public struct ServerOverview: Sendable, Equatable {
    public var info: ServerInfo
    /// Set when INFO itself was refused (e.g. NOPERM): every field is then unknown.
    public var infoError: String?
    /// maxmemory-policy from INFO, else from CONFIG GET where allowed; nil = unknown.
    public var maxmemoryPolicy: String?
    public var maxmemoryPolicySource: String?

    public init(info: ServerInfo, infoError: String?, maxmemoryPolicy: String?, maxmemoryPolicySource: String?) {
        self.info = info; self.infoError = infoError; self.maxmemoryPolicy = maxmemoryPolicy; self.maxmemoryPolicySource = maxmemoryPolicySource
    }

    /// Reads INFO (and CONFIG GET maxmemory-policy only if INFO lacks it and CONFIG is allowed).
    public static func fetch(_ conn: RedisConnection) throws -> ServerOverview {
        try fetch(conn, alongWith: []).0
    }

    /// The same, with `extra` commands sent in the same round trip (their replies returned).
    public static func fetch(_ conn: RedisConnection, alongWith extra: [[Bytes]]) throws -> (ServerOverview, [RESPValue]) {
        let replies = try conn.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "everything")]] + extra)
        let r = replies[0]
        var ov = ServerOverview(info: ServerInfo(text: ""), infoError: nil, maxmemoryPolicy: nil, maxmemoryPolicySource: nil)
        if let e = r.errorReply {
            if e.kind == .unknownCommand || e.kind == .noPerm || e.kind == .other {
                // Older servers or restricted users: try plain INFO.
                let r2 = try conn.pipeline([[Bytes(utf8: "INFO")]])[0]
                if let e2 = r2.errorReply { ov.infoError = e2.message } else { ov.info = ServerInfo(text: r2.string ?? "") }
            } else {
                throw RedisError.server(e)
            }
        } else {
            ov.info = ServerInfo(text: r.string ?? "")
        }
        if let p = ov.info["maxmemory_policy"] {
            ov.maxmemoryPolicy = p; ov.maxmemoryPolicySource = "INFO"
        } else {
            let c = try conn.pipeline([[Bytes(utf8: "CONFIG"), Bytes(utf8: "GET"), Bytes(utf8: "maxmemory-policy")]])[0]
            if let a = c.array, a.count == 2, let v = a[1].string { ov.maxmemoryPolicy = v; ov.maxmemoryPolicySource = "CONFIG" }
        }
        return (ov, Array(replies.dropFirst()))
    }

    /// The JSON object of `redis-ops info --json`.
    public var json: JSON {
        func num(_ k: String) -> JSON { info.int(k).map { .int($0) } ?? (info.double(k).map { .double($0) } ?? .null) }
        func str(_ k: String) -> JSON { info[k].map { .string($0) } ?? .null }
        var f: [(String, JSON)] = [
            ("role", str("role")),
            ("used_memory", num("used_memory")),
            ("maxmemory_policy", maxmemoryPolicy.map { .string($0) } ?? .null),
            ("keyspace_hits", num("keyspace_hits")),
            ("keyspace_misses", num("keyspace_misses")),
            ("hit_ratio", info.hitRatio.map { .double($0) } ?? .null),
            ("evicted_keys", num("evicted_keys")),
            ("expired_keys", num("expired_keys")),
            ("connected_clients", num("connected_clients")),
            ("instantaneous_ops_per_sec", num("instantaneous_ops_per_sec")),
            ("redis_version", str("redis_version")),
            ("uptime_in_seconds", num("uptime_in_seconds")),
            ("used_memory_peak", num("used_memory_peak")),
            ("maxmemory", num("maxmemory")),
            ("mem_fragmentation_ratio", num("mem_fragmentation_ratio")),
            ("blocked_clients", num("blocked_clients")),
            ("pubsub_channels", num("pubsub_channels")),
            ("pubsub_patterns", num("pubsub_patterns")),
            ("connected_slaves", num("connected_slaves")),
            ("cluster_enabled", num("cluster_enabled")),
        ]
        f.append(("keyspace", .object(info.keyspace.map { ($0.db, .object([("keys", .int($0.keys)), ("expires", .int($0.expires))])) })))
        if let e = infoError { f.append(("error", .string(e))) }
        return .object(f)
    }
}

/// The node a connection is on and its place in replication (INFO server + replication):
/// the header's role, and how the console tells that its tail is on another node.
/// The shape of a cluster, and where listings read.
public struct ClusterShape: Sendable, Equatable {
    public var shards: Int
    public var nodes: Int
    /// Listings read from replicas (asked for, and there are some).
    public var readsFromReplicas: Bool
    /// Replica reads were asked for but no shard has a replica: listings read the primaries.
    public var replicaReadsUnavailable: Bool
    public init(shards: Int, nodes: Int, readsFromReplicas: Bool, replicaReadsUnavailable: Bool) {
        self.shards = shards; self.nodes = nodes; self.readsFromReplicas = readsFromReplicas; self.replicaReadsUnavailable = replicaReadsUnavailable
    }

    public init?(_ n: NodeSet) {
        guard n.isCluster, let t = n.topology else { return nil }
        self.init(shards: t.shards.count, nodes: t.shards.reduce(0) { $0 + 1 + $1.replicas.count },
                  readsFromReplicas: n.replicaReads && n.hasReplicas, replicaReadsUnavailable: n.replicaReads && !n.hasReplicas)
    }
}

public struct ServerRole: Sendable, Equatable {
    public var role: String?
    public var node: ServerNode?
    /// Cluster mode: shards, nodes, where listings read.
    public var cluster: ClusterShape?
    /// The ports its replicas listen on (slaveN:ip=…,port=…).
    public var replicaPorts: [Int]
    public init(role: String?, node: ServerNode?, replicaPorts: [Int]) { self.role = role; self.node = node; self.replicaPorts = replicaPorts }

    public static func read(_ c: RedisConnection) throws -> ServerRole {
        let r = try c.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "server")], [Bytes(utf8: "INFO"), Bytes(utf8: "replication")]])
        if let e = r[1].errorReply { throw RedisError.server(e) }
        let server = ServerInfo(text: r[0].errorReply == nil ? r[0].string ?? "" : "")
        let repl = ServerInfo(text: r[1].string ?? "")
        let role = repl["role"]
        var node: ServerNode?
        if let id = server["run_id"], let port = server.int("tcp_port") { node = ServerNode(runID: id, port: Int(port), role: role) }
        var ports: [Int] = []
        for n in 0..<64 {
            guard let sl = repl["slave\(n)"] else { break }
            for part in sl.split(separator: ",") where part.hasPrefix("port=") { if let p = Int(part.dropFirst(5)) { ports.append(p) } }
        }
        return ServerRole(role: role, node: node, replicaPorts: ports)
    }
}
