import Foundation
import Synchronization
import RedisProtocol
import RedisClient

/// The keyspace events counted per namespace (from `__keyevent@<db>__:<event>`).
public enum KeyEvent: Int, Sendable, CaseIterable {
    case set, expired, evicted, del, expire, other

    /// The JSON field / column name.
    public var name: String {
        switch self {
        case .set: return "set"
        case .expired: return "expired"
        case .evicted: return "evicted"
        case .del: return "del"
        case .expire: return "expire"
        case .other: return "other"
        }
    }

    /// The event of a keyevent channel: `__keyevent@0__:set` → `.set`. UNLINK notifies `del`.
    /// Every write of a string value counts as a set: SET, and the INCR of the application's
    /// rate-limit script (`incrby`), APPEND, SETRANGE.
    public static func of(channel: Bytes) -> KeyEvent {
        guard let colon = channel.lastIndex(of: UInt8(ascii: ":")) else { return .other }
        switch String(decoding: channel[(colon + 1)...], as: UTF8.self) {
        case "set", "incrby", "incrbyfloat", "append", "setrange": return .set
        case "expired": return .expired
        case "evicted": return .evicted
        case "del": return .del
        case "expire": return .expire
        default: return .other
        }
    }
}

/// `notify-keyspace-events`: what the Activity view needs, and how to say it is missing.
public enum KeyspaceNotifications {
    /// The smallest class set that feeds the view: keyevent channels (E), generic commands
    /// (g: del, expire), string commands ($: set), expired (x) and evicted (e) events.
    public static let needed = "Eg$xe"
    public static let parameter = "notify-keyspace-events"

    /// The classes of `needed` that `value` lacks ("" when every one is on). `A` stands for
    /// `g$lshzxetd`.
    public static func missing(_ value: String) -> String {
        let have = Set(value.replacingOccurrences(of: "A", with: "g$lshzxetd"))
        return String(needed.filter { !have.contains($0) })
    }

    /// The value to set: what is there plus what is missing (nothing taken away).
    public static func merged(_ current: String) -> String { current + missing(current) }

    /// What to tell an operator when notifications are off or short of the view's needs.
    public static func advice(current: String) -> String {
        let want = merged(current)
        return "keyspace notifications are \(current.isEmpty ? "off" : "'\(current)', short of '\(missing(current))'") "
            + "(\(parameter)); set \(parameter) to '\(want)' — on ElastiCache in the cluster's parameter group "
            + "(a custom group: notify-keyspace-events = \(want), then modify the cluster to use it); elsewhere "
            + "CONFIG SET \(parameter) \(want), or :notify on in the console"
    }

    /// The setting on one node: nil with the reason when CONFIG GET is not permitted.
    public static func read(_ c: RedisConnection) -> (value: String?, error: String?) {
        do {
            let r = try c.call([Bytes(utf8: "CONFIG"), Bytes(utf8: "GET"), Bytes(utf8: parameter)])
            if let e = r.errorReply { return (nil, e.message) }
            guard let a = r.array, a.count >= 2, let v = a[1].string else { return (nil, "CONFIG GET gave no value") }
            return (v, nil)
        } catch {
            return (nil, "\(error)")
        }
    }
}

/// Counts keyspace events per namespace as they arrive, on the subscriber threads: no event
/// is stored; the namespaces are bounded (beyond `maxNamespaces`, "(other)").
public final class ActivityTally: SubscriberSink {
    public static let maxNamespaces = 64
    public static let otherName = Bytes(utf8: "(other)")
    public static let outsideName = Bytes(utf8: "(outside the prefix)")

    struct State {
        var index: [Bytes: Int] = [:]
        var names: [Bytes] = []
        var counts: [[Int]] = []
        var total = 0
        var linksUp = 0
        var notices: [String] = []
    }
    private let state = Mutex(State())
    private let prefix: Bytes

    public init(prefix: Bytes) { self.prefix = prefix }

    /// The namespace of a key: its first segment after the prefix.
    public static func namespace(of key: Bytes, prefix: Bytes) -> Bytes {
        guard key.count >= prefix.count, key[..<prefix.count].elementsEqual(prefix) else { return outsideName }
        let rest = key[prefix.count...]
        if let c = rest.firstIndex(of: UInt8(ascii: ":")) { return Array(rest[..<c]) }
        return Array(rest)
    }

    public func deliver(_ messages: [ReceivedMessage]) {
        // Tally the batch first, then merge under the lock once.
        var local: [Bytes: [Int]] = [:]
        for m in messages {
            let ev = KeyEvent.of(channel: m.channel)
            local[Self.namespace(of: m.payload, prefix: prefix), default: Array(repeating: 0, count: KeyEvent.allCases.count)][ev.rawValue] += 1
        }
        state.withLock { s in
            for (ns, c) in local {
                let i: Int
                if let k = s.index[ns] { i = k }
                else if s.names.count < Self.maxNamespaces - 1 || ns == Self.otherName {
                    i = s.names.count; s.index[ns] = i; s.names.append(ns); s.counts.append(Array(repeating: 0, count: KeyEvent.allCases.count))
                } else if let k = s.index[Self.otherName] { i = k }
                else {
                    i = s.names.count; s.index[Self.otherName] = i; s.names.append(Self.otherName); s.counts.append(Array(repeating: 0, count: KeyEvent.allCases.count))
                }
                for e in 0..<c.count { s.counts[i][e] += c[e] }
            }
            s.total += messages.count
        }
    }

