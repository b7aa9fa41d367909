import RedisProtocol

/// Where a node listens, and the name its TLS certificate is checked against.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// The host name the node announces (cluster-announce-hostname), used for SNI and
    /// the certificate check when we connect by IP; nil when it announces none.
    public var hostname: String?
    public init(host: String, port: Int, hostname: String? = nil) { self.host = host; self.port = port; self.hostname = hostname }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One shard of a cluster: the slots it serves, its primary and its replicas.
public struct Shard: Sendable, Equatable {
    public var ranges: [ClosedRange<Int>]
    public var primary: Endpoint
    public var primaryID: String?
    public var replicas: [Endpoint]
    public var slotCount: Int { ranges.reduce(0) { $0 + $1.count } }
    /// A stable name for the shard while slots stay put: its first slot.
    public var firstSlot: Int { ranges.first?.lowerBound ?? 0 }
}

/// The slot map from CLUSTER SLOTS.
public struct Topology: Sendable, Equatable {
    public private(set) var shards: [Shard]
    /// Slot -> index into `shards` (-1: not served).
    private var owner: [Int16]

    public init(shards: [Shard]) {
        self.shards = shards
        owner = Array(repeating: -1, count: 16384)
        for (i, s) in shards.enumerated() {
            for r in s.ranges { for slot in r where slot >= 0 && slot < 16384 { owner[slot] = Int16(i) } }
        }
    }

    /// Parses a CLUSTER SLOTS reply; `fallbackHost` replaces a node that announces no address.
    public init(clusterSlots r: RESPValue, fallbackHost: String) {
        var byPrimary: [Endpoint: Shard] = [:]
        var order: [Endpoint] = []
        func endpoint(_ v: RESPValue) -> (Endpoint, String?)? {
            guard let a = v.array, a.count >= 2, let port = a[1].int else { return nil }
            var host = a[0].string ?? ""
            if host.isEmpty || host == "?" { host = fallbackHost }
            var hostname: String? = nil
            if a.count >= 4, let meta = a[3].array {
                var i = 0
                while i + 1 < meta.count {
                    if meta[i].string == "hostname", let h = meta[i + 1].string, !h.isEmpty { hostname = h }
                    i += 2
                }
            }
            if hostname == nil, !Self.isIP(host) { hostname = host }
            return (Endpoint(host: host, port: Int(port), hostname: hostname), a.count >= 3 ? a[2].string : nil)
        }
        for range in r.array ?? [] {
            guard let a = range.array, a.count >= 3, let lo = a[0].int, let hi = a[1].int, lo <= hi,
                  let (p, pid) = endpoint(a[2]) else { continue }
            let replicas = a.dropFirst(3).compactMap { endpoint($0)?.0 }
            if byPrimary[p] == nil {
                order.append(p)
                byPrimary[p] = Shard(ranges: [], primary: p, primaryID: pid, replicas: replicas)
            }
            byPrimary[p]!.ranges.append(Int(lo)...Int(hi))
            for rep in replicas where !byPrimary[p]!.replicas.contains(rep) { byPrimary[p]!.replicas.append(rep) }
        }
        var shards = order.map { byPrimary[$0]! }
        for i in shards.indices { shards[i].ranges.sort { $0.lowerBound < $1.lowerBound } }
        shards.sort { $0.firstSlot < $1.firstSlot }
        self.init(shards: shards)
    }

    static func isIP(_ h: String) -> Bool {
        h.contains(":") || (h.split(separator: ".").count == 4 && h.allSatisfy { $0.isNumber || $0 == "." })
    }

    public func shardIndex(forSlot slot: Int) -> Int? {
        guard slot >= 0 && slot < 16384 else { return nil }
        let i = Int(owner[slot])
        return i >= 0 ? i : nil
    }

    public func primary(forSlot slot: Int) -> Endpoint? { shardIndex(forSlot: slot).map { shards[$0].primary } }

    /// Slots whose primary differs between two maps (or that one of them does not serve).
    public func movedSlots(comparedTo other: Topology) -> [Int] {
        var out: [Int] = []
        for slot in 0..<16384 where primary(forSlot: slot) != other.primary(forSlot: slot) { out.append(slot) }
        return out
    }

    public var primaries: [Endpoint] { shards.map(\.primary) }
}

/// The servers to talk to: one, or every node of a Redis Cluster. Connections are made
/// on demand and made again (re-resolving the host name) when one breaks. Used by one
/// thread at a time.
///
/// `@unchecked Sendable`: its pool and slot map are mutated without a lock. It is safe
/// because one thread owns it at a time (a worker's, or the CLI's main thread); it crosses
/// threads only whole, when a worker is made.
public final class NodeSet: @unchecked Sendable {
    public let config: ConnectionConfig
    public private(set) var isCluster = false
    public private(set) var topology: Topology?
    /// Listings go to replicas (with READONLY) when there are any.
    public var replicaReads = false
    private var pool: [Endpoint: RedisConnection] = [:]
    private var seedConn: RedisConnection?
    /// What each node has taught about its latency, kept across listings and writes.
    private var pacers: [Endpoint: Pacer] = [:]

