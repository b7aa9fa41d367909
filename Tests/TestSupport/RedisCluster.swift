import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small local Redis Cluster: three primaries on loopback, slots assigned by
/// `redis-cli --cluster create`, stopped with the test.
public final class RedisCluster: @unchecked Sendable {
    public let nodes: [RedisServer]
    public var ports: [Int] { nodes.map(\.port) }

    public init(size: Int = 3) throws {
        var ns: [RedisServer] = []
        for _ in 0..<size {
            ns.append(try RedisServer(.plain, extraConfig: ["cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 5000"]))
        }
        nodes = ns
        let r = try run(try which("redis-cli"), ["--cluster", "create"] + ns.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "0", "--cluster-yes"], timeout: 60)
        guard r.status == 0 else { stop(); throw TestSupportError("cluster create failed: \(r.stdout) \(r.stderr)") }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try ns.allSatisfy({ try $0.cli(["CLUSTER", "INFO"]).contains("cluster_state:ok") }) { return }
            usleep(100_000)
        }
        stop()
        throw TestSupportError("the cluster did not become ready")
    }

    /// redis-cli in cluster mode (-c follows redirections).
    @discardableResult
    public func cli(_ args: [String], stdin: String? = nil) throws -> String {
        try nodes[0].cli(["-c"] + args, stdin: stdin)
    }

    public func stop() { for n in nodes { n.stop() } }
    deinit { stop() }
}
