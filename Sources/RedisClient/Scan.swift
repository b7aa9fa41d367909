import RedisProtocol

/// Escapes glob metacharacters so that `s` matches itself literally in MATCH / PSUBSCRIBE.
public func globEscape(_ s: Bytes) -> Bytes {
    var out = Bytes()
    out.reserveCapacity(s.count)
    for b in s {
        switch b {
        case UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "\\"):
            out.append(UInt8(ascii: "\\"))
        default: break
        }
        out.append(b)
    }
    return out
}

/// A SCAN cursor with a bounded COUNT (never KEYS). It only walks the cursor: callers
/// drop the duplicates SCAN may return while the server rehashes (see OpsCore's KeyspaceScan).
public struct KeyScanner: Sendable {
    public let match: Bytes
    public let count: Int
    public let type: String?
    private var cursor: Bytes = Bytes(utf8: "0")
    public private(set) var done = false

    /// `match` is a full glob (already including any prefix).
    public init(match: Bytes, count: Int = 1000, type: String? = nil) {
        self.match = match
        self.count = max(1, min(count, 10_000))
        self.type = type
    }

    /// The SCAN command for the current cursor; nil once the iteration is complete.
    public var nextCommand: [Bytes]? {
        if done { return nil }
        var args: [Bytes] = [Bytes(utf8: "SCAN"), cursor, Bytes(utf8: "MATCH"), match, Bytes(utf8: "COUNT"), Bytes(utf8: String(count))]
        if let t = type { args += [Bytes(utf8: "TYPE"), Bytes(utf8: t)] }
        return args
    }

    /// Takes a SCAN reply: advances the cursor and returns the keys of the page (possibly none).
    public mutating func consume(_ reply: RESPValue) throws -> [Bytes] {
        if let e = reply.errorReply { throw RedisError.server(e) }
        guard let parts = reply.array, parts.count == 2, let c = parts[0].bytes, let keys = parts[1].array else {
            throw RedisError.protocolViolation("unexpected SCAN reply")
        }
        cursor = c
        if c == Bytes(utf8: "0") { done = true }
        return keys.compactMap(\.bytes)
    }

    /// One page (a round trip of its own), or nil once the iteration is complete.
    public mutating func next(on conn: RedisConnection) throws -> [Bytes]? {
        guard let cmd = nextCommand else { return nil }
        return try consume(conn.pipeline([cmd])[0])
    }
}

/// A 64-bit fingerprint of a key, so a set of keys already seen stays small on millions of keys.
@inline(__always)
public func keyFingerprint(_ k: Bytes) -> Int {
    var h = Hasher()
    h.combine(k.count)
    k.withUnsafeBytes { h.combine(bytes: $0) }
    return h.finalize()
}
