#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import RedisProtocol
import CHiredis

/// One thing a subscriber connection can report.
public enum PubSubEvent: Sendable, Equatable {
    /// A message; `pattern` is set for pattern subscriptions (pmessage).
    case message(channel: Bytes, pattern: Bytes?, payload: Bytes)
    case subscribed(name: Bytes, isPattern: Bool, count: Int)
    case unsubscribed(name: Bytes, isPattern: Bool, count: Int)
    case pong
    /// Sharded pub/sub (SSUBSCRIBE): confirmed, or ended. The server ends one on its own
    /// when the channel's slot moves to another node.
    case shardSubscribed(name: Bytes, count: Int)
    case shardUnsubscribed(name: Bytes, count: Int)
    /// The server refused a (P)SUBSCRIBE; the subscription is dropped.
    case refused(name: Bytes?, isPattern: Bool, error: ServerError)
}

/// A dedicated connection in subscribed mode: SUBSCRIBE / PSUBSCRIBE / UNSUBSCRIBE /
/// PUNSUBSCRIBE, `message` and `pmessage` decoding, PING as a health check.
///
/// `@unchecked Sendable`: mutable state without a lock; safe because only the worker thread
/// that made it ever touches it.
public final class Subscriber: @unchecked Sendable {
    public let connection: RedisConnection
    /// Commands sent whose confirmation has not arrived, to attribute error replies.
    private var inFlight: [(name: Bytes?, isPattern: Bool)] = []

    public init(_ config: ConnectionConfig) throws {
        var c = config
        c.clientName = config.clientName.map { $0 + "-sub" }
        connection = try RedisConnection(c)
    }

    public var fd: Int32 { connection.transport.fd }

    private static let SUBSCRIBE = Bytes(utf8: "SUBSCRIBE"), PSUBSCRIBE = Bytes(utf8: "PSUBSCRIBE")
    private static let UNSUBSCRIBE = Bytes(utf8: "UNSUBSCRIBE"), PUNSUBSCRIBE = Bytes(utf8: "PUNSUBSCRIBE")

    public func subscribe(_ channels: [Bytes]) throws {
        guard !channels.isEmpty else { return }
        for c in channels { inFlight.append((c, false)) }
        try send([Self.SUBSCRIBE] + channels)
    }
    public func psubscribe(_ patterns: [Bytes]) throws {
        guard !patterns.isEmpty else { return }
        for p in patterns { inFlight.append((p, true)) }
        try send([Self.PSUBSCRIBE] + patterns)
    }
    public func unsubscribe(_ channels: [Bytes]) throws {
        guard !channels.isEmpty else { return }
        try send([Self.UNSUBSCRIBE] + channels)
    }
    public func punsubscribe(_ patterns: [Bytes]) throws {
        guard !patterns.isEmpty else { return }
        try send([Self.PUNSUBSCRIBE] + patterns)
    }
    public func ping() throws { try send([Bytes(utf8: "PING")]) }

    /// Sharded channels (Redis 7): one command per channel, as a cluster refuses channels of
    /// different slots in one SSUBSCRIBE.
    public func ssubscribe(_ channel: Bytes) throws {
        inFlight.append((channel, false))
        try send([Bytes(utf8: "SSUBSCRIBE"), channel])
    }
    public func sunsubscribe(_ channel: Bytes) throws {
        try send([Bytes(utf8: "SUNSUBSCRIBE"), channel])
    }

    private func send(_ argv: [Bytes]) throws {
        do { try connection.transport.writeAll(RESPEncoder.encode(argv), timeout: connection.config.timeouts.io) }
        catch let e as RedisError { throw connection.breakConnection(e) }
    }

    private static let MESSAGE = Bytes(utf8: "message"), PMESSAGE = Bytes(utf8: "pmessage")
    private static let SUBSCRIBED = Bytes(utf8: "subscribe"), PSUBSCRIBED = Bytes(utf8: "psubscribe")
    private static let UNSUBSCRIBED = Bytes(utf8: "unsubscribe"), PUNSUBSCRIBED = Bytes(utf8: "punsubscribe")
    private static let PONG = Bytes(utf8: "pong")
    private static let SSUBSCRIBED = Bytes(utf8: "ssubscribe"), SUNSUBSCRIBED = Bytes(utf8: "sunsubscribe"), SMESSAGE = Bytes(utf8: "smessage")

