import DequeModule
import RedisProtocol
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// What a listing reads for each page of keys, pipelined behind the next SCAN.
public protocol PageReader: AnyObject {
    associatedtype Row: Sendable
    associatedtype Token
    /// The commands for these keys (any number), and what `rows` needs to read their replies.
    func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Token)
    /// One row per key still worth showing, from the replies of `request`.
    func rows(_ keys: [Bytes], _ token: Token, _ replies: ArraySlice<RESPValue>) -> [Row]
}

/// A reader that reads nothing: the rows are the key names (dry runs of a write).
public final class NameReader: PageReader {
    public init() {}
    public func request(_ keys: [Bytes]) -> (commands: [[Bytes]], token: Void) { ([], ()) }
    public func rows(_ keys: [Bytes], _ token: Void, _ replies: ArraySlice<RESPValue>) -> [Bytes] { keys }
}

/// Counts a listing keeps, for progress lines, for pacing its re-runs, and for the benchmark.
public struct ScanStats: Sendable, Equatable {
    /// Commands sent (SCANs and per-key reads).
    public var commands = 0
    /// SCAN commands sent, and the largest COUNT one asked for.
    public var scans = 0
    public var maxCount = 0
    /// Keys returned by SCAN before duplicates were dropped.
    public var returned = 0
    /// Shards (nodes) completely scanned.
    public var shardsDone = 0
    public var shards = 0
    /// Cursor partitions per shard (1: a single cursor).
    public var partitions = 1
    /// Shard scans started again on another node (failover) and slots read again (resharding).
    public var restarts = 0
    public var slotsReread = 0
    /// The longest time one of our requests took on a server, and how many went over the budget.
    public var maxServerTime = 0.0
    public var overBudget = 0
    public init() {}
}

/// Why a listing stopped before the end.
public struct ScanCancelled: Error {}

/// One pass over every key matching a glob, on every shard (one node per shard: the
/// primary, or a replica with replica reads), built for a server that is far away.
///
/// - **Round trips are the cost**: each shard's keyspace is scanned as up to 64 independent
///   cursor partitions at once (a SCAN cursor's low k bits select a fixed 1/2^k of the hash
///   buckets, whatever the table's size), with the per-key reads of each page pipelined
///   behind the SCANs, many requests in flight on one connection (`Lane`).
/// - **The server's time is the budget**: each SCAN's COUNT and each batch of reads is sized
///   by the node's `Pacer` (SCAN to a quarter of `--max-latency-ms` on the server, a batch to half), and
///   the requests keep the server busy at most part of the time, however far away we are.
/// - **Shards at once**: up to `maxShardsAtOnce` shards are scanned concurrently (one
///   thread, their connections polled together), the rows merged as they come.
/// - **A production cluster**: duplicates (rehashing, a shard scanned twice) are dropped by
///   fingerprint; a node that fails mid-scan is replaced by whoever serves its slots after a
///   topology refresh and its shard is scanned again; slots that moved while the scan ran are
///   read again with CLUSTER GETKEYSINSLOT. Used by the CLI and the console alike.
public final class KeyspaceScan<Reader: PageReader> {
    public let nodes: NodeSet
    public let match: Bytes
    public let reader: Reader
    public var cancelled: () -> Bool = { false }
    /// A line for the operator when the scan had to move on (failover, resharding).
    public var onNotice: (String) -> Void = { _ in }
    /// How long a shard may stay unreachable before the listing gives up.
    public var failoverDeadline: Double = 60
    /// The longest a single request may take on the server (seconds).
    public var latencyBudget: Double = 0.002
    public var maxShardsAtOnce = 16
    /// At most 2^maxPartitionBits cursor partitions per shard.
    public var maxPartitionBits = 6
    /// A fixed SCAN COUNT instead of the adaptive one (tests).
    public var fixedCount: Int?
    /// At most this many SCANs (a bounded search: Tab completion); `finished` says whether
    /// the whole keyspace was covered.
    public var maxScans: Int?
    public private(set) var finished = false
    /// Which shards to list (benchmarks list one alone); nil: all.
    public var onlyTargets: ((NodeSet.ScanTarget) -> Bool)?
    public private(set) var stats = ScanStats()
    /// Keys in the databases scanned (DBSIZE of each shard), once every shard said.
    public private(set) var dbsize: Int?
    private var seen = Set<Int>()
    private var seenGrown = false
    /// Keys on the shards being listed (their DBSIZEs, as each said).
    private var keysOnShards = 0

