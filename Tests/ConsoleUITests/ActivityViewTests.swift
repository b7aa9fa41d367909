import XCTest
import Foundation
@testable import ConsoleUI
import OpsCore
import RedisProtocol

/// The Activity view from counts the test controls: rates, trend, and the flags.
final class ActivityViewTests: XCTestCase {
    func render(_ s: AppState) -> CellGrid { Screen.render(s, tail: ChannelTail(), timeZone: utc) }
    func b(_ s: String) -> Bytes { Bytes(utf8: s) }

    /// Cumulative counts after `sec` seconds at these per-second rates [set, expired, evicted, del, expire, other].
    func snap(_ sec: Int, _ perSecond: [String: [Int]]) -> ActivitySnapshot {
        var totals: [Bytes: [Int]] = [:]
        for (ns, r) in perSecond { totals[b(ns)] = r.map { $0 * sec } }
        return ActivitySnapshot(at: t0 + Double(sec), totals: totals, events: totals.values.reduce(0) { $0 + $1.reduce(0, +) })
    }

    func testOffExplainsWhatToSetAndNeverSetsIt() {
        var s = makeState(110, 24)
        XCTAssertEqual(send(&s, [.char("6")], ChannelTail()), [.startActivity])
        _ = Reducer.reduce(&s, .activityNotify(value: "", error: nil), tail: ChannelTail())
        XCTAssertFalse(s.activity.running, "nothing to count")
        let g = render(s)
        assertSnapshot(g, named: "activity-off")
        XCTAssertTrue(g.text.contains("set it to 'Eg$xe'"), g.text)
        XCTAssertTrue(g.text.contains("parameter group"))
        // :notify on asks first; read-only refuses.
        send(&s, [.char(":")] + typed("notify on") + [.enter], ChannelTail())
        XCTAssertEqual(s.confirm?.subject, "notify-keyspace-events '' → 'Eg$xe'")
        guard case .execute(_, let plan)? = send(&s, [.char("y")], ChannelTail()).first else { return XCTFail() }
        XCTAssertEqual(plan.request.action, .config(parameter: "notify-keyspace-events", value: "Eg$xe", previous: ""))
        var r = WriteReport(action: plan.request.action, matched: 1)
        r.updated = 1
        XCTAssertEqual(WriteFlowModule.singleWriteDone(r, &s), [.startActivity])
        XCTAssertEqual(s.activity.restore, "", "put back on exit")
        // A value short of a class is "off" too, and :notify on adds only what is missing.
        XCTAssertEqual(KeyspaceNotifications.missing("KEA"), "")
        XCTAssertEqual(KeyspaceNotifications.missing("Ex"), "g$e")
        XCTAssertEqual(KeyspaceNotifications.merged("Kl"), "KlEg$xe")
        var ro = makeState(110, 24)
        ro.session.readOnly = true
        send(&ro, [.char(":")] + typed("notify on") + [.enter], ChannelTail())
        XCTAssertNil(ro.confirm)
        XCTAssertTrue(render(ro).text.contains("read-only"))
    }

    func testRatesTrendAndFlags() {
        var s = makeState(130, 24)
        send(&s, [.char("6")], ChannelTail())
        _ = Reducer.reduce(&s, .activityNotify(value: "Eg$xe", error: nil), tail: ChannelTail())
        XCTAssertTrue(s.activity.running)
        XCTAssertEqual(Reducer.reduce(&s, .tick(t0 + 11), tail: ChannelTail()).filter { $0 == .readActivity }, [.readActivity], "read every second")
        // Five minutes of a quiet lock namespace, then a burst: a stampede.
        for sec in 0...300 {
            var r: [String: [Int]] = ["workspace": [40, 30, 0, 0, 40, 0], "lock": [1, 0, 0, 0, 1, 0], "session": [2, 0, 3, 0, 0, 0]]
            if sec > 290 { r["lock"] = [1, 0, 0, 0, 1, 0] }
            _ = Reducer.reduce(&s, .activity(snap(sec, r)), tail: ChannelTail())
        }
        var last = s.activity.history.latest!
        for sec in 301...311 {
            last.at = t0 + Double(sec)
            last.totals[b("lock")]![0] += 60
            last.totals[b("workspace")]![2] += 5      // evictions of cache entries
            last.totals[b("session")]![2] += 3
            _ = Reducer.reduce(&s, .activity(last), tail: ChannelTail())
        }
        s.now = t0 + 311
        let g = render(s)
        assertSnapshot(g, named: "activity")
        let row = { (ns: String) in g.lines().first { $0.hasPrefix(ns + " ") } ?? "" }
        XCTAssertTrue(row("workspace").contains("evicted before TTL: maxmemory too small"), row("workspace"))
        XCTAssertTrue(row("lock").contains("stampede?"), row("lock"))
        XCTAssertTrue(row("session").contains("evictions"), row("session"))
        XCTAssertTrue(g.lines()[2].contains("locks acquired 60.0/s"), g.lines()[2])
        // The history is bounded, whatever the rate.
        XCTAssertLessThanOrEqual(s.activity.history.snapshots.count, ActivityHistory.keep)
    }

    /// A burst before the first tick is measured from the start, not lost in the baseline.
    func testABurstBeforeTheFirstReadingStillHasARate() {
        var s = makeState(130, 24)
        send(&s, [.char("6")], ChannelTail())
        _ = Reducer.reduce(&s, .activityNotify(value: "Eg$xe", error: nil), tail: ChannelTail())
        _ = Reducer.reduce(&s, .activity(ActivitySnapshot(at: s.now + 0.3, totals: [b("workspace"): [50, 0, 0, 50, 0, 0]], events: 100)), tail: ChannelTail())
        _ = Reducer.reduce(&s, .activity(ActivitySnapshot(at: s.now + 1.3, totals: [b("workspace"): [50, 0, 0, 50, 0, 0]], events: 100)), tail: ChannelTail())
        let r = s.activity.history.rate(b("workspace"), .set, over: 10)
        XCTAssertEqual(r ?? 0, 50 / 1.3, accuracy: 0.01)
    }

    func testARefillAfterAnInvalidationIsNamed() {
        var s = makeState(130, 24)
        send(&s, [.char("6")], ChannelTail())
        _ = Reducer.reduce(&s, .activityNotify(value: "KEA", error: nil), tail: ChannelTail())
        for sec in 0...20 { _ = Reducer.reduce(&s, .activity(snap(sec, ["workspace": [0, 0, 0, 0, 0, 0]])), tail: ChannelTail()) }
        s.now = t0 + 20
        ActivityModule.invalidated("workspace:*", &s)
        for sec in 21...25 { _ = Reducer.reduce(&s, .activity(snap(sec - 20, ["workspace": [200, 0, 0, 0, 0, 0]]).with(at: t0 + Double(sec))), tail: ChannelTail()) }
        s.now = t0 + 25
        let line = render(s).lines().first { $0.hasPrefix("workspace ") } ?? ""
        XCTAssertTrue(line.contains("refill: invalidated 5s00ms ago") || line.contains("refill: invalidated"), line)
    }
}

extension ActivitySnapshot {
    func with(at t: Double) -> ActivitySnapshot { var c = self; c.at = t; return c }
}
