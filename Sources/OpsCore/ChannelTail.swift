import Foundation
import Synchronization
import DequeModule
import RedisProtocol
import RedisClient

/// One row of the tail: a message, or a marker the operator must see.
public struct TailEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case message(ReceivedMessage)
        /// Reconnected: messages published between these times may have been lost.
        case gap(TailGap)
        /// Subscription changes and errors, shown in line with the messages.
        case note(String)
    }
    public var seq: Int
    public var kind: Kind
    /// The payload's full size when it was stored truncated.
    public var originalSize: Int?
    public var message: ReceivedMessage? { if case .message(let m) = kind { return m }; return nil }
}

/// A message filter: terms separated by spaces, all of which must hold —
/// `field=value` (a JSON field equals the value; dotted paths allowed), `field~text` (a JSON
/// field contains the text, any case), and anything else a case-insensitive substring of the
/// channel or the payload. A value with spaces is quoted: `type="plan changed"`.
public struct TailFilter: Sendable, Equatable {
    public enum Term: Sendable, Equatable {
        case equals(field: String, value: String)
        case contains(field: String, needle: Bytes)
        case text(Bytes)
    }
    public let text: String
    public let terms: [Term]
    private let needsJSON: Bool

    public init(_ text: String) {
        self.text = text
        var terms: [Term] = []
        for word in Self.words(text) {
            if let i = word.firstIndex(where: { $0 == "=" || $0 == "~" }), i != word.startIndex,
               word[..<i].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) {
                let field = String(word[..<i]), value = String(word[word.index(after: i)...])
                terms.append(word[i] == "=" ? .equals(field: field, value: value) : .contains(field: field, needle: Array(value.lowercased().utf8)))
            } else {
                terms.append(.text(Array(word.lowercased().utf8)))
            }
        }
        self.terms = terms
        needsJSON = terms.contains { if case .text = $0 { return false }; return true }
    }

    /// Words split at spaces; double quotes keep spaces inside a word (and are dropped).
    static func words(_ s: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var quoted = false, any = false
        for ch in s {
            if ch == "\"" { quoted.toggle(); any = true; continue }
            if ch == " " && !quoted {
                if any || !cur.isEmpty { out.append(cur) }
                cur = ""; any = false
                continue
            }
            cur.append(ch)
        }
        if any || !cur.isEmpty { out.append(cur) }
        return out.filter { !$0.isEmpty }
    }

    public var isEmpty: Bool { terms.isEmpty }

    public func matches(_ e: TailEntry) -> Bool {
        if terms.isEmpty { return true }
        guard let m = e.message else { return false }
        return matches(channel: m.channel, payload: m.payload)
    }

    public func matches(channel: Bytes, payload: Bytes) -> Bool {
        let json: JSON? = needsJSON ? JSONParser.parse(payload) : nil
        for t in terms {
            switch t {
            case .text(let needle):
                if !Self.contains(channel, needle) && !Self.contains(payload, needle) { return false }
            case .equals(let field, let value):
                guard let j = json, let v = j.field(field), let s = v.scalarText, s == value else { return false }
            case .contains(let field, let needle):
                guard let j = json, let v = j.field(field), let s = v.scalarText,
                      Self.contains(Bytes(utf8: s), needle) else { return false }
            }
        }
        return true
    }

    /// Case-insensitive (ASCII) substring search over bytes.
    public static func contains(_ hay: Bytes, _ needle: Bytes) -> Bool {
        let n = needle.count
        if n == 0 { return true }
        if hay.count < n { return false }
        @inline(__always) func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
        let first = needle[0]
        var i = 0
        let last = hay.count - n
        while i <= last {
            if lower(hay[i]) == first {
                var j = 1
                while j < n && lower(hay[i + j]) == needle[j] { j += 1 }
                if j == n { return true }
            }
            i += 1
        }
        return false
    }
}

