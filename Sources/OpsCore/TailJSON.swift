import RedisProtocol
import RedisClient

/// The NDJSON line of one message, as `redis-ops tail --json` prints it.
public enum TailJSON {
    public static func object(_ m: ReceivedMessage, truncatedFrom: Int? = nil) -> JSON {
        var f: [(String, JSON)] = [("channel", .bytes(m.channel)), ("pattern", m.pattern.map { .bytes($0) } ?? .null),
                                   ("payload", .bytes(m.payload)), ("ts", .string(isoTimestamp(m.receivedAt)))]
        if !m.channel.isValidUTF8 { f.append(("channel_base64", .string(m.channel.base64))) }
        if let p = m.pattern, !p.isValidUTF8 { f.append(("pattern_base64", .string(p.base64))) }
        if !m.payload.isValidUTF8 { f.append(("payload_base64", .string(m.payload.base64))) }
        if let t = truncatedFrom { f.append(("payload_truncated_from", .int(Int64(t)))) }
        return .object(f)
    }

    /// `{"gap":{"from":"ISO","to":"ISO","reason":"…"}}`, where messages may have been lost.
    public static func gap(_ g: TailGap, into out: inout Bytes) {
        JSON.object([("gap", .object([("from", .string(isoTimestamp(g.from))), ("to", .string(isoTimestamp(g.to))),
                                      ("reason", .string(g.reason))]))]).write(to: &out)
        out.append(10)
    }

    public static func line(_ m: ReceivedMessage, truncatedFrom: Int? = nil, into out: inout Bytes) {
        object(m, truncatedFrom: truncatedFrom).write(to: &out)
        out.append(10)
    }
}
