import XCTest
@testable import OpsCore
import RedisProtocol

/// One meaning for each state word, wherever it is shown: the console, `ratelimits` text and
/// `ratelimits --json`; filters read one way in the console and headless.
final class ConventionStateTests: XCTestCase {
    func counter(_ count: Int64?, _ ttl: TTLState?) -> RateLimitCounter {
        RateLimitCounter(key: Bytes(utf8: "app:ratelimit:user:1"), identifier: Bytes(utf8: "user:1"), kind: .user,
                         count: count, limit: 60, window: 60, ttl: ttl, readAt: 0)
    }

    func testBrokenMeansNoTTLAndBlocksForeverOnlyOverTheLimit() {
        let underNoTTL = counter(19, .persistent)
        XCTAssertTrue(underNoTTL.isBroken)
        XCTAssertFalse(underNoTTL.blocksForever, "19/60 with no TTL is broken, not blocking (yet)")
        XCTAssertEqual(underNoTTL.stateWord, "broken")
        XCTAssertTrue(underNoTTL.isFlagged)
        let overNoTTL = counter(75, .persistent)
        XCTAssertTrue(overNoTTL.blocksForever)
        XCTAssertEqual(overNoTTL.stateWord, "broken")
        XCTAssertEqual(counter(75, .expiresIn(ms: 3_000)).stateWord, "blocked")
        XCTAssertEqual(counter(55, .expiresIn(ms: 3_000)).stateWord, "near")
        XCTAssertEqual(counter(5, .expiresIn(ms: 3_000)).stateWord, "ok")
        XCTAssertFalse(counter(5, .expiresIn(ms: 3_000)).isFlagged)
        XCTAssertTrue(counter(5, .expiresIn(ms: 600_000)).ttlAboveWindow, "a TTL longer than the window breaks the fixed window")
        // Flagged first: blocked forever, blocked, broken, near, then the rest.
        let order = [counter(5, .expiresIn(ms: 3_000)), counter(19, .persistent), counter(55, .expiresIn(ms: 3_000)),
                     counter(75, .expiresIn(ms: 3_000)), counter(75, .persistent)].sorted(by: RateLimitCounter.ordered)
        XCTAssertEqual(order.map(\.stateWord), ["broken", "blocked", "broken", "near", "ok"])
        XCTAssertTrue(order[0].blocksForever)
        // The JSON line says the state.
        let line = overNoTTL.json.serialized()
        XCTAssertTrue(line.contains(#""state":"broken""#), line)
        XCTAssertTrue(line.contains(#""ttl_ms":-1"#), line)
    }

    func testKeyFilterKinds() {
        let schema = KeySchema()
        XCTAssertEqual(KeyFilter("=workspace:42", schema: schema).kind, .exact)
        XCTAssertEqual(KeyFilter("=workspace:42", schema: schema).match, Bytes(utf8: "app:workspace:42"))
        XCTAssertEqual(KeyFilter("=app:workspace:42", schema: schema).match, Bytes(utf8: "app:workspace:42"), "the prefix once")
        XCTAssertEqual(KeyFilter("=ws:[1]", schema: schema).match, Bytes(utf8: #"app:ws:\[1\]"#), "an exact name is escaped")
        XCTAssertEqual(KeyFilter("app:workspace:4", schema: schema).kind, .startsWith)
        XCTAssertEqual(KeyFilter("4242", schema: schema).exactCandidate, Bytes(utf8: "4242"))
        let st = KeyFilter("state:flagged workspace", schema: schema)
        XCTAssertEqual(st.states, ["flagged"])
        XCTAssertEqual(st.kind, .substring)
        XCTAssertTrue(KeyFilter("state:flagged", schema: schema).isEmpty, "a state alone asks the server nothing")
    }

    func testAnExactNameComesFirstInTheWindow() {
        let schema = KeySchema()
        func info(_ k: String) -> KeyInfo { KeyInfo(key: Bytes(utf8: k), type: "string", ttl: .expiresIn(ms: 1000), bytes: 10, kind: .cache, readAt: 0) }
        var w = KeyWindow(capacity: 2, sort: .name, exact: Bytes(utf8: "4242"))
        w.add(["app:workspace:14242", "app:workspace:42420", "app:workspace:4242", "app:workspace:04242"].map(info), schema: schema)
        w.settle()
        XCTAssertEqual(w.rows.map(\.key.lossyString), ["app:workspace:4242", "app:workspace:04242"], "exact first, then by name, even in a small window")
        XCTAssertTrue(KeyWindow.names(Bytes(utf8: "app:ratelimit:user:1234"), exactly: Bytes(utf8: "user:1234")))
        XCTAssertFalse(KeyWindow.names(Bytes(utf8: "app:ratelimit:user:12348"), exactly: Bytes(utf8: "1234")))
    }

    func testUpdatedAtIsReadInEveryUsualForm() {
        let iso = CacheAge.parseISO8601("2026-12-07T09:00:00Z")!
        XCTAssertEqual(iso, 1_796_634_000, accuracy: 0.001)
        XCTAssertEqual(CacheAge.parseISO8601("2026-12-07T10:00:00+01:00")!, iso, accuracy: 0.001)
        XCTAssertEqual(CacheAge.parseISO8601("2026-12-07T09:00:00.250Z")!, iso + 0.25, accuracy: 0.001)
        XCTAssertNil(CacheAge.parseISO8601("yesterday"))
        XCTAssertEqual(CacheAge.updatedAt(Bytes(utf8: #"{"id":1,"updatedAt":"2026-12-07T09:00:00Z"}"#), field: "updatedAt")!, iso, accuracy: 0.001)
        XCTAssertEqual(CacheAge.updatedAt(Bytes(utf8: #"{"updatedAt":1796634000000}"#), field: "updatedAt")!, iso, accuracy: 0.001, "milliseconds")
        XCTAssertEqual(CacheAge.updatedAt(Bytes(utf8: #"{"modified":1796634000}"#), field: "modified")!, iso, accuracy: 0.001, "seconds, a configured field")
        XCTAssertNil(CacheAge.updatedAt(Bytes(utf8: "not json"), field: "updatedAt"))
    }
}

final class ProgressTests: XCTestCase {
    /// Pacing starts small: the first fraction of a second must not promise "2268.8 s".
    func testETAWaitsForARateThatMeansSomething() {
        XCTAssertNil(WriteProgress(done: 10, total: 100_000, deleted: 10, elapsed: 0.05).eta)
        XCTAssertNil(WriteProgress(done: 1_000, total: 100_000, deleted: 1_000, elapsed: 1.2).eta, "1 % done: too early")
        XCTAssertEqual(WriteProgress(done: 50_000, total: 100_000, deleted: 50_000, elapsed: 2).eta!, 2, accuracy: 0.001)
        XCTAssertNotNil(WriteProgress(done: 1_000, total: 1_000_000, deleted: 1_000, elapsed: 6).eta, "a long run says something after 5 s")
        XCTAssertNil(WriteProgress(done: 100, total: 100, deleted: 100, elapsed: 3).eta, "done")
    }
}

final class NamespaceShapeTests: XCTestCase {
    /// The console's namespace panel: percentiles from buckets a quarter of a power of two
    /// wide are never below the true value nor more than ~25 % above it; the max is exact.
    func testApproximatePercentilesAreBoundedAndTheMaxExact() {
        var st = NamespaceStat(name: Bytes(utf8: "workspace:"), keys: 0, bytes: 0, noTTL: 0)
        var sizes: [Int64] = []
        for i in 0..<1000 {
            let b = Int64(50 + (i * 7919) % 5000)
            sizes.append(b)
            st.add(KeyInfo(key: Bytes(utf8: "app:workspace:\(i)"), type: "string", ttl: i % 2 == 0 ? .persistent : .expiresIn(ms: 30_000), bytes: b, kind: .cache, readAt: 0))
        }
        let sorted = sizes.sorted()
        for p in [50.0, 99.0] {
            let exact = sorted[Int((p / 100 * 1000).rounded(.up)) - 1]
            let approx = st.approxPercentile(p)!
            XCTAssertGreaterThanOrEqual(approx, exact)
            XCTAssertLessThanOrEqual(Double(approx), Double(exact) * 1.25, "p\(p)")
        }
        XCTAssertEqual(st.maxBytes, sorted.last!)
        XCTAssertEqual(st.ttl, [500, 500, 0, 0, 0])
        XCTAssertEqual(st.biggest.count, 20)
        XCTAssertEqual(st.biggest.map(\.bytes), Array(sorted.reversed().prefix(20)))
    }
}

final class LatencyHistoryTests: XCTestCase {
    /// Windows of 15 s: min/avg/p99/max of the PINGs in each, as redis-cli --latency-history.
    func testWindowsOfFifteenSeconds() {
        var h = LatencyHistory()
        for i in 0..<30 { h.add(Double(i % 15 + 1) / 1000, at: 100 + Double(i)) }
        XCTAssertEqual(h.windows.count, 1, "the second window is still filling")
        let w = h.windows[0]
        XCTAssertEqual(w.n, 15)
        XCTAssertEqual(w.min, 0.001, accuracy: 1e-9)
        XCTAssertEqual(w.max, 0.015, accuracy: 1e-9)
        XCTAssertEqual(w.avg, 0.008, accuracy: 1e-9)
        XCTAssertEqual(w.p99, 0.015, accuracy: 1e-9)
        XCTAssertEqual(h.currentWindow?.n, 15)
        // A failed PING says why, and does not count as a round trip.
        h.add(nil, error: "connection refused", at: 129.5)
        XCTAssertEqual(h.error, "connection refused")
        XCTAssertEqual(h.currentWindow?.n, 15)
        for i in 0..<(15 * 30) { h.add(0.001, at: 200 + Double(i)) }
        XCTAssertLessThanOrEqual(h.windows.count, LatencyHistory.keep, "bounded")
    }
}