/// Per-channel counters with a one-second-bucket rate over the last few seconds.
public struct ChannelStats: Sendable, Equatable {
    public var total: Int = 0
    public var lastSeen: Double = 0
    public var firstSeen: Double = 0
    var buckets: [Int] = Array(repeating: 0, count: 6)
    var bucketSecond: Int = 0

    /// Seconds of whole buckets the rate is taken over (plus the current, partial one).
    static let window = 4

    mutating func add(_ n: Int, at t: Double) {
        if total == 0 { firstSeen = t }
        roll(to: t)
        buckets[bucketSecond % buckets.count] += n
        total += n
        lastSeen = t
    }

    mutating func roll(to t: Double) {
        let s = Int(t)
        if s <= bucketSecond { return }
        let steps = min(s - bucketSecond, buckets.count)
        for k in 1...steps { buckets[(bucketSecond + k) % buckets.count] = 0 }
        bucketSecond = s
    }

    /// Messages per second at `t` — the moment the figure is shown: what arrived in the last
    /// four whole seconds and the current partial one, over the time that covers (less when
    /// the channel was first heard more recently).
    public func rate(at t: Double) -> Double {
        guard total > 0 else { return 0 }
        let s = Int(t)
        var n = 0
        for sec in max(0, s - Self.window)...max(0, s) where sec <= bucketSecond && sec > bucketSecond - buckets.count {
            n += buckets[sec % buckets.count]
        }
        let span = min(Double(Self.window) + (t - Double(s)), t - firstSeen)
        return Double(n) / max(0.25, span)
    }
}

/// How many distinct things were seen, estimated in 16 KB whatever their number
/// (HyperLogLog, 2^14 registers: about 0.8 % standard error).
public struct DistinctCounter: Sendable, Equatable {
    private var registers = [UInt8](repeating: 0, count: 1 << 14)
    public init() {}

    public mutating func add(_ b: Bytes) {
        let h = UInt64(bitPattern: Int64(keyFingerprint(b)))
        let i = Int(h >> 50)
        let rest = (h << 14) | (1 << 13)
        let rank = UInt8(rest.leadingZeroBitCount + 1)
        if rank > registers[i] { registers[i] = rank }
    }

    public var estimate: Int {
        let m = Double(registers.count)
        var sum = 0.0
        var zeros = 0
        for r in registers { sum += 1 / Double(UInt64(1) << UInt64(r)); if r == 0 { zeros += 1 } }
        let raw = 0.7213 / (1 + 1.079 / m) * m * m / sum
        if raw <= 2.5 * m && zeros > 0 { return Int((m * log(m / Double(zeros))).rounded()) }   // linear counting
        return Int(raw.rounded())
    }
}

/// The bounded ring buffer of the live tail. It keeps the newest `capacity` entries
/// (and at most `maxBytes` of payload), counts what it evicts, and keeps totals.
public struct ChannelTail: Sendable {
    public let capacity: Int
    public let maxBytes: Int
    /// Payloads longer than this are stored truncated (the full size is remembered).
    public let maxStoredPayload: Int
    private var ring: [TailEntry?]
    private var head = 0          // index of the oldest entry
    public private(set) var count = 0
    public private(set) var nextSeq = 1
    public private(set) var bytes = 0
    /// Messages received in total, and evicted from the buffer to make room.
    public private(set) var received = 0
    public private(set) var evicted = 0
    public private(set) var gaps = 0
    /// Counters of the busiest channels: at most `maxChannels` once pruned (up to twice that
    /// between prunings), however many channels a pattern brings.
    public private(set) var channels: [Bytes: ChannelStats] = [:]
    public static let maxChannels = 2000
    /// Distinct channels heard since the start (an estimate beyond a few thousand).
    public private(set) var distinctChannels = DistinctCounter()
    public private(set) var overall = ChannelStats()