    public init(nodes: NodeSet, match: Bytes, reader: Reader, count: Int? = nil) {
        self.nodes = nodes
        self.match = match
        self.reader = reader
        self.fixedCount = count
    }

    private enum Step {
        case prepare
        case scan(Int)
        case read([Bytes], Reader.Token)
    }

    /// One cursor partition: buckets whose index has `low` in its low bits.
    private struct Partition {
        var cursor: UInt64
        let low: UInt64
        var done = false
    }

    /// One shard's listing: its connection, partitions and the reads waiting to be sent.
    private final class ShardRun {
        var target: NodeSet.ScanTarget
        var lane: Lane<Step>?
        var prepared = false
        var dbsize: Int?
        var mask: UInt64 = 0
        var partitions: [Partition] = []
        var idle = Deque<Int>()
        var reads = Deque<[Bytes]>()
        var done = false
        var failedSince: Double?
        var retryAt = 0.0
        var backoff = Backoff(base: 0.2, cap: 2)
        init(_ t: NodeSet.ScanTarget) { target = t }
        var finished: Bool { prepared && idle.isEmpty && reads.isEmpty && partitions.allSatisfy(\.done) && (lane?.isIdle ?? true) }
    }

    /// Runs to the end (or until `emit` returns false, or `cancelled`), calling `emit` with
    /// the rows of each page. Throws `ScanCancelled` when cancelled.
    public func run(_ emit: ([Reader.Row]) throws -> Bool) throws {
        let before = nodes.topology
        let movingBefore = nodes.isCluster ? slotsInMotion() : []
        let runs = nodes.scanTargets().filter { onlyTargets?($0) ?? true }.map(ShardRun.init)
        stats.shards = runs.count
        guard try scanShards(runs, emit) else { return }
        finished = runs.allSatisfy(\.done)
        guard nodes.isCluster, var prev = before else { return }
        // Slots that changed hands (or were in motion) while we scanned may have been missed.
        var moving = movingBefore
        for _ in 0..<3 {
            try? nodes.refresh()
            guard let now = nodes.topology else { return }
            moving += slotsInMotion()
            var slots = Set(prev.movedSlots(comparedTo: now))
            for m in moving { slots.insert(m.slot) }
            if slots.isEmpty { return }
            onNotice("\(slots.count) slot(s) moved during the listing: reading them again")
            for slot in slots.sorted() {
                var eps: [Endpoint] = []
                if let p = now.primary(forSlot: slot) { eps.append(p) }
                if let p = prev.primary(forSlot: slot), !eps.contains(p) { eps.append(p) }
                for m in moving where m.slot == slot { for e in m.nodes where !eps.contains(e) { eps.append(e) } }
                for ep in eps { if try !rereadSlot(slot, on: ep, emit) { return } }
                stats.slotsReread += 1
            }
            prev = now
            moving = []
        }
    }

    /// Commands per key of the reader (0: the rows are the key names).
    private lazy var commandsPerKey: Int = reader.request([Bytes(utf8: "k")]).commands.count