    public func notice(_ n: SubscriberNotice) {
        state.withLock { s in
            switch n {
            case .subscribed: s.linksUp += 1
            case .disconnected(let why, _): s.linksUp = max(0, s.linksUp - 1); s.notices.append("notifications: \(why)")
            case .gap(_, _, let why): s.notices.append("notifications resumed; events in between are not counted (\(why))")
            case .refused(_, _, let why): s.notices.append("PSUBSCRIBE refused: \(why)")
            case .fatal(let why): s.notices.append("notifications stopped: \(why)")
            default: break
            }
        }
    }

    /// The running totals (cumulative since start), and notices since the last look.
    public func snapshot(at t: Double) -> ActivitySnapshot {
        state.withLock { s in
            var totals: [Bytes: [Int]] = [:]
            for (i, n) in s.names.enumerated() { totals[n] = s.counts[i] }
            let notes = s.notices
            s.notices.removeAll()
            return ActivitySnapshot(at: t, totals: totals, events: s.total, linksUp: s.linksUp, notices: notes)
        }
    }
}

/// Cumulative counts per namespace at one moment.
public struct ActivitySnapshot: Sendable, Equatable {
    public var at: Double
    public var totals: [Bytes: [Int]]
    public var events: Int
    public var linksUp: Int
    public var notices: [String]
    public init(at: Double, totals: [Bytes: [Int]], events: Int, linksUp: Int = 0, notices: [String] = []) {
        self.at = at; self.totals = totals; self.events = events; self.linksUp = linksUp; self.notices = notices
    }

    /// Events per second of each namespace between `earlier` and this snapshot.
    public func rates(since earlier: ActivitySnapshot) -> [(namespace: Bytes, perSecond: [Double])] {
        let dt = max(0.001, at - earlier.at)
        return totals.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { ns in
            let now = totals[ns]!, before = earlier.totals[ns] ?? Array(repeating: 0, count: now.count)
            return (ns, zip(now, before).map { Double($0 - $1) / dt })
        }
    }

    /// The NDJSON line of `redis-ops activity --json` for one namespace.
    public static func json(ts: String, namespace: Bytes, perSecond r: [Double]) -> JSON {
        func v(_ e: KeyEvent) -> JSON { .double((r[e.rawValue] * 1000).rounded() / 1000) }
        return .object([("ts", .string(ts)), ("namespace", .bytes(namespace)), ("set", v(.set)), ("expired", v(.expired)),
                        ("evicted", v(.evicted)), ("del", v(.del)), ("expire", v(.expire))])
    }
}

/// The keyspace notifications of every primary (notifications are per node), counted into
/// one tally: a subscriber connection per node, each on its own thread. In a cluster the
/// primaries are read again every `followEvery` seconds: a new primary (after a failover or a
/// new shard) gets a subscriber, a node that became a replica loses its own (a replica
/// replays the primary's writes, and would count them twice).
public final class KeyspaceActivity: @unchecked Sendable {
    public let tally: ActivityTally
    private let lock = Mutex<[String: SubscriptionWorker]>([:])
    private let config: ConnectionConfig
    private let cluster: Bool
    private let pattern: Bytes
    private let stopping = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let followerDone = DispatchSemaphore(value: 0)
    public static let followEvery = 5.0

    /// `nodes` gives the primaries (a cluster's, or the one server); `db` the database.
    public init(nodes: NodeSet, schema: KeySchema) {
        tally = ActivityTally(prefix: schema.prefix)
        config = nodes.config
        cluster = nodes.isCluster
        pattern = Bytes(utf8: "__keyevent@\(nodes.config.db)__:*")
        lock.withLock { $0 = Dictionary(uniqueKeysWithValues: Self.primaries(nodes).map { ($0.0, self.worker($0.1)) }) }
    }

    public var nodeCount: Int { lock.withLock { $0.count } }

    static func primaries(_ nodes: NodeSet) -> [(String, ConnectionConfig)] {
        if nodes.isCluster, let t = nodes.topology { return t.primaries.map { ($0.description, nodes.config(for: $0)) } }
        return [(Endpoint(host: nodes.config.host, port: nodes.config.port).description, nodes.config)]
    }

    private func worker(_ cfg: ConnectionConfig) -> SubscriptionWorker {
        SubscriptionWorker(config: cfg, channels: [], patterns: [pattern], sink: tally)
    }

