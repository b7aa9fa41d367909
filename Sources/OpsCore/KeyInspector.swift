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

    /// Metadata and the first page (or the page at `cursor`), in one round trip: the reads
    /// of every type go with TYPE (those of the other types answer WRONGTYPE at once, and are
    /// not looked at), so a key press never waits for two trips through a tunnel.
    public static func inspect(_ key: Bytes, cursor: Bytes? = nil, on c: RedisConnection) throws -> InspectedValue {
        let n = b(String(pageSize))
        let listStart = Int64(cursor.flatMap { Int64($0.lossyString) } ?? 0)
        let cmds: [[Bytes]] = [
            [b("TYPE"), key], [b("PTTL"), key], [b("MEMORY"), b("USAGE"), key], [b("OBJECT"), b("ENCODING"), key],
            [b("STRLEN"), key], [b("GETRANGE"), key, b("0"), b(String(maxString - 1))],
            [b("HLEN"), key], [b("HSCAN"), key, cursor ?? b("0"), b("COUNT"), n],
            [b("SCARD"), key], [b("SSCAN"), key, cursor ?? b("0"), b("COUNT"), n],
            [b("ZCARD"), key], [b("ZSCAN"), key, cursor ?? b("0"), b("COUNT"), n],
            [b("LLEN"), key], [b("LRANGE"), key, b(String(listStart)), b(String(listStart + Int64(pageSize) - 1))],
            [b("XLEN"), key], [b("XRANGE"), key, cursor.map { b("(") + $0 } ?? b("-"), b("+"), b("COUNT"), n],
        ]
        let r = try c.pipeline(cmds)
        if let e = r[0].errorReply { throw RedisError.server(e) }
        let type = r[0].string ?? "none"
        var v = InspectedValue(key: key, type: type, ttl: r[1].int.map(TTLState.init(pttl:)),
                               bytes: r[2].errorReply == nil ? r[2].int : nil, encoding: r[3].errorReply == nil ? r[3].string : nil)
        v.readAt = wallClockNow()
        if r[2].errorReply != nil { v.note = "MEMORY USAGE not permitted: size unknown" }
        func page(_ i: Int) throws -> RESPValue {
            if let e = r[i].errorReply { throw RedisError.server(e) }
            return r[i]
        }
        switch type {
        case "none":
            v.note = "the key is gone"
        case "string":
            v.length = r[4].int
            v.string = try page(5).bytes ?? []
            v.stringTruncated = (v.length ?? 0) > Int64(maxString)
        case "hash", "set", "zset":
            let (lenAt, scanAt, scanCmd) = type == "hash" ? (6, 7, "HSCAN") : (type == "set" ? (8, 9, "SSCAN") : (10, 11, "ZSCAN"))
            v.length = r[lenAt].int
            guard let parts = try page(scanAt).array, parts.count == 2, let cur = parts[0].bytes, let els = parts[1].array else {
                throw RedisError.protocolViolation("unexpected \(scanCmd) reply")
            }
            if type == "set" { v.items = els.compactMap { $0.bytes.map { ($0, nil) } } }
            else { v.items = stride(from: 0, to: els.count - 1, by: 2).map { (els[$0].bytes ?? [], els[$0 + 1].bytes) } }
            v.next = cur == b("0") ? nil : cur
        case "list":
            v.length = r[12].int
            let els = try page(13).array ?? []
            v.items = els.enumerated().map { (b(String(listStart + Int64($0.offset))), $0.element.bytes) }
            let nextStart = listStart + Int64(els.count)
            v.next = nextStart < (v.length ?? 0) ? b(String(nextStart)) : nil
        case "stream":
            v.length = r[14].int
            for e in try page(15).array ?? [] {
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

/// When the application wrote a cached value: its `updatedAt` (or configured) field, an ISO
/// 8601 time or a number of seconds or milliseconds since 1970.
public enum CacheAge {
    public static func updatedAt(_ value: Bytes?, field: String) -> Double? {
        guard let v = value, let j = JSONParser.parse(v), let f = j.field(field) else { return nil }
        if case .int(let i) = f { let n = Double(i); return n > 1e12 ? n / 1000 : n }
        if case .double(let n) = f { return n > 1e12 ? n / 1000 : n }
        guard let text = f.scalarText else { return nil }
        if let n = Double(text) { return n > 1e12 ? n / 1000 : n }
        return parseISO8601(text)
    }

    /// `2026-12-07T09:00:00Z`, with fractional seconds or an offset (`+01:00`).
    public static func parseISO8601(_ t: String) -> Double? {
        let c = Array(t.utf8)
        func num(_ i: Int, _ n: Int) -> Int? {
            guard i + n <= c.count else { return nil }
            var v = 0
            for k in i..<(i + n) { guard c[k] >= 48 && c[k] <= 57 else { return nil }; v = v * 10 + Int(c[k] - 48) }
            return v
        }
        guard c.count >= 19, let y = num(0, 4), c[4] == 45, let mo = num(5, 2), c[7] == 45, let d = num(8, 2),
              c[10] == 84 || c[10] == 116 || c[10] == 32, let h = num(11, 2), c[13] == 58, let mi = num(14, 2), c[16] == 58, let se = num(17, 2),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, se < 61 else { return nil }
        var i = 19
        var frac = 0.0
        if i < c.count, c[i] == 46 {
            i += 1
            var scale = 0.1
            while i < c.count, c[i] >= 48 && c[i] <= 57 { frac += Double(c[i] - 48) * scale; scale /= 10; i += 1 }
        }
        var offset = 0
        if i < c.count {
            if c[i] == 90 || c[i] == 122 { i += 1 }
            else if c[i] == 43 || c[i] == 45, let oh = num(i + 1, 2) {
                let om = (i + 3 < c.count && c[i + 3] == 58) ? num(i + 4, 2) : num(i + 3, 2)
                offset = (oh * 3600 + (om ?? 0) * 60) * (c[i] == 45 ? -1 : 1)
                i = c.count
            } else { return nil }
        }
        // Days from 1970-01-01 (civil calendar).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Double(days * 86400 + h * 3600 + mi * 60 + se - offset) + frac
    }
}
