import XCTest
import Foundation
import RedisClient
import RedisProtocol
import TestSupport

/// What the cache is doing, from keyspace notifications on real servers, and its memory shape.
final class ActivityE2ETests: XCTestCase {
    func audit() -> String { NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log" }

    /// Sums `field` × the interval over the reports of one namespace: the events counted.
    func counted(_ rows: [[String: Any]], _ ns: String, _ field: String, interval: Double) -> Double {
        rows.filter { $0["namespace"] as? String == ns }.reduce(0) { $0 + (($1[field] as? Double) ?? Double(($1[field] as? Int) ?? 0)) * interval }
    }

    func testOffSaysWhatToSetAndExits1() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let r = try redisOps(["activity", "--port", String(s.port), "--count", "1"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("notify-keyspace-events"), r.stderr)
        XCTAssertTrue(r.stderr.contains("'Eg$xe'"), r.stderr)
        XCTAssertTrue(r.stderr.contains("parameter group"), r.stderr)
        XCTAssertEqual(try s.cli(["CONFIG", "GET", "notify-keyspace-events"]).split(separator: "\n").last.map(String.init) ?? "x",
                       "notify-keyspace-events", "the tool never turns them on by itself (the value is still empty)")
    }

    func testEveryEventIsCountedPerNamespace() throws {
        let s = try RedisServer(.plain, extraConfig: ["notify-keyspace-events Eg$xe"])
        defer { s.stop() }
        // Long enough that every event is reported whenever the subscriber came up (the
        // counts, not the time, are checked).
        let bg = BackgroundRun(["activity", "--port", String(s.port), "--json", "--interval", "1", "--count", "10"])
        try waitUntil("the subscriber", timeout: 10) { (try s.cli(["PUBSUB", "NUMPAT"]).trimmingCharacters(in: .whitespacesAndNewlines)) == "1" }
        var script = ""
        for i in 0..<300 { script += "SET app:workspace:\(i) x EX 300\n" }
        for i in 0..<40 { script += "SET app:lock:workspace:\(i) 1 NX EX 10\n" }
        for i in 0..<100 { script += "DEL app:workspace:\(i)\n" }
        for i in 0..<5 { script += "SET other:\(i) y\n" }
        for _ in 0..<20 { script += "INCR app:ratelimit:user:1\n" }   // the rate-limit script's INCR counts as a set
        _ = try s.cli([], stdin: script)
        let r = try XCTUnwrap(bg.wait())
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        XCTAssertEqual(Set(rows.first.map { Array($0.keys) } ?? []), ["ts", "namespace", "set", "expired", "evicted", "del", "expire"])
        // Rates × interval add up to what was done (the interval is measured, so within rounding).
        XCTAssertEqual(counted(rows, "workspace", "set", interval: 1), 300, accuracy: 6)
        XCTAssertEqual(counted(rows, "workspace", "del", interval: 1), 100, accuracy: 3)
        XCTAssertEqual(counted(rows, "workspace", "expire", interval: 1), 300, accuracy: 6)
        XCTAssertEqual(counted(rows, "lock", "set", interval: 1), 40, accuracy: 2)
        XCTAssertEqual(counted(rows, "(outside the prefix)", "set", interval: 1), 5, accuracy: 1)
        XCTAssertEqual(counted(rows, "ratelimit", "set", interval: 1), 20, accuracy: 1)
    }

    func testEvictionsOfEntriesWithTTLShowInTheirNamespace() throws {
        let s = try RedisServer(.plain, extraConfig: ["notify-keyspace-events Eg$xe", "maxmemory 3mb", "maxmemory-policy allkeys-lru"])
        defer { s.stop() }
        let bg = BackgroundRun(["activity", "--port", String(s.port), "--json", "--interval", "1", "--count", "8"])
        try waitUntil("the subscriber", timeout: 10) { (try s.cli(["PUBSUB", "NUMPAT"]).trimmingCharacters(in: .whitespacesAndNewlines)) == "1" }
        let big = String(repeating: "v", count: 2000)
        var script = ""
        for i in 0..<4000 { script += "SET app:workspace:\(i) \(big) EX 300\n" }
        _ = try s.cli([], stdin: script)
        let r = try XCTUnwrap(bg.wait())
        XCTAssertEqual(r.status, 0, r.stderr)
        let evicted = counted(try ndjson(r.stdout), "workspace", "evicted", interval: 1)
        let info = try s.cli(["INFO", "stats"])
        let serverEvicted = info.components(separatedBy: .newlines).first { $0.hasPrefix("evicted_keys:") }.flatMap { Double($0.dropFirst(13).trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
        XCTAssertGreaterThan(serverEvicted, 0)
        XCTAssertEqual(evicted, serverEvicted, accuracy: max(2, serverEvicted * 0.01), "as many as the server counted")
    }

    func testEachClusterNodesEventsAreCounted() throws {
        let cluster = try RedisCluster(size: 3)
        defer { cluster.stop() }
        for p in cluster.ports { _ = try TestSupport.run(try which("redis-cli"), ["-p", String(p), "CONFIG", "SET", "notify-keyspace-events", "Eg$xe"]) }
        let bg = BackgroundRun(["activity", "--port", String(cluster.ports[0]), "--json", "--interval", "1", "--count", "10"])
        try waitUntil("a subscriber on every node", timeout: 15) {
            try cluster.ports.allSatisfy { p in
                (try TestSupport.run(try which("redis-cli"), ["-p", String(p), "PUBSUB", "NUMPAT"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == "1"
            }
        }
        var script = ""
        for i in 0..<300 { script += "SET app:workspace:\(i) x\n" }
        _ = try cluster.cli([], stdin: script)
        let r = try XCTUnwrap(bg.wait())
        XCTAssertEqual(r.status, 0, r.stderr)
        // What each node really ran (a SET refused while the new cluster settles is no event).
        var perNode: [Int] = []
        for p in cluster.ports {
            let stats = try TestSupport.run(try which("redis-cli"), ["-p", String(p), "INFO", "commandstats"]).stdout
            perNode.append(stats.components(separatedBy: .newlines).first { $0.hasPrefix("cmdstat_set:") }
                .flatMap { $0.split(separator: "=").dropFirst().first?.split(separator: ",").first.flatMap { Int($0) } } ?? 0)
        }
        XCTAssertTrue(perNode.allSatisfy { $0 > 0 }, "every node took writes: \(perNode)")
        XCTAssertEqual(counted(try ndjson(r.stdout), "workspace", "set", interval: 1), Double(perNode.reduce(0, +)), accuracy: 6,
                       "keys of every slot, on every node: \(perNode)")
    }

    /// Exact numbers on a keyspace whose sizes are known: the same as MEMORY USAGE per key.
    func testMemoryPerNamespaceIsExact() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        var script = ""
        for i in 0..<100 { script += "SET app:workspace:\(i) \(String(repeating: "w", count: 100 + i * 10)) EX \(i < 50 ? 30 : 600)\n" }
        for i in 0..<30 { script += "SET app:session:\(i) \(String(repeating: "s", count: 50))\n" }
        for i in 0..<10 { script += "SET app:lock:workspace:\(i) 1\n" }
        _ = try s.cli([], stdin: script)
        var sizes: [String: [Int]] = [:]
        for (ns, n) in [("workspace", 100), ("session", 30)] {
            for i in 0..<n {
                let key = ns == "workspace" ? "app:workspace:\(i)" : "app:session:\(i)"
                sizes[ns, default: []].append(Int(try s.cli(["MEMORY", "USAGE", key]).trimmingCharacters(in: .whitespacesAndNewlines))!)
            }
        }
        let r = try redisOps(["memory", "--port", String(s.port), "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try ndjson(r.stdout)
        let ws = try XCTUnwrap(rows.first { $0["namespace"] as? String == "workspace" })
        let w = sizes["workspace"]!.sorted()
        XCTAssertEqual(ws["keys"] as? Int, 100)
        XCTAssertEqual(ws["sampled"] as? Int, 100, "read whole")
        XCTAssertEqual(ws["bytes"] as? Int, w.reduce(0, +))
        XCTAssertEqual(ws["p50"] as? Int, w[49])
        XCTAssertEqual(ws["p99"] as? Int, w[98])
        XCTAssertEqual(ws["max"] as? Int, w[99])
        let ttl = try XCTUnwrap(ws["ttl"] as? [String: Int])
        XCTAssertEqual(ttl, ["none": 0, "lt1m": 50, "lt5m": 0, "lt1h": 50, "ge1h": 0])
        let biggest = try XCTUnwrap(ws["biggest"] as? [[String: Any]])
        XCTAssertEqual(biggest.count, 20)
        XCTAssertEqual(biggest.first?["bytes"] as? Int, w[99])
        XCTAssertEqual(biggest.map { $0["bytes"] as? Int ?? 0 }, Array(w.reversed().prefix(20)), "the 20 biggest, biggest first")
        XCTAssertEqual(rows.first?["namespace"] as? String, "workspace", "biggest namespace first")
        XCTAssertEqual(Array(rows.first!.keys).sorted(), ["biggest", "bytes", "keys", "max", "namespace", "p50", "p99", "sampled", "ttl"])
        // The text flags the locks that never expire; --match narrows.
        let text = try redisOps(["memory", "--port", String(s.port)])
        let lockLine = text.stdout.split(separator: "\n").first { $0.hasPrefix("lock ") }.map(String.init) ?? ""
        XCTAssertTrue(lockLine.contains("10 with no TTL: leak?"), text.stdout)
        let only = try ndjson(try redisOps(["memory", "--port", String(s.port), "--json", "--match", "session:*"]).stdout)
        XCTAssertEqual(only.map { $0["namespace"] as? String }, ["session"])
    }

    /// Hot keys come from OBJECT FREQ under an LFU policy; otherwise the text says why not.
    func testHotKeysOnlyUnderLFU() throws {
        let plain = try RedisServer(.plain)
        defer { plain.stop() }
        _ = try plain.cli(["SET", "app:workspace:1", "x"])
        let no = try redisOps(["memory", "--port", String(plain.port)])
        XCTAssertTrue(no.stdout.contains("hot keys: unknown — the eviction policy is noeviction; OBJECT FREQ needs an LFU policy"), no.stdout)
        let lfu = try RedisServer(.plain, extraConfig: ["maxmemory-policy allkeys-lfu"])
        defer { lfu.stop() }
        var script = ""
        for i in 0..<50 { script += "SET app:workspace:\(i) x\n" }
        for _ in 0..<300 { script += "GET app:workspace:7\n" }
        _ = try lfu.cli([], stdin: script)
        let r = try redisOps(["memory", "--port", String(lfu.port)])
        XCTAssertEqual(r.status, 0, r.stderr)
        let after = r.stdout.components(separatedBy: "hottest keys").last ?? ""
        XCTAssertEqual(after.split(separator: "\n").dropFirst().first.map { $0.hasSuffix("app:workspace:7") }, true, r.stdout)
    }

    /// `:notify on` asks, sets, audits, and puts the value back when the console exits.
    func testNotifyOnIsAuditedAndRestoredOnExit() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let log = audit()
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)], env: ["REDIS_OPS_AUDIT_LOG": log])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("6")
        try pane.waitFor("the advice") { $0.contains("Keyspace notifications are off") && $0.contains("Eg$xe") }
        try pane.send(":")
        try pane.type("notify on")
        try pane.send("Enter")
        try pane.waitFor("the question") { $0.contains("Turn keyspace notifications on?") }
        try pane.send("y")
        try pane.waitFor("counting") { $0.contains("keyspace events (notify-keyspace-events") }
        XCTAssertTrue(try s.cli(["CONFIG", "GET", "notify-keyspace-events"]).contains("E"))
        for i in 0..<20 { _ = try s.cli(["SET", "app:workspace:\(i)", "x"]) }
        try pane.waitFor("the rates") { screen in screen.split(separator: "\n").contains { $0.hasPrefix("workspace ") } }
        try pane.send("q")
        try pane.waitFor("the exit") { $0.contains("EXITED") }
        XCTAssertEqual(try s.cli(["CONFIG", "GET", "notify-keyspace-events"]).split(separator: "\n").count, 1, "put back to '' on exit")
        let records = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains(#""phase":"done""#) }
        XCTAssertEqual(records.count, 2, "on, then back")
        XCTAssertTrue(records.allSatisfy { $0.contains(#""action":"config""#) })
    }

    /// Where CONFIG is disabled (ElastiCache), the view still counts and `:notify` is refused.
    func testNotifyIsRefusedWhereCONFIGIsDisabled() throws {
        let s = try RedisServer(.plain, extraConfig: ["notify-keyspace-events Eg$xe", "rename-command CONFIG \"\""])
        defer { s.stop() }
        let r = try redisOps(["activity", "--port", String(s.port), "--count", "1", "--json", "--interval", "0.5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("cannot read notify-keyspace-events"), r.stderr)
        let pane = try TmuxPane(width: 120, height: 30, command: [redisOpsBinary(), "--port", String(s.port)], env: ["REDIS_OPS_AUDIT_LOG": audit()])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("6")
        try pane.waitFor("the note") { $0.contains("cannot be read") }
        try pane.send(":")
        try pane.type("notify on")
        try pane.send("Enter")
        try pane.waitFor("the refusal") { $0.contains("CONFIG is not permitted here") }
    }
}

/// `k` in the Server view disconnects a real client, audited as "kill".
final class ClientKillE2ETests: XCTestCase {
    func testAClientIsKilledAndAudited() throws {
        let s = try RedisServer(.plain)
        defer { s.stop() }
        let victim = try s.admin()
        _ = try victim.call(["CLIENT", "SETNAME", "stuckapp"].map { Bytes(utf8: $0) })
        let victimID = try XCTUnwrap(try victim.call([Bytes(utf8: "CLIENT"), Bytes(utf8: "ID")]).int)
        let log = NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"
        let pane = try TmuxPane(width: 120, height: 50, command: [redisOpsBinary(), "--port", String(s.port)], env: ["REDIS_OPS_AUDIT_LOG": log])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("5")
        try pane.waitFor("the client list", timeout: 15) { $0.contains("stuckapp") && $0.contains("LAST CMD") }
        // Walk the list until the question names the client meant; anything but y cancels.
        var asked = ""
        for _ in 0..<12 {
            try pane.send("k")
            asked = try pane.waitFor("the question") { $0.contains("Disconnect this client?") }
            if asked.contains("id \(victimID) ") { break }
            try pane.send("n")
            try pane.send("Down")
        }
        XCTAssertTrue(asked.contains("stuckapp"), asked)
        try pane.send("y")
        try pane.waitFor("the report") { $0.contains("disconnected client \(victimID)") }
        XCTAssertFalse(try s.cli(["CLIENT", "LIST"]).contains("name=stuckapp"), "gone from the server")
        let done = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains(#""phase":"done""#) }
        XCTAssertEqual(done.count, 1)
        XCTAssertTrue(done[0].contains(#""action":"kill""#) && done[0].contains(#""name":"stuckapp""#), String(done[0]))
    }
}

/// The Server view on a cluster: a round trip per node from the tool's own PINGs, and one
/// slow log merged from every node with a node column.
final class ServerLatencyE2ETests: XCTestCase {
    func testLatencyPerNodeAndAMergedSlowLog() throws {
        let cluster = try RedisCluster(size: 3)
        defer { cluster.stop() }
        for p in cluster.ports { _ = try TestSupport.run(try which("redis-cli"), ["-p", String(p), "CONFIG", "SET", "slowlog-log-slower-than", "0"]) }
        var script = ""
        for i in 0..<60 { script += "SET app:workspace:\(i) x\n" }
        _ = try cluster.cli([], stdin: script)
        let pane = try TmuxPane(width: 140, height: 60, command: [redisOpsBinary(), "--port", String(cluster.ports[0])],
                                env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("5")
        let screen = try pane.waitFor("every node's round trip and the merged slow log", timeout: 20) { s in
            s.contains("ROUND TRIP PER NODE") && cluster.ports.allSatisfy { s.contains("127.0.0.1:\($0) ") } && s.contains("merged, newest first")
        }
        let slow = screen.components(separatedBy: "merged, newest first").last ?? ""
        let nodesInSlowLog = cluster.ports.filter { slow.contains("127.0.0.1:\($0)") }
        XCTAssertGreaterThanOrEqual(nodesInSlowLog.count, 2, "entries from more than one node:\n\(slow)")
        let lines = screen.split(separator: "\n").map(String.init)
        let latencyRows = lines.filter { line in line.contains(" ms") && cluster.ports.contains { p in line.contains("127.0.0.1:\(p) ") } }
        XCTAssertGreaterThanOrEqual(latencyRows.count, 3, screen)
    }
}

/// After a failover the new primary's events are counted, and the demoted node's are not
/// (a replica replays its primary's writes: counting both would count them twice).
final class ActivityFailoverE2ETests: XCTestCase {
    func numpat(_ p: Int) throws -> String {
        try TestSupport.run(try which("redis-cli"), ["-p", String(p), "PUBSUB", "NUMPAT"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testTheSubscribersFollowTheNewPrimary() throws {
        let cluster = try RedisCluster(size: 3, replicas: 1, nodeTimeout: 2000)
        defer { cluster.stop() }
        for p in cluster.ports { _ = try TestSupport.run(try which("redis-cli"), ["-p", String(p), "CONFIG", "SET", "notify-keyspace-events", "Eg$xe"]) }
        let primaries = try cluster.primaries().map { cluster.ports[$0] }
        let bg = BackgroundRun(["activity", "--port", String(primaries[0]), "--json", "--interval", "1", "--count", "120"])
        try waitUntil("a subscriber on every primary", timeout: 15) { try primaries.allSatisfy { try self.numpat($0) == "1" } }
        func writes(_ from: Int) throws -> Int {
            var script = ""
            for i in from..<(from + 100) { script += "SET app:workspace:\(i) x\n" }
            return try cluster.cli([], stdin: script).components(separatedBy: "\n").filter { $0 == "OK" }.count
        }
        var done = try writes(0)
        // A replica takes over its primary (CLUSTER FAILOVER, as a planned failover does).
        let replica = try XCTUnwrap(try cluster.replicaIndices().first)
        let replicaPort = cluster.ports[replica]
        _ = try TestSupport.run(try which("redis-cli"), ["-p", String(replicaPort), "CLUSTER", "FAILOVER"])
        try waitUntil("the failover", timeout: 20) { try cluster.nodes[replica].cli(["ROLE"]).hasPrefix("master") }
        try cluster.waitUntilHealthy()
        let demoted = try XCTUnwrap(primaries.first { p in (try? TestSupport.run(try which("redis-cli"), ["-p", String(p), "ROLE"]).stdout.hasPrefix("slave")) == true })
        try waitUntil("the subscriber moved to the new primary", timeout: 15) {
            try self.numpat(replicaPort) == "1" && self.numpat(demoted) == "0"
        }
        done += try writes(100)
        // Two more reports, then stop it (each report is written and flushed as it comes).
        sleep(3)
        kill(bg.pid, SIGTERM)
        let r = try XCTUnwrap(bg.wait())
        XCTAssertTrue(r.stderr.contains("primaries changed"), r.stderr)
        let rows = try ndjson(r.stdout)
        let counted = rows.filter { $0["namespace"] as? String == "workspace" }.reduce(0.0) { $0 + (($1["set"] as? Double) ?? 0) }
        XCTAssertEqual(counted, Double(done), accuracy: max(4, Double(done) * 0.02), "every SET once, none twice")
    }
}

/// A burst of sets right after an invalidation made in the console shows as a refill.
final class RefillE2ETests: XCTestCase {
    func testARefillAfterAnInvalidationIsNamed() throws {
        let s = try RedisServer(.plain, extraConfig: ["notify-keyspace-events Eg$xe"])
        defer { s.stop() }
        var script = ""
        for i in 0..<50 { script += "SET app:workspace:\(i) x EX 300\n" }
        _ = try s.cli([], stdin: script)
        let pane = try TmuxPane(width: 140, height: 40, command: [redisOpsBinary(), "--port", String(s.port)],
                                env: ["REDIS_OPS_AUDIT_LOG": NSTemporaryDirectory() + "/audit-\(UUID().uuidString).log"])
        defer { pane.kill() }
        try pane.waitFor("console") { $0.contains("1 Events") }
        try pane.send("6")
        try pane.waitFor("counting") { $0.contains("keyspace events (notify-keyspace-events") }
        try pane.send("2")
        try pane.waitFor("the keys") { $0.contains("keys match") }
        try pane.invalidationDryRun("workspace:*", expecting: "Dry run: 50 keys would be deleted")
        try pane.type("50")
        try pane.send("Enter")
        try pane.waitFor("the report") { $0.contains("deleted 50") || $0.contains("matched 50 · deleted 50") }
        try pane.send("Escape")
        // The application reads through the emptied cache and fills it again.
        _ = try s.cli([], stdin: script)
        try pane.send("6")
        let screen = try pane.waitFor("the refill", timeout: 15) { screen in
            screen.split(separator: "\n").contains { $0.hasPrefix("workspace ") && $0.contains("refill: invalidated") }
        }
        XCTAssertTrue(screen.contains("SET/s"), screen)
    }
}
