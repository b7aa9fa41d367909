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

/// A SCAN cursor with a bounded COUNT (never KEYS). It tolerates empty pages and drops
/// the duplicates SCAN may return while the server rehashes.
public final class KeyScanner: @unchecked Sendable {  // used by one thread at a time
    public let match: Bytes
    public let count: Int
    public let type: String?
    private var cursor: Bytes = Bytes(utf8: "0")
    public private(set) var done = false
    private var seen = Set<Int>()

    /// `match` is a full glob (already including any prefix).
    public init(match: Bytes, count: Int = 1000, type: String? = nil) {
        self.match = match
        self.count = max(1, min(count, 10_000))
        self.type = type
    }

    /// The next batch of new keys (possibly empty), or nil once the iteration is complete.
    public func next(on conn: RedisConnection) throws -> [Bytes]? {
        if done { return nil }
        var args: [Bytes] = [Bytes(utf8: "SCAN"), cursor, Bytes(utf8: "MATCH"), match, Bytes(utf8: "COUNT"), Bytes(utf8: String(count))]
        if let t = type { args += [Bytes(utf8: "TYPE"), Bytes(utf8: t)] }
        let reply = try conn.call(args)
        return try consume(reply)
    }

    /// The SCAN command for the current cursor (for callers that pipeline it themselves).
    public var nextCommand: [Bytes]? {
        if done { return nil }
        var args: [Bytes] = [Bytes(utf8: "SCAN"), cursor, Bytes(utf8: "MATCH"), match, Bytes(utf8: "COUNT"), Bytes(utf8: String(count))]
        if let t = type { args += [Bytes(utf8: "TYPE"), Bytes(utf8: t)] }
        return args
    }

    /// Takes a SCAN reply: advances the cursor and returns the keys not seen before.
    public func consume(_ reply: RESPValue) throws -> [Bytes] {
        if let e = reply.errorReply { throw RedisError.server(e) }
        guard let parts = reply.array, parts.count == 2, let c = parts[0].bytes, let keys = parts[1].array else {
            throw RedisError.protocolViolation("unexpected SCAN reply")
        }
        cursor = c
        if c == Bytes(utf8: "0") { done = true }
        var fresh: [Bytes] = []
        fresh.reserveCapacity(keys.count)
        for k in keys {
            guard let kb = k.bytes else { continue }
            // A 64-bit hash per key keeps memory flat on millions of keys.
            var h = Hasher()
            h.combine(kb.count)
            kb.withUnsafeBytes { h.combine(bytes: $0) }
            if seen.insert(h.finalize()).inserted { fresh.append(kb) }
        }
        return fresh
    }
}

/// What we know about one key. Unknown fields (not permitted, or gone meanwhile) are nil.
public struct KeyMetadata: Sendable, Equatable {
    public var key: Bytes
    public var type: String?
    public var ttl: TTLState?
    public var bytes: Int64?
    public init(key: Bytes, type: String?, ttl: TTLState?, bytes: Int64?) {
        self.key = key; self.type = type; self.ttl = ttl; self.bytes = bytes
    }
}

/// Fetches TYPE, PTTL and MEMORY USAGE for keys in pipelined batches. A command the
/// user may not run (NOPERM, or disabled) makes that field unknown rather than failing
/// the listing; once MEMORY USAGE is refused it is not asked again.
public final class MetadataFetcher: @unchecked Sendable {  // used by one thread at a time
    public var wantType = true
    public var wantTTL = true
    public private(set) var memoryUsageAllowed: Bool
    public private(set) var typeAllowed = true
    public private(set) var ttlAllowed = true
    public let batchSize: Int

    public init(memoryUsage: Bool = true, batchSize: Int = 1000) {
        self.memoryUsageAllowed = memoryUsage
        self.batchSize = batchSize
    }

    public func fetch(_ keys: [Bytes], on conn: RedisConnection) throws -> [KeyMetadata] {
        var out: [KeyMetadata] = []
        out.reserveCapacity(keys.count)
        var i = 0
        while i < keys.count {
            let chunk = Array(keys[i..<min(keys.count, i + batchSize)])
            out += try fetchChunk(chunk, conn)
            i += batchSize
        }
        return out
    }

    private static let TYPE = Bytes(utf8: "TYPE"), PTTL = Bytes(utf8: "PTTL"), MEMORY = Bytes(utf8: "MEMORY"), USAGE = Bytes(utf8: "USAGE")

    /// A request for metadata whose replies are read later (see `RedisConnection.send`).
    public struct Pending: Sendable {
        public let keys: [Bytes]
        let doType: Bool, doTTL: Bool, doMem: Bool
        public var replyCount: Int { keys.count * ((doType ? 1 : 0) + (doTTL ? 1 : 0) + (doMem ? 1 : 0)) }
    }

    /// The commands for `keys` (up to one batch), and what is needed to read their replies.
    public func commands(for keys: [Bytes]) -> ([[Bytes]], Pending) {
        let p = Pending(keys: keys, doType: wantType && typeAllowed, doTTL: wantTTL && ttlAllowed, doMem: memoryUsageAllowed)
        var cmds: [[Bytes]] = []
        cmds.reserveCapacity(p.replyCount)
        for k in keys {
            if p.doType { cmds.append([Self.TYPE, k]) }
            if p.doTTL { cmds.append([Self.PTTL, k]) }
            if p.doMem { cmds.append([Self.MEMORY, Self.USAGE, k]) }
        }
        return (cmds, p)
    }

    private func fetchChunk(_ keys: [Bytes], _ conn: RedisConnection) throws -> [KeyMetadata] {
        let (cmds, p) = commands(for: keys)
        if cmds.isEmpty { return keys.map { KeyMetadata(key: $0, type: nil, ttl: nil, bytes: nil) } }
        return parse(p, try conn.pipeline(cmds))
    }

    /// Turns the replies of a `Pending` request into metadata.
    public func parse(_ p: Pending, _ replies: some RandomAccessCollection<RESPValue>) -> [KeyMetadata] {
        let keys = p.keys, doType = p.doType, doTTL = p.doTTL, doMem = p.doMem
        let replies = Array(replies)
        var out: [KeyMetadata] = []
        out.reserveCapacity(keys.count)
        var j = 0
        for k in keys {
            var m = KeyMetadata(key: k, type: nil, ttl: nil, bytes: nil)
            if doType {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { typeAllowed = false } }
                else if let s = r.string { m.type = s }
            }
            if doTTL {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { ttlAllowed = false } }
                else if let v = r.int { m.ttl = TTLState(pttl: v) }
            }
            if doMem {
                let r = replies[j]; j += 1
                if let e = r.errorReply { if e.isNotAllowed { memoryUsageAllowed = false } }
                else if case .integer(let v) = r { m.bytes = v }
            }
            out.append(m)
        }
        return out
    }
}
