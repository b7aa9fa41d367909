import RedisProtocol
import RedisClient

/// Who listens: subscribers per channel (PUBSUB NUMSUB) and the active channels under the
/// subscribed patterns (PUBSUB CHANNELS), so "is the application's subscriber for
/// workspace 42 connected?" is one glance.
public enum Listeners {
    public static let maxChannels = 200

    public static func read(_ conn: RedisConnection, channels: [Bytes], patterns: [Bytes]) throws -> (counts: [Bytes: Int], discovered: [Bytes]) {
        var discovered: [Bytes] = []
        if !patterns.isEmpty {
            let replies = try conn.pipeline(patterns.map { [Bytes(utf8: "PUBSUB"), Bytes(utf8: "CHANNELS"), $0] })
            for r in replies {
                if let e = r.errorReply { throw RedisError.server(e) }
                for c in r.array ?? [] { if let b = c.bytes, discovered.count < maxChannels, !discovered.contains(b) { discovered.append(b) } }
            }
        }
        let all = Array(Set(channels + discovered)).prefix(maxChannels)
        var counts: [Bytes: Int] = [:]
        if !all.isEmpty {
            let r = try conn.call([Bytes(utf8: "PUBSUB"), Bytes(utf8: "NUMSUB")] + Array(all))
            let a = r.array ?? []
            var i = 0
            while i + 1 < a.count {
                if let name = a[i].bytes, let n = a[i + 1].int { counts[name] = Int(n) }
                i += 2
            }
        }
        return (counts, discovered.sorted { $0.lexicographicallyPrecedes($1) })
    }
}

/// Key names for the command line's Tab: a bounded SCAN for the keys starting with what was typed.
public enum Completion {
    public static func keys(startingWith full: Bytes, nodes: NodeSet, limit: Int = 100, maxCalls: Int = 50) throws -> [Bytes] {
        var out: [Bytes] = []
        var seen = Set<Bytes>()
        for t in nodes.scanTargets() {
            let conn = try nodes.connection(for: t)
            var scanner = KeyScanner(match: globEscape(full) + Bytes(utf8: "*"), count: 1000)
            var calls = 0
            while out.count < limit, calls < maxCalls, let page = try scanner.next(on: conn) {
                calls += 1
                for k in page where seen.insert(k).inserted && out.count < limit { out.append(k) }
            }
        }
        return out.sorted { $0.lexicographicallyPrecedes($1) }
    }
}