    /// The shards, concurrently: false when `emit` asked to stop.
    private func scanShards(_ runs: [ShardRun], _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        defer { for r in runs { settle(r) } }
        while true {
            if cancelled() { throw ScanCancelled() }
            let active = Array(runs.lazy.filter { !$0.done }.prefix(maxShardsAtOnce))
            if active.isEmpty { return true }
            // A bounded search stops once its SCANs are spent and their pages are read.
            if let m = maxScans, stats.scans >= m, active.allSatisfy({ ($0.lane?.isIdle ?? true) && $0.reads.isEmpty }) { return true }
            let now = monotonicNow()
            var wake = now + 0.25
            for r in active { wake = min(wake, try schedule(r, now)) }
            Lane.wait(active.compactMap(\.lane), until: wake)
            for r in active {
                guard let lane = r.lane else { continue }
                do {
                    for (step, replies) in try lane.completed() {
                        if try !handle(r, step, replies, emit) { return false }
                        for other in active { other.lane?.pump() }   // replies are timed when they arrive
                    }
                    if let t = lane.oldestSentAt, monotonicNow() - t > nodes.config.timeouts.io {
                        throw RedisError.timeout("no reply from \(r.target.endpoint) within \(Int(nodes.config.timeouts.io)) s")
                    }
                    if r.finished {
                        r.done = true
                        stats.shardsDone += 1
                        if dbsize == nil, runs.allSatisfy({ $0.dbsize != nil }) { dbsize = runs.reduce(0) { $0 + ($1.dbsize ?? 0) } }
                    }
                } catch let e as RedisError where e.isTransient {
                    try failed(r, e)
                }
            }
        }
    }

    /// Sends what the shard may send now; returns when it wants to be looked at again.
    private func schedule(_ r: ShardRun, _ now: Double) throws -> Double {
        if r.lane == nil {
            if now < r.retryAt { return r.retryAt }
            do { try connect(r) } catch let e as RedisError where e.isTransient { try failed(r, e); return r.retryAt }
        }
        guard let lane = r.lane, r.prepared else { return now + 0.25 }
        var wake = now + 0.25
        do {
            while lane.hasRoom {
                // Reads first: they deliver rows and free memory; SCANs only while few pages wait.
                if let keys = r.reads.first {
                    if commandsPerKey == 0 { break }
                    // Reads are tiny commands, served 16 KB at a time between other clients':
                    // a fixed, moderate flight keeps many in flight without a long burst.
                    let perFlight = 512
                    let take = min(perFlight, keys.count)
                    let chunk = Array(keys.prefix(take))
                    if take == keys.count { r.reads.removeFirst() } else { r.reads[r.reads.startIndex] = Array(keys.dropFirst(take)) }
                    let (cmds, token) = reader.request(chunk)
                    try lane.send(cmds, tag: .read(chunk, token), kind: .read, units: cmds.count)
                    stats.commands += cmds.count
                    continue
                }
                guard r.reads.count < 4, let p = r.idle.first else { break }
                if let m = maxScans, stats.scans >= m { break }
                let count = fixedCount ?? lane.pacer.units(.scan, limits: 10...50_000)
                let d = lane.pacer.delay(.scan, cost: lane.pacer.estimate(.scan, units: count), now: now)
                if d > 0 { wake = min(wake, now + d); break }
                r.idle.removeFirst()
                let cmd: [Bytes] = [Bytes(utf8: "SCAN"), Bytes(utf8: String(r.partitions[p].cursor)), Bytes(utf8: "MATCH"), match,
                                    Bytes(utf8: "COUNT"), Bytes(utf8: String(count))]
                try lane.send([cmd], tag: .scan(p), kind: .scan, units: count)
                stats.commands += 1
                stats.scans += 1
                stats.maxCount = max(stats.maxCount, count)
            }
        } catch let e as RedisError where e.isTransient {
            try failed(r, e)
            return r.retryAt
        }
        return wake
    }

    /// The shard's connection, and one round trip to size its partitions (DBSIZE, INFO server).
    private func connect(_ r: ShardRun) throws {
        let conn = try nodes.connection(for: r.target)
        let lane = Lane<Step>(conn, pacer: nodes.pacer(for: r.target.endpoint, budget: latencyBudget))
        r.lane = lane
        try lane.send([[Bytes(utf8: "DBSIZE")], [Bytes(utf8: "INFO"), Bytes(utf8: "server")]], tag: .prepare, kind: nil, units: 0)
        stats.commands += 2
        if r.failedSince != nil {
            onNotice("continuing the listing on \(r.target.endpoint)\(r.target.isReplica ? " (a replica)" : ""): its shard is read again from the start; keys already listed are not repeated")
        }
    }

