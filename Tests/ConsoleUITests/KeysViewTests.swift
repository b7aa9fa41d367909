import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

let schema = KeySchema(prefix: "app:")

func info(_ k: String, _ type: String, _ ttl: TTLState?, _ bytes: Int64?, at: Double = t0 + 10) -> KeyInfo {
    var i = KeyInfo(key: Bytes(utf8: k), type: type, ttl: ttl, bytes: bytes, kind: schema.kind(of: Bytes(utf8: k)), readAt: at)
    i.issue = schema.convention(of: i)   // as the reader sets it
    return i
}

let sampleKeys = [
    info("app:workspace:1", "string", .expiresIn(ms: 299_000), 93), info("app:workspace:2", "string", .expiresIn(ms: 12_000), 120),
    info("app:workspace:leaked", "string", .persistent, 110), info("app:workspace:long", "string", .expiresIn(ms: 86_400_000), 100),
    info("app:lock:workspace:1", "string", .expiresIn(ms: 7_000), 72), info("app:lock:workspace:9", "string", .persistent, 72),
    info("app:ratelimit:ip:1.2.3.4", "string", .expiresIn(ms: 41_000), 56), info("app:user:1", "hash", .persistent, 1_400),
    info("app:bin:\u{1B}[2J", "string", .persistent, 50),
]

/// A snapshot as the key browser's scan reports it.
func snapshot(_ rows: [KeyInfo], filter: String = "", sort: KeySort = .flagged, capacity: Int = 20_000, done: Bool = true, dbsize: Int? = 20) -> KeySnapshot {
    var s = KeySnapshot(filter: filter, sort: sort, capacity: capacity, startedAt: t0 + 8, exact: KeyFilter(filter, schema: schema).exactCandidate)
    s.window.add(rows, schema: schema)
    s.window.settle()
    s.dbsize = dbsize
    s.done = done
    if done { s.finishedAt = t0 + 9 }
    s.stats.returned = rows.count
    return s
}

func loadedKeysState(_ w: Int = 110, _ h: Int = 20) -> AppState {
    var s = makeState(w, h)
    let fx = send(&s, [.char("2")], ChannelTail())
    XCTAssertEqual(fx, [.scanKeys(generation: 1, filter: "", sort: .flagged)], "what breaks the conventions first, by default")
    _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot(Array(sampleKeys.prefix(4)), done: false)), tail: ChannelTail())
    XCTAssertEqual(s.keys.visibleCount, 4, "the first rows show at once, while the scan goes on")
    _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot(sampleKeys)), tail: ChannelTail())
    _ = Reducer.reduce(&s, .keysSnapshot(generation: 0, snapshot([info("app:stale", "string", nil, nil)])), tail: ChannelTail())
    XCTAssertEqual(s.keys.visibleCount, 9, "results of an older scan are ignored")
    return s
}

final class KeysViewTests: XCTestCase {
    func loaded(_ w: Int = 110, _ h: Int = 20) -> AppState { loadedKeysState(w, h) }

