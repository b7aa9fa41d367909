import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// The three jobs the console exists for, key by key: find what is wrong at once, act on
/// exactly one thing, and the prompts, status line and footer that carry them.
final class ThreeJobsTests: XCTestCase {
    func render(_ s: AppState, _ t: ChannelTail = ChannelTail()) -> CellGrid { Screen.render(s, tail: t, timeZone: utc) }

    // MARK: Events

    func eventsTail() -> ChannelTail {
        var t = ChannelTail(capacity: 1000)
        let payloads = [
            #"{"workspaceId":"42","type":"member.added","userId":"u1"}"#,
            #"{"workspaceId":"42","type":"plan.changed","plan":"pro"}"#,
            #"{"workspaceId":"7","type":"plan.changed","plan":"team"}"#,
            #"{"workspaceId":"42","type":"member.removed","userId":"u2"}"#,
            #"{"workspaceId":"42","type":"plan.changed","plan":"enterprise"}"#,
            #"{"workspaceId":"420","type":"plan.changed","plan":"free"}"#,
        ]
        t.append(messages: payloads.enumerated().map { msg("workspace:\($0.offset):events", $0.element, at: t0 + 1 + Double($0.offset)) })
        return t
    }

    func messageRows(_ s: AppState, _ t: ChannelTail) -> [String] {
        rows(s, t).compactMap { t[$0 - t.oldestSeq].message.map { String(decoding: $0.payload, as: UTF8.self) } }
    }

