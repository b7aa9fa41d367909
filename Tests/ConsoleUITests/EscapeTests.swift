import XCTest
@testable import ConsoleUI
import RedisProtocol

final class EscapeTests: XCTestCase {
    func esc(_ b: [UInt8]) -> String { Escaper.string(b) }

    func testC0ControlsAndDEL() {
        XCTAssertEqual(esc(Array("a\u{1B}]0;pwned\u{07}\u{1B}[2J".utf8)), "a\\e]0;pwned\\x07\\e[2J")
        XCTAssertEqual(esc([0x00, 0x0A, 0x0D, 0x09, 0x7F]), "\\x00\\n\\r\\t\\x7f")
    }

    func testC1ControlsAsUTF8AndAsRawBytes() {
        XCTAssertEqual(esc(Array("x\u{9B}2J".utf8)), "x\\u009b2J", "CSI as a UTF-8 C1 control")
        XCTAssertEqual(esc([0x78, 0x9B, 0x32]), "x\\x9b2", "a raw 0x9b byte is invalid UTF-8")
    }

    func testInvalidUTF8() {
        XCTAssertEqual(esc([0xFF, 0xC3, 0x28, 0xE2, 0x82]), "\\xff\\xc3(\\xe2\\x82")
        XCTAssertEqual(esc([0xED, 0xA0, 0x80]), "\\xed\\xa0\\x80", "surrogates are invalid")
        XCTAssertEqual(esc([0xC0, 0xAF]), "\\xc0\\xaf", "overlong encodings are invalid")
    }

    func testBidiAndZeroWidth() {
        XCTAssertEqual(esc(Array("abc\u{202E}def".utf8)), "abc\\u202edef")
        XCTAssertEqual(esc(Array("a\u{200B}b\u{2066}c\u{FEFF}".utf8)), "a\\u200bb\\u2066c\\ufeff")
        XCTAssertEqual(esc(Array("x\u{200D}y".utf8)), "x\\u200dy")
    }

    func testBackslashIsDoubledSoEscapesAreUnambiguous() {
        XCTAssertEqual(esc(Array("a\\e".utf8)), "a\\\\e")
        XCTAssertEqual(Escaper.string(Array("a\\e".utf8), escapeBackslash: false), "a\\e")
    }

    func testPrintableUnicodeKeptAndMeasured() {
        XCTAssertEqual(esc(Array("héllo 日本 🙂".utf8)), "héllo 日本 🙂")
        XCTAssertEqual(displayWidth("日本"), 4)
        XCTAssertEqual(displayWidth("🙂"), 2)
        XCTAssertEqual(displayWidth("e\u{301}"), 1, "combining mark has no width")
    }

    func testCombiningPilesAreEscaped() {
        let zalgo = "a" + String(repeating: "\u{301}", count: 6)
        let out = esc(Array(zalgo.utf8))
        XCTAssertTrue(out.hasPrefix("a\u{301}\u{301}\u{301}\\u0301"), out)
        XCTAssertEqual(esc(Array("\u{301}x".utf8)), "\\u0301x", "a combining mark without a base is escaped")
    }

    func testEscapesAreMarkedAsSuch() {
        let runs = Escaper.runs(Array("ok\u{1B}ok".utf8))
        XCTAssertEqual(runs, [TextRun("ok"), TextRun("\\e", isEscape: true), TextRun("ok")])
    }

    func testNothingDangerousSurvives() {
        // Every byte value, alone and in pairs: the output holds no control character.
        var all: [UInt8] = []
        for a in 0...255 { all.append(UInt8(a)); for b in [0x80, 0x9B, 0xC2, 0xE2] { all.append(UInt8(a)); all.append(UInt8(b)) } }
        for u in Escaper.string(all).unicodeScalars {
            XCTAssertFalse(u.value < 0x20 || (0x7F...0x9F).contains(u.value) || (0x202A...0x202E).contains(u.value), "U+\(String(u.value, radix: 16))")
        }
    }

    func testGridNeverHoldsAControlCharacter() {
        // Even text a view forgot to escape cannot reach the terminal with controls in it.
        var g = CellGrid(width: 30, height: 1)
        // (A zero-width joiner extends the grapheme before it, so it arrives inside a Character.)
        g.put(0, 0, "a\u{1B}]0;x\u{07}\r\nb\u{202E}c\u{200B}d\u{9B}e\u{301}f\u{200D}g")
        XCTAssertEqual(g.lines(), ["a]0;xbcde\u{301}fg"])
        for x in 0..<30 { for u in g[x, 0].text.unicodeScalars {
            XCTAssertFalse(u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x202E || u.value == 0x200B || u.value == 0x200D)
        } }
    }

    func testGridPutsWideCharactersAndClips() {
        var g = CellGrid(width: 6, height: 1)
        let end = g.put(0, 0, "a日本b")
        XCTAssertEqual(end, 6)
        XCTAssertEqual(g.lines(), ["a日本b"])
        var h = CellGrid(width: 4, height: 1)
        h.put(0, 0, "ab日本")
        XCTAssertEqual(h.lines(), ["ab日"])
        var k = CellGrid(width: 3, height: 1)
        k.put(0, 0, "ab日")
        XCTAssertEqual(k.lines(), ["ab"], "a wide character that does not fit becomes a space")
        var e = CellGrid(width: 8, height: 1)
        e.put(0, 0, runs: Escaper.runs(Array("abcdefghij".utf8)), .normal)
        XCTAssertEqual(e.lines(), ["abcdefg…"])
    }
}
