import RedisProtocol
import RedisClient

/// One node of a cluster, as CLUSTER NODES describes it and its own INFO measures it.
public struct ClusterNodeInfo: Sendable, Equatable {
    public var id: String
    /// `ip:port` as the cluster knows the node.
    public var address: String
    /// The host name it announces (cluster-announce-hostname), if any.
    public var hostname: String?
    public var isPrimary: Bool
    /// The node that answered CLUSTER NODES.
    public var isMyself = false
    /// For a replica: the id and address of the primary it follows.
    public var primaryID: String?
    public var primaryAddress: String?
    public var slotRanges: [ClosedRange<Int>]
    public var slots: Int { slotRanges.reduce(0) { $0 + $1.count } }
    /// CLUSTER NODES flags other than master/slave/myself (fail, fail?, handshake, noaddr, nofailover).
    public var flags: [String]
    /// The cluster bus link as the seed sees it (connected, disconnected).
    public var link: String
    /// Slots being moved: `[slot->-id]` migrating to, `[slot-<-id]` importing from, another node.
    public var slotsInMotion: [SlotMotion] = []
    /// Its INFO, or why it could not be read.
    public var info: ServerInfo?
    public var error: String?

    public var endpoint: Endpoint? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return Endpoint(host: host, port: port, hostname: hostname)
    }

    public var usedMemory: Int64? { info?.int("used_memory") }
    public var maxmemory: Int64? { info?.int("maxmemory") }
    public var keys: Int64? { info.map { $0.keyspace.reduce(0) { $0 + $1.keys } } }
    public var opsPerSec: Int64? { info?.int("instantaneous_ops_per_sec") }
    public var hitRatio: Double? { info?.hitRatio }
    public var clients: Int64? { info?.int("connected_clients") }
    /// The replication offset (master_repl_offset on a primary, slave_repl_offset on a replica).
    public var replOffset: Int64? { info.flatMap { $0.int("slave_repl_offset") ?? $0.int("master_repl_offset") } }
    public var replicaLinkUp: Bool? { isPrimary ? nil : info.map { $0["master_link_status"] == "up" } }
}

/// A slot a node is migrating to (or importing from) another node, by that node's id.
public struct SlotMotion: Sendable, Equatable {
    public var slot: Int
    public var otherID: String
}

public enum ClusterNodes {
    /// Parses CLUSTER NODES: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>…`.
    public static func parse(_ text: String) -> [ClusterNodeInfo] {
        var out: [ClusterNodeInfo] = []
        for line in text.replyLines where !line.isEmpty {
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 8 else { continue }
            var addr = f[1]
            var hostname: String? = nil
            if let comma = addr.firstIndex(of: ",") {
                let h = String(addr[addr.index(after: comma)...])
                hostname = h.isEmpty ? nil : h
                addr = String(addr[..<comma])
            }
            if let at = addr.firstIndex(of: "@") { addr = String(addr[..<at]) }
            let flags = f[2].split(separator: ",").map(String.init)
            var ranges: [ClosedRange<Int>] = []
            var motion: [SlotMotion] = []
            for s in f.dropFirst(8) {
                if s.hasPrefix("[") {   // [slot->-id] marks a migration, not ownership
                    let inner = s.dropFirst().dropLast()
                    for arrow in ["->-", "-<-"] {
                        if let r = inner.range(of: arrow), let slot = Int(inner[..<r.lowerBound]) {
                            motion.append(SlotMotion(slot: slot, otherID: String(inner[r.upperBound...])))
                        }
                    }
                    continue
                }
                let p = s.split(separator: "-")
                if p.count == 2, let a = Int(p[0]), let b = Int(p[1]), a <= b { ranges.append(a...b) }
                else if p.count == 1, let a = Int(p[0]) { ranges.append(a...a) }
            }
            out.append(ClusterNodeInfo(id: f[0], address: addr, hostname: hostname, isPrimary: flags.contains("master"), isMyself: flags.contains("myself"),
                                       primaryID: f[3] == "-" ? nil : f[3], primaryAddress: nil, slotRanges: ranges,
                                       flags: flags.filter { !["master", "slave", "myself"].contains($0) }, link: f[7],
                                       slotsInMotion: motion))
        }
        for i in out.indices { if let p = out[i].primaryID { out[i].primaryAddress = out.first { $0.id == p }?.address } }
        // Primaries by first slot, each followed by its replicas.
        let primaries = out.filter(\.isPrimary).sorted { ($0.slotRanges.first?.lowerBound ?? 99_999, $0.address) < ($1.slotRanges.first?.lowerBound ?? 99_999, $1.address) }
        var ordered: [ClusterNodeInfo] = []
        for p in primaries {
            ordered.append(p)
            ordered += out.filter { $0.primaryID == p.id }.sorted { $0.address < $1.address }
        }
        ordered += out.filter { n in !ordered.contains { $0.id == n.id } }
        return ordered
    }