    public init(capacity: Int = 10_000, maxBytes: Int = 64 << 20, maxStoredPayload: Int = 256 << 10) {
        self.capacity = max(1, capacity)
        self.maxBytes = maxBytes
        self.maxStoredPayload = maxStoredPayload
        ring = Array(repeating: nil, count: self.capacity)
    }

    public var oldestSeq: Int { count == 0 ? nextSeq : ring[head]!.seq }

    public mutating func append(messages: [ReceivedMessage]) {
        guard let t = messages.last?.receivedAt else { return }
        received += messages.count
        overall.add(messages.count, at: t)
        var i = 0
        while i < messages.count {
            // Count per channel in runs (a flood is usually one channel).
            let ch = messages[i].channel
            var j = i + 1
            while j < messages.count && messages[j].channel == ch { j += 1 }
            count(ch, j - i, at: t)
            i = j
        }
        // Only the newest `capacity` can survive; skip storing the rest.
        let skip = max(0, messages.count - capacity)
        if skip > 0 { evicted += skip }
        for m in messages[skip...] {
            var m = m
            var original: Int? = nil
            if m.payload.count > maxStoredPayload {
                original = m.payload.count
                m.payload = Array(m.payload.prefix(maxStoredPayload))
            }
            push(TailEntry(seq: nextSeq, kind: .message(m), originalSize: original), size: m.payload.count + m.channel.count)
        }
    }

    public mutating func append(gap: TailGap) {
        gaps += 1
        push(TailEntry(seq: nextSeq, kind: .gap(gap)), size: gap.reason.utf8.count)
    }

    /// Messages that never made it into the buffer (the console fell behind a flood): they
    /// count in the totals and rates, and as evicted.
    public mutating func account(dropped: [Bytes: Int], at t: Double) {
        for (ch, n) in dropped where n > 0 {
            received += n
            evicted += n
            overall.add(n, at: t)
            count(ch, n, at: t)
        }
    }

    /// Counts messages of one channel; past twice `maxChannels`, the quietest are let go
    /// (busiest by recent rate, then total): amortized O(log n) per new channel.
    private mutating func count(_ ch: Bytes, _ n: Int, at t: Double) {
        if channels[ch] != nil {
            channels[ch]!.add(n, at: t)
            return
        }
        distinctChannels.add(ch)
        if channels.count >= 2 * Self.maxChannels {
            let keep = channels.sorted { a, b in
                let ra = a.value.rate(at: t), rb = b.value.rate(at: t)
                if ra != rb { return ra > rb }
                return a.value.total != b.value.total ? a.value.total > b.value.total : a.value.lastSeen > b.value.lastSeen
            }.prefix(Self.maxChannels)
            channels = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
        channels[ch, default: ChannelStats()].add(n, at: t)
    }

    /// Distinct channels heard: exact while every one is still counted, else estimated.
    public var channelsHeard: (count: Int, exact: Bool) {
        let est = distinctChannels.estimate
        return est <= channels.count + channels.count / 100 ? (channels.count, true) : (max(est, channels.count), false)
    }

    /// The `n` busiest channels counted (by rate now, then total), without sorting them all.
    public func busiest(_ n: Int, at t: Double) -> [(name: Bytes, stats: ChannelStats)] {
        guard n > 0 else { return [] }
        func before(_ a: (name: Bytes, stats: ChannelStats, rate: Double), _ b: (name: Bytes, stats: ChannelStats, rate: Double)) -> Bool {
            if a.rate != b.rate { return a.rate > b.rate }
            if a.stats.total != b.stats.total { return a.stats.total > b.stats.total }
            return a.name.lexicographicallyPrecedes(b.name)
        }
        var top: [(name: Bytes, stats: ChannelStats, rate: Double)] = []
        top.reserveCapacity(n + 1)
        for (name, st) in channels {
            let e = (name: name, stats: st, rate: st.rate(at: t))
            if top.count == n, !before(e, top[n - 1]) { continue }
            let i = top.firstIndex { before(e, $0) } ?? top.count
            top.insert(e, at: i)
            if top.count > n { top.removeLast() }
        }
        return top.map { ($0.name, $0.stats) }
    }

    public mutating func append(note: String) {
        push(TailEntry(seq: nextSeq, kind: .note(note)), size: note.utf8.count)
    }

    private mutating func push(_ e: TailEntry, size: Int) {
        nextSeq += 1
        if count == capacity || (bytes + size > maxBytes && count > 0) {
            while count > 0 && (count == capacity || bytes + size > maxBytes) { popOldest() }
        }
        ring[(head + count) % capacity] = e
        count += 1
        bytes += size
    }

    private mutating func popOldest() {
        if let e = ring[head] {
            switch e.kind {
            case .message(let m): bytes -= m.payload.count + m.channel.count; evicted += 1
            case .note(let s): bytes -= s.utf8.count
            case .gap(let g): bytes -= g.reason.utf8.count
            }
        }
        ring[head] = nil
        head = (head + 1) % capacity
        count -= 1
    }

    /// Entry by position (0 = oldest).
    public subscript(_ i: Int) -> TailEntry { ring[(head + i) % capacity]! }

    /// All entries, oldest first, with `seq <= upTo`, that match the filter.
    public func entries(upTo: Int = .max, filter: TailFilter? = nil) -> [TailEntry] {
        var out: [TailEntry] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let e = self[i]
            if e.seq > upTo { break }
            if let f = filter, !f.isEmpty, !f.matches(e) { continue }
            out.append(e)
        }
        return out
    }

}

