import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisClient
import RedisProtocol

func counter(_ id: String, _ count: Int64?, ttl: TTLState?) -> RateLimitCounter {
    let key = Bytes(utf8: "app:ratelimit:" + id)
    return RateLimitCounter(key: key, identifier: Bytes(utf8: id), kind: id.hasPrefix("ip:") ? .ip : (id.hasPrefix("user:") ? .user : .other),
                            count: count, limit: 60, window: 60, ttl: ttl)
}

func sampleCounters() -> [RateLimitCounter] {
    [counter("ip:10.0.0.1", 75, ttl: .expiresIn(ms: 41_000)), counter("ip:203.0.113.99", 150, ttl: .persistent),
     counter("user:42", 55, ttl: .expiresIn(ms: 12_500)), counter("user:7", 10, ttl: .expiresIn(ms: 59_000)),
     counter("ip:\u{1B}[2Jevil", 1, ttl: .expiresIn(ms: 30_000))].sorted(by: RateLimitCounter.ordered)
}

final class RateLimitsViewTests: XCTestCase {
    func state(_ w: Int = 110, _ h: Int = 16) -> AppState {
        var s = makeState(w, h)
        _ = Reducer.reduce(&s, .key(.char("3")), tail: ChannelTail())
        _ = Reducer.reduce(&s, .rateLimits(sampleCounters(), full: true, at: s.now), tail: ChannelTail())
        return s
    }

    func testViewSnapshotAndCountdown() {
        var s = state()
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "ratelimits")
        _ = Reducer.reduce(&s, .tick(s.now + 5), tail: ChannelTail())
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        XCTAssertTrue(g.text.contains("Retry-After 36s"), "TTL counts down locally:\n\(g.text)")
        XCTAssertTrue(g.text.contains("5 counters · 2 blocked · 1 broken"))
        XCTAssertTrue(g.text.contains("ip:\\e[2Jevil"))
    }

    func testFilterDetailAndHistory() {
        var s = state(110, 20)
        send(&s, [.char("/")] + typed("user:42") + [.enter], ChannelTail())
        XCTAssertEqual(s.rateLimits.visible.count, 1)
        XCTAssertEqual(s.rateLimits.selectedKey, Bytes(utf8: "app:ratelimit:user:42"))
        var more = sampleCounters()
        more[more.firstIndex { $0.identifier == Bytes(utf8: "user:42") }!].count = 58
        _ = Reducer.reduce(&s, .rateLimits(more, full: false, at: s.now + 1), tail: ChannelTail())
        send(&s, [.enter], ChannelTail())
        XCTAssertTrue(s.rateLimits.detailOpen)
        XCTAssertEqual(s.rateLimits.history[Bytes(utf8: "app:ratelimit:user:42")], [55, 58])
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "ratelimits-detail")
        send(&s, [.escape, .escape], ChannelTail())
        XCTAssertFalse(s.rateLimits.detailOpen)
        XCTAssertEqual(s.rateLimits.visible.count, 5)
    }

    func testResetAsksAndRespectsReadOnly() {
        var s = state()
        XCTAssertEqual(s.rateLimits.selectedKey, Bytes(utf8: "app:ratelimit:ip:203.0.113.99"), "blocked first, highest count first")
        send(&s, [.down], ChannelTail())
        XCTAssertEqual(send(&s, [.char("r")], ChannelTail()), [])
        XCTAssertNotNil(s.confirm)
        XCTAssertTrue(s.confirm!.question.contains("app:ratelimit:ip:10.0.0.1"))
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "ratelimits-confirm")
        XCTAssertEqual(send(&s, [.char("n")], ChannelTail()), [], "anything but y cancels")
        XCTAssertNil(s.confirm)
        send(&s, [.char("r")], ChannelTail())
        XCTAssertEqual(send(&s, [.char("y")], ChannelTail()), [.resetCounter(Bytes(utf8: "app:ratelimit:ip:10.0.0.1"))])
        _ = Reducer.reduce(&s, .deleted(key: Bytes(utf8: "app:ratelimit:ip:10.0.0.1"), existed: true), tail: ChannelTail())
        XCTAssertFalse(s.rateLimits.counters.contains { $0.identifier == Bytes(utf8: "ip:10.0.0.1") })
        var ro = state()
        ro.session.readOnly = true
        XCTAssertEqual(send(&ro, [.char("r")], ChannelTail()), [])
        XCTAssertNil(ro.confirm)
        XCTAssertEqual(ro.flash?.level, .error)
        XCTAssertTrue(ro.flash!.text.contains("read-only"))
    }

    func testServerView() {
        var s = makeState(100, 24)
        _ = Reducer.reduce(&s, .key(.char("5")), tail: ChannelTail())
        assertSnapshot(Screen.render(s, tail: ChannelTail(), timeZone: utc), named: "server-loading")
        func info(_ hits: Int, _ misses: Int, _ evicted: Int, _ mem: Int) -> String {
            "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:7384\r\n# Clients\r\nconnected_clients:12\r\nblocked_clients:0\r\n# Memory\r\nused_memory:\(mem)\r\nused_memory_peak:2000000\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.20\r\n# Stats\r\ninstantaneous_ops_per_sec:420\r\nkeyspace_hits:\(hits)\r\nkeyspace_misses:\(misses)\r\nevicted_keys:\(evicted)\r\nexpired_keys:100\r\npubsub_channels:0\r\npubsub_patterns:2\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.1.5,port=6379,state=online,offset=1234,lag=0\r\n# Keyspace\r\ndb0:keys=3456,expires=3400,avg_ttl=0\r\n"
        }
        for (i, t) in [0.0, 2, 4].enumerated() {
            let ov = ServerOverview(info: ServerInfo(text: info(1000 + i * 90, 100 + i * 10, i * 4, 1_500_000 + i * 1000)), infoError: nil, maxmemoryPolicy: "allkeys-lru", maxmemoryPolicySource: "INFO")
            _ = Reducer.reduce(&s, .serverSample(ServerSample(at: t0 + t, overview: ov)), tail: ChannelTail())
        }
        _ = Reducer.reduce(&s, .slowlog(nil, error: "NOPERM this user has no permissions to run the 'slowlog' command"), tail: ChannelTail())
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        assertSnapshot(g, named: "server")
        XCTAssertTrue(g.text.contains("90.0% last minute"))
        XCTAssertTrue(g.text.contains("evicted 2.0/s"))
        XCTAssertTrue(g.text.contains("not available: NOPERM"))
        var denied = makeState(100, 12)
        _ = Reducer.reduce(&denied, .key(.char("5")), tail: ChannelTail())
        _ = Reducer.reduce(&denied, .serverSample(ServerSample(at: t0, overview: ServerOverview(info: ServerInfo(text: ""), infoError: "NOPERM no INFO for you", maxmemoryPolicy: nil, maxmemoryPolicySource: nil))), tail: ChannelTail())
        XCTAssertTrue(Screen.render(denied, tail: ChannelTail(), timeZone: utc).text.contains("not permitted: NOPERM no INFO for you"))
    }
}
