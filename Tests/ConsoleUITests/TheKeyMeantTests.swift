import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// The key an operator deletes is the key they meant: never the row that happened to sit
/// at the old cursor, never the list row behind an inspector opened with `:`, and a dialog
/// takes results only from its own write.
final class TheKeyMeantTests: XCTestCase {
    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }

    /// 40 keys; among them workspace:4242 and the longer names that contain it.
    func keyspace() -> [KeyInfo] {
        var rows = (1...30).map { info("app:leaderboard:\($0)", "zset", .persistent, 500) }
        rows += ["4242", "424203", "424211", "4242x"].map { info("app:workspace:\($0)", "string", .expiresIn(ms: 250_000), 90) }
        rows += (0..<6).map { info("app:workspace:9\($0)", "string", .expiresIn(ms: 250_000), 90) }
        return rows
    }

    /// The window loaded holds the longer names but not workspace:4242 itself (as on a big
    /// keyspace, where it lies beyond the first rows).
    func loaded() -> AppState {
        var s = makeState(110, 30)
        _ = send(&s, [.char("2")], ChannelTail())
        _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot(keyspace().filter { $0.key.lossyString != "app:workspace:4242" })), tail: ChannelTail())
        return s
    }

    /// `g`, `j`×6, then `/workspace:4242` Enter: the server's rows arrive in pages, and `d`
    /// must name the first match — before, the highlight stayed on row 7 and `d` asked to
    /// delete app:workspace:424203.
    func testANewFilterSelectsTheFirstMatchNotARowAtTheOldPosition() throws {
        var s = loaded()
        _ = send(&s, [.char("g")] + Array(repeating: Key.char("j"), count: 6), ChannelTail())
        XCTAssertEqual(s.keys.cursor, 6)
        let fx = send(&s, [.char("/")] + typed("workspace:4242") + [.enter], ChannelTail())
        guard case .scanKeys(let gen, _, _)? = fx.first else { return XCTFail("\(fx)") }
        // The first page from the server holds some matches; the next, the rest (4242 itself among them).
        let matching = keyspace().filter { $0.key.lossyString.contains("workspace:4242") }
        let later = matching.filter { $0.key.lossyString != "app:workspace:4242" }
        _ = Reducer.reduce(&s, .keysSnapshot(generation: gen, snapshot(Array(later.prefix(2)), filter: "workspace:4242", done: false)), tail: ChannelTail())
        _ = Reducer.reduce(&s, .keysSnapshot(generation: gen, snapshot(matching, filter: "workspace:4242")), tail: ChannelTail())
        XCTAssertEqual(s.keys.cursor, 0)
        XCTAssertEqual(s.keys.selectedKey, Bytes(utf8: "app:workspace:4242"))
        _ = send(&s, [.char("d")], ChannelTail())
        XCTAssertEqual(s.confirm?.subject, "app:workspace:4242")
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        XCTAssertEqual(plan.keys, [Bytes(utf8: "app:workspace:4242")])
    }

    /// The key selected before the filter stays selected when it matches the new filter.
    func testTheKeySelectedBeforeAFilterStaysWhenItMatches() {
        var s = loaded()
        _ = send(&s, [.char("G")], ChannelTail())
        let before = s.keys.selectedKey!
        XCTAssertEqual(before, Bytes(utf8: "app:workspace:95"))
        let fx = send(&s, [.char("/")] + typed("workspace:9") + [.enter], ChannelTail())
        guard case .scanKeys(let gen, _, _)? = fx.first else { return XCTFail() }
        let matching = keyspace().filter { $0.key.lossyString.contains("workspace:9") }
        _ = Reducer.reduce(&s, .keysSnapshot(generation: gen, snapshot(matching, filter: "workspace:9")), tail: ChannelTail())
        XCTAssertEqual(s.keys.selectedKey, before)
        // Once the operator moves, the selection stays on the key they chose.
        _ = send(&s, [.char("k")], ChannelTail())
        let chosen = s.keys.selectedKey
        _ = Reducer.reduce(&s, .keysSnapshot(generation: gen, snapshot(matching + [info("app:workspace:90a", "string", nil, 1)], filter: "workspace:9")), tail: ChannelTail())
        XCTAssertEqual(s.keys.selectedKey, chosen)
    }

    /// `:workspace:4242` opens the inspector on a key that is not the selected row: `d` and
    /// `e` act on the key on screen — before, `d` asked to delete the list row behind it.
    func testDeleteAndExpireActOnTheInspectedKey() throws {
        var s = loaded()
        XCTAssertEqual(s.keys.selectedKey, Bytes(utf8: "app:leaderboard:1"))
        let k = Bytes(utf8: "app:workspace:4242")
        _ = Reducer.reduce(&s, .lookedUp(key: k, found: info("app:workspace:4242", "string", .expiresIn(ms: 250_000), 90), purpose: .open), tail: ChannelTail())
        XCTAssertEqual(s.keys.inspector?.key, k)
        var v = InspectedValue(key: k, type: "string", ttl: .persistent, bytes: 90, encoding: "raw")
        v.readAt = s.now
        _ = Reducer.reduce(&s, .inspected(v, appended: false), tail: ChannelTail())
        _ = send(&s, [.char("d")], ChannelTail())
        XCTAssertEqual(s.confirm?.subject, "app:workspace:4242")
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        XCTAssertEqual(plan.keys, [k])
        // e on the inspected key (a cache entry without TTL): it is the one offered.
        _ = send(&s, [.char("e")], ChannelTail())
        XCTAssertEqual(s.confirm?.subject, "app:workspace:4242")
    }

    /// A confirmation names the key in full, on lines of its own, with its y/n hint: a key
    /// longer than the terminal is wrapped, never cut.
    func testAConfirmationShowsTheWholeKeyAndItsHint() {
        var s = makeState(80, 24)
        _ = send(&s, [.char("2")], ChannelTail())
        let long = "app:workspace:" + String(repeating: "0123456789", count: 19) + "END"
        _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot([info(long, "string", .persistent, 10)])), tail: ChannelTail())
        _ = send(&s, [.char("d")], ChannelTail())
        let g = render(s)
        let text = g.lines().map { $0.trimmingCharacters(in: .whitespaces) }.joined()
        XCTAssertTrue(text.contains(long), "the whole key, wrapped:\n\(g.text)")
        XCTAssertTrue(g.lines().last?.contains(Confirmation.hint) == true, g.text)
        XCTAssertTrue(g.text.contains("Delete this key?"))
    }

    /// Esc on a write still queued (behind other work): it reports that it never started, and
    /// a result from another write (a slow single-key delete) cannot close the dialog.
    func testEachDialogTakesOnlyItsOwnResultsAndAQueuedCancelSaysNothingWasWritten() {
        var s = loaded()
        // A single-key delete, confirmed: id 1, still running.
        _ = send(&s, [.char("d")], ChannelTail())
        guard case .execute(let single, _)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        // A pattern write: dry run, confirmation, running (id 2).
        var fx = send(&s, [.char("D"), .ctrl("u")] + typed("workspace:*") + [.enter], ChannelTail())
        guard case .plan(let id, let req)? = fx.first else { return XCTFail("\(fx)") }
        XCTAssertNotEqual(id, single)
        let plan = WritePlan(request: req, keys: [Bytes(utf8: "app:workspace:1"), Bytes(utf8: "app:workspace:2")])
        _ = Reducer.reduce(&s, .planned(id: id, plan), tail: ChannelTail())
        fx = send(&s, typed("2") + [.enter], ChannelTail())
        XCTAssertEqual(fx, [.execute(id: id, plan)])
        // The single delete's result arrives: it is reported in a line; the dialog stays.
        var r1 = WriteReport(action: .delete, matched: 1)
        r1.deleted = 1
        r1.sample = [Bytes(utf8: "app:leaderboard:1")]
        _ = Reducer.reduce(&s, .written(id: single, r1), tail: ChannelTail())
        guard case .running? = s.write?.phase else { return XCTFail("the dialog must not take another write's result: \(String(describing: s.write?.phase))") }
        // Esc while it is still queued: cancelled before it started.
        XCTAssertEqual(send(&s, [.escape], ChannelTail()), [.cancelWrite(id: id)])
        _ = Reducer.reduce(&s, .writeCancelled(id: id), tail: ChannelTail())
        guard case .done(let r)? = s.write?.phase else { return XCTFail("\(String(describing: s.write?.phase))") }
        XCTAssertTrue(r.cancelled)
        XCTAssertEqual(r.deleted, 0)
        XCTAssertEqual(r.notAttempted, 2)
        XCTAssertTrue(render(s).text.contains("cancelled before it started: nothing written"), render(s).text)
        XCTAssertFalse(render(s).text.contains("Stopping after the current batch"))
        _ = send(&s, [.char("x")], ChannelTail())
        XCTAssertNil(s.write)
    }

    /// The audit log cannot take the intent record: nothing was written, the question stays.
    func testAnAuditRefusalKeepsTheDialogOpen() {
        var s = loaded()
        _ = send(&s, [.char("D"), .ctrl("u")] + typed("workspace:*") + [.enter], ChannelTail())
        let id = s.write!.id
        let plan = WritePlan(request: s.write!.request, keys: [Bytes(utf8: "app:workspace:1")])
        _ = Reducer.reduce(&s, .planned(id: id, plan), tail: ChannelTail())
        _ = send(&s, typed("1") + [.enter], ChannelTail())
        _ = Reducer.reduce(&s, .writeRefused(id: id, "the audit log /x/audit.log cannot be written: No space left on device; nothing was written to Redis"), tail: ChannelTail())
        guard case .confirming? = s.write?.phase else { return XCTFail("\(String(describing: s.write?.phase))") }
        XCTAssertTrue(render(s).text.contains("No space left on device"), render(s).text)
    }

    /// A single-key delete whose reply was lost: the line says so, from the numbers — never
    /// "was already gone" (before, unknown read as already gone).
    func testALostReplyIsReportedAsUnknownNotAlreadyGone() {
        var s = loaded()
        _ = send(&s, [.char("d")], ChannelTail())
        guard case .execute(let id, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        var r = WriteReport(action: .delete, matched: 1)
        r.unknown = 1
        r.sample = plan.keys
        _ = Reducer.reduce(&s, .written(id: id, r), tail: ChannelTail())
        let text = s.flash?.text ?? ""
        XCTAssertTrue(text.contains("reply never arrived") && text.contains("no longer exists") && text.contains("unknown"), text)
        XCTAssertFalse(text.contains("already gone"), text)
        // Unchecked (the server never came back): whether it went is unknown.
        _ = send(&s, [.char("d")], ChannelTail())
        guard case .execute(let id2, _)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        r.unresolved = 1
        _ = Reducer.reduce(&s, .written(id: id2, r), tail: ChannelTail())
        XCTAssertTrue(s.flash?.text.contains("could not be asked again") == true, s.flash?.text ?? "")
    }
}