/// A gap in the tail: the subscriber was not receiving between `from` (the last moment
/// it was known to be: its last message or PING reply) and `to` (subscribed again).
public struct TailGap: Sendable, Equatable {
    public var from: Double
    public var to: Double
    public var reason: String
    public init(from: Double, to: Double, reason: String) { self.from = from; self.to = to; self.reason = reason }
}

/// The server a connection reached (a failover can send the same endpoint to another node).
public struct ServerNode: Sendable, Equatable {
    public var runID: String
    /// The port the node itself listens on.
    public var port: Int
    public var role: String?
    public init(runID: String, port: Int, role: String?) { self.runID = runID; self.port = port; self.role = role }
}

/// What the subscriber reports besides messages, in the domain's words.
public enum TailNotice: Sendable, Equatable {
    case connected(endpoint: String, node: ServerNode?)
    case subscribed(name: Bytes, isPattern: Bool)
    case unsubscribed(name: Bytes, isPattern: Bool)
    case disconnected(reason: String, retryIn: Double)
    case gap(TailGap)
    case refused(name: Bytes?, isPattern: Bool, reason: String)
    case fatal(reason: String)
    /// From the sharded subscriber (its own connections): a node failed or refused us. The
    /// classic subscriber's link state is not touched.
    case shardTrouble(reason: String)

    public init(_ n: SubscriberNotice) {
        switch n {
        case .connected(let e, let n): self = .connected(endpoint: e, node: n.map { ServerNode(runID: $0.runID, port: $0.port, role: $0.role) })
        case .subscribed(let n, let p): self = .subscribed(name: n, isPattern: p)
        case .unsubscribed(let n, let p): self = .unsubscribed(name: n, isPattern: p)
        case .disconnected(let r, let d): self = .disconnected(reason: r, retryIn: d)
        case .gap(let f, let t, let r): self = .gap(TailGap(from: f, to: t, reason: r))
        case .refused(let n, let p, let r): self = .refused(name: n, isPattern: p, reason: r)
        case .fatal(let r): self = .fatal(reason: r)
        }
    }
}

