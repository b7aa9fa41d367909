import Foundation
import Synchronization
import RedisProtocol
import RedisClient

/// One row of the tail: a message, or a marker the operator must see.
public struct TailEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case message(ReceivedMessage)
        /// Reconnected: messages published between these times were lost.
        case gap(from: Double, to: Double)
        /// Subscription changes and errors, shown in line with the messages.
        case note(String)
    }
    public var seq: Int
    public var kind: Kind
    /// The payload's full size when it was stored truncated.
    public var originalSize: Int?
    public var time: Double {
        switch kind {
        case .message(let m): return m.receivedAt
        case .gap(_, let to): return to
        case .note: return 0
        }
    }
    public var message: ReceivedMessage? { if case .message(let m) = kind { return m }; return nil }
}

/// A message filter: `field=value` matches a JSON field (dotted paths allowed);
/// anything else is a case-insensitive substring of the channel or the payload.
public struct TailFilter: Sendable, Equatable {
    public let text: String
    public let field: String?
    public let value: String?
    private let needle: Bytes

    public init(_ text: String) {
        self.text = text
        if let eq = text.firstIndex(of: "="), !text.contains(" "), eq != text.startIndex {
            field = String(text[..<eq])
            value = String(text[text.index(after: eq)...])
        } else {
            field = nil; value = nil
        }
        needle = Array(text.lowercased().utf8)
    }

    public var isEmpty: Bool { text.isEmpty }

    public func matches(_ e: TailEntry) -> Bool {
        if text.isEmpty { return true }
        guard let m = e.message else { return false }
        if let field, let value {
            if let j = JSONParser.parse(m.payload), let v = j.field(field), let s = v.scalarText { return s == value }
            return false
        }
        return Self.contains(m.channel, needle) || Self.contains(m.payload, needle)
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
    var buckets: [Int] = Array(repeating: 0, count: 6)
    var bucketSecond: Int = 0

    mutating func add(_ n: Int, at t: Double) {
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

    /// Messages per second over the last 5 complete seconds.
    public func rate(at t: Double) -> Double {
        let s = Int(t)
        var sum = 0
        for k in 1...5 where s - k > bucketSecond - buckets.count && s - k <= bucketSecond {
            sum += buckets[(s - k) % buckets.count]
        }
        return Double(sum) / 5
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
    public private(set) var channels: [Bytes: ChannelStats] = [:]
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
            channels[ch, default: ChannelStats()].add(j - i, at: t)
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

    public mutating func append(gapFrom from: Double, to: Double) {
        gaps += 1
        push(TailEntry(seq: nextSeq, kind: .gap(from: from, to: to)), size: 0)
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
            if case .message(let m) = e.kind { bytes -= m.payload.count + m.channel.count; evicted += 1 }
            else if case .note(let s) = e.kind { bytes -= s.utf8.count }
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

/// Thread-safe home of the tail: the subscriber worker appends from its thread, the
/// console reads from its own. It wakes the console through `wake` after each batch.
public final class TailStore: SubscriberSink, Sendable {
    public let tail: Mutex<ChannelTail>
    private let notices = Mutex<[SubscriberNotice]>([])
    private let wake: @Sendable () -> Void

    public init(capacity: Int = 10_000, wake: @escaping @Sendable () -> Void = {}) {
        tail = Mutex(ChannelTail(capacity: capacity))
        self.wake = wake
    }

    public func deliver(_ messages: [ReceivedMessage]) {
        tail.withLock { $0.append(messages: messages) }
        wake()
    }

    public func notice(_ n: SubscriberNotice) {
        tail.withLock { t in
            switch n {
            case .gap(let from, let to): t.append(gapFrom: from, to: to)
            default: break
            }
        }
        notices.withLock { $0.append(n) }
        wake()
    }

    /// Notices since the last call (for the status line and flash messages).
    public func takeNotices() -> [SubscriberNotice] {
        notices.withLock { n in let out = n; n.removeAll(); return out }
    }
}
