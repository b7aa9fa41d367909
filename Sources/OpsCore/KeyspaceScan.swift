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

/// Counts a listing keeps, for progress lines and for pacing its re-runs.
public struct ScanStats: Sendable, Equatable {
    /// Commands sent (SCANs and per-key reads).
    public var commands = 0
    /// Keys returned by SCAN before duplicates were dropped.
    public var returned = 0
    /// Shards (nodes) completely scanned.
    public var shardsDone = 0
    public var shards = 0
    /// Shard scans started again on another node (failover) and slots read again (resharding).
    public var restarts = 0
    public var slotsReread = 0
    public init() {}
}

/// Why a listing stopped before the end.
public struct ScanCancelled: Error {}

/// One pass over every key matching a glob, on every shard (one node per shard: the
/// primary, or a replica with replica reads), with the page reads pipelined behind the
/// next SCAN: two steps in flight, so the server works while the previous page is used.
///
/// It holds on a production cluster: duplicates (rehashing, a shard scanned twice) are
/// dropped by fingerprint; a node that fails mid-scan is replaced by whoever serves its
/// slots after a topology refresh and its shard is scanned again; slots that moved while
/// the scan ran are read again with CLUSTER GETKEYSINSLOT. Used by the CLI and the console alike.
public final class KeyspaceScan<Reader: PageReader> {
    public let nodes: NodeSet
    public let match: Bytes
    public let reader: Reader
    public let count: Int
    public var cancelled: () -> Bool = { false }
    /// A line for the operator when the scan had to move on (failover, resharding).
    public var onNotice: (String) -> Void = { _ in }
    /// How long a shard may stay unreachable before the listing gives up.
    public var failoverDeadline: Double = 60
    public private(set) var stats = ScanStats()
    private var seen = Set<Int>()

    public init(nodes: NodeSet, match: Bytes, reader: Reader, count: Int = 1000) {
        self.nodes = nodes
        self.match = match
        self.reader = reader
        self.count = count
    }