    /// Whether the server's SCAN cursor is a plain hash-table cursor, which partitions can
    /// split. Redis 7.4+ and Valkey 8+ in cluster mode keep a table per slot and put the slot
    /// in the cursor's low bits: then one cursor.
    static func cursorPartitionable(info: String, cluster: Bool) -> Bool {
        guard cluster else { return true }
        let i = ServerInfo(text: info)
        func version(_ s: String?) -> (Int, Int)? {
            guard let p = s?.split(separator: "."), p.count >= 2, let a = Int(p[0]), let b = Int(p[1]) else { return nil }
            return (a, b)
        }
        if let v = version(i["valkey_version"]), v.0 >= 8 { return false }
        guard let r = version(i["redis_version"]) else { return false }
        return r < (7, 4)
    }

    private func handle(_ r: ShardRun, _ step: Step, _ replies: [RESPValue], _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        switch step {
        case .prepare:
            let n = Int(replies[0].int ?? 0)
            r.dbsize = n
            keysOnShards += n
            var bits = 0
            if Self.cursorPartitionable(info: replies[1].string ?? "", cluster: nodes.isCluster) {
                // Every partition must cover whole buckets: a table holds at least as many buckets as keys.
                while bits < maxPartitionBits && (n >> (bits + 13)) > 0 { bits += 1 }
            }
            r.mask = (UInt64(1) << UInt64(bits)) - 1
            r.partitions = (0..<(1 << bits)).map { Partition(cursor: UInt64($0), low: UInt64($0)) }
            r.idle = Deque(r.partitions.indices)
            r.prepared = true
            stats.partitions = max(stats.partitions, r.partitions.count)
            return true
        case .scan(let p):
            let reply = replies[0]
            if let e = reply.errorReply { throw RedisError.server(e) }
            if let l = r.lane {
                stats.maxServerTime = max(stats.maxServerTime, l.pacer.lastServerTime)
                if l.pacer.lastServerTime > latencyBudget { stats.overBudget += 1 }
            }
            guard let parts = reply.array, parts.count == 2, let c = parts[0].string, let cursor = UInt64(c), let ks = parts[1].array else {
                throw RedisError.protocolViolation("unexpected SCAN reply")
            }
            r.partitions[p].cursor = cursor
            if cursor == 0 || (cursor & r.mask) != r.partitions[p].low { r.partitions[p].done = true } else { r.idle.append(p) }
            let keys = fresh(ks.compactMap(\.bytes))
            guard !keys.isEmpty else { return true }
            if commandsPerKey == 0 {
                let (_, token) = reader.request(keys)
                let rows = reader.rows(keys, token, [])
                return rows.isEmpty ? true : try emit(rows)
            }
            r.reads.append(keys)
            return true
        case .read(let keys, let token):
            let rows = reader.rows(keys, token, replies[...])
            return rows.isEmpty ? true : try emit(rows)
        }
    }

    /// A shard's node failed: keys taken from SCAN but not handed on yet are not "seen" (the
    /// scan that resumes, perhaps on another node, must deliver them); it is tried again
    /// after a pause, from the start, on whoever serves its slots by then.
    private func failed(_ r: ShardRun, _ e: RedisError) throws {
        if cancelled() { throw ScanCancelled() }
        let now = monotonicNow()
        for step in r.lane?.abandon() ?? [] { if case .read(let keys, _) = step { for k in keys { seen.remove(keyFingerprint(k)) } } }
        for keys in r.reads { for k in keys { seen.remove(keyFingerprint(k)) } }
        r.reads.removeAll()
        r.lane?.conn.close()
        r.lane = nil
        r.prepared = false
        r.idle.removeAll()
        r.partitions = []
        if r.failedSince == nil {
            onNotice("\(r.target.endpoint) failed (\(e)); waiting for the node that takes over its slots")
            r.failedSince = now
        }
        if now - r.failedSince! > failoverDeadline { throw e }
        r.retryAt = now + r.backoff.nextDelay()
        stats.restarts += 1
        if nodes.isCluster {
            try? nodes.refresh()
            let shard = r.target.shard
            let targets = nodes.scanTargets()
            if let next = targets.first(where: { $0.shard == shard })
                ?? nodes.topology?.shardIndex(forSlot: shard).flatMap({ i in targets.first { $0.shard == nodes.topology!.shards[i].firstSlot } }) {
                r.target = next
            }
        }
    }

