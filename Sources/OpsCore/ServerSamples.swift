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
    /// The node it was logged on (a cluster's slow logs are merged).
    public var node: String?

    /// Every node's slow log, newest first (the slowest first within a second), `limit` in all.
    public static func merged(_ nodes: NodeSet, limit: Int = 10) -> (entries: [SlowlogEntry], errors: [String]) {
        guard nodes.isCluster, let t = nodes.topology else { return ([], []) }
        var all: [SlowlogEntry] = []
        var errors: [String] = []
        for ep in t.shards.flatMap({ [$0.primary] + $0.replicas }) {
            do {
                let r = try nodes.connection(to: ep).call([Bytes(utf8: "SLOWLOG"), Bytes(utf8: "GET"), Bytes(utf8: String(limit))])
                if let e = r.errorReply { errors.append("\(ep): \(e.message)"); continue }
                all += parse(r).map { var x = $0; x.node = ep.description; return x }
            } catch {
                errors.append("\(ep): \(error)")
            }
        }
        all.sort { $0.at != $1.at ? $0.at > $1.at : $0.micros > $1.micros }
        return (Array(all.prefix(limit)), errors)
    }

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

    /// How many seconds of history a figure over `seconds` really covers (less at the start).
    public func span(over seconds: Double) -> Double {
        guard let last = samples.last, let base = baseline(seconds) else { return 0 }
        return last.at - base.at
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

/// Who is connected (CLIENT LIST, summarised): the application's connections by name,
/// and every subscriber with its subscriptions and output-buffer use, so a slow
/// subscriber is visible before the server cuts it off.
public struct ClientSummary: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var name: String
        public var count: Int
        public var addresses: [String]
        public var omem: Int64
    }
    public struct Subscriber: Sendable, Equatable {
        public var id: String
        public var name: String
        public var addr: String
        public var channels: Int
        public var patterns: Int
        public var shardChannels: Int
        /// Output buffer memory (bytes) and list length: what the server holds back for it.
        public var omem: Int64
        public var oll: Int64
        public var age: Int64
    }
    /// One connection, as the client list shows it.
    public struct Client: Sendable, Equatable {
        public var id: Int64
        public var addr: String
        public var name: String
        public var age: Int64
        public var idle: Int64
        public var cmd: String
        public var omem: Int64
        public var subscriber: Bool
        public var ref: ClientRef { ClientRef(id: id, address: addr, name: name, ageSeconds: age, lastCommand: cmd) }
    }
    /// The clients listed: biggest output buffer first (a stuck subscriber is first), then
    /// the longest idle; at most `listedMax` of `total`.
    public static let listedMax = 200
    public var clients: [Client] = []

    public var total = 0
    public var groups: [Group] = []
    public var subscribers: [Subscriber] = []

    public init(clientList text: String) {
        var byName: [String: Int] = [:]
        for line in text.replyLines {
            var f: [Substring: Substring] = [:]
            for part in line.split(separator: " ") {
                guard let eq = part.firstIndex(of: "=") else { continue }
                f[part[..<eq]] = part[part.index(after: eq)...]
            }
            guard let id = f["id"] else { continue }
            total += 1
            let name = f["name"].map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "(no name)"
            let addr = f["addr"].map(String.init) ?? "?"
            let omem = Int64(f["omem"] ?? "0") ?? 0
            if let i = byName[name] {
                groups[i].count += 1
                groups[i].omem += omem
                if groups[i].addresses.count < 3 { groups[i].addresses.append(addr) }
            } else {
                byName[name] = groups.count
                groups.append(Group(name: name, count: 1, addresses: [addr], omem: omem))
            }
            let sub = Int(f["sub"] ?? "0") ?? 0, psub = Int(f["psub"] ?? "0") ?? 0, ssub = Int(f["ssub"] ?? "0") ?? 0
            clients.append(Client(id: Int64(id) ?? 0, addr: addr, name: f["name"].map(String.init) ?? "", age: Int64(f["age"] ?? "0") ?? 0,
                                  idle: Int64(f["idle"] ?? "0") ?? 0, cmd: f["cmd"].map(String.init) ?? "?", omem: omem,
                                  subscriber: sub + psub + ssub > 0))
            if sub + psub + ssub > 0 || (f["flags"]?.contains("P") ?? false) {
                subscribers.append(Subscriber(id: String(id), name: name, addr: addr, channels: sub, patterns: psub, shardChannels: ssub,
                                              omem: omem, oll: Int64(f["oll"] ?? "0") ?? 0, age: Int64(f["age"] ?? "0") ?? 0))
            }
        }
        groups.sort { $0.count != $1.count ? $0.count > $1.count : $0.name < $1.name }
        subscribers.sort { $0.omem != $1.omem ? $0.omem > $1.omem : $0.id < $1.id }
        clients.sort { ($0.omem, $0.idle, -$0.id) > ($1.omem, $1.idle, -$1.id) }
        if clients.count > Self.listedMax { clients.removeLast(clients.count - Self.listedMax) }
    }
}