    /// The hot path of a tail: messages go straight from hiredis's objects into
    /// `ReceivedMessage`s; everything else becomes a `PubSubEvent`.
    public func read(timeout: Double, messages: inout [ReceivedMessage], events: inout [PubSubEvent], now: () -> Double) throws {
        do {
            if !connection.transport.hasBufferedInput {
                if !connection.transport.waitFor(POLLIN, seconds: timeout) { return }
            }
            _ = try connection.fillAvailable()
            let t = now()
            let decoder = connection.decoder
            while let other = try decoder.nextRaw({ r -> RESPValue? in
                let rep = r.pointee
                if rep.type == REDIS_REPLY_ARRAY, rep.elements == 3 || rep.elements == 4,
                   let k = rep.element[0], k.pointee.type == REDIS_REPLY_STRING {
                    let kind = k.pointee
                    if rep.elements == 3, kind.len == 7, memcmp(kind.str, "message", 7) == 0,
                       let ch = rep.element[1], let p = rep.element[2] {
                        messages.append(ReceivedMessage(channel: interned(ch, &lastChannel), pattern: nil, payload: Self.bytes(p), receivedAt: t))
                        return nil
                    }
                    if rep.elements == 3, kind.len == 8, memcmp(kind.str, "smessage", 8) == 0,
                       let ch = rep.element[1], let p = rep.element[2] {
                        messages.append(ReceivedMessage(channel: interned(ch, &lastChannel), pattern: nil, payload: Self.bytes(p), receivedAt: t))
                        return nil
                    }
                    if rep.elements == 4, kind.len == 8, memcmp(kind.str, "pmessage", 8) == 0,
                       let pat = rep.element[1], let ch = rep.element[2], let p = rep.element[3] {
                        messages.append(ReceivedMessage(channel: interned(ch, &lastChannel), pattern: interned(pat, &lastPattern), payload: Self.bytes(p), receivedAt: t))
                        return nil
                    }
                }
                return decoder.value(of: r)
            }) {
                if let v = other, let ev = try interpret(v) { events.append(ev) }
            }
        } catch let e as ProtocolError {
            throw connection.breakConnection(.protocolViolation(e.message))
        } catch let e as RedisError {
            throw connection.breakConnection(e)
        }
    }

    /// Channel and pattern names repeat message after message: share one array.
    private var lastChannel = Bytes()
    private var lastPattern = Bytes()

    @inline(__always)
    private func interned(_ r: UnsafeMutablePointer<redisReply>, _ last: inout Bytes) -> Bytes {
        let n = r.pointee.len
        if n == last.count, n > 0, last.withUnsafeBytes({ memcmp($0.baseAddress!, r.pointee.str, n) == 0 }) { return last }
        last = Self.bytes(r)
        return last
    }

    @inline(__always)
    static func bytes(_ r: UnsafeMutablePointer<redisReply>) -> Bytes {
        let n = r.pointee.len
        guard n > 0, let p = r.pointee.str else { return [] }
        return Bytes(unsafeUninitializedCapacity: n) { buf, count in
            memcpy(buf.baseAddress!, p, n)
            count = n
        }
    }

    func interpret(_ v: RESPValue) throws -> PubSubEvent? {
        switch v {
        case .array(let items?):
            guard let kind = items.first?.bytes else { throw ProtocolError("pub/sub reply without a kind") }
            if kind == Self.MESSAGE, items.count == 3, let ch = items[1].bytes, let p = items[2].bytes {
                return .message(channel: ch, pattern: nil, payload: p)
            }
            if kind == Self.PMESSAGE, items.count == 4, let pat = items[1].bytes, let ch = items[2].bytes, let p = items[3].bytes {
                return .message(channel: ch, pattern: pat, payload: p)
            }
            if kind == Self.SUBSCRIBED || kind == Self.PSUBSCRIBED, items.count == 3 {
                if !inFlight.isEmpty { inFlight.removeFirst() }
                return .subscribed(name: items[1].bytes ?? [], isPattern: kind == Self.PSUBSCRIBED, count: Int(items[2].int ?? 0))
            }
            if kind == Self.UNSUBSCRIBED || kind == Self.PUNSUBSCRIBED, items.count == 3 {
                return .unsubscribed(name: items[1].bytes ?? [], isPattern: kind == Self.PUNSUBSCRIBED, count: Int(items[2].int ?? 0))
            }
            if kind == Self.PONG { return .pong }
            if kind == Self.SSUBSCRIBED, items.count == 3 {
                if !inFlight.isEmpty { inFlight.removeFirst() }
                return .shardSubscribed(name: items[1].bytes ?? [], count: Int(items[2].int ?? 0))
            }
            if kind == Self.SUNSUBSCRIBED, items.count == 3 {
                return .shardUnsubscribed(name: items[1].bytes ?? [], count: Int(items[2].int ?? 0))
            }
            if kind == Self.SMESSAGE, items.count == 3, let ch = items[1].bytes, let p = items[2].bytes {
                return .message(channel: ch, pattern: nil, payload: p)
            }
            throw ProtocolError("unexpected pub/sub reply '\(kind.lossyString.prefix(32))'")
        case .simpleString(let s) where s == Bytes(utf8: "PONG"):
            return .pong
        case .error(let b):
            // A refused (P)SUBSCRIBE answers each argument with one error; attribute it.
            let e = ServerError(b.lossyString)
            let what = inFlight.isEmpty ? (name: nil, isPattern: false) : inFlight.removeFirst()
            return .refused(name: what.name, isPattern: what.isPattern, error: e)
        default:
            throw ProtocolError("unexpected reply on a subscriber connection")
        }
    }

    public func close() { connection.close() }
}
