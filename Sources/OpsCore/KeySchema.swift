import Foundation
import RedisProtocol
import RedisClient

/// What the application's conventions say a key is.
public enum KeyKind: String, Sendable, Equatable, CaseIterable {
    case cache = "cache entry"
    case lock = "lock"
    case rateLimit = "rate limit"
    case other = "other"
}

/// The application's conventions (README, "Configuration file"), all configurable.
public struct KeySchema: Sendable, Equatable {
    /// Key prefix added by the app's client to every key (never to channel names).
    public var prefix: Bytes
    /// Globs relative to the prefix.
    public var cachePattern: String = "workspace:*" { didSet { cacheGlob = Bytes(utf8: cachePattern) } }
    public var lockPattern: String = "lock:*" { didSet { lockGlob = Bytes(utf8: lockPattern) } }
    public var rateLimitPattern: String = "ratelimit:*" { didSet { rateLimitGlob = Bytes(utf8: rateLimitPattern) } }
    /// The same globs as bytes, made once (`kind(of:)` runs for every key of a listing).
    private var cacheGlob = Bytes(utf8: "workspace:*")
    private var lockGlob = Bytes(utf8: "lock:*")
    private var rateLimitGlob = Bytes(utf8: "ratelimit:*")
    /// Channel pattern of the app's events (no prefix).
    public var eventsPattern: String = "workspace:*:events"
    public var cacheTTL: Int64 = 300      // seconds
    public var lockTTL: Int64 = 10        // seconds
    public var rateLimit: Int64 = 60      // requests per window
    public var rateWindow: Int64 = 60     // seconds
    /// The JSON field of a cache entry that says when the application wrote the value (its
    /// age is shown next to the TTL; dotted paths allowed).
    public var updatedAtField: String = "updatedAt"
    /// Namespaces excluded from pattern invalidation unless named explicitly.
    public var protectedPatterns: [String] = ["lock:*", "ratelimit:*"]

    public init(prefix: String = "app:") { self.prefix = Bytes(utf8: prefix) }

    /// A full SCAN MATCH glob for a glob relative to the prefix (the prefix is escaped).
    public func fullGlob(_ relative: String) -> Bytes { fullGlob(Bytes(utf8: relative)) }
    public func fullGlob(_ relative: Bytes) -> Bytes { globEscape(prefix) + relative }

    /// A glob that matches exactly these bytes (its glob characters escaped).
    public static func literalGlob(_ b: Bytes) -> Bytes { globEscape(b) }

    /// The key with the prefix (a key given relative to the prefix).
    public func fullKey(_ relative: Bytes) -> Bytes { prefix + relative }

    /// The part after the prefix, or nil if the key is outside the prefix.
    public func relative(_ key: Bytes) -> Bytes? {
        key.hasPrefix(prefix) ? Array(key[prefix.count...]) : nil
    }

    public func kind(of key: Bytes) -> KeyKind {
        guard key.count >= prefix.count, key[..<prefix.count].elementsEqual(prefix) else { return .other }
        let rel = key[prefix.count...]
        if globMatch(lockGlob[...], rel) { return .lock }
        if globMatch(rateLimitGlob[...], rel) { return .rateLimit }
        if globMatch(cacheGlob[...], rel) { return .cache }
        return .other
    }

    /// The TTL the convention expects for a kind, in ms (nil: no expectation).
    public func expectedTTLms(_ k: KeyKind) -> Int64? {
        switch k {
        case .cache: return cacheTTL * 1000
        case .lock: return lockTTL * 1000
        case .rateLimit: return rateWindow * 1000
        case .other: return nil
        }
    }

    public func isProtected(_ key: Bytes) -> Bool {
        guard let rel = relative(key) else { return false }
        return protectedPatterns.contains { globMatch(Bytes(utf8: $0), rel) }
    }
}

/// Redis-compatible glob matching (`*`, `?`, `[...]` with ranges and `^`, `\` escapes), on bytes.
public func globMatch(_ pattern: Bytes, _ s: Bytes) -> Bool {
    globMatch(pattern[...], s[...])
}

