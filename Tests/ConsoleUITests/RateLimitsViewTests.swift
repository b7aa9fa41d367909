import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

func counter(_ id: String, _ count: Int64?, ttl: TTLState?, at: Double = t0 + 10) -> RateLimitCounter {
    let key = Bytes(utf8: "app:ratelimit:" + id)
    return RateLimitCounter(key: key, identifier: Bytes(utf8: id), kind: id.hasPrefix("ip:") ? .ip : (id.hasPrefix("user:") ? .user : .other),
                            count: count, limit: 60, window: 60, ttl: ttl, readAt: at)
}

func sampleCounters() -> [RateLimitCounter] {
    [counter("ip:10.0.0.1", 75, ttl: .expiresIn(ms: 41_000)), counter("ip:203.0.113.99", 150, ttl: .persistent),
     counter("user:42", 55, ttl: .expiresIn(ms: 12_500)), counter("user:7", 10, ttl: .expiresIn(ms: 59_000)),
     counter("ip:\u{1B}[2Jevil", 1, ttl: .expiresIn(ms: 30_000))].sorted(by: RateLimitCounter.ordered)
}

func reading(_ cs: [RateLimitCounter], at: Double = t0 + 10, match: String? = nil) -> AppEvent {
    .rateLimits(BoardReading(rows: cs, truncated: false, commands: 40_000, at: at, match: match))
}

func serverInfo(_ hits: Int, _ misses: Int, _ evicted: Int, _ mem: Int) -> String {
    "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:7384\r\n# Clients\r\nconnected_clients:12\r\nblocked_clients:0\r\n# Memory\r\nused_memory:\(mem)\r\nused_memory_peak:2000000\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.20\r\n# Stats\r\ninstantaneous_ops_per_sec:420\r\nkeyspace_hits:\(hits)\r\nkeyspace_misses:\(misses)\r\nevicted_keys:\(evicted)\r\nexpired_keys:100\r\npubsub_channels:0\r\npubsub_patterns:2\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.1.5,port=6379,state=online,offset=1234,lag=0\r\n# Keyspace\r\ndb0:keys=3456,expires=3400,avg_ttl=0\r\n"
}

final class RateLimitsViewTests: XCTestCase {
    func state(_ w: Int = 110, _ h: Int = 16) -> AppState {
        var s = makeState(w, h)
        XCTAssertEqual(Reducer.reduce(&s, .key(.char("3")), tail: ChannelTail()), [.scanRateLimits(match: nil)])
        _ = Reducer.reduce(&s, reading(sampleCounters()), tail: ChannelTail())
        return s
    }

    func testViewSnapshotAndCountdown() {
        var s = state()
        let g0 = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        assertSnapshot(g0, named: "ratelimits")
        // The selected row keeps its state colour.
        XCTAssertEqual(g0[0, 4].role, .error, "the broken counter (no TTL, over the limit: blocks forever) sorts first")
        XCTAssertTrue(g0[0, 4].selected)
        _ = Reducer.reduce(&s, .tick(s.now + 5), tail: ChannelTail())
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        XCTAssertTrue(g.text.contains("Retry-After 36s"), "TTL counts down locally:\n\(g.text)")
        XCTAssertTrue(g.text.contains("5 counters · 2 blocked · 1 broken"))
        XCTAssertTrue(g.text.contains("ip:\\e[2Jevil"))
    }

    func testVisibleRowsOftenEveryCounterRarely() {
        var s = state()
        var fx = Reducer.reduce(&s, .tick(t0 + 11), tail: ChannelTail())
        guard case .refreshRateLimits(let keys)? = fx.first else { return XCTFail("\(fx)") }
        XCTAssertEqual(keys.count, 5, "the rows on screen, every second")
        // Every counter again only when the last full reading's cost allows (40,000 commands: 40 s).
        XCTAssertFalse(fx.contains(.scanRateLimits(match: nil)))
        fx = Reducer.reduce(&s, .tick(t0 + 51), tail: ChannelTail())
        XCTAssertTrue(fx.contains(.scanRateLimits(match: nil)), "\(fx)")
        // A counter whose window ended goes away; the others update in place.
        var fresh = sampleCounters().filter { $0.identifier != Bytes(utf8: "user:7") }
        fresh[0].count = 151
        let gone = counter("user:7", nil, ttl: .gone)
        _ = Reducer.reduce(&s, .rateLimitsRefreshed(fresh + [gone], at: t0 + 12), tail: ChannelTail())
        XCTAssertEqual(s.rateLimits.board.rows.count, 4)
        XCTAssertEqual(s.rateLimits.board.rows.first { $0.identifier == Bytes(utf8: "ip:203.0.113.99") }?.count, 151)
    }