    /// A scan's duration reads as what it was: a small keyspace is not "in 0.0 s".
    func testScanDurationInMillisecondsUnderASecond() {
        XCTAssertEqual(KeysModule.took(0.04), "40 ms")
        XCTAssertEqual(KeysModule.took(0.0001), "1 ms")
        XCTAssertEqual(KeysModule.took(2.5), "2.5 s")
    }

    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }
    func visibleKeys(_ s: AppState) -> [String] { (0..<s.keys.visibleCount).map { s.keys.visible($0).key.lossyString } }

    func testKeysView() {
        var s = loaded()
        assertSnapshot(render(s), named: "keys")
        // Sorting re-sorts the loaded rows at once and asks the server for the first rows in the new order.
        var fx = send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(fx, [.scanKeys(generation: 2, filter: "", sort: .name)])
        fx = send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(fx, [.scanKeys(generation: 3, filter: "", sort: .type)])
        fx = send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(visibleKeys(s).first, "app:lock:workspace:1", "sorted by TTL, soonest first")
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(visibleKeys(s).first, "app:user:1", "sorted by size, biggest first")
        XCTAssertTrue(render(s).lines()[3].contains("SIZE▾"), "the sorted column is marked")
        send(&s, [.char("o"), .char("o")], ChannelTail())
        XCTAssertEqual(s.keys.sort, .flagged)
        send(&s, [.char("M")], ChannelTail())
        assertSnapshot(render(s), named: "keys-namespaces")
    }

    func testFilterNarrowsWhileTypingAndSearchesTheServerOnEnter() {
        var s = loaded()
        send(&s, [.char("/")] + typed("lock:*"), ChannelTail())
        XCTAssertEqual(visibleKeys(s), ["app:lock:workspace:9", "app:lock:workspace:1"], "a glob relative to the prefix, at once (the stuck lock first)")
        var fx = send(&s, [.enter], ChannelTail())
        XCTAssertEqual(fx, [.scanKeys(generation: 2, filter: "lock:*", sort: .flagged)], "Enter asks the server for every match")
        XCTAssertEqual(visibleKeys(s).count, 2, "the loaded matches stay until the server's rows arrive")
        _ = Reducer.reduce(&s, .keysSnapshot(generation: 2, snapshot([sampleKeys[4], sampleKeys[5], info("app:lock:workspace:99", "string", .expiresIn(ms: 3000), 72)], filter: "lock:*")), tail: ChannelTail())
        XCTAssertEqual(visibleKeys(s).count, 3, "including keys that were not loaded")
        XCTAssertTrue(render(s).lines()[2].contains("filter: glob app:lock:*"), render(s).lines()[2])
        // The same glob with the prefix means the same keys; a substring is any case.
        XCTAssertEqual(KeyFilter("app:lock:*", schema: schema).match, KeyFilter("lock:*", schema: schema).match)
        XCTAssertEqual(KeyFilter("LEAK", schema: schema).match, Bytes(utf8: "app:*[Ll][Ee][Aa][Kk]*"))
        XCTAssertEqual(KeyFilter("app:workspace:4", schema: schema).explanation(prefix: schema.prefix, { Escaper.string($0) }), "keys starting with app:workspace:4")
        fx = send(&s, [.char("/"), .ctrl("u")] + typed("LEAK"), ChannelTail())
        XCTAssertEqual(visibleKeys(s), [], "typing narrows the rows loaded (those of lock:*)")
        fx = send(&s, [.escape], ChannelTail())
        XCTAssertEqual(fx, [.scanKeys(generation: 3, filter: "", sort: .flagged)], "Esc clears the filter")
    }

    func testWindowSaysHowManyMoreThereAre() {
        var s = makeState(110, 14)
        send(&s, [.char("2")], ChannelTail())
        let many = (0..<50).map { info("app:workspace:\($0)", "string", .expiresIn(ms: 100_000), 90) }
        _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot(many, capacity: 20, dbsize: 1_000_000)), tail: ChannelTail())
        XCTAssertEqual(s.keys.visibleCount, 20)
        let top = render(s).lines()[2]
        XCTAssertTrue(top.contains("50 keys match"), top)
        XCTAssertTrue(top.contains("showing the first 20, flagged first: narrow with / (the server is searched)"), top)
        send(&s, [.char("G")], ChannelTail())
        XCTAssertTrue(render(s).text.contains("… 30 more keys match beyond this window"), render(s).text)
    }

    func testRowsOnScreenAreReadAgainAndTheInspectorFollowsTheSelection() {
        var s = loaded(110, 24)
        var fx = Reducer.reduce(&s, .tick(t0 + 13), tail: ChannelTail())
        guard case .refreshKeys(let keys)? = fx.first else { return XCTFail("\(fx)") }
        XCTAssertEqual(keys.count, 9, "the rows on screen")
        // An EXPIRE made elsewhere shows at the next reading.
        _ = Reducer.reduce(&s, .keysRefreshed([info("app:workspace:leaked", "string", .expiresIn(ms: 30_000), 110, at: t0 + 13)]), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("app:workspace:leaked") && !render(s).text.contains("no TTL: leak?"), render(s).text)
        fx = Reducer.reduce(&s, .tick(t0 + 14), tail: ChannelTail())
        XCTAssertEqual(fx, [], "not again within two seconds")
        send(&s, [.char("o"), .char("G")], ChannelTail())   // by name
        fx = send(&s, [.enter], ChannelTail())
        XCTAssertEqual(fx, [.inspect(Bytes(utf8: "app:workspace:long"), cursor: nil)])
        var v = InspectedValue(key: Bytes(utf8: "app:workspace:long"), type: "string", ttl: .expiresIn(ms: 86_400_000), bytes: 100, encoding: "embstr")
        v.length = 44
        v.string = Bytes(utf8: #"{"id":3,"name":"Acme","plan":"pro","seats":12}"#)
        v.readAt = s.now
        _ = Reducer.reduce(&s, .inspected(v, appended: false), tail: ChannelTail())
        assertSnapshot(render(s), named: "keys-inspector")
        // j moves the selection, and the inspector with it (d acts on what is shown).
        fx = send(&s, [.up], ChannelTail())
        XCTAssertEqual(fx, [.inspect(Bytes(utf8: "app:workspace:leaked"), cursor: nil)])
        XCTAssertEqual(s.keys.inspector?.key, Bytes(utf8: "app:workspace:leaked"))
        XCTAssertTrue(render(s).text.contains("loading app:workspace:leaked"))
        var h = InspectedValue(key: Bytes(utf8: "app:workspace:leaked"), type: "hash", ttl: .persistent, bytes: 1400, encoding: "hashtable")
        h.length = 1000
        h.items = (0..<100).map { (Bytes(utf8: "field\($0)"), Bytes(utf8: "v\($0)")) }
        h.next = Bytes(utf8: "17")
        _ = Reducer.reduce(&s, .inspected(h, appended: false), tail: ChannelTail())
        // PgDn scrolls the pane and, at the end of what is loaded, loads the next page.
        for _ in 0..<12 { fx = send(&s, [.pageDown], ChannelTail()); if !fx.isEmpty { break } }
        XCTAssertEqual(fx, [.inspect(Bytes(utf8: "app:workspace:leaked"), cursor: Bytes(utf8: "17"))])
        XCTAssertTrue(render(s).text.contains("lines "), "the pane says where it is")
        var h2 = h
        h2.items = (100..<200).map { (Bytes(utf8: "field\($0)"), Bytes(utf8: "v\($0)")) }
        h2.next = nil
        _ = Reducer.reduce(&s, .inspected(h2, appended: true), tail: ChannelTail())
        XCTAssertEqual(s.keys.inspector?.value?.items.count, 200, "pages add up")
    }

    func testDeleteAsksWithTypeSizeAndTTL() {
        var s = loaded()
        send(&s, [.char("o"), .char("g")], ChannelTail())   // by name
        XCTAssertEqual(send(&s, [.char("d")], ChannelTail()), [])
        XCTAssertEqual(s.confirm!.question, "Delete this key? (UNLINK, audited)")
        XCTAssertEqual(s.confirm!.subject, "app:bin:\\e[2J")
        XCTAssertEqual(s.confirm!.detail, "string · 50 B · TTL none")
        let k = Bytes(utf8: "app:bin:\u{1B}[2J")
        XCTAssertEqual(send(&s, [.char("y")], ChannelTail()), [.execute(id: 1, WritePlan(request: WriteRequest(action: .delete, keys: [k]), keys: [k]))])
        var r = WriteReport(action: .delete, matched: 1)
        r.deleted = 1
        r.sample = [k]
        _ = Reducer.reduce(&s, .written(id: 1, r), tail: ChannelTail())
        XCTAssertTrue(s.keys.visible(0).isGone, "shown gone at once")
        XCTAssertTrue(s.flash!.text.contains("deleted app:bin:\\e[2J"))
        var ro = loaded()
        ro.session.readOnly = true
        XCTAssertEqual(send(&ro, [.char("d"), .char("y")], ChannelTail()), [])
        XCTAssertEqual(send(&ro, [.char("D")], ChannelTail()), [])
        XCTAssertEqual(send(&ro, [.char("e")], ChannelTail()), [])
        XCTAssertTrue(ro.flash!.text.contains("read-only"))
    }

    func testPatternInvalidationFlow() {
        var s = loaded()
        send(&s, [.char("/")] + typed("workspace:1*") + [.enter], ChannelTail())
        // D offers the filter, selected: typing replaces it instead of appending to it.
        send(&s, [.char("D")], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "workspace:1*")
        XCTAssertTrue(s.prompt!.suggested)
        var fx = send(&s, typed("workspace:*") + [.enter], ChannelTail())
        let req = WriteRequest(action: .invalidate, glob: "workspace:*")
        XCTAssertEqual(fx, [.plan(id: 1, req)])
        _ = Reducer.reduce(&s, .planProgress(id: 1, 3), tail: ChannelTail())
        var plan = WritePlan(request: req, keys: (0..<79).map { Bytes(utf8: "app:workspace:\($0)") })
        plan.protectedSkipped = 2
        _ = Reducer.reduce(&s, .planned(id: 1, plan), tail: ChannelTail())
        let g = render(s)
        assertSnapshot(g, named: "keys-invalidate-confirm")
        XCTAssertTrue(g.text.contains("Dry run: 79 keys would be deleted"))
        // The list says exactly which rows it shows, and scrolls.
        let shown = g.lines().filter { $0.contains("  app:workspace:") }.count
        XCTAssertTrue(g.text.contains("keys 1–\(shown) of 79"), g.text)
        send(&s, [.pageDown], ChannelTail())
        XCTAssertTrue(render(s).text.contains("keys \(shown + 1)–"), render(s).text)
        fx = send(&s, typed("78") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [], "the wrong count does nothing")
        fx = send(&s, [.backspace] + typed("9") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.execute(id: 1, plan)])
        _ = Reducer.reduce(&s, .writeProgress(id: 1, WriteProgress(done: 40, total: 79, deleted: 40, elapsed: 0.5, batch: 256)), tail: ChannelTail())
        assertSnapshot(render(s), named: "keys-invalidate-running")
        XCTAssertEqual(send(&s, [.escape], ChannelTail()), [.cancelWrite(id: 1)])
        var rep = WriteReport(action: .invalidate, matched: 79)
        rep.deleted = 40; rep.cancelled = true
        fx = Reducer.reduce(&s, .written(id: 1, rep), tail: ChannelTail())
        XCTAssertEqual(fx.count, 1, "the browser rescans after an invalidation")
        XCTAssertTrue(render(s).text.contains("matched 79 · deleted 40 · already gone 0 · failed 0 · unknown 0"), render(s).text)
        XCTAssertTrue(render(s).text.contains("39 keys not attempted (cancelled)"), render(s).text)
        send(&s, [.char("x")], ChannelTail())
        XCTAssertNil(s.write)
    }

    func testExpireOnALeakedKeyAndOnAPattern() {
        var s = loaded()
        send(&s, [.char("o"), .char("g")] + Array(repeating: Key.down, count: 7), ChannelTail())   // by name
        XCTAssertEqual(s.keys.selectedKey, Bytes(utf8: "app:workspace:leaked"))
        send(&s, [.char("e")], ChannelTail())
        XCTAssertTrue(s.confirm!.question.contains("cache TTL (300 s)"), s.confirm!.question)
        XCTAssertEqual(s.confirm!.subject, "app:workspace:leaked")
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        XCTAssertEqual(plan.request.action, .expire(ttl: 300, onlyWithoutTTL: true))
        send(&s, [.char("g")], ChannelTail())
        send(&s, [.char("e")], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "workspace:*", "on another key: a pattern, the cache's by default")
        let fx = send(&s, [.enter], ChannelTail())
        guard case .plan(_, let req)? = fx.first else { return XCTFail("\(fx)") }
        XCTAssertEqual(req.glob, "workspace:*")
        XCTAssertEqual(req.action, .expire(ttl: 300, onlyWithoutTTL: true))
    }

    func testLocksView() {
        var s = makeState(110, 14)
        send(&s, [.char("4")], ChannelTail())
        let rows = [LockRow(key: Bytes(utf8: "app:lock:workspace:17"), protects: Bytes(utf8: "app:workspace:17"), ttl: .persistent, value: Bytes(utf8: "1"), readAt: s.now),
                    LockRow(key: Bytes(utf8: "app:lock:workspace:3"), protects: Bytes(utf8: "app:workspace:3"), ttl: .expiresIn(ms: 2_000), value: Bytes(utf8: "1"), readAt: s.now),
                    LockRow(key: Bytes(utf8: "app:lock:workspace:5"), protects: Bytes(utf8: "app:workspace:5"), ttl: .expiresIn(ms: 9_500), value: Bytes(utf8: "1"), readAt: s.now)]
        _ = Reducer.reduce(&s, .locks(BoardReading(rows: rows, truncated: false, commands: 10, at: s.now - 60, match: nil)), tail: ChannelTail())
        let g = render(s)
        assertSnapshot(g, named: "locks")
        XCTAssertTrue(g.lines()[4].contains("≥1m00s"), "a lock with no TTL: held at least since it was first seen\n\(g.text)")
        // The selected row keeps the STUCK colour (highlighted, not repainted).
        XCTAssertEqual(g[0, 4].role, .error)
        XCTAssertTrue(g[0, 4].selected)
        send(&s, [.char("/")] + typed("workspace:3") + [.enter], ChannelTail())
        XCTAssertEqual(s.locks.board.visible.count, 1, "/ filters the locks")
        send(&s, [.escape], ChannelTail())
        send(&s, [.char("d")], ChannelTail())
        XCTAssertEqual(s.confirm!.subject, "app:lock:workspace:17")
        XCTAssertTrue(s.confirm!.detail.hasPrefix("value “1” · no TTL (stuck)"), s.confirm!.detail)
        guard case .execute(let id, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        let k17 = Bytes(utf8: "app:lock:workspace:17")
        XCTAssertEqual(plan.request.action, .release([k17: LockExpectation(value: Bytes(utf8: "1"), pttl: -1, readAt: s.now)]))
        var rep = WriteReport(action: plan.request.action, matched: 1)
        rep.kept = 1
        rep.sample = [k17]
        _ = Reducer.reduce(&s, .written(id: id, rep), tail: ChannelTail())
        XCTAssertTrue(s.flash!.text.contains("re-acquired since it was shown: kept"), s.flash!.text)
    }
}