    /// After the listing: replies still owed are read (or the connection dropped), so the
    /// connection can serve the next request.
    private func settle(_ r: ShardRun) {
        guard let lane = r.lane, !lane.isIdle else { return }
        let end = monotonicNow() + min(2, nodes.config.timeouts.io)
        while !lane.isIdle && monotonicNow() < end {
            Lane.wait([lane], until: end)
            if (try? lane.completed()) == nil { break }
        }
        if !lane.isIdle { lane.conn.close(); _ = lane.abandon() }
    }

    /// Keeps the keys not seen before.
    private func fresh(_ keys: [Bytes]) -> [Bytes] {
        stats.returned += keys.count
        var out: [Bytes] = []
        out.reserveCapacity(keys.count)
        for k in keys where seen.insert(keyFingerprint(k)).inserted { out.append(k) }
        // A listing that finds many keys will likely find most of them: room for the rest at
        // once rather than a rehash at each doubling (a filter that finds few never gets here).
        if !seenGrown, seen.count >= 1 << 16 {
            seenGrown = true
            seen.reserveCapacity(min(max(keysOnShards, seen.count), 1 << 22))
        }
        return out
    }

    /// Reads the keys of one slot that match, on one node (after resharding).
    private func rereadSlot(_ slot: Int, on ep: Endpoint, _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        guard let conn = try? nodes.connection(to: ep) else { return true }
        let b = { (s: String) in Bytes(utf8: s) }
        guard let n = try? conn.call([b("CLUSTER"), b("COUNTKEYSINSLOT"), b(String(slot))]).int, n > 0 else { return true }
        let r = try conn.call([b("CLUSTER"), b("GETKEYSINSLOT"), b(String(slot)), b(String(n))])
        stats.commands += 2
        let keys = fresh((r.array ?? []).compactMap(\.bytes).filter { globMatch(match, $0) })
        var i = 0
        let chunkSize = 1000
        while i < keys.count {
            let chunk = Array(keys[i..<min(keys.count, i + chunkSize)])
            let (cmds, token) = reader.request(chunk)
            let replies: [RESPValue]
            do { replies = try conn.pipeline(cmds) } catch {
                for k in keys[i...] { seen.remove(keyFingerprint(k)) }   // not delivered: still to find
                throw error
            }
            stats.commands += cmds.count
            let rows = reader.rows(chunk, token, replies[...])
            if !rows.isEmpty, try !emit(rows) { return false }
            i += chunkSize
        }
        return true
    }

    /// Slots being migrated or imported, with the nodes on both sides (CLUSTER NODES of
    /// each primary, asked of all of them at once).
    private func slotsInMotion() -> [(slot: Int, nodes: [Endpoint])] {
        guard let t = nodes.topology else { return [] }
        var asked: [(Endpoint, RedisConnection)] = []
        for ep in t.primaries {
            guard let c = try? nodes.connection(to: ep), (try? c.send([[Bytes(utf8: "CLUSTER"), Bytes(utf8: "NODES")]])) != nil else { continue }
            asked.append((ep, c))
        }
        var out: [(Int, [Endpoint])] = []
        for (ep, c) in asked {
            guard let text = (try? c.receive(1))?.first?.string else { continue }
            let all = ClusterNodes.parse(text)
            for n in all where n.isMyself {
                for m in n.slotsInMotion {
                    var eps = [ep]
                    if let other = all.first(where: { $0.id == m.otherID })?.endpoint { eps.append(other) }
                    out.append((m.slot, eps))
                }
            }
        }
        return out
    }
}
