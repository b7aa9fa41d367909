import RedisProtocol

/// The servers to talk to: one, or every primary of a Redis Cluster. In cluster mode
/// SCAN covers one node only, so listings scan every primary; single-key commands
/// follow MOVED / ASK redirections.
public final class NodeSet: @unchecked Sendable {  // used by one thread at a time
    public let seed: RedisConnection
    public private(set) var isCluster = false
    private var byEndpoint: [String: RedisConnection] = [:]
    private var primaries: [(host: String, port: Int)] = []
    private var slots: [(start: Int, end: Int, host: String, port: Int)] = []

    /// Asks the seed whether it is part of a cluster (INFO cluster) and, if so, which nodes are primaries.
    public init(seed: RedisConnection) throws {
        self.seed = seed
        byEndpoint[seed.config.endpoint] = seed
        let info = try seed.pipeline([[Bytes(utf8: "INFO"), Bytes(utf8: "cluster")]])[0]
        guard let text = info.string, text.contains("cluster_enabled:1") else { return }
        isCluster = true
        try refresh()
    }

    /// Re-reads the topology (CLUSTER SLOTS): the primaries, in slot order.
    public func refresh() throws {
        let r = try seed.call([Bytes(utf8: "CLUSTER"), Bytes(utf8: "SLOTS")])
        var seen = Set<String>()
        var out: [(String, Int)] = []
        var map: [(Int, Int, String, Int)] = []
        for range in r.array ?? [] {
            guard let a = range.array, a.count >= 3, let lo = a[0].int, let hi = a[1].int, let node = a[2].array, node.count >= 2,
                  let port = node[1].int else { continue }
            var host = node[0].string ?? ""
            if host.isEmpty || host == "?" { host = seed.config.host }  // a node that announces no address
            map.append((Int(lo), Int(hi), host, Int(port)))
            let key = "\(host):\(port)"
            if seen.insert(key).inserted { out.append((host, Int(port))) }
        }
        primaries = out
        slots = map.sorted { $0.0 < $1.0 }
    }

    public func connection(host: String, port: Int) throws -> RedisConnection {
        var cfg = seed.config
        cfg.host = host
        cfg.port = port
        if let c = byEndpoint[cfg.endpoint], !c.isBroken { return c }
        let c = try RedisConnection(cfg)
        byEndpoint[cfg.endpoint] = c
        return c
    }

    /// Every node whose keys must be listed: the seed alone, or every primary.
    public func scanNodes() throws -> [RedisConnection] {
        guard isCluster else { return [seed] }
        return try primaries.map { try connection(host: $0.host, port: $0.port) }
    }

    /// The node that owns a key's slot (the seed when not a cluster).
    public func node(forKey key: Bytes) throws -> RedisConnection {
        guard isCluster else { return seed }
        let slot = hashSlot(key)
        guard let r = slots.first(where: { $0.start <= slot && slot <= $0.end }) else { return seed }
        return try connection(host: r.host, port: r.port)
    }

    /// Groups keys by the node that owns them (for UNLINK in batches per node).
    public func group(_ keys: some Sequence<Bytes>) throws -> [(RedisConnection, [Bytes])] {
        guard isCluster else { return [(seed, Array(keys))] }
        var order: [String] = []
        var groups: [String: (RedisConnection, [Bytes])] = [:]
        for k in keys {
            let c = try node(forKey: k)
            let ep = c.config.endpoint
            if groups[ep] == nil { order.append(ep); groups[ep] = (c, []) }
            groups[ep]!.1.append(k)
        }
        return order.map { groups[$0]! }
    }

    /// One command about one key, following MOVED and ASK (a few hops at most).
    public func call(_ args: [Bytes]) throws -> RESPValue {
        var conn = seed
        var asking = false
        for _ in 0..<5 {
            let r = asking ? try conn.pipeline([[Bytes(utf8: "ASKING")], args])[1] : try conn.pipeline([args])[0]
            guard let e = r.errorReply, e.kind == .moved || e.kind == .ask else { return r }
            // MOVED 3999 127.0.0.1:6381
            let parts = e.message.split(separator: " ")
            guard parts.count >= 3, let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) else { return r }
            var host = String(parts[2][..<colon])
            if host.isEmpty { host = seed.config.host }
            conn = try connection(host: host, port: port)
            asking = e.kind == .ask
            if e.kind == .moved { try? refresh() }
        }
        throw RedisError.server(ServerError("ERR too many cluster redirections for one key"))
    }

    public func close() { for c in byEndpoint.values where c !== seed { c.close() } }
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
        crc ^= UInt16(b) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
    }
    return Int(crc) & 16383
}
