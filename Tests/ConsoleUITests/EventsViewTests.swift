import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

let t0 = 1_795_708_800.0   // 2026-11-26T16:00:00Z
let utc = TimeZone(identifier: "UTC")!

func msg(_ ch: String, _ payload: String, pattern: String? = "workspace:*:events", at: Double) -> ReceivedMessage {
    ReceivedMessage(channel: Bytes(utf8: ch), pattern: pattern.map { Bytes(utf8: $0) }, payload: Bytes(utf8: payload), receivedAt: at)
}

func session() -> SessionInfo {
    var s = SessionInfo(endpoint: "127.0.0.1:6379", tls: false, user: nil, prefix: "app:", readOnly: false)
    s.role = "master"; s.command = .connected; s.subscriber = .connected
    return s
}

func makeState(_ w: Int = 100, _ h: Int = 16) -> AppState {
    var s = AppState(width: w, height: h, now: t0 + 10, session: session())
    s.subscriptions = [Subscription(name: Bytes(utf8: "workspace:*:events"), isPattern: true, active: true)]
    return s
}

func sampleTail() -> ChannelTail {
    var t = ChannelTail(capacity: 100)
    t.append(messages: [
        msg("workspace:1:events", #"{"type":"member.added","userId":"u1"}"#, at: t0 + 1.123),
        msg("workspace:2:events", #"{ "type": "plan.changed", "plan": "pro", "seats": 12 }"#, at: t0 + 2.5),
    ])
    t.append(messages: [msg("workspace:9:events", "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{202E}evil", at: t0 + 3)])
    t.append(gap: TailGap(from: t0 + 3.5, to: t0 + 5.75, reason: "connection reset by peer"))
    t.append(messages: [
        ReceivedMessage(channel: Bytes(utf8: "workspace:日本:events"), pattern: Bytes(utf8: "workspace:*:events"),
                        payload: [0xFF, 0xFE, 0x41, 0x00], receivedAt: t0 + 6),
        msg("workspace:3:events", #"{"type":"member.removed","userId":"u3","note":""# + String(repeating: "x", count: 3000) + #""}"#, at: t0 + 7),
    ])
    return t
}

@discardableResult
func send(_ s: inout AppState, _ keys: [Key], _ tail: ChannelTail) -> [Effect] {
    var effects: [Effect] = []
    for k in keys { effects += Reducer.reduce(&s, .key(k), tail: tail) }
    return effects
}

func typed(_ text: String) -> [Key] { text.map { Key.char($0) } }

/// The sequence numbers of the rows the Events list shows.
func rows(_ s: AppState, _ t: ChannelTail) -> [Int] { (0..<s.events.rowCount(t)).map { s.events.seq(at: $0, t) } }

final class EventsViewTests: XCTestCase {
    func render(_ s: AppState, _ t: ChannelTail) -> CellGrid { Screen.render(s, tail: t, timeZone: utc) }

    func testLiveList() {
        let t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        assertSnapshot(render(s, t), named: "events-live")
    }

    func testDetailPanePrettyPrintsJSON() {
        let t = sampleTail()
        var s = makeState(100, 24)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char("g"), .down, .enter], t)
        XCTAssertEqual(s.events.pane, .detail)
        let g = render(s, t)
        assertSnapshot(g, named: "events-detail")
        // JSON syntax colouring: the key is in its role.
        let row = g.lines().firstIndex { $0.contains("\"plan\": \"pro\"") }!
        XCTAssertEqual(g[3, row].role, .jsonKey)
        XCTAssertEqual(g[11, row].role, .jsonString)
    }

    func testHostileBytesAreEscapedAndMarked() {
        let t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        let g = render(s, t)
        let line = g.lines().first { $0.contains("pwned") }!
        XCTAssertTrue(line.contains("\\e]0;pwned\\x07\\e[2J\\u202eevil"), line)
        for y in 0..<g.height { for x in 0..<g.width {
            for u in g[x, y].text.unicodeScalars { XCTAssertFalse(u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x202E) }
        } }
        let y = g.lines().firstIndex { $0.contains("pwned") }!
        let x = Array(g.lines()[y]).firstIndex(of: "\\")!
        XCTAssertEqual(g[x, y].role, .escape)
    }

    func testFilterPromptNarrowsThenEnterKeepsAndSelectsFirstMatch() {
        let t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char("/")] + typed("type=member"), t)
        XCTAssertEqual(rows(s, t).filter { t[$0 - t.oldestSeq].message != nil }.count, 0, "no payload has type=member exactly")
        send(&s, typed(".added"), t)
        XCTAssertEqual(s.prompt?.text, "type=member.added")
        assertSnapshot(render(s, t), named: "events-filter-prompt")
        send(&s, [.enter], t)
        XCTAssertNil(s.prompt)
        XCTAssertEqual(s.events.filter.text, "type=member.added")
        XCTAssertTrue(s.events.follow, "a filter set while following keeps following")
        XCTAssertEqual(s.events.selectedSeq, 4, "the newest row shown (the gap marker stays visible whatever the filter)")
        // N goes to the previous match, n to the next: the list stops following to stay on it.
        send(&s, [.char("N")], t)
        XCTAssertEqual(s.events.selectedSeq, 1)
        XCTAssertFalse(s.events.follow)
        XCTAssertTrue(render(s, t).lines()[2].contains("scrolled +1 below · F follows"), "it says it no longer follows (the gap marker is below)")
        send(&s, [.char("N")], t)
        XCTAssertEqual(s.events.selectedSeq, 1, "no match above: it stays")
        XCTAssertTrue(render(s, t).text.contains("no earlier match"), render(s, t).text)
        // Substring filters match channels and payloads, case-insensitively.
        send(&s, [.char("/"), .ctrl("u")] + typed("PLAN.changed") + [.enter], t)
        XCTAssertEqual(rows(s, t).compactMap { t[$0 - t.oldestSeq].message?.channel }, [Bytes(utf8: "workspace:2:events")])
        // The gap marker stays visible whatever the filter.
        XCTAssertTrue(rows(s, t).contains { t[$0 - t.oldestSeq].message == nil })
        send(&s, [.escape], t)
        XCTAssertTrue(s.events.filter.isEmpty)
        XCTAssertEqual(rows(s, t).count, 6)
    }

    func testEscInPromptClearsTheFilter() {
        let t = sampleTail()
        var s = makeState()
        send(&s, [.char("/")] + typed("u1"), t)
        XCTAssertEqual(rows(s, t).compactMap { t[$0 - t.oldestSeq].message }.count, 1)
        send(&s, [.escape], t)
        XCTAssertNil(s.prompt)
        XCTAssertTrue(s.events.filter.isEmpty)
    }

    func testPauseFreezesTheListWhileTheBufferFills() {
        var t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char(" ")], t)
        XCTAssertEqual(s.events.pausedAt, 6)
        t.append(messages: (0..<5).map { msg("workspace:4:events", "{\"n\":\($0)}", at: t0 + 8 + Double($0) / 10) })
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertEqual(rows(s, t).count, 6, "frozen")
        let g = render(s, t)
        XCTAssertTrue(g.lines()[2].contains("PAUSED +5 new"), g.lines()[2])
        assertSnapshot(g, named: "events-paused")
        send(&s, [.char(" ")], t)
        XCTAssertEqual(rows(s, t).count, 11)
        XCTAssertEqual(s.events.selectedSeq, 11, "following again")
    }

    func testScrollBackStopsFollowingAndGResumes() {
        var t = ChannelTail(capacity: 1000)
        t.append(messages: (0..<50).map { msg("c", "{\"n\":\($0)}", pattern: nil, at: t0 + Double($0)) })
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertEqual(s.events.selectedSeq, 50)
        send(&s, [.up, .up, .pageUp], t)
        XCTAssertFalse(s.events.follow)
        let sel = s.events.selectedSeq!
        XCTAssertLessThan(sel, 48)
        t.append(messages: [msg("c", "{\"n\":50}", pattern: nil, at: t0 + 60)])
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertEqual(s.events.selectedSeq, sel, "new messages do not move the selection")
        XCTAssertTrue(s.events.scrollTop <= rows(s, t).firstIndex(of: sel)!)
        send(&s, [.char("g")], t)
        XCTAssertEqual(s.events.selectedSeq, 1)
        XCTAssertEqual(s.events.scrollTop, 0)
        send(&s, [.char("G")], t)
        XCTAssertTrue(s.events.follow)
        XCTAssertEqual(s.events.selectedSeq, 51)
        send(&s, [.pageDown, .pageDown], t)
        XCTAssertEqual(s.events.selectedSeq, 51)
    }

    func testSelectionSurvivesEviction() {
        var t = ChannelTail(capacity: 10)
        t.append(messages: (0..<10).map { msg("c", "\($0)", pattern: nil, at: t0) })
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.char("g")], t)
        t.append(messages: (0..<5).map { msg("c", "new\($0)", pattern: nil, at: t0 + 1) })
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        XCTAssertEqual(s.events.selectedSeq, t.oldestSeq)
        XCTAssertEqual(rows(s, t).count, 10)
    }

    func testSubscribeAndUnsubscribeEffects() {
        let t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        var fx = send(&s, [.char("s")] + typed("billing:*") + [.enter], t)
        XCTAssertEqual(fx, [.subscribe(Bytes(utf8: "billing:*"), pattern: true)])
        fx = send(&s, [.char("s")] + typed("audit") + [.enter], t)
        XCTAssertEqual(fx, [.subscribe(Bytes(utf8: "audit"), pattern: false)])
        XCTAssertEqual(s.subscriptions.count, 3)
        // u offers the selected message's pattern.
        send(&s, [.char("g")], t)
        send(&s, [.char("u")], t)
        XCTAssertEqual(s.prompt?.text, "workspace:*:events")
        fx = send(&s, [.enter], t)
        XCTAssertEqual(fx, [.unsubscribe(Bytes(utf8: "workspace:*:events"), pattern: true)])
        fx = send(&s, [.char("u"), .ctrl("u")] + typed("nope") + [.enter], t)
        XCTAssertEqual(fx, [])
        XCTAssertEqual(s.flash?.level, .warning)
    }

    func testWriteUsesTheFilter() {
        let t = sampleTail()
        var s = makeState()
        send(&s, [.char("/")] + typed("u1") + [.enter], t)
        let fx = send(&s, [.char("w"), .ctrl("u")] + typed("/tmp/out.ndjson") + [.enter], t)
        XCTAssertEqual(fx, [.export(path: "/tmp/out.ndjson", .buffer(filter: TailFilter("u1"), upTo: Int.max))])
        // In the detail pane, w writes the message shown, not the list.
        send(&s, [.enter], t)
        let one = send(&s, [.char("w")] + typed("/tmp/one.ndjson") + [.enter], t)
        XCTAssertEqual(one, [.export(path: "/tmp/one.ndjson", .message(seq: s.events.selectedSeq!))], "typing replaces the suggested name")
    }

    func testSubscriberNoticesUpdateHeaderAndFlash() {
        let t = sampleTail()
        var s = makeState()
        _ = Reducer.reduce(&s, .tail(.disconnected(reason: "connection closed", retryIn: 0.4)), tail: t)
        XCTAssertEqual(s.session.subscriber, .reconnecting("connection closed"))
        XCTAssertEqual(s.flash?.level, .warning)
        XCTAssertFalse(s.subscriptions[0].active)
        assertSnapshot(render(s, t), named: "events-reconnecting")
        _ = Reducer.reduce(&s, .tail(.subscribed(name: Bytes(utf8: "workspace:*:events"), isPattern: true)), tail: t)
        XCTAssertTrue(s.subscriptions[0].active)
        _ = Reducer.reduce(&s, .tail(.refused(name: Bytes(utf8: "workspace:*:events"), isPattern: true, reason: "NOPERM no")), tail: t)
        XCTAssertTrue(s.subscriptions.isEmpty)
        XCTAssertEqual(s.flash?.level, .error)
        _ = Reducer.reduce(&s, .tick(s.now + 11), tail: t)
        XCTAssertNil(s.flash, "flash messages clear themselves")
    }

    func testShardPrefixSubscribesASharedChannelOnItsOwnWorker() {
        var s = makeState(160, 16)
        let fx = send(&s, [.char("s")] + typed("shard workspace:9:events") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.subscribeShard(Bytes(utf8: "workspace:9:events"))])
        XCTAssertTrue(s.subscriptions.contains { $0.isShard && $0.name == Bytes(utf8: "workspace:9:events") })
        XCTAssertTrue(render(s, ChannelTail()).lines()[2].contains("workspace:9:events (shard) …"), "shown, not yet confirmed")
        _ = Reducer.reduce(&s, .tail(.subscribed(name: Bytes(utf8: "workspace:9:events"), isPattern: false)), tail: ChannelTail())
        XCTAssertFalse(render(s, ChannelTail()).lines()[2].contains("(shard) …"), "confirmed")
        // A sharded node's trouble is a warning, not the header's subscriber state.
        _ = Reducer.reduce(&s, .tail(.shardTrouble(reason: "sharded subscriber: 127.0.0.1:7001: connection refused — retrying in 0.2 s")), tail: ChannelTail())
        XCTAssertEqual(s.session.subscriber, .connected)
        XCTAssertEqual(send(&s, [.char("u"), .ctrl("u")] + typed("workspace:9:events") + [.enter], ChannelTail()), [.unsubscribeShard(Bytes(utf8: "workspace:9:events"))])
    }

    func testChannelsPane() {
        var t = ChannelTail(capacity: 100)
        for sec in 0..<6 {
            t.append(messages: (0..<(sec + 1)).map { _ in msg("workspace:1:events", "{}", at: t0 + Double(sec) + 0.5) })
            t.append(messages: [msg("workspace:2:events", "{}", at: t0 + Double(sec) + 0.6)])
        }
        var s = makeState()
        s.now = t0 + 6.2
        send(&s, [.char("c")], t)
        XCTAssertEqual(t.channels[Bytes(utf8: "workspace:1:events")]!.total, 21)
        // The rate covers the last four whole seconds and the part of this one gone:
        // 3+4+5+6 messages over 4.2 s.
        XCTAssertEqual(t.channels[Bytes(utf8: "workspace:1:events")]!.rate(at: t0 + 6.2), 18 / 4.2, accuracy: 0.01)
        XCTAssertTrue(render(s, t).text.contains("reading who listens"), "no count before it is read")
        // Who listens: NUMSUB per channel, channels found under the patterns, NUMPAT.
        var l = ListenerReading()
        l.counts = [Bytes(utf8: "workspace:1:events"): 2, Bytes(utf8: "workspace:2:events"): 0, Bytes(utf8: "workspace:3:events"): 1]
        l.discovered = [Bytes(utf8: "workspace:1:events"), Bytes(utf8: "workspace:3:events")]
        l.discoveredTotal = 260
        l.patternSubscriptions = 3
        _ = Reducer.reduce(&s, .listeners(l), tail: t)
        let g = render(s, t)
        assertSnapshot(g, named: "events-channels")
        let pane = g.lines().drop { !$0.hasPrefix(" CHANNEL") }
        func row(_ name: String) -> String { pane.first { $0.contains(" \(name) ") }.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
        XCTAssertTrue(row("workspace:1:events").hasSuffix(" 2"), row("workspace:1:events"))
        XCTAssertTrue(row("workspace:2:events").hasSuffix(" 0"), "nobody listens to workspace 2")
        XCTAssertTrue(row("workspace:3:events").contains("not heard"), "a channel found under the pattern, not heard yet")
        let y2 = pane.firstIndex { $0.contains(" workspace:2:events ") }!
        XCTAssertTrue((0..<g.width).contains { g[$0, y2].role == .warning && g[$0, y2].text == "0" }, "no listener stands out")
        XCTAssertTrue(g.text.contains("+258 active channels not listed"), "nothing capped silently")
        XCTAssertTrue(g.text.contains("subscribers besides this console; +2 by pattern · read now"), g.text)
    }

    /// Tens of thousands of channels: the pane shows the busiest rows and says how many it
    /// does not show, instead of sorting (and keeping) every one.
    func testChannelsPaneSaysHowManyItDoesNotShow() {
        var t = ChannelTail(capacity: 100)
        for i in 0..<12_000 { t.append(messages: [msg("workspace:\(i):events", "{}", at: t0 + Double(i) / 12_000)]) }
        t.append(messages: (0..<30).map { _ in msg("workspace:hot:events", "{}", at: t0 + 1) })
        var s = makeState()
        s.now = t0 + 1.2
        send(&s, [.char("c")], t)
        let g = render(s, t)
        let pane = g.lines().drop { !$0.hasPrefix(" CHANNEL") }.dropFirst()
        XCTAssertTrue(pane.first?.contains("workspace:hot:events") == true, "the busiest first\n\(g.text)")
        XCTAssertNotNil(g.text.range(of: #"showing the \d+ busiest of ~1[12],\d{3} channels heard \(counts kept for the 2,000 busiest\)"#, options: .regularExpression), g.text)
    }

    /// A sharded channel's listeners come from SHARDNUMSUB, this console's SSUBSCRIBE left out.
    func testShardChannelListenersAreCounted() {
        var t = ChannelTail(capacity: 10)
        let ch = Bytes(utf8: "workspace:7:events"), other = Bytes(utf8: "workspace:8:events")
        t.append(messages: [ReceivedMessage(channel: ch, pattern: nil, payload: Bytes(utf8: "{}"), receivedAt: t0 + 1),
                            ReceivedMessage(channel: other, pattern: nil, payload: Bytes(utf8: "{}"), receivedAt: t0 + 1)])
        var s = makeState()
        s.subscriptions = [Subscription(name: ch, isPattern: false, isShard: true, active: true),
                           Subscription(name: other, isPattern: false, isShard: true, active: true)]
        s.now = t0 + 2
        let fx = send(&s, [.char("c")], t)
        XCTAssertTrue(fx.contains(.readListeners(channels: [], patterns: [], shardChannels: [ch, other])), "\(fx)")
        var l = ListenerReading()
        l.shardCounts = [ch: 3, other: 1]
        _ = Reducer.reduce(&s, .listeners(l), tail: t)
        let pane = render(s, t).lines().drop { !$0.hasPrefix(" CHANNEL") }
        XCTAssertTrue(pane.contains { $0.contains("workspace:7:events") && $0.hasSuffix("2 shard") }, pane.joined(separator: "\n"))
        XCTAssertTrue(pane.contains { $0.contains("workspace:8:events") && $0.hasSuffix("0 shard") }, "only this console listens")
        // A server that cannot say (before Redis 7): not a number made up.
        _ = Reducer.reduce(&s, .listeners(ListenerReading()), tail: t)
        XCTAssertTrue(render(s, t).lines().contains { $0.contains("workspace:7:events") && $0.hasSuffix("sharded ?") })
    }
}

final class ShellTests: XCTestCase {
    func testViewSwitching() {
        let t = ChannelTail()
        var s = makeState()
        send(&s, [.char("3")], t); XCTAssertEqual(s.view, .rateLimits)
        send(&s, [.tab], t); XCTAssertEqual(s.view, .locks)
        send(&s, [.tab, .tab], t); XCTAssertEqual(s.view, .activity)
        send(&s, [.tab], t); XCTAssertEqual(s.view, .events)
        send(&s, [.backTab], t); XCTAssertEqual(s.view, .activity)
        send(&s, [.char("2")], t); XCTAssertEqual(s.view, .keys)
        XCTAssertTrue(s.keys.scanning, "entering Keys starts a scan")
    }

    func testQuitAndHelp() {
        let t = ChannelTail()
        var s = makeState(100, 60)
        send(&s, [.char("?")], t)
        XCTAssertTrue(s.helpOpen)
        let g = Screen.render(s, tail: t, timeZone: utc)
        assertSnapshot(g, named: "help")
        // The command line's verbs are listed too (`:help` opens the same help).
        for c in CommandLineModule.commands { XCTAssertTrue(g.text.contains(c.usage), "help lacks \(c.usage)") }
        // Help is generated from the same table that dispatches keys, for the view on screen only.
        for b in Bindings.all where b.scope == .global || b.scope == .view(.events) {
            XCTAssertTrue(g.text.contains(b.label + " "), "help lacks \(b.label)")
            XCTAssertNotNil(Bindings.action(for: b.keys[0], in: .events))
        }
        XCTAssertFalse(g.text.contains("invalidate by pattern"), "the Keys view's keys are not in the Events help")
        XCTAssertFalse(g.text.contains("Events — Events"))
        XCTAssertEqual(g.text.components(separatedBy: "next view").count, 2, "Tab and S-Tab once")
        // Every line of help text is whole: wrapped, never cut mid-word.
        for b in Bindings.active(in: .events) {
            let lastWord = String(b.help.split(separator: " ").last!)
            XCTAssertTrue(g.text.contains(lastWord), "the end of “\(b.help)” is missing")
        }
        send(&s, [.char("x")], t)
        XCTAssertFalse(s.helpOpen)
        XCTAssertEqual(send(&s, [.char("q")], t), [.quit])
        XCTAssertTrue(s.quitting)
    }

    func testHeaderBadges() {
        var s = makeState(100, 8)
        s.session.tls = true
        s.session.readOnly = true
        s.session.user = "ops"
        let g = Screen.render(s, tail: ChannelTail(), timeZone: utc)
        XCTAssertTrue(g.lines()[0].contains("TLS · user ops · prefix app:"), g.lines()[0])
        XCTAssertTrue(g.lines()[0].contains("READ-ONLY  ● live"), g.lines()[0])
    }

    func testTinyTerminalsNeverCrash() {
        let t = sampleTail()
        for (w, h) in [(0, 0), (1, 1), (10, 3), (19, 6), (20, 6), (30, 8), (45, 9), (300, 100)] {
            var s = makeState(w, h)
            _ = Reducer.reduce(&s, .tailChanged, tail: t)
            send(&s, [.enter, .char("c"), .char("?"), .up, .pageDown], t)
            let g = Screen.render(s, tail: t, timeZone: utc)
            XCTAssertEqual(g.width, w); XCTAssertEqual(g.height, h)
        }
        var s = makeState(30, 8)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        assertSnapshot(Screen.render(s, tail: t, timeZone: utc), named: "events-30x8")
        var tiny = makeState(12, 4)
        _ = Reducer.reduce(&tiny, .resize(width: 12, height: 4), tail: t)
        assertSnapshot(Screen.render(tiny, tail: t, timeZone: utc), named: "too-small")
    }
}

final class TruncatedPayloadTests: XCTestCase {
    func testTheDetailPaneSaysWhatIsStoredAndOffersToWriteIt() {
        var t = ChannelTail(capacity: 10, maxStoredPayload: 100)
        t.append(messages: [msg("workspace:1:events", String(repeating: "x", count: 300_000), at: t0 + 1)])
        var s = makeState(100, 20)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        send(&s, [.enter], t)
        let g = Screen.render(s, tail: t, timeZone: utc)
        XCTAssertTrue(g.text.contains("stored truncated: the first 100 B of 293 KB are kept (w writes what is stored)"), g.text)
        let fx = send(&s, [.char("w")] + typed("/tmp/m.ndjson") + [.enter], t)
        XCTAssertEqual(fx, [.export(path: "/tmp/m.ndjson", .message(seq: 1))])
    }
}