final class EveryViewAtEverySizeTests: XCTestCase {
    func testLocksSortByEveryColumn() {
        var s = makeState(110, 14)
        send(&s, [.char("4")], ChannelTail())
        func lock(_ id: String, _ ttl: TTLState, _ v: String = "1") -> LockRow {
            LockRow(key: Bytes(utf8: "app:lock:workspace:" + id), protects: Bytes(utf8: "app:workspace:" + id), ttl: ttl, value: Bytes(utf8: v), readAt: s.now)
        }
        let rows = [lock("5", .expiresIn(ms: 9_500)), lock("17", .persistent), lock("3", .expiresIn(ms: 2_000), "2")]
        _ = Reducer.reduce(&s, .locks(BoardReading(rows: rows, truncated: false, commands: 10, at: s.now, match: nil)), tail: ChannelTail())
        func order() -> [String] { (0..<s.locks.board.visible.count).map { String(s.locks.board.shown($0).protects.lossyString.dropFirst("app:workspace:".count)) } }
        XCTAssertEqual(order(), ["17", "3", "5"], "stuck first, then the one about to end")
        XCTAssertTrue(Screen.render(s, tail: ChannelTail(), timeZone: utc).lines()[3].contains("STATE▾"))
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(order(), ["17", "3", "5"], "protects, by name")
        XCTAssertTrue(Screen.render(s, tail: ChannelTail(), timeZone: utc).lines()[3].contains("PROTECTS (CACHE KEY)▾"))
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(order(), ["3", "5", "17"], "held longest first: least time left")
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(order(), ["17", "5", "3"], "most time left first")
        XCTAssertTrue(Screen.render(s, tail: ChannelTail(), timeZone: utc).lines()[3].contains("REMAINING▾"))
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(order().first, "5", "by value")
        send(&s, [.char("o")], ChannelTail())
        XCTAssertEqual(s.locks.sort, .state, "and round again")
    }

