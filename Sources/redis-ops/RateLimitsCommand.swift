import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct RateLimitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ratelimits",
        abstract: "Rate-limit counters under the prefix (ratelimit:*), blocked first.")

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
        Output.line("\(counters.count) counters · \(blocked) blocked · \(broken) broken (no TTL or TTL > window) · limit \(schema.rateLimit)/\(schema.rateWindow)s")
        Output.line(padRight("STATE", 8) + "  " + padRight("COUNT", 12) + "  " + padRight("RESETS IN", 10) + "  IDENTIFIER")
        for c in counters {
            let state: String
            switch c.state { case .blocked: state = "BLOCKED"; case .near: state = "near"; case .ok: state = "ok"; case .unknown: state = "?" }
            let count = c.count.map { "\($0)/\(c.limit)" } ?? "not a number"
            var resets = formatTTL(c.ttl)
            if c.isBroken { resets += " !" }
            Output.line(padRight(state, 8) + "  " + padRight(count, 12) + "  " + padRight(resets, 10) + "  " + Escaper.string(c.identifier))
        }
        if broken > 0 { Output.line("! broken: a counter without TTL (or with a TTL above the window) blocks its client forever") }
        if reading.truncated { Output.flush(); Output.warn("redis-ops: note: only the first \(counters.count) counters were read") }
    }
}
