import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// 80x24, the terminal a laptop's split pane gives: every view keeps what matters most.
final class NarrowTerminalTests: XCTestCase {
    func render(_ s: AppState, _ t: ChannelTail = ChannelTail()) -> CellGrid { Screen.render(s, tail: t, timeZone: utc) }

    func testEvents() {
        let t = sampleTail()
        var s = makeState(80, 24)
        _ = Reducer.reduce(&s, .tailChanged, tail: t)
        let g = render(s, t)
        assertSnapshot(g, named: "narrow-events")
        XCTAssertTrue(g.lines()[22].trimmingCharacters(in: .whitespaces).hasSuffix("? help"), g.lines()[22])
    }

    func testKeys() {
        var s = loadedKeysState(80, 24)
        let long = "app:workspace:8f14e45fceea167a5a36dedd4bea2543"
        _ = Reducer.reduce(&s, .keysSnapshot(generation: 1, snapshot(sampleKeys + [info(long, "string", .expiresIn(ms: 100_000), 90)])), tail: ChannelTail())
        let g = render(s)
        assertSnapshot(g, named: "narrow-keys")
        XCTAssertTrue(g.text.contains(long + " "), "a long key name is shown whole\n\(g.text)")
        XCTAssertFalse(g.lines()[3].contains("KIND"), "KIND gives way first")
        XCTAssertTrue(g.text.contains("no TTL: leak?"), "what breaks the conventions stays")
        XCTAssertTrue(g.lines()[22].trimmingCharacters(in: .whitespaces).hasSuffix("? help"), g.lines()[22])
        // The key name keeps most of the width; the lesser columns give way first.
        let header = g.lines()[3]
        let keyWidth = header.distance(from: header.startIndex, to: header.range(of: "KIND")?.lowerBound ?? header.endIndex)
        XCTAssertGreaterThanOrEqual(keyWidth, long.count, header)
        XCTAssertTrue(g.text.contains("app:ratelimit:ip:1.2.3.4"), "a full key name fits")
        send(&s, [.enter], ChannelTail())
        assertSnapshot(render(s), named: "narrow-keys-inspector")
    }

    func testRateLimits() {
        var s = makeState(80, 24)
        _ = Reducer.reduce(&s, .key(.char("3")), tail: ChannelTail())
        _ = Reducer.reduce(&s, reading(sampleCounters()), tail: ChannelTail())
        let g = render(s)
        assertSnapshot(g, named: "narrow-ratelimits")
        XCTAssertTrue(g.lines()[22].trimmingCharacters(in: .whitespaces).hasSuffix("? help"), g.lines()[22])
        // A column's header shows only when its values do.
        let header = g.lines()[3]
        for col in header.split(separator: " ") where col.count > 1 {
            XCTAssertNotNil(header.range(of: String(col)), String(col))
        }
        XCTAssertTrue(g.text.contains("BLOCKED"))
        XCTAssertTrue(g.text.contains("75/60"))
    }

    func testLocksAndServer() {
        var s = makeState(80, 24)
        _ = Reducer.reduce(&s, .key(.char("5")), tail: ChannelTail())
        for (i, t) in [0.0, 2, 4, 6, 8, 10, 12].enumerated() {
            let ov = ServerOverview(info: ServerInfo(text: serverInfo(1000 + i * 90, 100 + i * 10, i * 4, 1_500_000 + i * 1000 * (i % 3))), infoError: nil,
                                    maxmemoryPolicy: "allkeys-lru", maxmemoryPolicySource: "INFO")
            s.now = t0 + t + 0.5
            _ = Reducer.reduce(&s, .server(ServerReading(sample: ServerSample(at: t0 + t, overview: ov))), tail: ChannelTail())
        }
        let g = render(s)
        assertSnapshot(g, named: "narrow-server")
        XCTAssertTrue(g.lines()[22].trimmingCharacters(in: .whitespaces).hasSuffix("? help"), g.lines()[22])
        // Every trend ends in the same column (the newest sample), wide or narrow.
        for width in [80, 132, 200] {
            var w = s
            w.width = width
            let lines = render(w).lines()
            let ends = ["hit ratio", "keys/s", "load", "clients"].map { label -> Int in
                let l = lines.first { $0.hasPrefix(label) }!
                return Array(l).lastIndex { "▁▂▃▄▅▆▇█".contains($0) } ?? -1
            }
            XCTAssertTrue(ends.allSatisfy { $0 > 0 && $0 == ends[0] }, "at \(width): \(ends)\n\(lines.joined(separator: "\n"))")
            if width >= 132 {
                let memory = lines.first { $0.hasPrefix("memory") }!
                XCTAssertEqual(Array(memory).lastIndex { "▁▂▃▄▅▆▇█".contains($0) }, ends[0], "the memory trend too, at \(width)")
            }
        }
    }

    /// `R rescan` is in the footer of Keys, Locks and Rate limits at any width it fits in.
    func testRescanStaysInTheFooterWhenItNarrows() {
        for (key, view) in [("2", "Keys"), ("3", "Rate limits"), ("4", "Locks")] {
            for width in [60, 80, 100, 160] {
                var s = makeState(width, 24)
                send(&s, [.char(Character(key))], ChannelTail())
                let footer = render(s).lines()[22]
                XCTAssertTrue(footer.contains("R rescan"), "\(view) at \(width): \(footer)")
                XCTAssertTrue(footer.hasSuffix("? help"), "\(view) at \(width): \(footer)")
            }
        }
    }

    func testHelpIsSizedToTheTerminalAndWrapsNotCuts() {
        var narrow = makeState(80, 24)
        send(&narrow, [.char("2"), .char("?")], ChannelTail())
        let g = render(narrow)
        assertSnapshot(g, named: "narrow-help")
        XCTAssertTrue(g.text.contains("Help · Keys"), "titled once, for the view on screen")
        // Wide: one line per key, nothing wrapped, the box wider than the old fixed 84 columns.
        var wide = makeState(250, 70)
        send(&wide, [.char("2"), .char("?")], ChannelTail())
        let w = render(wide)
        let top = w.lines().first { $0.contains("Help · Keys") }!
        XCTAssertGreaterThan(top.trimmingCharacters(in: .whitespaces).count, 84, top)
        for b in Bindings.active(in: .keys) {
            XCTAssertTrue(w.text.contains(b.help), "“\(b.help)” on one line")
        }
    }
}
