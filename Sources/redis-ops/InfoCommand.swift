import ArgumentParser
import Foundation
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Server overview: role, memory, hit ratio, evictions, clients.")

    @OptionGroup var connection: ConnectionOptionGroup
    @Flag(name: .long, help: "One JSON object.")
    var json = false

    func run() throws {
        let opts = try connection.resolve()
        let nodes = try connection.nodes(opts)
        let ov = try ServerOverview.fetch(nodes.seed())
        if let e = ov.infoError { throw CLIError.runtime("INFO is not permitted for this user: \(e)") }
        // Cluster mode: every node, primaries and replicas (CLUSTER NODES and each one's INFO).
        var clusterNodes: [ClusterNodeInfo]? = nil
        var clusterError: String? = nil
        do { clusterNodes = try ClusterNodes.read(nodes) } catch { clusterError = "\(error)" }
        if json {
            var j = ov.json
            if case .object(var f) = j {
                if let c = clusterNodes { f.append(("nodes", ClusterNodes.json(c))) }
                if let e = clusterError { f.append(("nodes_error", .string(e))) }
                j = .object(f)
            }
            Output.line(j.serialized())
            return
        }
        let i = ov.info
        // INFO is the server's text: escaped like every other byte it sends.
        func v(_ k: String) -> String { i[k].map { Escaper.string($0) } ?? "unknown" }
        var rows: [(String, String)] = []
        rows += [
            ("server", opts.summary + (opts.config.tls?.because.map { " (TLS because \($0); --no-tls turns it off)" } ?? "")),
            ("role", v("role")),
            ("version", v("redis_version")),
            ("uptime", i.int("uptime_in_seconds").map { formatDuration($0 * 1000) } ?? "unknown"),
            ("used memory", i.int("used_memory").map(formatBytes) ?? "unknown"),
            ("peak memory", i.int("used_memory_peak").map(formatBytes) ?? "unknown"),
            ("maxmemory", i.int("maxmemory").map { $0 == 0 ? "no limit" : formatBytes($0) } ?? "unknown"),
            ("maxmemory-policy", ov.maxmemoryPolicy.map { Escaper.string($0) } ?? "unknown (not in INFO, CONFIG not permitted)"),
            ("fragmentation", v("mem_fragmentation_ratio")),
        ]
        rows += [
            ("hit ratio", i.hitRatio.map { String(format: "%.1f%% (since start)", $0 * 100) } ?? "no lookups yet"),
            ("keyspace hits", v("keyspace_hits")),
            ("keyspace misses", v("keyspace_misses")),
            ("evicted keys", v("evicted_keys")),
            ("expired keys", v("expired_keys")),
            ("clients", v("connected_clients") + " connected, " + v("blocked_clients") + " blocked"),
            ("ops/s", v("instantaneous_ops_per_sec")),
            ("pub/sub", v("pubsub_channels") + " channels, " + v("pubsub_patterns") + " patterns"),
        ]
        for k in i.keyspace { rows.append((k.db, "\(k.keys) keys, \(k.expires) with TTL")) }
        for (k, val) in rows { Output.line(padRight(k, 18) + val) }
        if let e = clusterError { Output.line(padRight("cluster nodes", 18) + "cannot read: " + Escaper.string(e)) }
        if let c = clusterNodes {
            Output.line("")
            for l in ClusterNodesText.lines(c) { Output.line(l) }
        }
    }
}
