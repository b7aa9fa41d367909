import RedisProtocol
import RedisClient

/// A stampede lock: the application's `lock:${key}` for the cache key `workspace:{id}`,
/// prefixed once by its client (`app:lock:workspace:42` guards `app:workspace:42`).
public struct LockRow: BoardRow {
    public var key: Bytes
    /// The cache key the lock protects (full name).
    public var protects: Bytes
    public var ttl: TTLState?
    /// The value (the application stores "1" in every lock).
    public var value: Bytes?
    /// Wall-clock time of the reading.
    public var readAt: Double

    public init(key: Bytes, protects: Bytes, ttl: TTLState?, value: Bytes?, readAt: Double) {
        self.key = key; self.protects = protects; self.ttl = ttl; self.value = value; self.readAt = readAt
    }

    public var isGone: Bool { ttl == .gone }

    /// Stuck: no TTL, or a TTL above the expected lock TTL.
    public func isStuck(expectedMs: Int64) -> Bool {
        switch ttl {
        case .persistent?: return true
        case .expiresIn(let ms)?: return ms > expectedMs + 1000
        default: return false
        }
    }

    /// Milliseconds left at `now` (nil: no TTL or unknown; 0: run out, expected gone).
    public func remainingMs(now: Double) -> Int64? {
        guard case .expiresIn(let ms)? = ttl else { return nil }
        return max(0, ms - elapsedMs(since: readAt, now: now))
    }

    /// How long it has been held: the expected TTL minus what is left (nil when that cannot
    /// be told: no TTL, or a TTL above the expected one).
    public func heldMs(expectedMs: Int64, now: Double) -> Int64? {
        guard let left = remainingMs(now: now), !isStuck(expectedMs: expectedMs) else { return nil }
        return max(0, expectedMs - left)
    }

    /// Stuck first, then the longest held, then by key.
    static func ordered(_ a: LockRow, _ b: LockRow, expectedMs: Int64) -> Bool {
        let sa = a.isStuck(expectedMs: expectedMs), sb = b.isStuck(expectedMs: expectedMs)
        if sa != sb { return sa }
        let ra = LockRow.rank(a), rb = LockRow.rank(b)
        if ra != rb { return ra < rb }
        return a.key.lexicographicallyPrecedes(b.key)
    }

    /// Absolute expiry in ms (soonest = held longest, since every lock starts at the same TTL).
    static func rank(_ r: LockRow) -> Int64 {
        if case .expiresIn(let ms)? = r.ttl { return Int64(r.readAt * 1000) + ms }
        return Int64.max
    }
}

/// Reads PTTL and GET for each page of lock keys (locks released since SCAN are dropped).
public final class LockReader: BoardReader {
    public let schema: KeySchema
    public var now: () -> Double = wallClockNow
    public private(set) var refusal: ServerError?
    public init(schema: KeySchema) { self.schema = schema }

    public func gone(_ key: Bytes, at: Double) -> LockRow {
        LockRow(key: key, protects: schema.protectedKey(ofLock: key), ttl: .gone, value: nil, readAt: at)
    }

    public func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Void) {
        (keys.flatMap { [[Bytes(utf8: "PTTL"), $0], [Bytes(utf8: "GET"), $0]] }, ())
    }

    public func rows(_ keys: [Bytes], _ token: Void, _ r: ArraySlice<RESPValue>) -> [LockRow] {
        var out: [LockRow] = []
        var j = r.startIndex
        let at = now()
        for k in keys {
            let t = r[j], v = r[j + 1]
            j += 2
            if let e = t.errorReply, e.kind == .noPerm { refusal = refusal ?? e; continue }
            let ttl = t.int.map(TTLState.init(pttl:))
            if ttl == .gone { continue }
            out.append(LockRow(key: k, protects: schema.protectedKey(ofLock: k), ttl: ttl,
                               value: v.errorReply == nil ? v.bytes : nil, readAt: at))
        }
        return out
    }
}

extension KeySchema {
    /// The cache key a lock guards: the part after the lock namespace, under the prefix.
    public func protectedKey(ofLock key: Bytes) -> Bytes {
        let rel = relative(key) ?? key
        let ns = Bytes(utf8: lockPattern.split(separator: "*", maxSplits: 1).first.map(String.init) ?? "")
        return prefix + (rel.hasPrefix(ns) ? Array(rel[ns.count...]) : rel)
    }
}

