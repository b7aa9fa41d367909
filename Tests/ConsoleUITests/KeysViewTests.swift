import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisClient
import RedisProtocol

func meta(_ k: String, _ type: String, _ ttl: TTLState?, _ bytes: Int64?) -> KeyMetadata {
    KeyMetadata(key: Bytes(utf8: k), type: type, ttl: ttl, bytes: bytes)
}

func loadedKeysState(_ w: Int = 110, _ h: Int = 20) -> AppState {

    var s = makeState(w, h)
    let fx = send(&s, [.char("2")], ChannelTail())
    XCTAssertEqual(fx, [.scanKeys(session: 1)])
    let metas = [
        meta("app:workspace:1", "string", .expiresIn(ms: 299_000), 93), meta("app:workspace:2", "string", .expiresIn(ms: 12_000), 120),
        meta("app:workspace:leaked", "string", .persistent, 110), meta("app:workspace:long", "string", .expiresIn(ms: 86_400_000), 100),
        meta("app:lock:app:workspace:1", "string", .expiresIn(ms: 7_000), 72), meta("app:lock:app:workspace:9", "string", .persistent, 72),
        meta("app:ratelimit:ip:1.2.3.4", "string", .expiresIn(ms: 41_000), 56), meta("app:user:1", "hash", .persistent, 1_400),
        meta("app:bin:\u{1B}[2J", "string", .persistent, 50),
    ]
    _ = Reducer.reduce(&s, .keysPage(Array(metas.prefix(4)), scanned: 4, done: false, estimate: 20, session: 1, at: s.now), tail: ChannelTail())
    XCTAssertEqual(s.keys.rows.count, 4, "the first rows show at once")
    _ = Reducer.reduce(&s, .keysPage(Array(metas.dropFirst(4)), scanned: 9, done: true, estimate: nil, session: 1, at: s.now), tail: ChannelTail())
    _ = Reducer.reduce(&s, .keysPage([meta("app:stale", "string", nil, nil)], scanned: 1, done: true, estimate: nil, session: 0, at: s.now), tail: ChannelTail())
    XCTAssertEqual(s.keys.rows.count, 9, "pages of an old scan are ignored")
    return s
}

final class KeysViewTests: XCTestCase {
    func loaded(_ w: Int = 110, _ h: Int = 20) -> AppState { loadedKeysState(w, h) }

    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }

    func testKeysView() {
        var s = loaded()
        assertSnapshot(render(s), named: "keys")
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(visibleKeys(s).first?.meta.key, Bytes(utf8: "app:lock:app:workspace:1"), "sorted by TTL, soonest first")
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(visibleKeys(s).first?.meta.key, Bytes(utf8: "app:user:1"), "sorted by size, biggest first")
        send(&s, [.char("/")] + typed("lock:*") + [.enter], ChannelTail())
        XCTAssertEqual(visibleKeys(s).count, 2, "a glob relative to the prefix")
        send(&s, [.char("/"), .ctrl("u")] + typed("LEAK") + [.enter], ChannelTail())
        XCTAssertEqual(visibleKeys(s).map { $0.meta.key }, [Bytes(utf8: "app:workspace:leaked")], "or a substring")
        send(&s, [.escape], ChannelTail())
        send(&s, [.char("N")], ChannelTail())
        assertSnapshot(render(s), named: "keys-namespaces")
    }

    func testInspector() {
        var s = loaded(110, 24)
        send(&s, [.char("G")], ChannelTail())
        let fx = send(&s, [.enter], ChannelTail())
        XCTAssertEqual(fx, [.inspect(Bytes(utf8: "app:workspace:long"), cursor: nil)])
        var v = InspectedValue(key: Bytes(utf8: "app:workspace:long"), type: "string", ttl: .expiresIn(ms: 86_400_000), bytes: 100, encoding: "embstr")
        v.length = 44
        v.string = Bytes(utf8: #"{"id":3,"name":"Acme","plan":"pro","seats":12}"#)
        v.readAt = s.now
        _ = Reducer.reduce(&s, .inspected(v), tail: ChannelTail())
        assertSnapshot(render(s), named: "keys-inspector")
        var h = InspectedValue(key: Bytes(utf8: "app:user:1"), type: "hash", ttl: .persistent, bytes: 1400, encoding: "listpack")
        h.length = 250
        h.items = [(Bytes(utf8: "name"), Bytes(utf8: "Ann")), (Bytes(utf8: "email"), Bytes(utf8: "ann@example.com"))]
        h.next = Bytes(utf8: "17")
        s.keys.inspector = h
        XCTAssertEqual(send(&s, [.char("n")], ChannelTail()), [.inspect(Bytes(utf8: "app:user:1"), cursor: Bytes(utf8: "17"))])
    }

    func testDeleteAsksWithTypeAndSize() {
        var s = loaded()
        send(&s, [.char("g")], ChannelTail())
        XCTAssertEqual(send(&s, [.char("d")], ChannelTail()), [])
        XCTAssertTrue(s.confirm!.question.hasPrefix("Delete app:bin:\\e[2J (string, 50 B)?"), s.confirm!.question)
        XCTAssertEqual(send(&s, [.char("y")], ChannelTail()), [.deleteKey(Bytes(utf8: "app:bin:\u{1B}[2J"))])
        _ = Reducer.reduce(&s, .deleted(key: Bytes(utf8: "app:bin:\u{1B}[2J"), existed: true), tail: ChannelTail())
        XCTAssertEqual(s.keys.rows.count, 8)
        var ro = loaded()
        ro.session.readOnly = true
        XCTAssertEqual(send(&ro, [.char("d"), .char("y")], ChannelTail()), [])
        XCTAssertEqual(send(&ro, [.char("D")], ChannelTail()), [])
        XCTAssertTrue(ro.flash!.text.contains("read-only"))
    }

    func testPatternInvalidationFlow() {
        var s = loaded()
        var fx = send(&s, [.char("D")] + typed("workspace:*") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.planInvalidation("workspace:*")])
        _ = Reducer.reduce(&s, .invalidationPlanning(found: 3), tail: ChannelTail())
        let plan = InvalidationPlan(request: InvalidationRequest(glob: "workspace:*"),
                                    keys: ["1", "2", "leaked", "long"].map { Bytes(utf8: "app:workspace:" + $0) }, protectedSkipped: 0)
        _ = Reducer.reduce(&s, .invalidationPlanned(plan), tail: ChannelTail())
        assertSnapshot(render(s), named: "keys-invalidate-confirm")
        fx = send(&s, typed("3") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [], "the wrong count does nothing")
        fx = send(&s, [.backspace] + typed("4") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.executeInvalidation(plan)])
        _ = Reducer.reduce(&s, .invalidationProgress(InvalidationProgress(done: 2, total: 4, deleted: 2, elapsed: 0.5)), tail: ChannelTail())
        assertSnapshot(render(s), named: "keys-invalidate-running")
        XCTAssertEqual(send(&s, [.escape], ChannelTail()), [.cancelInvalidation])
        var rep = InvalidationReport(matched: 4)
        rep.deleted = 2; rep.cancelled = true
        fx = Reducer.reduce(&s, .invalidationDone(rep), tail: ChannelTail())
        XCTAssertEqual(fx, [.scanKeys(session: 2)], "the browser rescans after an invalidation")
        XCTAssertTrue(render(s).text.contains("matched 4 · deleted 2 · already gone 0 · failed 0"))
        send(&s, [.char("x")], ChannelTail())
        XCTAssertNil(s.invalidation)
    }

    func testLocksView() {
        var s = makeState(110, 14)
        send(&s, [.char("4")], ChannelTail())
        let rows = [LockRow(key: Bytes(utf8: "app:lock:app:workspace:17"), protects: Bytes(utf8: "app:workspace:17"), ttl: .persistent, owner: Bytes(utf8: "worker-crashed")),
                    LockRow(key: Bytes(utf8: "app:lock:app:workspace:3"), protects: Bytes(utf8: "app:workspace:3"), ttl: .expiresIn(ms: 2_000), owner: Bytes(utf8: "worker-2")),
                    LockRow(key: Bytes(utf8: "app:lock:app:workspace:5"), protects: Bytes(utf8: "app:workspace:5"), ttl: .expiresIn(ms: 9_500), owner: nil)]
        _ = Reducer.reduce(&s, .locks(rows, at: s.now), tail: ChannelTail())
        assertSnapshot(render(s), named: "locks")
        send(&s, [.char("d")], ChannelTail())
        XCTAssertTrue(s.confirm!.question.contains("Release lock app:lock:app:workspace:17"))
        XCTAssertEqual(send(&s, [.char("y")], ChannelTail()), [.deleteKey(Bytes(utf8: "app:lock:app:workspace:17"))])
    }
}

