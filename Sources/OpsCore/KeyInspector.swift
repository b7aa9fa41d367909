import RedisProtocol
import RedisClient

/// One page of a value, fetched without ever reading a big value whole.
public struct InspectedValue: Sendable, Equatable {
    public var key: Bytes
    public var type: String
    public var ttl: TTLState?
    public var bytes: Int64?
    public var encoding: String?
    /// STRLEN / HLEN / LLEN / SCARD / ZCARD / XLEN.
    public var length: Int64?
    /// For strings: the first `maxString` bytes.
    public var string: Bytes?
    public var stringTruncated = false
    /// For collections: (field or member or id, value or score).
    public var items: [(Bytes, Bytes?)] = []
    /// The cursor (or offset) of the next page; nil at the end.
    public var next: Bytes?
    public var readAt: Double = 0
    public var note: String?

    public init(key: Bytes, type: String, ttl: TTLState?, bytes: Int64?, encoding: String?) {
        self.key = key; self.type = type; self.ttl = ttl; self.bytes = bytes; self.encoding = encoding
    }

    public static func == (a: InspectedValue, b: InspectedValue) -> Bool {
        a.key == b.key && a.type == b.type && a.ttl == b.ttl && a.bytes == b.bytes && a.length == b.length && a.string == b.string
            && a.items.map(\.0) == b.items.map(\.0) && a.items.map(\.1) == b.items.map(\.1) && a.next == b.next && a.note == b.note
    }
}

public enum KeyInspector {
    public static let maxString = 64 * 1024
    public static let pageSize = 100

    static func b(_ s: String) -> Bytes { Bytes(utf8: s) }

    /// The same, on the node that owns the key (cluster mode).
    public static func inspect(_ key: Bytes, cursor: Bytes? = nil, nodes: NodeSet) throws -> InspectedValue {
        try inspect(key, cursor: cursor, on: nodes.node(forKey: key))
    }

    /// Metadata and the first page (or the page at `cursor`).
    public static func inspect(_ key: Bytes, cursor: Bytes? = nil, on c: RedisConnection) throws -> InspectedValue {
        let meta = try c.pipeline([[b("TYPE"), key], [b("PTTL"), key], [b("MEMORY"), b("USAGE"), key], [b("OBJECT"), b("ENCODING"), key]])
        if let e = meta[0].errorReply { throw RedisError.server(e) }
        let type = meta[0].string ?? "none"
        var v = InspectedValue(key: key, type: type, ttl: meta[1].int.map(TTLState.init(pttl:)),
                               bytes: meta[2].errorReply == nil ? meta[2].int : nil, encoding: meta[3].errorReply == nil ? meta[3].string : nil)
        v.readAt = wallClockNow()
        if meta[2].errorReply != nil { v.note = "MEMORY USAGE not permitted: size unknown" }
        let n = b(String(pageSize))
        switch type {
        case "none":
            v.note = "the key is gone"
        case "string":
            let r = try c.pipeline([[b("STRLEN"), key], [b("GETRANGE"), key, b("0"), b(String(maxString - 1))]])
            v.length = r[0].int
            if let e = r[1].errorReply { throw RedisError.server(e) }
            v.string = r[1].bytes ?? []
            v.stringTruncated = (v.length ?? 0) > Int64(maxString)
        case "hash", "set", "zset":
            let (lenCmd, scanCmd) = type == "hash" ? ("HLEN", "HSCAN") : (type == "set" ? ("SCARD", "SSCAN") : ("ZCARD", "ZSCAN"))
            let r = try c.pipeline([[b(lenCmd), key], [b(scanCmd), key, cursor ?? b("0"), b("COUNT"), n]])
            v.length = r[0].int
            if let e = r[1].errorReply { throw RedisError.server(e) }
            guard let parts = r[1].array, parts.count == 2, let cur = parts[0].bytes, let els = parts[1].array else { throw RedisError.protocolViolation("unexpected \(scanCmd) reply") }
            if type == "set" { v.items = els.compactMap { $0.bytes.map { ($0, nil) } } }
            else { v.items = stride(from: 0, to: els.count - 1, by: 2).map { (els[$0].bytes ?? [], els[$0 + 1].bytes) } }
            v.next = cur == b("0") ? nil : cur
        case "list":
            let start = Int64(cursor.flatMap { Int64($0.lossyString) } ?? 0)
            let r = try c.pipeline([[b("LLEN"), key], [b("LRANGE"), key, b(String(start)), b(String(start + Int64(pageSize) - 1))]])
            v.length = r[0].int
            if let e = r[1].errorReply { throw RedisError.server(e) }
            let els = r[1].array ?? []
            v.items = els.enumerated().map { (b(String(start + Int64($0.offset))), $0.element.bytes) }
            let nextStart = start + Int64(els.count)
            v.next = nextStart < (v.length ?? 0) ? b(String(nextStart)) : nil
        case "stream":
            let from = cursor.map { b("(") + $0 } ?? b("-")
            let r = try c.pipeline([[b("XLEN"), key], [b("XRANGE"), key, from, b("+"), b("COUNT"), n]])
            v.length = r[0].int
            if let e = r[1].errorReply { throw RedisError.server(e) }
            for e in r[1].array ?? [] {
                guard let a = e.array, a.count == 2, let id = a[0].bytes else { continue }
                let fields = a[1].array ?? []
                var text = Bytes()
                for i in stride(from: 0, to: fields.count - 1, by: 2) {
                    if !text.isEmpty { text += b(" ") }
                    text += (fields[i].bytes ?? []) + b("=") + (fields[i + 1].bytes ?? [])
                }
                v.items.append((id, text))
            }
            v.next = v.items.count == pageSize ? v.items.last?.0 : nil
        default:
            v.note = "type \(type) is not shown"
        }
        return v
    }
}

