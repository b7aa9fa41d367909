import XCTest
import Foundation
@testable import ConsoleUI
@testable import OpsCore
import RedisProtocol

/// Overlays (help, the audit log) cover what is under them: no highlight, no text and no
/// border of theirs is lost to the view behind.
final class OverlayTests: XCTestCase {
    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }

    func keysWithASelectedRow(_ w: Int, _ h: Int) -> AppState {
        var s = makeState(w, h)
        send(&s, [.char("2")], ChannelTail())
        _ = Reducer.reduce(&s, .keysSnapshot(generation: s.keys.generation, snapshot(sampleKeys)), tail: ChannelTail())
        send(&s, [.down, .down, .down], ChannelTail())
        return s
    }

    /// The frame's rows, from its top border to its bottom border.
    func frameRows(_ g: CellGrid) -> ClosedRange<Int> {
        let lines = g.lines()
        let top = lines.firstIndex { $0.contains("┌") }!, bottom = lines.lastIndex { $0.contains("└") }!
        return top...bottom
    }

    func testHelpHidesTheSelectedRowUnderIt() {
        var s = keysWithASelectedRow(100, 30)
        XCTAssertTrue((0..<30).contains { render(s).selectionLine($0).contains("#") }, "a row is selected before")
        send(&s, [.char("?")], ChannelTail())
        let g = render(s)
        // At 100 columns the box is 98 wide, from column 1 to 98.
        for y in frameRows(g) {
            let sel = Array(g.selectionLine(y))
            XCTAssertFalse(sel[1...98].contains("#"), "row \(y) is highlighted through the help box: \(String(sel))")
        }
    }

    func testTheAuditLogCoversTheViewAndKeepsItsFrame() throws {
        var s = keysWithASelectedRow(90, 20)
        let keys = (1...40).map { #""app:workspace:\#($0)""# }.joined(separator: ",")
        let records = [
            #"{"ts":"2026-11-26T16:05:00.000Z","action":"invalidate","local_user":"ops","acl_user":"default","server":"redis://127.0.0.1:6379","pattern":"workspace:*","keys":[\#(keys)],"dry_run":true,"matched":40,"deleted":0,"already_gone":0,"failed":0,"unknown":0,"cancelled":false}"#,
            #"{"ts":"2026-11-26T16:01:00.000Z","action":"reset","local_user":"ops","acl_user":"default","server":"redis://127.0.0.1:6379","keys":["app:ratelimit:ip:10.0.0.1"],"dry_run":false,"matched":1,"deleted":1,"already_gone":0,"failed":0,"unknown":0,"cancelled":false}"#,
        ]
        let entries = try records.map { try XCTUnwrap(AuditEntry(try XCTUnwrap(JSONParser.parse(Bytes(utf8: $0))))) }
        _ = Reducer.reduce(&s, .audit(entries, path: "/var/log/redis-ops/audit.log"), tail: ChannelTail())
        let g = render(s)
        assertSnapshot(g, named: "audit")
        let lines = g.lines()
        let rows = frameRows(g)
        XCTAssertEqual(rows, 1...18, "the whole screen between the header and the footer")
        for y in rows.dropFirst().dropLast() {
            XCTAssertTrue(lines[y].hasPrefix("│") && lines[y].hasSuffix("│"), "row \(y) keeps both borders: \(lines[y])")
            let sel = g.selectionLine(y)
            XCTAssertEqual(sel.contains("#"), lines[y].contains("16:05:00"), "only the audit cursor is highlighted: row \(y)")
        }
        XCTAssertTrue(g.text.contains("app:workspace:1"))
        XCTAssertTrue(g.text.contains("40 keys in the record"))
    }

    /// `:doctor` opens the overlay and asks for the walk once; steps arrive and are drawn,
    /// the server's words escaped, a failure's hint under it, the verdict in the title.
    func testDoctorShowsStepsAsTheyArriveEscapedWithHints() {
        var s = makeState(80, 20)
        s.prompt = Prompt(purpose: .command, text: "doctor")
        let effects = Reducer.reduce(&s, .key(.enter), tail: ChannelTail())
        XCTAssertEqual(effects, [.runDoctor])
        XCTAssertTrue(render(s).lines().joined().contains("checking… (0 of 9 steps)"))
        // R while the walk runs does not start another.
        XCTAssertEqual(Reducer.reduce(&s, .key(.char("R")), tail: ChannelTail()), [])
        _ = Reducer.reduce(&s, .doctorStep(DoctorStep("dns", .ok, "127.0.0.1 → 127.0.0.1")), tail: ChannelTail())
        _ = Reducer.reduce(&s, .doctorStep(DoctorStep("auth", .fail, "WRONGPASS \u{1b}[2Jinvalid", hint: "check the token")), tail: ChannelTail())
        _ = Reducer.reduce(&s, .doctorDone, tail: ChannelTail())
        let text = render(s).lines().joined(separator: "\n")
        XCTAssertTrue(text.contains("the console cannot work here: auth failed"), text)
        XCTAssertTrue(text.contains("ok   dns      127.0.0.1 → 127.0.0.1"), text)
        XCTAssertTrue(text.contains("FAIL auth     WRONGPASS \\e[2Jinvalid"), text)
        XCTAssertFalse(text.contains("\u{1b}"))
        XCTAssertTrue(text.contains("→ check the token"), text)
        // R walks again; Esc closes.
        XCTAssertEqual(Reducer.reduce(&s, .key(.char("R")), tail: ChannelTail()), [.runDoctor])
        XCTAssertEqual(s.doctor?.steps, [])
        _ = Reducer.reduce(&s, .key(.escape), tail: ChannelTail())
        XCTAssertNil(s.doctor)
    }
}