final class EveryViewAtEverySizeTests: XCTestCase {
    func testNoViewCrashesAtAnySize() {
        let t = sampleTail()
        var s = loadedKeysState()
        _ = Reducer.reduce(&s, .rateLimits(sampleCounters(), full: true, at: s.now), tail: t)
        _ = Reducer.reduce(&s, .locks([LockRow(key: Bytes(utf8: "app:lock:x"), protects: Bytes(utf8: "x"), ttl: .persistent, owner: nil)], at: s.now), tail: t)
        let ov = ServerOverview(info: ServerInfo(text: "role:master\r\nkeyspace_hits:1\r\nkeyspace_misses:1\r\n"), infoError: nil, maxmemoryPolicy: nil, maxmemoryPolicySource: nil)
        _ = Reducer.reduce(&s, .serverSample(ServerSample(at: s.now, overview: ov)), tail: t)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        let plan = InvalidationPlan(request: InvalidationRequest(glob: "w*"), keys: [Bytes(utf8: "app:w1")], protectedSkipped: 1)
        for (w, h) in [(0, 0), (1, 1), (5, 3), (20, 6), (21, 7), (30, 8), (40, 10), (60, 12), (80, 24), (250, 70)] {
            for v in ViewID.allCases {
                var st = s
                _ = Reducer.reduce(&st, .resize(width: w, height: h), tail: t)
                _ = Reducer.reduce(&st, .key(.char(Character(String(v.rawValue)))), tail: t)
                for k: Key in [.enter, .down, .pageDown, .char("N"), .char("c"), .up, .char("?")] {
                    _ = Reducer.reduce(&st, .key(k), tail: t)
                    let g = Screen.render(st, tail: t, timeZone: utc)
                    XCTAssertEqual(g.width, w); XCTAssertEqual(g.height, h)
                }
                st.helpOpen = false
                st.invalidation = InvalidationUI(glob: "w*", phase: .confirming(plan, typed: "1"))
                _ = Screen.render(st, tail: t, timeZone: utc)
                st.invalidation = InvalidationUI(glob: "w*", phase: .running(plan, InvalidationProgress(done: 1, total: 1, deleted: 1, elapsed: 0.1)))
                _ = Screen.render(st, tail: t, timeZone: utc)
            }
        }
    }
}