    /// Every node of the cluster with its INFO (one round trip per node). Nil when not a cluster.
    public static func read(_ nodes: NodeSet) throws -> [ClusterNodeInfo]? {
        guard nodes.isCluster else { return nil }
        let r = try nodes.seed().call([Bytes(utf8: "CLUSTER"), Bytes(utf8: "NODES")])
        if let e = r.errorReply { throw RedisError.server(e) }
        var list = parse(r.string ?? "")
        for i in list.indices {
            if list[i].flags.contains("fail") || list[i].flags.contains("noaddr") { list[i].error = "marked failed by the cluster"; continue }
            guard let ep = list[i].endpoint else { list[i].error = "no address"; continue }
            do {
                let v = try nodes.connection(to: ep).call([Bytes(utf8: "INFO")])
                if let e = v.errorReply { list[i].error = e.description } else { list[i].info = ServerInfo(text: v.string ?? "") }
            } catch {
                list[i].error = "\(error)"
            }
        }
        return list
    }

    /// Bytes a replica is behind its primary (offsets from INFO), nil when unknown.
    public static func lag(of n: ClusterNodeInfo, in all: [ClusterNodeInfo]) -> Int64? {
        guard !n.isPrimary, let mine = n.replOffset, let p = all.first(where: { $0.id == n.primaryID }), let theirs = p.replOffset else { return nil }
        return max(0, theirs - mine)
    }

    public static func json(_ all: [ClusterNodeInfo]) -> JSON {
        .array(all.map { n in
            var f: [(String, JSON)] = [
                ("id", .string(n.id)), ("address", .string(n.address)), ("hostname", n.hostname.map { .string($0) } ?? .null),
                ("role", .string(n.isPrimary ? "primary" : "replica")),
                ("primary", n.primaryAddress.map { .string($0) } ?? .null),
                ("slots", .int(Int64(n.slots))),
                ("slot_ranges", .array(n.slotRanges.map { .string($0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)") })),
                ("flags", .array(n.flags.map { .string($0) })),
                ("link", .string(n.link)),
                ("used_memory", n.usedMemory.map { .int($0) } ?? .null),
                ("maxmemory", n.maxmemory.map { .int($0) } ?? .null),
                ("keys", n.keys.map { .int($0) } ?? .null),
                ("instantaneous_ops_per_sec", n.opsPerSec.map { .int($0) } ?? .null),
                ("hit_ratio", n.hitRatio.map { .double($0) } ?? .null),
                ("connected_clients", n.clients.map { .int($0) } ?? .null),
                ("repl_offset", n.replOffset.map { .int($0) } ?? .null),
                ("lag_bytes", lag(of: n, in: all).map { .int($0) } ?? .null),
            ]
            if !n.isPrimary { f.append(("link_status", n.replicaLinkUp.map { .string($0 ? "up" : "down") } ?? .null)) }
            if let e = n.error { f.append(("error", .string(e))) }
            return .object(f)
        })
    }
}
