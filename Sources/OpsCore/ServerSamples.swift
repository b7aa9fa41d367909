import RedisProtocol
import RedisClient

/// One INFO reading, with the time it was taken.
public struct ServerSample: Sendable, Equatable {
    public var at: Double
    public var overview: ServerOverview
    public init(at: Double, overview: ServerOverview) { self.at = at; self.overview = overview }
}

/// One SLOWLOG GET entry.
public struct SlowlogEntry: Sendable, Equatable {
    public var id: Int64
    public var at: Int64
    public var micros: Int64
    public var args: [Bytes]
    public var client: Bytes?

    public static func parse(_ v: RESPValue) -> [SlowlogEntry] {
        (v.array ?? []).compactMap { e in
            guard let a = e.array, a.count >= 4, let id = a[0].int, let at = a[1].int, let us = a[2].int else { return nil }
            return SlowlogEntry(id: id, at: at, micros: us, args: (a[3].array ?? []).compactMap(\.bytes), client: a.count > 4 ? a[4].bytes : nil)
        }
    }
}

/// Rates and ratios from a series of INFO samples (deltas, not totals since boot).
public struct ServerSeries: Sendable, Equatable {
    public private(set) var samples: [ServerSample] = []
    public let keep: Int
    public init(keep: Int = 300) { self.keep = keep }

    public mutating func add(_ s: ServerSample) {
        samples.append(s)
        if samples.count > keep { samples.removeFirst(samples.count - keep) }
    }

    public var latest: ServerSample? { samples.last }

    /// The sample closest to `seconds` before the latest (or the oldest one).
    func baseline(_ seconds: Double) -> ServerSample? {
        guard let last = samples.last else { return nil }
        return samples.first { last.at - $0.at <= seconds + 0.5 } ?? samples.first
    }

    /// Hit ratio over the last `seconds` from keyspace hit/miss deltas; nil without lookups or history.
    public func hitRatio(over seconds: Double = 60) -> Double? {
        guard let last = samples.last, let base = baseline(seconds), base.at < last.at,
              let h1 = last.overview.info.int("keyspace_hits"), let m1 = last.overview.info.int("keyspace_misses"),
              let h0 = base.overview.info.int("keyspace_hits"), let m0 = base.overview.info.int("keyspace_misses") else { return nil }
        let dh = h1 - h0, dm = m1 - m0
        guard dh >= 0, dm >= 0, dh + dm > 0 else { return nil }
        return Double(dh) / Double(dh + dm)
    }

    /// Per-second rate of a counter field over the last `seconds`.
    public func rate(_ field: String, over seconds: Double = 10) -> Double? {
        guard let last = samples.last, let base = baseline(seconds), base.at < last.at,
              let v1 = last.overview.info.int(field), let v0 = base.overview.info.int(field), v1 >= v0 else { return nil }
        return Double(v1 - v0) / (last.at - base.at)
    }

    /// Values of a field over time (for sparklines).
    public func series(_ field: String) -> [Double] {
        samples.compactMap { $0.overview.info.double(field) }
    }

    /// Hit ratio between consecutive samples (for a sparkline).
    public func hitRatioSeries() -> [Double] {
        guard samples.count >= 2 else { return [] }
        var out: [Double] = []
        for i in 1..<samples.count {
            let a = samples[i - 1].overview.info, b = samples[i].overview.info
            guard let h0 = a.int("keyspace_hits"), let m0 = a.int("keyspace_misses"), let h1 = b.int("keyspace_hits"), let m1 = b.int("keyspace_misses") else { continue }
            let d = (h1 - h0) + (m1 - m0)
            if d > 0 { out.append(Double(h1 - h0) / Double(d)) }
        }
        return out
    }
}

/// ▁▂▃▄▅▆▇█ for the last `width` values.
public func sparkline(_ values: [Double], width: Int, min lo: Double? = nil, max hi: Double? = nil) -> String {
    let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    let v = Array(values.suffix(max(0, width)))
    guard let mn = lo ?? v.min(), let mx = hi ?? v.max() else { return "" }
    return String(v.map { x in
        if mx <= mn { return blocks[0] }
        let t = (x - mn) / (mx - mn)
        return blocks[Swift.max(0, Swift.min(7, Int((t * 7).rounded())))]
    })
}
