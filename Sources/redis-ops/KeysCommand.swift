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
        // The same scan as the console's key browser: every shard, pipelined reads, no duplicates.
        let listing = try MetadataListing(connection, match: match)
        let (nodes, reader, scan) = (listing.nodes, listing.reader, listing.scan)
        // Benchmarks: one shard alone (a cluster's listing is held to its slowest shard's).
        if let only = onlyNode { scan.onlyTargets = { $0.endpoint.description == only } }
        var emitted = 0
        if !json { Output.line(padRight("TTL", 10) + "  " + padRight("TYPE", 7) + "  " + padRight("SIZE", 9) + "  KEY") }
        // Read once: a property wrapper's getter is not free a million times over.
        let json = self.json, limit = self.limit
        if limit != 0 {
            try scan.run { rows in
                for m in rows {
                    emitted += 1
                    if json { Self.appendJSONLine(m, to: &Output.buffer); Output.flushIfFull() }
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

    private static let keyField = Bytes(utf8: "{\"key\":"), typeField = Bytes(utf8: ",\"type\":"),
                       ttlField = Bytes(utf8: ",\"ttl_ms\":"), bytesField = Bytes(utf8: ",\"bytes\":"),
                       base64Field = Bytes(utf8: ",\"key_base64\":"), null = Bytes(utf8: "null")

    /// One `keys --json` line (the contract's fields in order; `key_base64` for a key that is
    /// not UTF-8) and its newline, written straight into `out`: no per-row allocation, as a
    /// million of these are much of the listing's cost on the client.
    static func appendJSONLine(_ m: KeyInfo, to out: inout Bytes) {
        out.append(contentsOf: keyField)
        JSON.writeString(m.key, to: &out)
        out.append(contentsOf: typeField)
        if var t = m.type { t.withUTF8 { JSON.writeString($0, to: &out) } } else { out.append(contentsOf: null) }
        out.append(contentsOf: ttlField)
        if let t = m.ttl { JSON.appendInt(t.jsonMilliseconds, to: &out) } else { out.append(contentsOf: null) }
        out.append(contentsOf: bytesField)
        if let b = m.bytes { JSON.appendInt(b, to: &out) } else { out.append(contentsOf: null) }
        if !m.key.isValidUTF8 {
            out.append(contentsOf: base64Field)
            JSON.writeString(Bytes(utf8: m.key.base64), to: &out)
        }
        out.append(UInt8(ascii: "}"))
        out.append(10)
    }
}
