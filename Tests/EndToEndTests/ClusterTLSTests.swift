import XCTest
import Foundation
import TestSupport
import RedisClient
import RedisProtocol

/// ElastiCache cluster mode with in-transit encryption: every node over TLS, announcing a
/// host name its certificate is valid for; redis-ops verifies each node by that name.
final class ClusterTLSTests: XCTestCase {
    func testListInvalidateTailAndInfoOverTLS() throws {
        let certs = try TestCerts.shared.get()
        let cl = try RedisCluster(size: 3, replicas: 1, tls: certs, nodeTimeout: 2000)
        defer { cl.stop() }
        for i in 1...30 { try cl.cli(["SET", "app:workspace:\(i)", "{}"]) }
        let base = ["--tls", "--cacert", certs.caCert, "--sni", "localhost", "--port", String(cl.ports[0])]
        // Every shard listed (nodes reached by their announced name, verified).
        let keys = try redisOps(["keys", "--json"] + base)
        XCTAssertEqual(keys.status, 0, keys.stderr)
        XCTAssertEqual(Set(try ndjson(keys.stdout).map { $0["key"] as! String }).count, 30)
        // Every node in view.
        let info = try redisOps(["info", "--json"] + base)
        XCTAssertEqual(info.status, 0, info.stderr)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        let nodes = try XCTUnwrap(obj["nodes"] as? [[String: Any]])
        XCTAssertEqual(nodes.count, 6)
        XCTAssertTrue(nodes.allSatisfy { $0["hostname"] as? String == "localhost" && $0["error"] == nil }, "\(nodes)")
        // Writes on every shard.
        let inv = try redisOps(["invalidate", "--match", "workspace:*", "--yes", "--json"] + base,
                               env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString)"])
        XCTAssertTrue(inv.stdout.hasPrefix(#"{"matched":30,"deleted":30,"#), inv.stdout + inv.stderr)
        // A sharded tail on the owning node, over TLS.
        let tail = BackgroundRun(["tail", "--shard", "--json", "--count", "1", "--timeout", "20", "workspace:3:events"] + base)
        try waitUntil("SSUBSCRIBEd", timeout: 15) {
            Int(try cl.cli(["SPUBLISH", "workspace:3:events", "{}"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 0
        }
        XCTAssertEqual(try ndjson(try XCTUnwrap(tail.wait(times: 0)).stdout).count, 1)
        // A CA that did not sign the nodes: refused, with the reason.
        let bad = try redisOps(["keys", "--tls", "--cacert", certs.otherCACert, "--sni", "localhost", "--port", String(cl.ports[0])])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("certificate"), bad.stderr)
    }
}