/// Where the subscriber thread hands over what it reads: a bounded queue, in order, of
/// message batches and notices. The console's loop takes everything at once (O(1) under
/// the lock) and works on it without holding the lock the subscriber needs. When more than
/// `capacity` messages wait, the oldest are dropped, and counted per channel.
public final class TailInbox: SubscriberSink, Sendable {
    public enum Item: Sendable {
        case messages([ReceivedMessage])
        case notice(TailNotice)
    }
    public struct Taken: Sendable {
        public var items: [Item] = []
        /// Messages dropped before they were taken, per channel.
        public var dropped: [Bytes: Int] = [:]
    }
    private struct State {
        var items = Deque<Item>()
        var messages = 0
        var dropped: [Bytes: Int] = [:]
    }
    private let state = Mutex(State())
    public let capacity: Int
    private let wake: @Sendable () -> Void

    public init(capacity: Int = 10_000, wake: @escaping @Sendable () -> Void = {}) {
        self.capacity = max(1, capacity)
        self.wake = wake
    }

    public func deliver(_ messages: [ReceivedMessage]) {
        state.withLock { s in
            s.items.append(.messages(messages))
            s.messages += messages.count
            // Over capacity: the oldest messages go (they would be evicted from the ring anyway).
            while s.messages > capacity, let first = s.items.first {
                guard case .messages(var ms) = first else {
                    // A notice at the front stays; drop from the batch behind it instead.
                    if let i = s.items.firstIndex(where: { if case .messages = $0 { return true }; return false }),
                       case .messages(var ms2) = s.items[i] {
                        let n = min(ms2.count, s.messages - capacity)
                        for m in ms2.prefix(n) { s.dropped[m.channel, default: 0] += 1 }
                        ms2.removeFirst(n)
                        s.messages -= n
                        if ms2.isEmpty { s.items.remove(at: i) } else { s.items[i] = .messages(ms2) }
                        continue
                    }
                    break
                }
                let n = min(ms.count, s.messages - capacity)
                for m in ms.prefix(n) { s.dropped[m.channel, default: 0] += 1 }
                ms.removeFirst(n)
                s.messages -= n
                if ms.isEmpty { s.items.removeFirst() } else { s.items[s.items.startIndex] = .messages(ms) }
            }
        }
        wake()
    }

    public func notice(_ n: SubscriberNotice) { post(TailNotice(n)) }

    public func post(_ n: TailNotice) {
        state.withLock { $0.items.append(.notice(n)) }
        wake()
    }

    /// The sink for a ShardSubscriptionWorker: messages, gaps and subscriptions go in as they
    /// are; its connection troubles become `shardTrouble` (they say nothing about the classic
    /// subscriber the header shows).
    public var shardSink: any SubscriberSink { ShardSink(inbox: self) }

    /// Everything waiting, in order.
    public func take() -> Taken {
        state.withLock { s in
            let out = Taken(items: Array(s.items), dropped: s.dropped)
            s.items.removeAll()
            s.messages = 0
            s.dropped.removeAll()
            return out
        }
    }
}

private struct ShardSink: SubscriberSink {
    let inbox: TailInbox
    func deliver(_ messages: [ReceivedMessage]) { inbox.deliver(messages) }
    func notice(_ n: SubscriberNotice) {
        switch n {
        case .connected: break
        case .disconnected(let reason, let retry): inbox.post(.shardTrouble(reason: "sharded subscriber: \(reason) — retrying in \(String(format: "%.1f", retry)) s"))
        case .fatal(let reason): inbox.post(.shardTrouble(reason: "sharded subscriber stopped: \(reason)"))
        default: inbox.notice(n)
        }
    }
}

extension ChannelTail {
    /// Appends what the inbox handed over; returns the notices, in order, for the console.
    public mutating func absorb(_ taken: TailInbox.Taken, now: Double) -> [TailNotice] {
        var notices: [TailNotice] = []
        account(dropped: taken.dropped, at: now)
        for item in taken.items {
            switch item {
            case .messages(let ms): append(messages: ms)
            case .notice(let n):
                if case .gap(let g) = n { append(gap: g) }
                notices.append(n)
            }
        }
        return notices
    }
}
