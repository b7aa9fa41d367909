import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct RateLimitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ratelimits",
        abstract: "Rate-limit counters under the prefix (ratelimit:*), flagged first: state broken (no TTL), blocked, near or ok.")

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, parsing: .unconditional, help: "Requests allowed per window (default 60, as the application).")
    var limit: Int64?
    @Option(name: .long, parsing: .unconditional, help: "Window in seconds (default 60).")
    var window: Int64?
    @Flag(name: .long, help: "One JSON object per line.")
    var json = false

    func validate() throws {
        try Numbers.check(limit, "--limit", 1...1_000_000_000)
        try Numbers.check(window, "--window", 1...31_536_000)
    }

    func run() throws {
        var (opts, schema) = try connection.resolveWithSchema()
        if let l = limit { schema.rateLimit = l }
        if let w = window { schema.rateWindow = w }
        // The same reading as the console's Rate limits view: every counter, blocked first.
        let reading = try RateLimitBoard(nodes: connection.nodes(opts), schema: schema).scan()
        let counters = reading.rows
        if json {
            for c in counters { Output.line(c.json.serialized()) }
            return
        }
        let blocked = counters.filter(\.isBlocked).count
        let broken = counters.filter(\.isBroken).count
        let forever = counters.filter(\.blocksForever).count
        Output.line("\(counters.count) counters · \(blocked) blocked · \(broken) broken (no TTL)\(forever > 0 ? ", \(forever) of them blocked forever" : "") · limit \(schema.rateLimit)/\(schema.rateWindow)s")
        Output.line(padRight("STATE", 8) + "  " + padRight("COUNT", 12) + "  " + padRight("RESETS IN", 10) + "  IDENTIFIER")
        for c in counters {
            let count = c.count.map { "\($0)/\(c.limit)" } ?? "not a number"
            var line = padRight(c.stateWord, 8) + "  " + padRight(count, 12) + "  " + padRight(formatTTL(c.ttl), 10) + "  " + Escaper.string(c.identifier)
            if c.blocksForever { line += "  (no TTL: blocked forever until reset)" }
            else if c.isBroken { line += "  (no TTL: will block forever once over the limit)" }
            else if c.ttlAboveWindow { line += "  (TTL longer than the \(c.window) s window)" }
            Output.line(line)
        }
        if reading.truncated { Output.flush(); Output.warn("redis-ops: note: only the first \(counters.count) counters were read") }
    }
}
