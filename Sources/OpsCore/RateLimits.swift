import RedisProtocol
import RedisClient

/// One fixed-window counter of the application's rate limiter.
public struct RateLimitCounter: Sendable, Equatable {
    public enum Kind: String, Sendable { case ip, user, other }
    public enum State: Int, Sendable, Comparable {
        case blocked = 0, near = 1, ok = 2, unknown = 3
        public static func < (a: State, b: State) -> Bool { a.rawValue < b.rawValue }
    }
    public var key: Bytes
    /// The part after `ratelimit:` (e.g. `ip:10.0.0.1`).
    public var identifier: Bytes
    public var kind: Kind
    /// nil when the value is not an integer (or could not be read).
    public var count: Int64?
    public var limit: Int64
    public var window: Int64
    public var ttl: TTLState?

    public init(key: Bytes, identifier: Bytes, kind: Kind, count: Int64?, limit: Int64, window: Int64, ttl: TTLState?) {
        self.key = key; self.identifier = identifier; self.kind = kind; self.count = count
        self.limit = limit; self.window = window; self.ttl = ttl
    }

    public var state: State {
        guard let c = count else { return .unknown }
        if c > limit { return .blocked }
        if Double(c) >= 0.8 * Double(limit) { return .near }
        return .ok
    }
    public var isBlocked: Bool { state == .blocked }
    /// No TTL (blocks forever once over the limit), or a TTL longer than the window.
    public var isBroken: Bool {
        switch ttl {
        case .persistent?: return true
        case .expiresIn(let ms)?: return ms > window * 1000 + 1000
        default: return false
        }
    }
    /// The client's Retry-After while blocked, in ms (nil: not blocked or no expiry).
    public var retryAfterMs: Int64? {
        guard isBlocked, case .expiresIn(let ms)? = ttl else { return nil }
        return ms
    }

    /// Blocked first, then by count (highest first), then by key.
    public static func ordered(_ a: RateLimitCounter, _ b: RateLimitCounter) -> Bool {
        if a.state != b.state { return a.state < b.state }
        if (a.count ?? -1) != (b.count ?? -1) { return (a.count ?? -1) > (b.count ?? -1) }
        return a.key.lexicographicallyPrecedes(b.key)
    }

    /// The JSON line of `redis-ops ratelimits --json`.
    public var json: JSON {
        var f: [(String, JSON)] = [("key", .bytes(key)), ("identifier", .bytes(identifier)),
                                   ("count", count.map { .int($0) } ?? .null), ("limit", .int(limit)),
                                   ("ttl_ms", ttl.map { .int($0.jsonMilliseconds) } ?? .null), ("blocked", .bool(isBlocked))]
        if !key.isValidUTF8 { f.append(("key_base64", .string(key.base64))) }
        return .object(f)
    }
}

/// Finds and reads rate-limit counters: SCAN (bounded COUNT) plus GET and PTTL in pipelines.
public struct RateLimitReader: Sendable {
    public var schema: KeySchema
    public init(schema: KeySchema) { self.schema = schema }

    /// The text after the namespace of the rate-limit pattern (`ratelimit:`).
    func identifier(of key: Bytes) -> Bytes {
        guard let rel = schema.relative(key) else { return key }
        let ns = Bytes(utf8: schema.rateLimitPattern.split(separator: "*", maxSplits: 1).first.map(String.init) ?? "")
        return rel.hasPrefix(ns) ? Array(rel[ns.count...]) : rel
    }

    func kind(of id: Bytes) -> RateLimitCounter.Kind {
        if id.hasPrefix(Bytes(utf8: "ip:")) { return .ip }
        if id.hasPrefix(Bytes(utf8: "user:")) { return .user }
        return .other
    }

    /// Every counter under the prefix (on every primary in cluster mode), ordered blocked first.
    public func scanAll(_ conn: RedisConnection, maxKeys: Int = 100_000) throws -> [RateLimitCounter] {
        try scanAll(NodeSet(seed: conn), maxKeys: maxKeys)
    }

    public func scanAll(_ nodes: NodeSet, maxKeys: Int = 100_000) throws -> [RateLimitCounter] {
        var out: [RateLimitCounter] = []
        for conn in try nodes.scanNodes() {
            let scanner = KeyScanner(match: schema.fullGlob(schema.rateLimitPattern), count: 1000)
            var keys: [Bytes] = []
            while keys.count < maxKeys, let page = try scanner.next(on: conn) { keys += page }
            out += try read(keys, conn)
        }
        return out.sorted(by: RateLimitCounter.ordered)
    }

    /// Re-reads counters on the nodes that own them.
    public func read(_ keys: [Bytes], _ nodes: NodeSet) throws -> [RateLimitCounter] {
        var out: [RateLimitCounter] = []
        for (conn, ks) in try nodes.group(keys) { out += try read(ks, conn) }
        return out
    }

    /// Re-reads the given counters' values and TTLs in one pipeline (gone ones are dropped).
    public func read(_ keys: [Bytes], _ conn: RedisConnection) throws -> [RateLimitCounter] {
        var out: [RateLimitCounter] = []
        var i = 0
        while i < keys.count {
            let chunk = Array(keys[i..<min(keys.count, i + 1000)])
            var cmds: [[Bytes]] = []
            for k in chunk { cmds.append([Bytes(utf8: "GET"), k]); cmds.append([Bytes(utf8: "PTTL"), k]) }
            let r = try conn.pipeline(cmds)
            for (j, k) in chunk.enumerated() {
                let v = r[2 * j], t = r[2 * j + 1]
                if case .bulk(nil) = v { continue }              // gone since the scan
                if let e = t.errorReply, e.kind == .noPerm { throw RedisError.server(e) }
                let ttl = t.int.map(TTLState.init(pttl:))
                if ttl == .gone { continue }
                let id = identifier(of: k)
                out.append(RateLimitCounter(key: k, identifier: id, kind: kind(of: id), count: v.errorReply == nil ? v.int : nil,
                                            limit: schema.rateLimit, window: schema.rateWindow, ttl: ttl))
            }
            i += 1000
        }
        return out
    }
}
