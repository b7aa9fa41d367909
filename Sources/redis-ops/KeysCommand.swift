import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "List keys under the prefix with type, TTL and size (SCAN, never KEYS).")

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Glob relative to the prefix (default '*').")
    var match: String = "*"
    @Option(name: .long, help: "Stop after N keys.")
    var limit: Int?
    @Flag(name: .long, help: "One JSON object per line.")
    var json = false

    func validate() throws {
        if let l = limit, l < 0 { throw ValidationError("--limit must be 0 or more") }
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let conn = try RedisConnection(opts.config)
        let nodes = try NodeSet(seed: conn)
        let fetcher = MetadataFetcher()
        var emitted = 0
        if !json { Output.line(padRight("TTL", 10) + "  " + padRight("TYPE", 7) + "  " + padRight("SIZE", 9) + "  KEY") }
        /// Prints one page; false once the limit is reached.
        func emit(_ metas: [KeyMetadata]) -> Bool {
            for m in metas {
                if let l = limit, emitted >= l { return false }
                guard let type = m.type, type != "none" else { continue }   // gone meanwhile
                if m.ttl == .gone { continue }
                emitted += 1
                if json { Output.line(bytes: Self.jsonLine(m, type: type)) }
                else {
                    Output.line(padRight(formatTTL(m.ttl), 10) + "  " + padRight(type, 7) + "  " + padRight(m.bytes.map(formatBytes) ?? "?", 9) + "  " + Escaper.string(m.key))
                }
            }
            return limit.map { emitted < $0 } ?? true
        }
        // In cluster mode SCAN covers one node: every primary is scanned in turn.
        nodeLoop: for conn in try nodes.scanNodes() {
            let scanner = KeyScanner(match: schema.fullGlob(match), count: 1000)
            // Two steps in flight: while the server answers page k's metadata (and the SCAN for
            // page k+1, sent in the same write), page k-1 is formatted and printed.
            var keys = try scanner.next(on: conn) ?? []
            var ready: [KeyMetadata] = []
            while !keys.isEmpty || !scanner.done {
                var (cmds, pending) = fetcher.commands(for: keys)
                let scanCmd = scanner.nextCommand
                if let sc = scanCmd { cmds.append(sc) }
                try conn.send(cmds)
                if !emit(ready) { _ = try conn.receive(cmds.count); break nodeLoop }
                let replies = try conn.receive(cmds.count)
                ready = pending.replyCount == 0 ? pending.keys.map { KeyMetadata(key: $0, type: nil, ttl: nil, bytes: nil) }
                                                : fetcher.parse(pending, replies.prefix(pending.replyCount))
                keys = scanCmd != nil ? try scanner.consume(replies[replies.count - 1]) : []
            }
            if !emit(ready) { break }
        }
        if !json && !fetcher.memoryUsageAllowed {
            Output.flush()
            Output.warn("note: MEMORY USAGE is not permitted for this user; sizes are unknown")
        }
    }

    static func jsonLine(_ m: KeyMetadata, type: String) -> Bytes {
        var f: [(String, JSON)] = [("key", .bytes(m.key))]
        f.append(("type", .string(type)))
        f.append(("ttl_ms", m.ttl.map { .int($0.jsonMilliseconds) } ?? .null))
        f.append(("bytes", m.bytes.map { .int($0) } ?? .null))
        if !m.key.isValidUTF8 { f.append(("key_base64", .string(m.key.base64))) }
        var out = Bytes()
        out.reserveCapacity(96 + m.key.count)
        JSON.object(f).write(to: &out)
        return out
    }
}