    /// Runs to the end (or until `emit` returns false, or `cancelled`), calling `emit` with
    /// the rows of each page. Throws `ScanCancelled` when cancelled.
    public func run(_ emit: ([Reader.Row]) throws -> Bool) throws {
        let before = nodes.topology
        let movingBefore = nodes.isCluster ? slotsInMotion() : []
        let targets = nodes.scanTargets()
        stats.shards = targets.count
        for t in targets {
            if try !scanShard(t, emit) { return }
            stats.shardsDone += 1
        }
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

    /// Scans one shard, moving to its new node after a failure. False when `emit` asked to stop.
    private func scanShard(_ first: NodeSet.ScanTarget, _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        var target = first
        var failedSince: Double? = nil   // the deadline counts from the first failure
        var waiting = false
        var backoff = Backoff(base: 0.2, cap: 2)
        while true {
            do {
                let conn = try nodes.connection(for: target)
                if waiting {
                    onNotice("continuing the listing on \(target.endpoint)\(target.isReplica ? " (a replica)" : ""): its shard is read again from the start; keys already listed are not repeated")
                    waiting = false
                }
                return try scan(on: conn, emit)
            } catch let e as RedisError where Self.isNodeFailure(e) {
                if cancelled() { throw ScanCancelled() }
                let t0 = failedSince ?? monotonicNow()
                if !waiting { onNotice("\(target.endpoint) failed (\(e)); waiting for the node that takes over its slots"); waiting = true }
                failedSince = t0
                if monotonicNow() - t0 > failoverDeadline { throw e }
                usleep(UInt32(backoff.nextDelay() * 1_000_000))
                if nodes.isCluster {
                    try? nodes.refresh()
                    if let next = nodes.scanTargets().first(where: { $0.shard == target.shard })
                        ?? nodes.scanTargets().first(where: { t in nodes.topology?.shardIndex(forSlot: target.shard).map { nodes.topology!.shards[$0].firstSlot == t.shard } ?? false }) {
                        target = next
                    }
                }
                stats.restarts += 1
            }
        }
    }

    static func isNodeFailure(_ e: RedisError) -> Bool {
        switch e {
        case .connect, .closed, .timeout, .protocolViolation: return true
        case .server(let s): return s.kind == .loading || s.kind == .clusterDown || s.kind == .tryAgain
        default: return false
        }
    }

    /// Keeps the keys not seen before.
    private func fresh(_ keys: [Bytes]) -> [Bytes] {
        stats.returned += keys.count
        var out: [Bytes] = []
        out.reserveCapacity(keys.count)
        for k in keys where seen.insert(keyFingerprint(k)).inserted { out.append(k) }
        return out
    }

    /// The pipelined loop on one node. Each write is [SCAN k+2, reads of page k+1]; the
    /// client reads the SCAN reply first (to send the next write at once), then the reads of
    /// page k, which it uses while the server already works on the next two steps.
    private func scan(on conn: RedisConnection, _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        var scanner = KeyScanner(match: match, count: count)
        var scanOutstanding = true
        var pending: (keys: [Bytes], token: Reader.Token, replies: Int)? = nil
        var next: (keys: [Bytes], token: Reader.Token, replies: Int)? = nil
        do {
            return try scanLoop(conn, &scanner, &scanOutstanding, &pending, &next, emit)
        } catch {
            // Keys taken from SCAN but not handed on yet are not "seen": the scan that
            // resumes on another node (a failover) must deliver them.
            for k in (pending?.keys ?? []) + (next?.keys ?? []) { seen.remove(keyFingerprint(k)) }
            throw error
        }
    }

    private func scanLoop(_ conn: RedisConnection, _ scanner: inout KeyScanner, _ scanOutstanding: inout Bool,
                          _ pending: inout (keys: [Bytes], token: Reader.Token, replies: Int)?,
                          _ next: inout (keys: [Bytes], token: Reader.Token, replies: Int)?,
                          _ emit: ([Reader.Row]) throws -> Bool) throws -> Bool {
        try conn.send([scanner.nextCommand!])
        stats.commands += 1
        func drain() {
            if scanOutstanding { _ = try? conn.receive(1) }
            if let p = pending { _ = try? conn.receive(p.replies) }
        }
        while scanOutstanding || pending != nil {
            if cancelled() { drain(); throw ScanCancelled() }
            next = nil
            if scanOutstanding {
                let keys = fresh(try scanner.consume(try conn.receive(1)[0]))
                let (cmds, token) = reader.request(keys)
                var out: [[Bytes]] = []
                if let sc = scanner.nextCommand { out.append(sc) }
                scanOutstanding = !out.isEmpty
                out.append(contentsOf: cmds)
                if !out.isEmpty { try conn.send(out) }
                stats.commands += out.count
                next = (keys, token, cmds.count)
            }
            if let p = pending {
                let rows = reader.rows(p.keys, p.token, try conn.receive(p.replies)[...])
                pending = next
                next = nil
                if !rows.isEmpty, try !emit(rows) { drain(); return false }
            } else {
                pending = next
                next = nil
            }
        }
        return true
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
        while i < keys.count {
            let chunk = Array(keys[i..<min(keys.count, i + count)])
            let (cmds, token) = reader.request(chunk)
            let replies: [RESPValue]
            do { replies = try conn.pipeline(cmds) } catch {
                for k in keys[i...] { seen.remove(keyFingerprint(k)) }   // not delivered: still to find
                throw error
            }
            stats.commands += cmds.count
            let rows = reader.rows(chunk, token, replies[...])
            if !rows.isEmpty, try !emit(rows) { return false }
            i += count
        }
        return true
    }

    /// Slots being migrated or imported, with the nodes on both sides (CLUSTER NODES of each primary).
    private func slotsInMotion() -> [(slot: Int, nodes: [Endpoint])] {
        guard let t = nodes.topology else { return [] }
        var out: [(Int, [Endpoint])] = []
        for ep in t.primaries {
            guard let c = try? nodes.connection(to: ep),
                  let text = try? c.call([Bytes(utf8: "CLUSTER"), Bytes(utf8: "NODES")]).string else { continue }
            let view = ClusterNodesView(text)
            for m in view.slotsInMotion {
                var eps = [ep]
                if let other = view.endpoint(ofID: m.otherID) { eps.append(other) }
                out.append((m.slot, eps))
            }
        }
        return out
    }
}

/// CLUSTER NODES, read for what the slot map does not say: node ids, roles, the primary a
/// replica follows, and slots in motion (`[slot->-id]` migrating, `[slot-<-id]` importing).
public struct ClusterNodesView: Sendable {
    public struct Node: Sendable, Equatable {
        public var id: String
        public var endpoint: Endpoint
        public var flags: [String]
        public var primaryID: String?
        public var linkConnected: Bool
        public var ranges: [ClosedRange<Int>]
        public var isPrimary: Bool { flags.contains("master") }
        public var isMyself: Bool { flags.contains("myself") }
        public var failed: Bool { flags.contains("fail") || flags.contains("fail?") }
    }
    public var nodes: [Node] = []
    public var slotsInMotion: [(slot: Int, otherID: String)] = []

    public init(_ text: String) {
        for raw in text.replyLines {
            let f = raw.split(separator: " ")
            guard f.count >= 8 else { continue }
            // ip:port@cport[,hostname]
            let addr = f[1].split(separator: ",", maxSplits: 1)
            let hostname = addr.count > 1 && !addr[1].isEmpty ? String(addr[1]) : nil
            let hp = addr[0].split(separator: "@")[0]
            guard let colon = hp.lastIndex(of: ":"), let port = Int(hp[hp.index(after: colon)...]) else { continue }
            let host = String(hp[..<colon])
            var ranges: [ClosedRange<Int>] = []
            for s in f.dropFirst(8) {
                if s.hasPrefix("[") {
                    let inner = s.dropFirst().dropLast()
                    if let r = inner.range(of: "->-"), let slot = Int(inner[..<r.lowerBound]) {
                        slotsInMotion.append((slot, String(inner[r.upperBound...])))
                    } else if let r = inner.range(of: "-<-"), let slot = Int(inner[..<r.lowerBound]) {
                        slotsInMotion.append((slot, String(inner[r.upperBound...])))
                    }
                    continue
                }
                let parts = s.split(separator: "-")
                if parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) { ranges.append(a...b) }
                else if let a = Int(s) { ranges.append(a...a) }
            }
            nodes.append(Node(id: String(f[0]), endpoint: Endpoint(host: host.isEmpty ? "127.0.0.1" : host, port: port, hostname: hostname),
                              flags: f[2].split(separator: ",").map(String.init), primaryID: f[3] == "-" ? nil : String(f[3]),
                              linkConnected: f[7] == "connected", ranges: ranges))
        }
    }

    public func endpoint(ofID id: String) -> Endpoint? { nodes.first { $0.id == id }?.endpoint }
}