    /// Connects to the seed and asks whether it is part of a cluster (INFO cluster).
    public convenience init(config: ConnectionConfig, replicaReads: Bool = false) throws {
        try self.init(seed: RedisConnection(config), replicaReads: replicaReads)
    }

    public init(seed: RedisConnection, replicaReads: Bool = false) throws {
        config = seed.config
        seedConn = seed
        self.replicaReads = replicaReads
        let info = try seed.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "cluster")]])[0]
        guard let text = info.string, text.contains("cluster_enabled:1") else { return }
        isCluster = true
        try refresh()
    }

    /// The seed connection (the endpoint the operator named), made again if it broke.
    public func seed() throws -> RedisConnection {
        if let c = seedConn, !c.isBroken { return c }
        let c = try RedisConnection(config)
        seedConn = c
        return c
    }

    /// Re-reads the slot map (CLUSTER SLOTS) from the seed, or from any node we know when the seed is down.
    public func refresh() throws {
        guard isCluster else { return }
        var lastError: Error = RedisError.closed("no cluster node reachable")
        var candidates: [() throws -> RedisConnection] = [{ try self.seed() }]
        for ep in topology?.shards.flatMap({ [$0.primary] + $0.replicas }) ?? [] { candidates.append({ try self.connection(to: ep) }) }
        for make in candidates {
            do {
                let c = try make()
                let r = try c.call([Bytes(utf8: "CLUSTER"), Bytes(utf8: "SLOTS")])
                let t = Topology(clusterSlots: r, fallbackHost: c.config.host)
                if t.shards.isEmpty { continue }
                topology = t
                return
            } catch { lastError = error }
        }
        throw lastError
    }

    /// A connection to a node (READONLY sent when it will read from a replica).
    public func connection(to ep: Endpoint, readOnly: Bool = false) throws -> RedisConnection {
        if !isCluster { return try seed() }
        if let c = pool[ep], !c.isBroken, c.readOnlyMode == readOnly { return c }
        pool[ep]?.close()
        let c = try RedisConnection(config(for: ep))
        if readOnly {
            _ = try c.call([Bytes(utf8: "READONLY")])
            c.readOnlyMode = true
        }
        pool[ep] = c
        return c
    }

    /// A connection of its own to a node (not pooled): for a caller that keeps requests in
    /// flight on it while others use the pooled connection to the same node.
    public func dedicatedConnection(to ep: Endpoint) throws -> RedisConnection {
        try RedisConnection(isCluster ? config(for: ep) : config)
    }

    /// How to reach a node: the operator's settings with its address, verified (over TLS)
    /// by the name it announces, or an IP-only node by --sni (if given) or its IP.
    public func config(for ep: Endpoint) -> ConnectionConfig {
        var cfg = config
        cfg.host = ep.host
        cfg.port = ep.port
        if var tls = cfg.tls {
            if let h = ep.hostname { tls.serverName = h }
            cfg.tls = tls
        }
        return cfg
    }

    /// Where a listing reads one shard: the primary, or a replica with --replica-reads.
    public struct ScanTarget: Sendable, Equatable {
        /// Identifies the shard across topology changes (its first slot; 0 when not a cluster).
        public var shard: Int
        public var endpoint: Endpoint
        public var isReplica: Bool
    }

    /// One target per shard (the seed alone when not a cluster).
    public func scanTargets() -> [ScanTarget] {
        guard isCluster, let t = topology else {
            return [ScanTarget(shard: 0, endpoint: Endpoint(host: config.host, port: config.port), isReplica: false)]
        }
        return t.shards.map { s in
            if replicaReads, let r = s.replicas.first {
                return ScanTarget(shard: s.firstSlot, endpoint: r, isReplica: true)
            }
            return ScanTarget(shard: s.firstSlot, endpoint: s.primary, isReplica: false)
        }
    }

    /// The pacer of a node (made on first use with this budget, in seconds).
    public func pacer(for ep: Endpoint, budget: Double) -> Pacer {
        if let p = pacers[ep], p.budget == max(0.0001, budget) { return p }
        let p = Pacer(budget: budget)
        pacers[ep] = p
        return p
    }

    /// A node of the slot map, by its address as shown (`host:port`).
    public func knownEndpoint(_ address: String) -> Endpoint? {
        topology?.shards.flatMap { [$0.primary] + $0.replicas }.first { $0.description == address }
    }

    /// Whether some replica could serve reads (for the "falls back to primaries" notice).
    public var hasReplicas: Bool { topology?.shards.contains { !$0.replicas.isEmpty } ?? false }

    public func connection(for target: ScanTarget) throws -> RedisConnection {
        try connection(to: target.endpoint, readOnly: target.isReplica)
    }

    /// The connection to the primary that owns a key's slot (the seed when not a cluster).
    public func node(forKey key: Bytes) throws -> RedisConnection {
        guard isCluster, let ep = topology?.primary(forSlot: hashSlot(key)) else { return try seed() }
        return try connection(to: ep)
    }

    public func endpoint(forKey key: Bytes) -> Endpoint {
        if isCluster, let ep = topology?.primary(forSlot: hashSlot(key)) { return ep }
        return Endpoint(host: config.host, port: config.port)
    }

    /// Groups keys by the primary that owns them, in first-seen order.
    public func group(_ keys: some Sequence<Bytes>) -> [(Endpoint, [Bytes])] {
        var order: [Endpoint] = []
        var groups: [Endpoint: [Bytes]] = [:]
        for k in keys {
            let ep = endpoint(forKey: k)
            if groups[ep] == nil { order.append(ep) }
            groups[ep, default: []].append(k)
        }
        return order.map { ($0, groups[$0]!) }
    }

    /// The same, with the connection made.
    public func groupConnections(_ keys: some Sequence<Bytes>) throws -> [(RedisConnection, [Bytes])] {
        try group(keys).map { (try isCluster ? connection(to: $0.0) : seed(), $0.1) }
    }

    /// One command per key, on the nodes that own them, all nodes at once: the requests go
    /// out to every node before any reply is read (one round trip, not one per node).
    /// Replies come back in the order of `keys`.
    public func perKey(_ keys: [Bytes], _ command: (Bytes) -> [[Bytes]]) throws -> [[RESPValue]] {
        var out = [[RESPValue]](repeating: [], count: keys.count)
        var index: [Bytes: [Int]] = [:]
        for (i, k) in keys.enumerated() { index[k, default: []].append(i) }
        var asked: [(RedisConnection, [Bytes], [Int])] = []
        for (conn, ks) in try groupConnections(keys) {
            let sizes = ks.map { command($0).count }
            try conn.send(ks.flatMap(command))
            asked.append((conn, ks, sizes))
        }
        var used: [Bytes: Int] = [:]
        for (conn, ks, sizes) in asked {
            let replies = try conn.receive(sizes.reduce(0, +))
            var j = 0
            for (k, n) in zip(ks, sizes) {
                let slot = index[k]![used[k, default: 0]]
                used[k, default: 0] += 1
                out[slot] = Array(replies[j..<(j + n)])
                j += n
            }
        }
        return out
    }

    /// One command about one key, following MOVED and ASK (a few hops at most: a redirected
    /// command was not carried out, so following it is safe). It never re-sends after a lost
    /// reply: a caller that writes accounts for that outcome itself.
    public func call(_ args: [Bytes], key: Bytes) throws -> RESPValue {
        var conn = try node(forKey: key)
        var asking = false
        for _ in 0..<5 {
            let r = asking ? try conn.pipeline([[Bytes(utf8: "ASKING")], args])[1] : try conn.pipeline([args])[0]
            guard let e = r.errorReply, let target = Redirect(e) else { return r }
            conn = try connection(to: target.endpoint(fallbackHost: conn.config.host))
            asking = target.ask
            if !target.ask { try? refresh() }
        }
        throw RedisError.server(ServerError("ERR too many cluster redirections for one key"))
    }

    public func close() {
        for c in pool.values { c.close() }
        pool.removeAll()
        seedConn?.close()
        seedConn = nil
    }
}

