import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Memory and TTL shape per namespace: keys, MEMORY USAGE total and p50/p99/max, the biggest keys, and how many keys expire when.",
        discussion: """
        Reads every matching key (SCAN, then TYPE, PTTL and MEMORY USAGE pipelined, paced within the latency \
        budget; in a cluster every shard at once), so the figures are exact: "sampled" is the number of keys \
        whose MEMORY USAGE was read (all of them unless MEMORY is not permitted). A namespace whose keys should \
        expire (cache entries, locks, counters) but have no TTL is flagged as a leak.
        """)

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Glob relative to the prefix (a glob that starts with the prefix is taken as a full one).")
    var match: String = "*"
    @Flag(name: .long, help: "One JSON object per namespace: {\"namespace\",\"keys\",\"sampled\",\"bytes\",\"p50\",\"p99\",\"max\",\"ttl\":{…},\"biggest\":[…]}.")
    var json = false

    func run() throws {
        let listing = try MetadataListing(connection, match: match)
        let (schema, nodes, reader, scan) = (listing.schema, listing.nodes, listing.reader, listing.scan)
        var shape = MemoryShape(prefix: schema.prefix)
        let tty = isatty(2) == 1
        var n = 0, last = 0.0
        try scan.run { rows in
            shape.add(rows)
            n += rows.count
            if tty, !json, monotonicNow() - last > 0.2 {
                last = monotonicNow()
                Output.warnTrusted("\u{1B}[2K\rread \(grouped(n)) keys…")
            }
            return true
        }
        if tty && !json { Output.warnTrusted("\u{1B}[2K\r") }
        for w in reader.warnings { Output.warn("redis-ops: warning: " + w) }
        let all = shape.sorted
        if json {
            for ns in all { Output.line(ns.json.serialized()) }
            return
        }
        Output.line(padRight("NAMESPACE", 22) + padLeft("KEYS", 10) + padLeft("MEMORY", 10) + padLeft("P50", 9) + padLeft("P99", 9) + padLeft("MAX", 9)
                    + "  TTL none / <1m / <5m / <1h / ≥1h")
        for ns in all {
            let sizes = [ns.percentile(50), ns.percentile(99), ns.max].map { padLeft($0.map(formatBytes) ?? "?", 9) }.joined()
            var line = padRight(Escaper.string(ns.namespace, maxScalars: 20), 22) + padLeft(grouped(ns.keys), 10) + padLeft(formatBytes(ns.bytes), 10) + sizes
            line += "  " + ns.ttl.map(grouped).joined(separator: " / ")
            if ns.sampled < ns.keys { line += "  (size of \(grouped(ns.sampled)) read)" }
            let leak = ns.leaks(schema)
            if leak > 0 { line += "  ! \(grouped(leak)) with no TTL: leak?" }
            Output.line(line)
        }
        if let top = all.first, !top.biggest.isEmpty {
            Output.line("")
            Output.line("biggest in \(Escaper.string(top.namespace)):")
            for k in top.biggest.prefix(5) { Output.line("  " + padLeft(formatBytes(k.bytes), 9) + "  " + Escaper.string(k.key)) }
        }
        // Hot keys: only an LFU policy keeps an access counter (OBJECT FREQ); say why not otherwise.
        Output.line("")
        let policy = (try? nodes.seed()).flatMap { HotKeyReader.policy($0) }
        guard let p = policy, p.contains("lfu") else {
            Output.line("hot keys: unknown — the eviction policy is \(policy.map { Escaper.string(Bytes(utf8: $0)) } ?? "unknown"); OBJECT FREQ needs an LFU policy (allkeys-lfu or volatile-lfu)")
            return
        }
        let hot = HotKeyReader()
        var hottest: [HotKeyReader.Hot] = []
        try KeyspaceScan(nodes: nodes, match: listing.glob, reader: hot).run { rows in
            hottest += rows
            if hottest.count > 1000 { hottest = Array(hottest.sorted { $0.freq > $1.freq }.prefix(20)) }
            return true
        }
        hottest = Array(hottest.sorted { $0.freq != $1.freq ? $0.freq > $1.freq : $0.key.lexicographicallyPrecedes($1.key) }.prefix(10))
        if let e = hot.refusal, hottest.isEmpty { Output.line("hot keys: OBJECT FREQ refused: \(Escaper.string(Bytes(utf8: e)))"); return }
        Output.line("hottest keys (OBJECT FREQ, \(Escaper.string(Bytes(utf8: p))): a logarithmic access counter that decays):")
        for h in hottest { Output.line("  " + padLeft(String(h.freq), 5) + "  " + Escaper.string(h.key)) }
    }
}