    func testFilterFindsAnyCounterAndSearchesTheServer() {
        var s = state(110, 20)
        let fx = send(&s, [.char("/")] + typed("user:42") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.scanRateLimits(match: "ratelimit:*[Uu][Ss][Ee][Rr]:42*")], "Enter also asks the server")
        XCTAssertEqual(s.rateLimits.board.visible.count, 1)
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:42"))
        // The server's answer adds a counter not held before.
        _ = Reducer.reduce(&s, reading([counter("user:421", 3, ttl: .expiresIn(ms: 50_000))], match: "ratelimit:*user:42*"), tail: ChannelTail())
        XCTAssertEqual(s.rateLimits.board.visible.count, 2)
        XCTAssertEqual(s.rateLimits.board.rows.count, 6)
        var more = sampleCounters()
        more[more.firstIndex { $0.identifier == Bytes(utf8: "user:42") }!].count = 58
        _ = Reducer.reduce(&s, .rateLimitsRefreshed(more, at: s.now + 1), tail: ChannelTail())
        send(&s, [.enter], ChannelTail())
        XCTAssertTrue(s.rateLimits.detailOpen)
        XCTAssertEqual(s.rateLimits.history[Bytes(utf8: "app:ratelimit:user:42")], [58])
        _ = Reducer.reduce(&s, .rateLimitsRefreshed(more, at: s.now + 2), tail: ChannelTail())
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "ratelimits-detail")
        send(&s, [.escape, .escape], ChannelTail())
        XCTAssertFalse(s.rateLimits.detailOpen)
        XCTAssertEqual(s.rateLimits.board.visible.count, 6)
    }

    func testResetAsksAndRespectsReadOnly() {
        var s = state()
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:ip:203.0.113.99"), "blocked first, highest count first")
        send(&s, [.down], ChannelTail())
        XCTAssertEqual(send(&s, [.char("r")], ChannelTail()), [])
        XCTAssertNotNil(s.confirm)
        XCTAssertEqual(s.confirm!.subject, "app:ratelimit:ip:10.0.0.1")
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "ratelimits-confirm")
        XCTAssertEqual(send(&s, [.char("n")], ChannelTail()), [], "anything but y cancels")
        XCTAssertNil(s.confirm)
        send(&s, [.char("r")], ChannelTail())
        let k = Bytes(utf8: "app:ratelimit:ip:10.0.0.1")
        XCTAssertEqual(send(&s, [.char("y")], ChannelTail()), [.execute(id: 1, WritePlan(request: WriteRequest(action: .reset, keys: [k]), keys: [k]))])
        var r = WriteReport(action: .reset, matched: 1)
        r.deleted = 1
        r.sample = [k]
        _ = Reducer.reduce(&s, .written(id: 1, r), tail: ChannelTail())
        XCTAssertFalse(s.rateLimits.board.rows.contains { $0.identifier == Bytes(utf8: "ip:10.0.0.1") })
        var ro = state()
        ro.session.readOnly = true
        XCTAssertEqual(send(&ro, [.char("r")], ChannelTail()), [])
        XCTAssertNil(ro.confirm)
        XCTAssertEqual(ro.flash?.level, .error)
        XCTAssertTrue(ro.flash!.text.contains("read-only"))
    }

    func testServerView() {
        var s = makeState(100, 30)
        _ = Reducer.reduce(&s, .key(.char("5")), tail: ChannelTail())
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "server-loading")
        for (i, t) in [0.0, 2, 4].enumerated() {
            let ov = ServerOverview(info: ServerInfo(text: serverInfo(1000 + i * 90, 100 + i * 10, i * 4, 1_500_000 + i * 1000)), infoError: nil, maxmemoryPolicy: "allkeys-lru", maxmemoryPolicySource: "INFO")
            var r = ServerReading(sample: ServerSample(at: t0 + t, overview: ov))
            r.slowlogError = "NOPERM this user has no permissions to run the 'slowlog' command"
            r.clients = ClientSummary(clientList: "id=3 addr=10.0.0.9:5000 name=api-1 age=10 sub=0 psub=0 omem=0\nid=4 addr=10.0.0.9:5001 name=api-1 sub=0 psub=0 omem=0\nid=5 addr=10.0.0.10:6000 name=api-sub sub=3 psub=1 omem=2097152\n")
            s.now = t0 + t + 0.5
            _ = Reducer.reduce(&s, .server(r), tail: ChannelTail())
        }
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        assertSnapshot(g, named: "server")
        XCTAssertTrue(g.text.contains("90.0% over the last 4s"), "the window the figure covers, not 'last minute' after 4 s")
        XCTAssertTrue(g.text.contains("evicted 2.0/s"))
        XCTAssertTrue(g.text.contains("not available: NOPERM"))
        XCTAssertTrue(g.text.contains("collecting…"), "three samples are not a sparkline")
        XCTAssertFalse(g.text.contains("████"))
        XCTAssertTrue(g.text.contains("3 connections: api-1 ×2"))
        XCTAssertTrue(g.text.contains("subscriber api-sub 10.0.0.10:6000: 3 channels, 1 patterns · output buffer 2.0 MB"))
        // Disconnected: what is shown says how old it is.
        _ = Reducer.reduce(&s, .serverFailed("connection refused"), tail: ChannelTail())
        _ = Reducer.reduce(&s, .tick(t0 + 30), tail: ChannelTail())
        XCTAssertTrue(Screen.render(s, tail: ChannelTail(), timeZone: utc).lines()[2].contains("STALE: last read 26s ago: connection refused"))
        var denied = makeState(100, 12)
        _ = Reducer.reduce(&denied, .key(.char("5")), tail: ChannelTail())
        _ = Reducer.reduce(&denied, .server(ServerReading(sample: ServerSample(at: t0, overview: ServerOverview(info: ServerInfo(text: ""), infoError: "NOPERM no INFO for you", maxmemoryPolicy: nil, maxmemoryPolicySource: nil)))), tail: ChannelTail())
        XCTAssertTrue(Screen.render(denied, tail: ChannelTail(), timeZone: utc).text.contains("not permitted: NOPERM no INFO for you"))
    }

    func testSortByEveryColumn() {
        var s = state()
        func ids() -> [String] { (0..<s.rateLimits.board.visible.count).map { s.rateLimits.board.shown($0).identifier.lossyString } }
        XCTAssertEqual(ids().prefix(2), ["ip:203.0.113.99", "ip:10.0.0.1"], "by state: broken, then blocked")
        let expected: [(String, String, String)] = [("count", "COUNT▾", "ip:203.0.113.99"), ("ttl", "RETRY-AFTER / RESET▾", "user:42"),
                                                    ("identifier", "IDENTIFIER▾", "ip:\u{1B}[2Jevil"), ("kind", "KIND▾", "ip:203.0.113.99")]
        for (name, header, first) in expected {
            send(&s, [.char("o")], ChannelTail())
            XCTAssertEqual(s.rateLimits.sort.rawValue, name)
            XCTAssertTrue(Screen.render(s, tail: ChannelTail(), timeZone: utc).lines()[3].contains(header), name)
            XCTAssertEqual(ids().first, first, name)
        }
        XCTAssertEqual(ids().filter { $0.hasPrefix("user:") }, ["user:42", "user:7"], "a stable order within a kind")
    }

    func testFlashesStayInTheirView() {
        var s = state()
        send(&s, [.char("o")], ChannelTail())
        XCTAssertNotNil(s.flash)
        send(&s, [.char("4")], ChannelTail())
        XCTAssertNil(s.flash, "a flash raised in Rate limits does not follow into Locks")
        _ = Reducer.reduce(&s, .tail(.disconnected(reason: "reset", retryIn: 1)), tail: ChannelTail())
        send(&s, [.char("2")], ChannelTail())
        XCTAssertNotNil(s.flash, "the connection concerns every view")
    }
}
