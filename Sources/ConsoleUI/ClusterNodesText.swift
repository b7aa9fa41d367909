import OpsCore

/// `redis-ops info`'s node table in cluster mode: one line per node, primaries each followed
/// by their replicas. Addresses, host names, flags and errors are the server's text: escaped.
public enum ClusterNodesText {
    public static func lines(_ c: [ClusterNodeInfo]) -> [String] {
        var out = [padRight("NODE", 24) + padRight("ROLE", 9) + padLeft("SLOTS", 6) + padLeft("MEMORY", 11) + padLeft("KEYS", 11)
                   + padLeft("OPS/S", 8) + padLeft("HIT", 7) + padLeft("CLIENTS", 8) + "  FOLLOWS / LAG"]
        for n in c {
            var line = padRight(Escaper.string(n.hostname.map { "\($0) (\(n.address))" } ?? n.address, maxScalars: 23), 24)
            line += padRight(n.isPrimary ? "primary" : "replica", 9) + padLeft(n.isPrimary ? String(n.slots) : "", 6)
            if let e = n.error {
                line += "  " + Escaper.string(e)
            } else {
                line += padLeft(n.usedMemory.map(formatBytes) ?? "?", 11) + padLeft(n.keys.map { grouped(Int($0)) } ?? "?", 11)
                line += padLeft(n.opsPerSec.map(String.init) ?? "?", 8) + padLeft(n.hitRatio.map { String(format: "%.0f%%", $0 * 100) } ?? "-", 7)
                line += padLeft(n.clients.map(String.init) ?? "?", 8)
                if !n.isPrimary {
                    line += "  " + Escaper.string(n.primaryAddress ?? "?") + " · lag " + (ClusterNodes.lag(of: n, in: c).map { formatBytes($0) } ?? "?")
                    if n.replicaLinkUp == false { line += " · LINK DOWN" }
                }
            }
            if !n.flags.isEmpty { line += "  [" + Escaper.string(n.flags.joined(separator: ",")) + "]" }
            out.append(line)
        }
        return out
    }
}
