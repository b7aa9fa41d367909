import XCTest
@testable import RedisClient

/// The pacer decides how much each request of ours asks of the server (SCAN's COUNT, a
/// write's batch) and how often: from the server's time, never from the distance to it.
/// Its clock is passed in, so these run the same on any machine.
final class PacerTests: XCTestCase {
    let budget = 0.002

    func testScanCountGrowsWhenTheServerIsFastAndShrinksWhenItIsSlow() {
        let p = Pacer(budget: budget, now: 0)
        let first = p.units(.scan, limits: 10...50_000)
        XCTAssertEqual(first, 250, "a quarter of the budget at the cautious starting estimate (2 µs a key)")
        // Fast: 0.6 µs a key on the server. The estimate comes down step by step, COUNT up.
        var last = first
        for _ in 0..<30 {
            p.observe(.scan, units: last, rtt: p.baseRTT + Double(last) * 0.6e-6)
            let next = p.units(.scan, limits: 10...50_000)
            XCTAssertGreaterThanOrEqual(next, last)
            last = next
        }
        XCTAssertGreaterThan(last, 750, "0.5 ms / 0.6 µs = 833")
        XCTAssertLessThanOrEqual(last, 834)
        // Slow (a dense or rehashing table): 5 µs a key. Up quickly: within two replies
        // the COUNT keeps one SCAN near a quarter of the budget again.
        p.observe(.scan, units: last, rtt: p.baseRTT + Double(last) * 5e-6)
        p.observe(.scan, units: last, rtt: p.baseRTT + Double(last) * 5e-6)
        let slow = p.units(.scan, limits: 10...50_000)
        XCTAssertLessThan(Double(slow) * 5e-6, budget, "one SCAN stays under the budget")
        XCTAssertLessThan(slow, last / 4)
        // The floor holds however slow the server.
        for _ in 0..<10 { p.observe(.scan, units: slow, rtt: p.baseRTT + 0.5) }
        XCTAssertEqual(p.units(.scan, limits: 10...50_000), 10)
    }

    func testTheRoundTripIsNotTakenForServerTime() {
        // Through a 50 ms tunnel: the PINGs set the baseline, and a reply that took 50.2 ms
        // for 1000 keys means 0.2 µs a key on the server, not 50 µs.
        let far = Pacer(budget: budget, now: 0)
        for _ in 0..<8 { far.observePing(0.050 + Double.random(in: 0...0.002)) }
        XCTAssertEqual(far.baseRTT, 0.050, accuracy: 0.0021)
        for _ in 0..<30 { far.observe(.scan, units: 1000, rtt: far.baseRTT + 0.0002) }
        let near = Pacer(budget: budget, now: 0)
        near.observePing(0.0001)
        for _ in 0..<30 { near.observe(.scan, units: 1000, rtt: near.baseRTT + 0.0002) }
        XCTAssertEqual(far.units(.scan, limits: 10...50_000), near.units(.scan, limits: 10...50_000),
                       "the same server time gives the same COUNT, 100 µs or 50 ms away")
        XCTAssertGreaterThan(far.units(.scan, limits: 10...50_000), 900, "not the 10 that 50 µs a key would give")
        XCTAssertEqual(far.overBudget, 0)
    }

    func testTheServersOwnAccountingReplacesTheEstimate() {
        let p = Pacer(budget: budget, now: 0)
        func stats(scanCalls: Int, scanUsec: Int) -> String {
            "# Commandstats\r\ncmdstat_scan:calls=\(scanCalls),usec=\(scanUsec),usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
                "cmdstat_ping:calls=3,usec=1,usec_per_call=0.33\r\n"
        }
        p.statsSent(now: 0)
        p.observeStats(stats(scanCalls: 100, scanUsec: 5000))   // the baseline sample
        // Ten SCANs of COUNT 500 in the window, and the server says they took 1,500 µs in all:
        // 150 µs a call, 0.3 µs a key — whatever the replies' times said.
        for _ in 0..<10 {
            p.sent(.scan, units: 500, calls: 1, now: 0.1)
            p.observe(.scan, units: 500, rtt: p.baseRTT + 0.040)   // a slow network, not the server
        }
        p.statsSent(now: 0.2)
        p.observeStats(stats(scanCalls: 110, scanUsec: 6500))
        XCTAssertEqual(p.estimate(.scan, units: 1), 0.3e-6, accuracy: 1e-9)
        XCTAssertEqual(p.units(.scan, limits: 10...50_000), Int(0.0005 / 0.3e-6))
        // Once measured, a reply's time teaches nothing more.
        p.observe(.scan, units: 500, rtt: 1)
        XCTAssertEqual(p.estimate(.scan, units: 1), 0.3e-6, accuracy: 1e-9)
        // Refused INFO: the round-trip estimate stays in charge, and INFO is not asked again.
        let q = Pacer(budget: budget, now: 0)
        q.observeStats(nil)
        XCTAssertFalse(q.statsDue(now: 100))
    }

    func testBurstsStayWithinTheBudgetAndTheDutyBoundsTheRate() {
        let p = Pacer(budget: budget, duty: 0.5, now: 0)
        // Sized to half the budget (1 ms a command): two fit in the initial burst, the third waits.
        let units = Int((0.001 / p.estimate(.write, units: 1)).rounded())
        let cost = p.estimate(.write, units: units)
        XCTAssertEqual(cost, 0.001, accuracy: 1e-9)
        XCTAssertEqual(p.delay(.write, cost: cost, now: 0), 0)
        p.sent(.write, units: units, calls: 1, now: 0)
        XCTAssertEqual(p.delay(.write, cost: cost, now: 0), 0)
        p.sent(.write, units: units, calls: 1, now: 0)
        let wait = p.delay(.write, cost: cost, now: 0)
        XCTAssertEqual(wait, cost / 0.5, accuracy: 1e-9, "refilled at the duty: 1 ms of server time per 2 ms")
        // Over a long run the server time we ask for is the duty's share of the wall time.
        var now = 0.0, spent = 0.0
        while now < 10 {
            let d = p.delay(.write, cost: cost, now: now)
            if d > 0 { now += max(d, 1e-6); continue }   // a wait rounded to nothing still moves the clock
            p.sent(.write, units: units, calls: 1, now: now)
            spent += cost
        }
        XCTAssertEqual(spent / now, 0.5, accuracy: 0.02)
        // Reads (TYPE, PTTL… in small flights) are never held back.
        XCTAssertEqual(p.delay(.read, cost: 1, now: now), 0)
    }
}