/// One LATENCY LATEST entry.
public struct LatencyEvent: Sendable, Equatable {
    public var event: String
    public var at: Int64
    public var latestMs: Int64
    public var maxMs: Int64
    public static func parse(_ v: RESPValue) -> [LatencyEvent] {
        (v.array ?? []).compactMap { e in
            guard let a = e.array, a.count >= 4, let name = a[0].string, let at = a[1].int, let l = a[2].int, let m = a[3].int else { return nil }
            return LatencyEvent(event: name, at: at, latestMs: l, maxMs: m)
        }
    }
}

/// Everything the Server view shows, read in one round trip; what the user may not run
/// is an error in its own field, the rest still shown.
public struct ServerReading: Sendable, Equatable {
    public var sample: ServerSample
    public var slowlog: [SlowlogEntry]?
    public var slowlogError: String?
    public var clients: ClientSummary?
    public var clientsError: String?
    public var latency: [LatencyEvent]?
    public var latencyError: String?
    /// LATENCY HISTORY of the usual events (ms per sample, oldest first), those with samples.
    public var latencyHistory: [String: [Int64]] = [:]
    public static let historyEvents = ["command", "fast-command", "expire-cycle", "eviction-cycle", "eviction-del"]
    /// Cluster mode: every node (read less often: one INFO per node).
    public var cluster: [ClusterNodeInfo]?
    public var clusterError: String?
    /// When `cluster` was read.
    public var clusterAt: Double?

    /// INFO, SLOWLOG GET, LATENCY LATEST and (when `clients`) CLIENT LIST, pipelined.
    public static func read(_ conn: RedisConnection, clients: Bool) throws -> ServerReading {
        var extra: [[Bytes]] = [[Bytes(utf8: "SLOWLOG"), Bytes(utf8: "GET"), Bytes(utf8: "10")], [Bytes(utf8: "LATENCY"), Bytes(utf8: "LATEST")]]
        if clients { extra.append([Bytes(utf8: "CLIENT"), Bytes(utf8: "LIST")]) }
        let historyAt = extra.count
        for e in historyEvents { extra.append([Bytes(utf8: "LATENCY"), Bytes(utf8: "HISTORY"), Bytes(utf8: e)]) }
        let (ov, r) = try ServerOverview.fetch(conn, alongWith: extra)
        var out = ServerReading(sample: ServerSample(at: wallClockNow(), overview: ov))
        if let e = r[0].errorReply { out.slowlogError = e.message } else { out.slowlog = SlowlogEntry.parse(r[0]) }
        if let e = r[1].errorReply { out.latencyError = e.message } else { out.latency = LatencyEvent.parse(r[1]) }
        if clients {
            if let e = r[2].errorReply { out.clientsError = e.message } else { out.clients = ClientSummary(clientList: r[2].string ?? "") }
        }
        for (i, e) in historyEvents.enumerated() where historyAt + i < r.count {
            let samples = (r[historyAt + i].array ?? []).compactMap { $0.array.flatMap { $0.count >= 2 ? $0[1].int : nil } }
            if !samples.isEmpty { out.latencyHistory[e] = samples }
        }
        return out
    }

    public init(sample: ServerSample) { self.sample = sample }
}
