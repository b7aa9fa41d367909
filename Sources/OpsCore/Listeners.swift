import RedisProtocol
import RedisClient

/// Who listens: subscribers per channel (PUBSUB NUMSUB) and the active channels under the
/// subscribed patterns (PUBSUB CHANNELS), so "is the application's subscriber for
/// workspace 42 connected?" is one glance. In a cluster each node knows only its own
/// subscribers, so every node is asked and the counts are added up.
public struct ListenerReading: Sendable, Equatable {
    /// Channel subscribers per channel (NUMSUB does not count pattern subscribers).
    public var counts: [Bytes: Int] = [:]
    /// Active channels under the patterns, sorted, at most `Listeners.maxChannels`.
    public var discovered: [Bytes] = []
    /// How many active channels the patterns matched in all (more than `discovered` holds when capped).
    public var discoveredTotal = 0
    /// Sharded-channel subscribers per channel (PUBSUB SHARDNUMSUB, Redis 7), this console's included.
    public var shardCounts: [Bytes: Int] = [:]
    /// Pattern subscriptions on the server(s) (PUBSUB NUMPAT), this console's included.
    public var patternSubscriptions: Int?
    /// Nodes asked.
    public var nodes = 1
    public init() {}
}

public enum Listeners {
    public static let maxChannels = 200

    public static func read(_ nodes: NodeSet, channels: [Bytes], patterns: [Bytes], shardChannels: [Bytes] = []) throws -> ListenerReading {
        let conns: [RedisConnection]
        if nodes.isCluster, let t = nodes.topology {
            conns = try t.shards.flatMap { [$0.primary] + $0.replicas }.map { try nodes.connection(to: $0) }
        } else {
            conns = [try nodes.seed()]
        }
        var out = ListenerReading()
        out.nodes = conns.count
        var found = Set<Bytes>()
        for conn in conns where !patterns.isEmpty {
            let replies = try conn.pipeline(patterns.map { [Bytes(utf8: "PUBSUB"), Bytes(utf8: "CHANNELS"), $0] })
            for r in replies {
                if let e = r.errorReply { throw RedisError.server(e) }
                for c in r.array ?? [] { if let b = c.bytes { found.insert(b) } }
            }
        }
        out.discoveredTotal = found.count
        out.discovered = Array(found.sorted { $0.lexicographicallyPrecedes($1) }.prefix(maxChannels))
        var asked = channels
        for d in out.discovered where !channels.contains(d) { asked.append(d) }
        asked = Array(asked.prefix(maxChannels + channels.count))
        var numpat = 0
        for conn in conns {
            var cmds: [[Bytes]] = [[Bytes(utf8: "PUBSUB"), Bytes(utf8: "NUMPAT")]]
            if !asked.isEmpty { cmds.append([Bytes(utf8: "PUBSUB"), Bytes(utf8: "NUMSUB")] + asked) }
            // A sharded channel's subscribers are on the nodes of its shard; each node counts
            // its own, so the sum over every node is the total.
            if !shardChannels.isEmpty { cmds.append([Bytes(utf8: "PUBSUB"), Bytes(utf8: "SHARDNUMSUB")] + shardChannels) }
            let r = try conn.pipeline(cmds)
            if let e = r[0].errorReply { throw RedisError.server(e) }
            numpat += Int(r[0].int ?? 0)
            var next = 1
            if !asked.isEmpty {
                if let e = r[next].errorReply { throw RedisError.server(e) }
                add(r[next], to: &out.counts)
                next += 1
            }
            if !shardChannels.isEmpty, r[next].errorReply == nil { add(r[next], to: &out.shardCounts) }
        }
        out.patternSubscriptions = numpat
        return out
    }

    /// Adds a NUMSUB-shaped reply (name, count, name, count, …) to the counts.
    private static func add(_ reply: RESPValue, to counts: inout [Bytes: Int]) {
        let a = reply.array ?? []
        var i = 0
        while i + 1 < a.count {
            if let name = a[i].bytes, let n = a[i + 1].int { counts[name, default: 0] += Int(n) }
            i += 2
        }
    }
}

/// Key names for the command line's Tab: a bounded SCAN for the keys starting with what was
/// typed. Bounded in SCAN calls so Tab stays quick on a million keys; `complete` says
/// whether the whole keyspace was searched.
public struct KeyCompletions: Sendable, Equatable {
    public var keys: [Bytes]
    public var complete: Bool
    public init(keys: [Bytes], complete: Bool) { self.keys = keys; self.complete = complete }
}

public enum Completion {
    /// Keys starting with `full`, up to `limit`, from a bounded listing (at most `maxScans`
    /// SCANs, paced and in flight together like any listing); `complete` says whether the
    /// whole keyspace was searched.
    public static func keys(startingWith full: Bytes, nodes: NodeSet, limit: Int = 100, maxScans: Int = 48) throws -> KeyCompletions {
        var out: [Bytes] = []
        let scan = KeyspaceScan(nodes: nodes, match: globEscape(full) + Bytes(utf8: "*"), reader: NameReader())
        scan.maxScans = maxScans
        try scan.run { page in
            for k in page where out.count < limit { out.append(k) }
            return out.count < limit
        }
        return KeyCompletions(keys: out.sorted { $0.lexicographicallyPrecedes($1) }, complete: scan.finished)
    }
}
