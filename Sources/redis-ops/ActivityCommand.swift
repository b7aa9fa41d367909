import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct ActivityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activity",
        abstract: "Keyspace activity per namespace (sets, expirations, evictions, deletions, expires per second), from keyspace notifications on every primary.",
        discussion: """
        Needs keyspace notifications (notify-keyspace-events, at least Eg$xe): when they are off it says so, \
        with the value to set, and exits 1; it never changes the setting itself. Events are counted as they \
        arrive (never stored), per namespace (the first segment after the prefix).
        """)

    @OptionGroup var connection: ConnectionOptionGroup
    @Flag(name: .long, help: "One JSON object per namespace and interval: {\"ts\",\"namespace\",\"set\",\"expired\",\"evicted\",\"del\",\"expire\"} (events per second).")
    var json = false
    @Option(name: .long, parsing: .unconditional, help: "Seconds between reports (default 1).")
    var interval: Double = 1
    @Option(name: .long, parsing: .unconditional, help: "Exit after N reports.")
    var count: Int?

    func validate() throws {
        try Numbers.check(interval, "--interval", 0.1...86_400, "seconds")
        try Numbers.check(count, "--count", 1...Int(Int32.max))
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let nodes = try connection.nodes(opts)
        let (value, error) = KeyspaceActivity.notificationSetting(nodes)
        if let v = value, !KeyspaceNotifications.missing(v).isEmpty {
            throw CLIError.runtime(KeyspaceNotifications.advice(current: v))
        }
        if value == nil {
            Output.warn("redis-ops: note: cannot read \(KeyspaceNotifications.parameter) (\(Escaper.string(Bytes(utf8: error ?? "")))); "
                        + "if nothing is counted, set it to '\(KeyspaceNotifications.needed)' (on ElastiCache in the parameter group)")
        }
        let activity = KeyspaceActivity(nodes: nodes, schema: schema)
        activity.start()
        defer { activity.stop() }
        var previous = activity.tally.snapshot(at: wallClockNow())
        var reports = 0
        if !json {
            Output.line(padRight("TIME", 12) + padRight("NAMESPACE", 24) + ["SET/s", "EXPIRED/s", "EVICTED/s", "DEL/s", "EXPIRE/s"].map { padLeft($0, 11) }.joined())
            Output.flush()
        }
        while count.map({ reports < $0 }) ?? true {
            Thread.sleep(forTimeInterval: interval)
            let now = activity.tally.snapshot(at: wallClockNow())
            for n in now.notices { Output.warn("redis-ops: " + n) }
            let ts = isoTimestamp(now.at)
            for (ns, r) in now.rates(since: previous) {
                if json {
                    Output.line(ActivitySnapshot.json(ts: ts, namespace: ns, perSecond: r).serialized())
                } else {
                    let time = String(ts.dropFirst(11).prefix(12))
                    Output.line(padRight(time, 12) + padRight(Escaper.string(ns, maxScalars: 22), 24)
                                + [KeyEvent.set, .expired, .evicted, .del, .expire].map { padLeft(String(format: "%.1f", r[$0.rawValue]), 11) }.joined())
                }
            }
            Output.flush()
            previous = now
            reports += 1
        }
    }
}
