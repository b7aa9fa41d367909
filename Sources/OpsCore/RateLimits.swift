import RedisProtocol
import RedisClient

/// One fixed-window counter of the application's rate limiter.
public struct RateLimitCounter: BoardRow {
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
    /// Wall-clock time of the reading (the TTL counts down locally from it).
    public var readAt: Double

    public init(key: Bytes, identifier: Bytes, kind: Kind, count: Int64?, limit: Int64, window: Int64, ttl: TTLState?, readAt: Double = 0) {
        self.key = key; self.identifier = identifier; self.kind = kind; self.count = count
        self.limit = limit; self.window = window; self.ttl = ttl; self.readAt = readAt
    }

    public var state: State {
        guard let c = count else { return .unknown }
        if c > limit { return .blocked }
        if Double(c) >= 0.8 * Double(limit) { return .near }
        return .ok
    }
    public var isBlocked: Bool { state == .blocked }
    public var isGone: Bool { ttl == .gone }
    /// Broken means one thing everywhere: no TTL. The window never ends, so once over the
    /// limit the client is blocked forever (`blocksForever`).
    public var isBroken: Bool { ttl == .persistent }
    /// Broken and over the limit: every request of this client is refused until someone resets it.
    public var blocksForever: Bool { isBroken && isBlocked }
    /// A TTL longer than the window (set by hand, or the window was shortened): not broken,
    /// but the client waits longer than the application intends.
    public var ttlAboveWindow: Bool {
        if case .expiresIn(let ms)? = ttl { return ms > window * 1000 + 1000 }
        return false
    }

    /// The state word of the console, the CLI's text and `ratelimits --json`.
    public var stateWord: String {
        if isBroken { return "broken" }
        switch state {
        case .blocked: return "blocked"
        case .near: return "near"
        case .ok, .unknown: return "ok"
        }
    }

    /// Worth a look: broken, blocked, near the limit, a TTL above the window, or not a number.
    public var isFlagged: Bool { flagRank < 5 }

    /// The order flagged rows come in: blocked forever, blocked, broken, a TTL above the
    /// window, near, not a number, then the rest.
    public var flagRank: Int {
        if blocksForever { return 0 }
        if isBlocked { return 1 }
        if isBroken { return 2 }
        if ttlAboveWindow { return 3 }
        if state == .near { return 4 }
        if state == .unknown { return 4 }
        return 5
    }

    /// The client's Retry-After while blocked, in ms (nil: not blocked or no expiry).
    public var retryAfterMs: Int64? {
        guard isBlocked, case .expiresIn(let ms)? = ttl else { return nil }
        return ms
    }

    /// Flagged first (blocked forever, blocked, broken, …), then by count (highest first), then by key.
    public static func ordered(_ a: RateLimitCounter, _ b: RateLimitCounter) -> Bool {
        let fa = a.flagRank, fb = b.flagRank
        if fa != fb { return fa < fb }
        if (a.count ?? -1) != (b.count ?? -1) { return (a.count ?? -1) > (b.count ?? -1) }
        return a.key.lexicographicallyPrecedes(b.key)
    }

    /// The JSON line of `redis-ops ratelimits --json`.
    public var json: JSON {
        var f: [(String, JSON)] = [("key", .bytes(key)), ("identifier", .bytes(identifier)),
                                   ("count", count.map { .int($0) } ?? .null), ("limit", .int(limit)),
                                   ("ttl_ms", ttl.map { .int($0.jsonMilliseconds) } ?? .null), ("blocked", .bool(isBlocked)),
                                   ("state", .string(stateWord))]
        if !key.isValidUTF8 { f.append(("key_base64", .string(key.base64))) }
        return .object(f)
    }
}

/// Reads GET and PTTL for each page of counter keys (counters gone since SCAN are dropped).
public final class CounterReader: BoardReader {
    public let schema: KeySchema
    public var now: () -> Double = wallClockNow
    /// A refused read (NOPERM) is kept here and the listing stops with it.
    public private(set) var refusal: ServerError?
    public init(schema: KeySchema) { self.schema = schema }

    public func gone(_ key: Bytes, at: Double) -> RateLimitCounter {
        let id = identifier(of: key)
        return RateLimitCounter(key: key, identifier: id, kind: kind(of: id), count: nil, limit: schema.rateLimit,
                                window: schema.rateWindow, ttl: .gone, readAt: at)
    }

    public func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Void) {
        var cmds: [[Bytes]] = []
        cmds.reserveCapacity(keys.count * 2)
        for k in keys { cmds.append([Bytes(utf8: "GET"), k]); cmds.append([Bytes(utf8: "PTTL"), k]) }
        return (cmds, ())
    }

    public func rows(_ keys: [Bytes], _ token: Void, _ r: ArraySlice<RESPValue>) -> [RateLimitCounter] {
        var out: [RateLimitCounter] = []
        var j = r.startIndex
        let at = now()
        for k in keys {
            let v = r[j], t = r[j + 1]
            j += 2
            if let e = t.errorReply ?? v.errorReply, e.kind == .noPerm { refusal = refusal ?? e; continue }
            if case .bulk(nil) = v { continue }              // gone since the scan
            let ttl = t.int.map(TTLState.init(pttl:))
            if ttl == .gone { continue }
            let id = identifier(of: k)
            out.append(RateLimitCounter(key: k, identifier: id, kind: kind(of: id), count: v.errorReply == nil ? v.int : nil,
                                        limit: schema.rateLimit, window: schema.rateWindow, ttl: ttl, readAt: at))
        }
        return out
    }

    /// The text after the namespace of the rate-limit pattern (`ratelimit:`).
    public func identifier(of key: Bytes) -> Bytes {
        guard let rel = schema.relative(key) else { return key }
        let ns = Bytes(utf8: schema.rateLimitPattern.split(separator: "*", maxSplits: 1).first.map(String.init) ?? "")
        return rel.hasPrefix(ns) ? Array(rel[ns.count...]) : rel
    }

    func kind(of id: Bytes) -> RateLimitCounter.Kind {
        if id.hasPrefix(Bytes(utf8: "ip:")) { return .ip }
        if id.hasPrefix(Bytes(utf8: "user:")) { return .user }
        return .other
    }
}

