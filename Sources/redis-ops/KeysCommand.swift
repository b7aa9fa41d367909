import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "List keys under the prefix with type, TTL and size (SCAN, never KEYS).")

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Glob relative to the prefix (a glob that starts with the prefix is taken as a full one).")
    var match: String = "*"
    @Option(name: .long, parsing: .unconditional, help: "Stop after N keys.")
    var limit: Int?
    @Flag(name: .long, help: "One JSON object per line.")
    var json = false

    @Option(name: .customLong("only-node"), help: .hidden)
    var onlyNode: String?

    func validate() throws {
        try Numbers.check(limit, "--limit", 0...Int(Int32.max))
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        PrefixHint.check(glob: match, keys: [], schema: schema)
        let match = String(decoding: schema.relativeGlob(Bytes(utf8: self.match)), as: UTF8.self)
        let nodes = try connection.nodes(opts)
        // The same scan as the console's key browser: every shard, pipelined reads, no duplicates.
        let reader = KeyMetadataReader(schema: schema)
        let scan = KeyspaceScan(nodes: nodes, match: schema.fullGlob(match), reader: reader)
        // Benchmarks: one shard alone (a cluster's listing is held to its slowest shard's).
        if let only = onlyNode { scan.onlyTargets = { $0.endpoint.description == only } }
        scan.onNotice = { Output.flush(); Output.warn("redis-ops: " + $0) }
        var emitted = 0
        if !json { Output.line(padRight("TTL", 10) + "  " + padRight("TYPE", 7) + "  " + padRight("SIZE", 9) + "  KEY") }
        if limit != 0 {
            try scan.run { rows in
                for m in rows {
                    emitted += 1
                    if json { Output.line(bytes: Self.jsonLine(m)) }
                    else {
                        Output.line(padRight(formatTTL(m.ttl), 10) + "  " + padRight(m.type ?? "?", 7) + "  " + padRight(m.bytes.map(formatBytes) ?? "?", 9) + "  " + Escaper.string(m.key))
                    }
                    if let l = limit, emitted >= l { return false }
                }
                return true
            }
        }
        Output.flush()
        for w in reader.warnings { Output.warn("redis-ops: warning: " + w) }
        if ProcessInfo.processInfo.environment["REDIS_OPS_DEBUG_PACER"] != nil {
            Output.warn("scan: \(scan.stats)")
            for t in nodes.scanTargets() { Output.warn("pacer \(t.endpoint): \(nodes.pacer(for: t.endpoint, budget: scan.latencyBudget).summary)") }
        }
    }

    static func jsonLine(_ m: KeyInfo) -> Bytes {
        var f: [(String, JSON)] = [("key", .bytes(m.key))]
        f.append(("type", m.type.map { .string($0) } ?? .null))
        f.append(("ttl_ms", m.ttl.map { .int($0.jsonMilliseconds) } ?? .null))
        f.append(("bytes", m.bytes.map { .int($0) } ?? .null))
        if !m.key.isValidUTF8 { f.append(("key_base64", .string(m.key.base64))) }
        var out = Bytes()
        out.reserveCapacity(96 + m.key.count)
        JSON.object(f).write(to: &out)
        return out
    }
}