    func testEventFiltersCombineAndNGoesFromMatchToMatch() {
        let t = eventsTail()
        var s = makeState(120, 20)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char("/")] + typed("workspaceId=42 type=plan.changed") + [.enter], t)
        XCTAssertEqual(messageRows(s, t).count, 2, "both conditions hold: AND, and = is exact (420 is not 42)")
        XCTAssertTrue(messageRows(s, t).allSatisfy { $0.contains(#""workspaceId":"42""#) && $0.contains("plan.changed") })
        XCTAssertTrue(s.events.follow, "it was following, so it still follows")
        send(&s, [.char("/")] + typed("type~member.") + [.enter], t)
        XCTAssertEqual(messageRows(s, t).count, 2, "~ is a substring of the field")
        send(&s, [.char("/")] + typed("enterprise workspaceId=42") + [.enter], t)
        XCTAssertEqual(messageRows(s, t).count, 1, "free text and a field")
        XCTAssertEqual(TailFilter(#"type=plan.changed "member removed""#).terms,
                       [.equals(field: "type", value: "plan.changed"), .text(Bytes(utf8: "member removed"))], "quotes keep spaces in a word")
        // The last plan.changed of workspace 42: the filter, then N from the bottom.
        send(&s, [.char("/")] + typed("type=plan.changed") + [.enter], t)
        XCTAssertEqual(messageRows(s, t).count, 4)
        send(&s, [.char("N")], t)
        let sel = EventsModule.selectedEntry(s, t)!.message!
        XCTAssertEqual(String(decoding: sel.payload, as: UTF8.self), #"{"workspaceId":"42","type":"plan.changed","plan":"enterprise"}"#)
        send(&s, [.char("n")], t)
        XCTAssertTrue(String(decoding: EventsModule.selectedEntry(s, t)!.message!.payload, as: UTF8.self).contains("420"))
        send(&s, [.char("n")], t)
        XCTAssertTrue(render(s, t).text.contains("no later match"))
    }

    func testPausedCountsWhatTheFilterWouldShow() {
        var t = eventsTail()
        var s = makeState(120, 20)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char("/")] + typed("workspaceId=42") + [.enter, .char(" ")], t)
        t.append(messages: [msg("workspace:1:events", #"{"workspaceId":"9"}"#, at: t0 + 10),
                            msg("workspace:1:events", #"{"workspaceId":"42"}"#, at: t0 + 10.5),
                            msg("workspace:1:events", #"{"workspaceId":"8"}"#, at: t0 + 11)])
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertTrue(render(s, t).lines()[2].contains("PAUSED +1 new"), render(s, t).lines()[2])
        // A new filter while paused counts again.
        send(&s, [.char("/"), .ctrl("u")] + typed("workspaceId") + [.enter], t)
        XCTAssertTrue(render(s, t).lines()[2].contains("PAUSED +3 new"), render(s, t).lines()[2])
    }

    /// A rate is computed at the moment it is shown, with a clock the test controls.
    func testRateIsTrueWhenShown() {
        var t = ChannelTail(capacity: 100_000)
        var s = makeState(120, 20)
        var i = 0
        for dt in [12.05, 15.5, 19.95, 19.999, 23.3] {
            // Messages arrive evenly, 51 a second, up to the moment shown.
            while t0 + Double(i) / 51 <= t0 + dt { t.append(messages: [msg("workspace:1:events", "{}", at: t0 + Double(i) / 51)]); i += 1 }
            _ = Reducer.reduce(&s, .tailChanged, tail: t)
            let r = t.overall.rate(at: t0 + dt)
            XCTAssertEqual(r, 51, accuracy: 51 * 0.02, "at +\(dt) s")
            s.now = t0 + dt
            let line = render(s, t).lines()[2]
            let shown = line.components(separatedBy: " · ").first { $0.hasSuffix("/s") }.flatMap { Double($0.dropLast(2)) }
            XCTAssertEqual(shown ?? 0, 51, accuracy: 51 * 0.02, line)
            XCTAssertEqual(t.channels[Bytes(utf8: "workspace:1:events")]!.rate(at: t0 + dt), 51, accuracy: 51 * 0.02)
        }
        // Nothing more arrives: the figure falls as time passes, not frozen at the last tick.
        XCTAssertEqual(t.overall.rate(at: t0 + 40), 0)
    }

    func testThePatternColumnOnlyWithSeveralPatterns() {
        let t = eventsTail()
        var s = makeState(120, 20)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertFalse(render(s, t).lines()[3].contains("PATTERN"))
        XCTAssertTrue(render(s, t).lines()[2].hasPrefix("workspace:*:events (p)"), "said once, in the status line")
        s.subscriptions.append(Subscription(name: Bytes(utf8: "billing:*"), isPattern: true, active: true))
        XCTAssertTrue(render(s, t).lines()[3].contains("PATTERN"))
    }

    // MARK: Rate limits

    func rlState(_ cs: [RateLimitCounter] = sampleCounters(), _ w: Int = 110, _ h: Int = 16) -> AppState {
        var s = makeState(w, h)
        _ = Reducer.reduce(&s, .key(.char("3")), tail: ChannelTail())
        _ = Reducer.reduce(&s, reading(cs), tail: ChannelTail())
        return s
    }
    func ids(_ s: AppState) -> [String] { s.rateLimits.board.visible.map { s.rateLimits.board.rows[$0].identifier.lossyString } }

    func testFlaggedCountersComeFirstAndStaySortedAsCountsChange() {
        var s = rlState()
        XCTAssertEqual(ids(s), ["ip:203.0.113.99", "ip:10.0.0.1", "user:42", "user:7", "ip:\u{1B}[2Jevil"], "broken, blocked, near, ok")
        // Select user:7, then it goes over the limit elsewhere: it moves up, the selection with it.
        send(&s, [.char("g"), .down, .down, .down], ChannelTail())
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:7"))
        var fresh = sampleCounters()
        fresh[fresh.firstIndex { $0.identifier == Bytes(utf8: "user:7") }!].count = 80
        _ = Reducer.reduce(&s, .rateLimitsRefreshed(fresh, at: t0 + 11), tail: ChannelTail())
        XCTAssertEqual(Array(ids(s).prefix(3)), ["ip:203.0.113.99", "user:7", "ip:10.0.0.1"], "blocked, highest count first")
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:7"), "the selection stays on its key")
        XCTAssertTrue(render(s).lines()[s.rateLimits.board.cursor - s.rateLimits.board.scrollTop + 4].contains("user:7"))
    }

    func testStateFilterAndJumpsBetweenFlaggedRows() {
        var s = rlState()
        send(&s, [.char("!")], ChannelTail())
        XCTAssertEqual(ids(s), ["ip:203.0.113.99"], "broken first")
        XCTAssertTrue(render(s).lines()[2].contains("state:broken"), render(s).lines()[2])
        send(&s, [.char("!")], ChannelTail())
        XCTAssertEqual(ids(s), ["ip:10.0.0.1"], "then blocked (a broken counter is not also listed as blocked)")
        send(&s, [.char("!")], ChannelTail())
        XCTAssertEqual(ids(s), ["user:42"])
        send(&s, [.char("!")], ChannelTail())
        XCTAssertEqual(ids(s).count, 5, "then all")
        send(&s, [.char("/")] + typed("state:blocked") + [.enter], ChannelTail())
        XCTAssertEqual(ids(s), ["ip:10.0.0.1"])
        send(&s, [.escape], ChannelTail())
        // n/N: the next and previous flagged rows; past the last, it says so.
        send(&s, [.char("G")], ChannelTail())
        send(&s, [.char("N")], ChannelTail())
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:42"))
        send(&s, [.char("N")], ChannelTail())
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:ip:10.0.0.1"))
        send(&s, [.char("n")], ChannelTail())
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:42"))
        send(&s, [.char("n")], ChannelTail())
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:ip:203.0.113.99"), "round the end, as vim's n")
        XCTAssertTrue(render(s).text.contains("no flagged row below: back to the first"), render(s).text)
    }

    func testAnExactIdentifierComesFirst() {
        var s = rlState([counter("user:12348", 59, ttl: .expiresIn(ms: 10_000)), counter("user:1234", 3, ttl: .expiresIn(ms: 50_000)),
                         counter("user:91234", 70, ttl: .expiresIn(ms: 20_000))].sorted(by: RateLimitCounter.ordered))
        send(&s, [.char("/")] + typed("1234") + [.enter], ChannelTail())
        XCTAssertEqual(ids(s).first, "user:1234", "the exact identifier first, whatever its state")
        XCTAssertEqual(s.rateLimits.board.selectedKey, Bytes(utf8: "app:ratelimit:user:1234"))
        send(&s, [.char("/"), .ctrl("u")] + typed("=user:1234") + [.enter], ChannelTail())
        XCTAssertEqual(ids(s), ["user:1234"], "= means exactly that one")
    }

    // MARK: Prompts

    func testOneLineEditorForEveryPrompt() {
        var s = makeState(100, 20)
        send(&s, [.char("/")] + typed("workspaceId=42 type=plan"), ChannelTail())
        send(&s, [.ctrl("w")], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "workspaceId=42 ")
        send(&s, [.home, .char(">"), .end, .char("<")], ChannelTail())
        XCTAssertEqual(s.prompt?.text, ">workspaceId=42 <")
        send(&s, [.left, .backspace], ChannelTail())
        XCTAssertEqual(s.prompt?.text, ">workspaceId=42<", "Backspace at the cursor")
        send(&s, [.ctrl("a"), .right, .ctrl("k")], ChannelTail())
        XCTAssertEqual(s.prompt?.text, ">")
        send(&s, [.ctrl("e"), .ctrl("u")] + typed("type=plan.changed") + [.enter], ChannelTail())
        XCTAssertEqual(s.events.filter.text, "type=plan.changed")
        // The filter in force is offered selected: typing replaces it, the arrows edit it.
        send(&s, [.char("/")], ChannelTail())
        XCTAssertTrue(s.prompt!.suggested)
        send(&s, typed("x"), ChannelTail())
        XCTAssertEqual(s.prompt?.text, "x")
        send(&s, [.ctrl("u")] + typed("type=plan.changed") + [.enter, .char("/"), .end] + typed(" workspaceId=42"), ChannelTail())
        XCTAssertEqual(s.prompt?.text, "type=plan.changed workspaceId=42")
        send(&s, [.enter], ChannelTail())
        // History per prompt kind: Up brings back what was entered, newest first; Down returns to the draft.
        send(&s, [.char("/"), .ctrl("u")] + typed("draft"), ChannelTail())
        send(&s, [.up], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "type=plan.changed workspaceId=42")
        send(&s, [.up], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "type=plan.changed")
        send(&s, [.down, .down], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "draft")
        send(&s, [.escape], ChannelTail())
        // Another kind has its own history.
        send(&s, [.char("s"), .up], ChannelTail())
        XCTAssertEqual(s.prompt?.text, "", "no subscribe entered yet")
    }

    func testAConfirmationWrapsRatherThanCutsAndKeepsItsHint() {
        for w in [120, 80] {
            var s = makeState(w, 24)
            _ = Reducer.reduce(&s, .key(.char("4")), tail: ChannelTail())
            let long = "workspace:" + String(repeating: "8f14e45fceea167a", count: 7)
            let row = LockRow(key: Bytes(utf8: "app:lock:" + long), protects: Bytes(utf8: "app:" + long), ttl: .persistent, value: Bytes(utf8: "1"), readAt: s.now)
            _ = Reducer.reduce(&s, .locks(BoardReading(rows: [row], truncated: false, commands: 2, at: s.now, match: nil)), tail: ChannelTail())
            send(&s, [.char("d")], ChannelTail())
            let g = render(s)
            XCTAssertTrue(g.text.contains("y = yes"), "the y/n hint at \(w) columns\n\(g.text)")
            let joined = g.lines().map { $0.trimmingCharacters(in: .whitespaces) }.joined()
            XCTAssertTrue(joined.contains("app:lock:" + long), "the whole key, wrapped, at \(w) columns\n\(g.text)")
        }
    }

    func testTheStatusLineAlwaysShowsAnActiveFilter() {
        let t = eventsTail()
        var s = makeState(80, 24)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        let long = "café " + String(repeating: "x", count: 3000) + " end\u{1B}"
        send(&s, [.char("/")] + typed(long) + [.enter], t)
        send(&s, [.up], t)   // no longer following: "F follows" competes for the room
        let line = render(s, t).lines()[2]
        XCTAssertTrue(line.contains("filter “café"), line)
        XCTAssertTrue(line.contains("…"), "shortened in the middle: \(line)")
        XCTAssertTrue(line.contains("end\\e”"), "its end shown, escaped: \(line)")
        // Keys and Rate limits too.
        _ = Reducer.reduce(&s, .key(.char("3")), tail: t)
        _ = Reducer.reduce(&s, reading(sampleCounters()), tail: t)
        send(&s, [.char("/")] + typed("ünïcode" + String(repeating: "y", count: 500)) + [.enter], t)
        XCTAssertTrue(render(s, t).lines()[2].contains("ünïcode"), render(s, t).lines()[2])
    }

    func testAt80x24TheFooterKeepsFilterHelpAndQuit() {
        for key in ["1", "2", "3", "4"] {
            var s = makeState(80, 24)
            _ = Reducer.reduce(&s, .key(.char(Character(key))), tail: ChannelTail())
            let footer = render(s).lines()[22]
            for must in ["/ filter", "q quit", "? help"] { XCTAssertTrue(footer.contains(must), "view \(key): \(footer)") }
        }
    }

    func testTheHeaderSaysWhyTLSIsOn() {
        var s = makeState(140, 20)
        s.session.tls = true
        s.session.tlsBecause = "NODE_ENV=production"
        XCTAssertTrue(render(s).lines()[0].contains("TLS (NODE_ENV=production)"), render(s).lines()[0])
    }

    /// The inspector shows the value's age next to its TTL, and flags a value much older
    /// than the cache TTL on a line of its own (a narrow title never cuts it).
    func testTheInspectorShowsTheValuesAge() {
        var s = loadedKeysState(100, 24)
        send(&s, [.char("o"), .char("g")] + Array(repeating: Key.down, count: 5), ChannelTail())   // by name
        let key = s.keys.selectedKey!
        XCTAssertEqual(key, Bytes(utf8: "app:workspace:1"))
        _ = send(&s, [.enter], ChannelTail())
        var v = InspectedValue(key: key, type: "string", ttl: .expiresIn(ms: 296_000), bytes: 120, encoding: "embstr")
        let iso = { (t: Double) -> String in
            let f = ISO8601DateFormatter(); return f.string(from: Date(timeIntervalSince1970: t))
        }
        v.string = Bytes(utf8: #"{"id":42,"updatedAt":"\#(iso(s.now - 7 * 3600))"}"#)
        v.readAt = s.now
        _ = Reducer.reduce(&s, .inspected(v, appended: false), tail: ChannelTail())
        let text = render(s).text
        XCTAssertTrue(text.contains("value 7h00m old · cached ~4s ago · TTL 4m56s"), text)
        XCTAssertTrue(text.contains("! older than the 5m00s TTL: missed invalidation?"), text)
        // Another kind of key is not held to the cache TTL.
        XCTAssertEqual(KeysModule.ageText(ttl: .persistent, readAt: s.now, kind: .other, updatedAt: s.now - 7 * 3600, s), "value 7h00m old · TTL none")
    }

    // MARK: Act on exactly one thing

    func testCommandVerbsActOnExactlyOneKey() {
        var s = makeState(120, 20)
        func run(_ line: String) -> [Effect] { send(&s, [.char(":")] + typed(line) + [.enter], ChannelTail()) }
        XCTAssertEqual(run("del workspace:4242"), [.lookup(Bytes(utf8: "app:workspace:4242"), .delete)])
        XCTAssertEqual(run("del app:workspace:4242"), [.lookup(Bytes(utf8: "app:workspace:4242"), .delete)], "the prefix once")
        XCTAssertEqual(run("expire workspace:4242 60"), [.lookup(Bytes(utf8: "app:workspace:4242"), .expire(seconds: 60))])
        XCTAssertEqual(run("persist workspace:4242"), [.lookup(Bytes(utf8: "app:workspace:4242"), .persist)])
        XCTAssertEqual(run("reset user:1234"), [.lookupCounter(Bytes(utf8: "app:ratelimit:user:1234"))])
        XCTAssertEqual(run("release workspace:42"), [.lookupLock(Bytes(utf8: "app:lock:workspace:42"))])
        // An unknown verb is an error, not a key lookup.
        XCTAssertEqual(run("frobnicate workspace:4242"), [])
        XCTAssertTrue(render(s).text.contains("unknown command frobnicate; try :help"), render(s).text)
        XCTAssertEqual(run("expire workspace:4242"), [])
        XCTAssertTrue(render(s).text.contains("usage: :expire KEY SECONDS"), render(s).text)
        // The answer opens the same confirmation as the view's.
        let k = Bytes(utf8: "app:workspace:4242")
        _ = Reducer.reduce(&s, .lookedUp(key: k, found: info("app:workspace:4242", "string", .expiresIn(ms: 120_000), 90), purpose: .delete), tail: ChannelTail())
        XCTAssertEqual(s.confirm?.subject, "app:workspace:4242")
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        XCTAssertEqual(plan.keys, [k])
        XCTAssertEqual(plan.request.action, .delete)
        // A key that is not there: nothing to confirm.
        _ = run("del workspace:404")
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:404"), found: nil, purpose: .delete), tail: ChannelTail())
        XCTAssertNil(s.confirm)
        XCTAssertTrue(render(s).text.contains("app:workspace:404 does not exist: nothing to change"), render(s).text)
        // A counter found: reset asks as the view does.
        _ = Reducer.reduce(&s, .counterLookedUp(key: Bytes(utf8: "app:ratelimit:user:1234"), counter("user:1234", 61, ttl: .expiresIn(ms: 30_000))), tail: ChannelTail())
        XCTAssertTrue(s.confirm?.question.hasPrefix("Reset this counter?") == true)
        send(&s, [.char("n")], ChannelTail())
        // :publish asks first.
        XCTAssertEqual(run(#"publish workspace:42:events {"type":"test"}"#), [])
        XCTAssertTrue(s.confirm?.question.lowercased().contains("publish") == true, s.confirm?.question ?? "")
        send(&s, [.char("n")], ChannelTail())
        // Read-only: refused before anything is read.
        s.session.readOnly = true
        XCTAssertEqual(run("del workspace:4242"), [])
        XCTAssertTrue(render(s).text.contains("read-only"), render(s).text)
        XCTAssertEqual(run("ttl workspace:4242"), [.lookup(k, .ttl)], "reading is fine")
    }
}