/// A MOVED or ASK redirection: `MOVED 3999 127.0.0.1:6381`.
public struct Redirect: Sendable, Equatable {
    public var ask: Bool
    public var slot: Int
    public var host: String
    public var port: Int
    public init?(_ e: ServerError) {
        guard e.kind == .moved || e.kind == .ask else { return nil }
        let parts = e.message.split(separator: " ")
        guard parts.count >= 3, let slot = Int(parts[1]), let colon = parts[2].lastIndex(of: ":"),
              let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        ask = e.kind == .ask
        self.slot = slot
        host = String(parts[2][..<colon])
        self.port = port
    }
    public func endpoint(fallbackHost: String) -> Endpoint {
        Endpoint(host: host.isEmpty ? fallbackHost : host, port: port, hostname: Topology.isIP(host) || host.isEmpty ? nil : host)
    }
}

/// The cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its {hash tag}, mod 16384.
public func hashSlot(_ key: Bytes) -> Int {
    var part = key[...]
    if let open = key.firstIndex(of: UInt8(ascii: "{")),
       let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
        part = key[(open + 1)..<close]
    }
    var crc: UInt16 = 0
    for b in part {
        crc = (crc << 8) ^ crc16Table[Int(UInt8(crc >> 8) ^ b)]
    }
    return Int(crc) & 16383
}

private let crc16Table: [UInt16] = (0..<256).map { i -> UInt16 in
    var crc = UInt16(i) << 8
    for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
    return crc
}
