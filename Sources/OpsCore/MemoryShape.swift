import RedisProtocol
import RedisClient

/// Memory and TTL shape of one namespace (the first segment after the prefix): exact over
/// the keys read (`sampled` = `keys` when every key's MEMORY USAGE was read).
public struct NamespaceMemory: Sendable, Equatable {
    public static let biggestKept = 20
    public var namespace: Bytes
    public var keys = 0
    public var sampled = 0
    public var bytes: Int64 = 0
    /// none, < 1 min, < 5 min, < 1 h, ≥ 1 h.
    public var ttl = [Int](repeating: 0, count: 5)
    public var biggest: [KeySize] = []
    var sizes: [Int64] = []
    public init(namespace: Bytes) { self.namespace = namespace }

    public struct KeySize: Sendable, Equatable {
        public var key: Bytes
        public var bytes: Int64
    }

    /// The TTL histogram's bucket: none, < 1 min, < 5 min, < 1 h, ≥ 1 h (nil: gone or unknown).
    static func ttlBucket(_ t: TTLState?) -> Int? {
        switch t {
        case .persistent?: return 0
        case .expiresIn(let ms)?: return ms < 60_000 ? 1 : ms < 300_000 ? 2 : ms < 3_600_000 ? 3 : 4
        default: return nil
        }
    }

    /// Keeps the `limit` biggest, sorted descending (a small array: insertion is cheap, and
    /// most keys fail the first comparison).
    static func keep(_ biggest: inout [KeySize], _ k: Bytes, _ b: Int64, limit: Int) {
        guard biggest.count < limit || b > biggest[biggest.count - 1].bytes else { return }
        let i = biggest.firstIndex { $0.bytes < b } ?? biggest.count
        biggest.insert(KeySize(key: k, bytes: b), at: i)
        if biggest.count > limit { biggest.removeLast() }
    }

    mutating func add(_ k: KeyInfo) {
        keys += 1
        if let i = Self.ttlBucket(k.ttl) { ttl[i] += 1 }
        guard let b = k.bytes else { return }
        sampled += 1
        bytes += b
        sizes.append(b)
        Self.keep(&biggest, k.key, b, limit: Self.biggestKept)
    }

    /// Nearest-rank percentile of the sizes read (nil when none was).
    public func percentile(_ p: Double) -> Int64? {
        guard !sizes.isEmpty else { return nil }
        let sorted = sizes.sorted()
        let rank = Swift.max(1, Int((p / 100 * Double(sorted.count)).rounded(.up)))
        return sorted[min(sorted.count, rank) - 1]
    }
    public var max: Int64? { sizes.max() }

    /// Keys with no TTL in a namespace whose convention expects one (cache entries, locks,
    /// counters): a leak.
    public func leaks(_ schema: KeySchema) -> Int {
        let sample = biggest.first?.key ?? (schema.prefix + namespace + Bytes(utf8: ":x"))
        switch schema.kind(of: sample) {
        case .cache, .lock, .rateLimit: return ttl[0]
        default: return 0
        }
    }

    /// The JSON line of `redis-ops memory --json`.
    public var json: JSON {
        func n(_ v: Int64?) -> JSON { v.map { .int($0) } ?? .null }
        return .object([
            ("namespace", .bytes(namespace)), ("keys", .int(Int64(keys))), ("sampled", .int(Int64(sampled))), ("bytes", .int(bytes)),
            ("p50", n(percentile(50))), ("p99", n(percentile(99))), ("max", n(max)),
            ("ttl", .object([("none", .int(Int64(ttl[0]))), ("lt1m", .int(Int64(ttl[1]))), ("lt5m", .int(Int64(ttl[2]))),
                             ("lt1h", .int(Int64(ttl[3]))), ("ge1h", .int(Int64(ttl[4])))])),
            ("biggest", .array(biggest.map { k in
                var f: [(String, JSON)] = [("key", .bytes(k.key)), ("bytes", .int(k.bytes))]
                if !k.key.isValidUTF8 { f.append(("key_base64", .string(k.key.base64))) }
                return .object(f)
            })),
        ])
    }
}

/// Every namespace's shape, from the rows of a listing (the same scan and per-key reads as
/// `keys`: TYPE, PTTL, MEMORY USAGE, paced within the latency budget).
public struct MemoryShape: Sendable, Equatable {
    public private(set) var namespaces: [Bytes: NamespaceMemory] = [:]
    public let prefix: Bytes
    public init(prefix: Bytes) { self.prefix = prefix }

    public mutating func add(_ rows: [KeyInfo]) {
        for k in rows where !k.isGone {
            let ns = ActivityTally.namespace(of: k.key, prefix: prefix)
            namespaces[ns, default: NamespaceMemory(namespace: ns)].add(k)
        }
    }

    /// Biggest first.
    public var sorted: [NamespaceMemory] {
        namespaces.values.sorted { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : $0.namespace.lexicographicallyPrecedes($1.namespace) }
    }
}

/// Hot keys: `OBJECT FREQ` of each key (the LFU counter, logarithmic), meaningful only under
/// an LFU eviction policy (the server refuses it otherwise).
public final class HotKeyReader: PageReader {
    public struct Hot: Sendable, Equatable { public var key: Bytes; public var freq: Int64 }
    public private(set) var refusal: String?
    public init() {}
    public func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Void) {
        (keys.map { [Bytes(utf8: "OBJECT"), Bytes(utf8: "FREQ"), $0] }, ())
    }
    public func rows(_ keys: [Bytes], _ token: Void, _ replies: ArraySlice<RESPValue>) -> [Hot] {
        var out: [Hot] = []
        for (k, r) in zip(keys, replies) {
            if let e = r.errorReply { refusal = refusal ?? e.message; continue }
            if let f = r.int { out.append(Hot(key: k, freq: f)) }
        }
        return out
    }

    /// The eviction policy from INFO memory (CONFIG may be disabled).
    public static func policy(_ c: RedisConnection) -> String? {
        guard let text = try? c.call([Bytes(utf8: "INFO"), Bytes(utf8: "memory")]).string else { return nil }
        return text.components(separatedBy: .newlines).first { $0.hasPrefix("maxmemory_policy:") }.map { String($0.dropFirst(17)).trimmingCharacters(in: .whitespaces) }
    }
}