    public func start() {
        started.store(true, ordering: .relaxed)
        for w in lock.withLock({ Array($0.values) }) { w.start() }
        guard cluster else { followerDone.signal(); return }
        Thread.detachNewThread { [self] in
            var nodes: NodeSet?
            while !stopping.load(ordering: .relaxed) {
                var waited = 0.0
                while waited < Self.followEvery, !stopping.load(ordering: .relaxed) { usleep(100_000); waited += 0.1 }
                if stopping.load(ordering: .relaxed) { break }
                do {
                    if nodes == nil { nodes = try NodeSet(config: config) } else { try nodes?.refresh() }
                    guard let n = nodes else { continue }
                    follow(Self.primaries(n))
                } catch {
                    nodes = nil
                }
            }
            followerDone.signal()
        }
    }

    /// Subscribers on exactly these primaries.
    func follow(_ now: [(String, ConnectionConfig)]) {
        let wanted = Set(now.map(\.0))
        var started: [SubscriptionWorker] = []
        var stopped: [SubscriptionWorker] = []
        lock.withLock { ws in
            for (name, cfg) in now where ws[name] == nil {
                let w = worker(cfg)
                ws[name] = w
                started.append(w)
            }
            for name in ws.keys where !wanted.contains(name) { stopped.append(ws.removeValue(forKey: name)!) }
        }
        for w in started { w.start() }
        for w in stopped { w.stop() }
        if !started.isEmpty || !stopped.isEmpty {
            tally.notice(.gap(from: 0, to: 0, reason: "primaries changed: now \(now.map(\.0).sorted().joined(separator: ", "))"))
        }
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        guard started.load(ordering: .relaxed) else { return }
        followerDone.wait()
        for w in lock.withLock({ Array($0.values) }) { w.stop() }
    }

    /// The setting on every primary: the first node whose setting lacks something, or the
    /// common value; nil value with a reason when CONFIG is not permitted anywhere.
    public static func notificationSetting(_ nodes: NodeSet) -> (value: String?, error: String?) {
        var conns: [RedisConnection] = []
        if nodes.isCluster, let t = nodes.topology { conns = t.primaries.compactMap { try? nodes.connection(to: $0) } }
        else if let c = try? nodes.seed() { conns = [c] }
        var firstError: String?
        var common: String?
        for c in conns {
            let (v, e) = KeyspaceNotifications.read(c)
            if let v {
                if !KeyspaceNotifications.missing(v).isEmpty { return (v, nil) }
                common = common ?? v
            } else if firstError == nil { firstError = e }
        }
        if let common { return (common, nil) }
        return (nil, firstError ?? "no node answered")
    }
}

/// Per-second snapshots of the last five minutes, for rates over 10 s / 1 min / 5 min and a
/// trend line: memory bounded by namespaces × 300, whatever the event rate.
public struct ActivityHistory: Sendable, Equatable {
    public private(set) var snapshots: [ActivitySnapshot] = []
    public static let keep = 301
    public init() {}

    public mutating func add(_ s: ActivitySnapshot) {
        // Two readings less than half a second apart: the later replaces the earlier (but
        // never the first, the baseline every rate is measured from at the start).
        if snapshots.count > 1, let last = snapshots.last, s.at - last.at < 0.5 { snapshots[snapshots.count - 1] = s; return }
        snapshots.append(s)
        if snapshots.count > Self.keep { snapshots.removeFirst(snapshots.count - Self.keep) }
    }

    public var latest: ActivitySnapshot? { snapshots.last }

    /// The snapshot closest to `seconds` before the latest (the oldest one when history is shorter).
    func back(_ seconds: Double) -> ActivitySnapshot? {
        guard let last = snapshots.last else { return nil }
        var best = snapshots.first
        for s in snapshots.reversed() where last.at - s.at >= seconds - 0.5 { best = s; break }
        return best
    }

    /// Events per second of a namespace over the last `seconds` (or since the first snapshot).
    public func rate(_ ns: Bytes, _ e: KeyEvent, over seconds: Double) -> Double? {
        guard let last = snapshots.last, let b = back(seconds), last.at > b.at else { return nil }
        let now = last.totals[ns]?[e.rawValue] ?? 0, before = b.totals[ns]?[e.rawValue] ?? 0
        return Double(now - before) / (last.at - b.at)
    }

    /// Per-second counts over the last `n` seconds (oldest first), for a sparkline.
    public func trend(_ ns: Bytes, _ e: KeyEvent, seconds n: Int) -> [Double] {
        let tail = snapshots.suffix(n + 1)
        guard tail.count >= 2 else { return [] }
        var out: [Double] = []
        var prev: ActivitySnapshot?
        for s in tail {
            if let p = prev { out.append(Double((s.totals[ns]?[e.rawValue] ?? 0) - (p.totals[ns]?[e.rawValue] ?? 0)) / max(0.001, s.at - p.at)) }
            prev = s
        }
        return out
    }

    public var namespaces: [Bytes] { snapshots.last.map { Array($0.totals.keys) } ?? [] }
}