    func testNoViewCrashesAtAnySize() {
        let t = sampleTail()
        var s = loadedKeysState()
        _ = Reducer.reduce(&s, .rateLimits(BoardReading(rows: sampleCounters(), truncated: false, commands: 10, at: s.now, match: nil)), tail: t)
        _ = Reducer.reduce(&s, .locks(BoardReading(rows: [LockRow(key: Bytes(utf8: "app:lock:x"), protects: Bytes(utf8: "x"), ttl: .persistent, value: nil, readAt: s.now)], truncated: false, commands: 1, at: s.now, match: nil)), tail: t)
        let ov = ServerOverview(info: ServerInfo(text: "role:master\r\nkeyspace_hits:1\r\nkeyspace_misses:1\r\n"), infoError: nil, maxmemoryPolicy: nil, maxmemoryPolicySource: nil)
        _ = Reducer.reduce(&s, .server(ServerReading(sample: ServerSample(at: s.now, overview: ov))), tail: t)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        let plan = WritePlan(request: WriteRequest(action: .invalidate, glob: "w*"), keys: [Bytes(utf8: "app:w1")])
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
                st.write = WriteFlow(id: 1, request: plan.request, phase: .confirming(plan))
                _ = Screen.render(st, tail: t, timeZone: utc)
                st.write = WriteFlow(id: 1, request: plan.request, phase: .running(plan, WriteProgress(done: 1, total: 1, deleted: 1, elapsed: 0.1)))
                _ = Screen.render(st, tail: t, timeZone: utc)
                st.write = nil
                st.audit = AuditUI()
                _ = Screen.render(st, tail: t, timeZone: utc)
            }
        }
    }
}