func globMatch(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
    var p = p, s = s
    while let c = p.first {
        switch c {
        case UInt8(ascii: "*"):
            while p.first == UInt8(ascii: "*") { p = p.dropFirst() }
            if p.isEmpty { return true }
            var t = s
            while true {
                if globMatch(p, t) { return true }
                if t.isEmpty { return false }
                t = t.dropFirst()
            }
        case UInt8(ascii: "?"):
            if s.isEmpty { return false }
            s = s.dropFirst(); p = p.dropFirst()
        case UInt8(ascii: "["):
            guard let ch = s.first else { return false }
            p = p.dropFirst()
            var negate = false
            if p.first == UInt8(ascii: "^") { negate = true; p = p.dropFirst() }
            var matched = false
            while let x = p.first, x != UInt8(ascii: "]") {
                if x == UInt8(ascii: "\\"), p.count >= 2 {
                    p = p.dropFirst()
                    if p.first == ch { matched = true }
                    p = p.dropFirst()
                } else if p.count >= 3, p[p.startIndex + 1] == UInt8(ascii: "-"), p[p.startIndex + 2] != UInt8(ascii: "]") {
                    var lo = x, hi = p[p.startIndex + 2]
                    if lo > hi { swap(&lo, &hi) }
                    if ch >= lo && ch <= hi { matched = true }
                    p = p.dropFirst(3)
                } else {
                    if x == ch { matched = true }
                    p = p.dropFirst()
                }
            }
            if p.first == UInt8(ascii: "]") { p = p.dropFirst() }
            if negate { matched.toggle() }
            if !matched { return false }
            s = s.dropFirst()
        case UInt8(ascii: "\\") where p.count >= 2:
            p = p.dropFirst()
            if s.first != p.first { return false }
            s = s.dropFirst(); p = p.dropFirst()
        default:
            if s.first != c { return false }
            s = s.dropFirst(); p = p.dropFirst()
        }
    }
    return s.isEmpty
}

/// Key names as operators give them: relative to the prefix, or full names that already carry
/// it (as `keys` prints them) — the same rule in the console and every subcommand.
extension KeySchema {
    /// The full key for a name given: taken as it is when it already starts with the prefix.
    public func named(_ b: Bytes) -> Bytes { relative(b) != nil ? b : prefix + b }

    /// A glob relative to the prefix: a glob that already starts with the prefix loses it.
    public func relativeGlob(_ g: Bytes) -> Bytes { relative(g) ?? g }

    /// Whether a name given already carries the prefix (the CLI says so on stderr).
    public func carriesPrefix(_ b: Bytes) -> Bool { !prefix.isEmpty && relative(b) != nil }
}

/// Key names read from standard input (`invalidate --stdin`, `expire --stdin`): one per
/// line, or NDJSON objects with `"key"` or `"key_base64"` as `keys --json` prints them.
public enum KeyLines {
    public struct Bad: Error, CustomStringConvertible {
        public let line: Int
        public let why: String
        public var description: String { "standard input, line \(line): \(why)" }
    }

    /// The names on one line (nil for a blank line). A JSON line's `key_base64` wins over
    /// its `key`, which holds invalid bytes only as `\u00XX` escapes.
    public static func name(_ raw: Bytes, line: Int) throws -> Bytes? {
        var b = raw
        while let last = b.last, last == 10 || last == 13 { b.removeLast() }
        if b.isEmpty { return nil }
        guard b.first == UInt8(ascii: "{") else { return b }
        guard let j = JSONParser.parse(b) else { throw Bad(line: line, why: "starts with { but is not JSON") }
        if let f = j.field("key_base64"), let s = Self.text(f) {
            guard let d = Data(base64Encoded: s) else { throw Bad(line: line, why: "key_base64 is not valid base64") }
            return Bytes(d)
        }
        switch j.field("key") {
        case .string(let s)?: return Bytes(utf8: s)
        case .bytes(let k)?: return k
        default: throw Bad(line: line, why: "a JSON line needs a \"key\" (or \"key_base64\") string")
        }
    }

    static func text(_ j: JSON) -> String? {
        switch j {
        case .string(let s): return s
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }

    /// Every name in a stream of lines, in order.
    public static func names(_ data: Bytes) throws -> [Bytes] {
        var out: [Bytes] = []
        var start = 0
        var n = 0
        while start < data.count {
            let end = data[start...].firstIndex(of: 10) ?? data.count
            n += 1
            if let k = try name(Array(data[start..<end]), line: n) { out.append(k) }
            start = end + 1
        }
        return out
    }
}
