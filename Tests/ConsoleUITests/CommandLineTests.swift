import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// The command line (`:`), as in vim and k9s.
final class CommandLineTests: XCTestCase {
    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }

    func testAKeyNameOpensIt_WithOrWithoutThePrefix() {
        var s = makeState(110, 20)
        XCTAssertEqual(send(&s, [.char(":")] + typed("workspace:42") + [.enter], ChannelTail()), [.lookup(Bytes(utf8: "app:workspace:42"), .open)])
        XCTAssertEqual(send(&s, [.char(":")] + typed("key app:workspace:42") + [.enter], ChannelTail()), [.lookup(Bytes(utf8: "app:workspace:42"), .open)],
                       "the prefix is not added twice")
        XCTAssertEqual(send(&s, [.char(":")] + typed("get workspace:42") + [.enter], ChannelTail()), [.lookup(Bytes(utf8: "app:workspace:42"), .open)])
        // Found: the Keys view with the inspector on it.
        let fx = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:42"), found: info("app:workspace:42", "string", .expiresIn(ms: 200_000), 90), purpose: .open), tail: ChannelTail())
        XCTAssertEqual(s.view, .keys)
        XCTAssertTrue(fx.contains(.inspect(Bytes(utf8: "app:workspace:42"), cursor: nil)), "\(fx)")
    }

    func testAMissingKeySaysNotCached() {
        var s = makeState(110, 20)
        send(&s, [.char(":")] + typed("workspace:404") + [.enter], ChannelTail())
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:404"), found: nil, purpose: .open), tail: ChannelTail())
        XCTAssertEqual(s.view, .events, "nothing to open: the view stays")
        XCTAssertTrue(render(s).text.contains("app:workspace:404 is not cached (no such key)"), render(s).text)
    }

    func testTTLSaysHowOldTheCachedValueIs() {
        var s = makeState(120, 20)
        XCTAssertEqual(send(&s, [.char(":")] + typed("ttl workspace:42") + [.enter], ChannelTail()), [.lookup(Bytes(utf8: "app:workspace:42"), .ttl)])
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:42"), found: info("app:workspace:42", "string", .expiresIn(ms: 200_000), 90), purpose: .ttl), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("app:workspace:42: cached ~1m40s ago · TTL 3m20s"), render(s).text)
        // With the application's `updatedAt`: the value's own age first.
        send(&s, [.char(":")] + typed("ttl workspace:42") + [.enter], ChannelTail())
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:42"), found: info("app:workspace:42", "string", .expiresIn(ms: 296_000), 90),
                                         purpose: .ttl, updatedAt: s.now - 7 * 3600), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("app:workspace:42: value 7h00m old · cached ~4s ago · TTL 4m56s · ! older than the 5m00s TTL: missed invalidation?"), render(s).text)
        // A fresh value is not flagged.
        send(&s, [.char(":")] + typed("ttl workspace:42") + [.enter], ChannelTail())
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:42"), found: info("app:workspace:42", "string", .expiresIn(ms: 296_000), 90),
                                         purpose: .ttl, updatedAt: s.now - 30), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("app:workspace:42: value 30s old · cached ~4s ago · TTL 4m56s"), render(s).text)
        XCTAssertFalse(render(s).text.contains("missed invalidation"), render(s).text)
        // A cache entry without a TTL is named as the leak it is.
        send(&s, [.char(":")] + typed("ttl workspace:leaked") + [.enter], ChannelTail())
        _ = Reducer.reduce(&s, .lookedUp(key: Bytes(utf8: "app:workspace:leaked"), found: info("app:workspace:leaked", "string", .persistent, 90), purpose: .ttl), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("app:workspace:leaked: TTL none"), render(s).text)
    }

    func testViewsAuditHelpAndQuit() {
        var s = makeState(110, 20)
        send(&s, [.char(":")] + typed("locks") + [.enter], ChannelTail())
        XCTAssertEqual(s.view, .locks)
        XCTAssertEqual(send(&s, [.char(":")] + typed("audit") + [.enter], ChannelTail()), [.readAudit])
        XCTAssertNotNil(s.audit)
        s.audit = nil
        send(&s, [.char(":")] + typed("help") + [.enter], ChannelTail())
        XCTAssertTrue(s.helpOpen)
        s.helpOpen = false
        XCTAssertEqual(send(&s, [.char(":")] + typed("q") + [.enter], ChannelTail()), [.quit])
    }

    func testTabCompletesFromTheServer() {
        var s = makeState(110, 20)
        XCTAssertEqual(send(&s, [.char(":")] + typed("ttl workspace:4") + [.tab], ChannelTail()), [.complete("ttl workspace:4")])
        // The common part goes into the line; the choices are shown, escaped.
        let keys = ["app:workspace:42", "app:workspace:420", "app:workspace:4\u{1B}[2J"].map { Bytes(utf8: $0) }
        _ = Reducer.reduce(&s, .completions(prefix: "ttl workspace:4", KeyCompletions(keys: keys, complete: false)), tail: ChannelTail())
        XCTAssertEqual(s.prompt?.text, "ttl workspace:42", "the hostile name cannot be typed back, so it does not shorten the common part")
        let footer = render(s).lines()[18]
        XCTAssertTrue(footer.contains("3+ keys (part of the keyspace searched): workspace:4\\e[2J  workspace:42  workspace:420"), footer)
        // A late answer for what is no longer typed is ignored.
        send(&s, [.char("0")], ChannelTail())
        _ = Reducer.reduce(&s, .completions(prefix: "ttl workspace:42", KeyCompletions(keys: [Bytes(utf8: "app:workspace:42")], complete: true)), tail: ChannelTail())
        XCTAssertEqual(s.prompt?.text, "ttl workspace:420")
        // One match: completed whole.
        _ = send(&s, [.tab], ChannelTail())
        _ = Reducer.reduce(&s, .completions(prefix: "ttl workspace:420", KeyCompletions(keys: [Bytes(utf8: "app:workspace:4201")], complete: true)), tail: ChannelTail())
        XCTAssertEqual(s.prompt?.text, "ttl workspace:4201")
        // None in a partial search says the search was partial.
        _ = send(&s, [.tab], ChannelTail())
        _ = Reducer.reduce(&s, .completions(prefix: "ttl workspace:4201", KeyCompletions(keys: [], complete: false)), tail: ChannelTail())
        XCTAssertTrue(render(s).text.contains("in the part of the keyspace searched"), render(s).text)
    }
}
