#if canImport(Glibc)
import Glibc
#endif

/// Keeps what the tool sends to one server inside a latency budget measured on the
/// server's side, never by the distance to the operator.
///
/// - **Server time** of a request = its reply time minus the path's round trip, the round
///   trip being the minimum of recent PINGs (the first measure is the handshake's).
/// - **Cost per unit** (a SCAN's COUNT, one read, one key written) is learned from the
///   replies, per kind of request, so each request is sized to take at most ~80 % of the
///   budget on the server: `units(_:)`.
/// - **A token bucket of server time**: requests may keep the server busy `duty` of the
///   time at most, in bursts no longer than the budget, however many are in flight. Through
///   a 50 ms tunnel this keeps dozens of requests in flight; next to the server it keeps
///   the application's commands from queueing behind more than one of ours.
public final class Pacer {
    public enum Kind: Int, CaseIterable, Sendable { case scan, read, write }

    /// The longest any single request of ours may take on the server (seconds).
    public let budget: Double
    /// The share of the server's time the tool may take.
    public let duty: Double
    /// The round trip without server time: the minimum of recent PINGs.
    public private(set) var baseRTT: Double
    private var pings: [Double] = []
    private var lastPing = -Double.infinity
    private var tokens: Double
    private var refilledAt: Double
    /// Estimated server seconds per unit, per kind.
    private var perUnit: [Double]
    /// Requests observed (for the benchmark and tests).
    public private(set) var observed = 0
    /// The server time of the last request observed, the longest, and how many exceeded the budget.
    public private(set) var lastServerTime = 0.0
    public private(set) var maxServerTime = 0.0
    public private(set) var overBudget = 0

    public init(budget: Double, duty: Double = 0.6, baseRTT: Double = 0.001, now: Double = monotonicNow()) {
        self.budget = max(0.0001, budget)
        self.duty = min(1, max(0.05, duty))
        self.baseRTT = max(0, baseRTT)
        tokens = self.budget
        refilledAt = now
        // Conservative starting points (this machine kind: ~0.3-1 µs per key examined by
        // SCAN MATCH, ~1 µs per read, ~1-2 µs per key unlinked); learned from the first replies.
        perUnit = [2e-6, 2e-6, 4e-6]
    }

    /// Estimated server time of a request.
    public func estimate(_ kind: Kind, units: Int) -> Double { perUnit[kind.rawValue] * Double(max(1, units)) }

    /// How many units fit in one request: ~80 % of the budget, within `limits`.
    public func units(_ kind: Kind, limits: ClosedRange<Int>) -> Int {
        let n = Int((budget * 0.8) / perUnit[kind.rawValue])
        return min(limits.upperBound, max(limits.lowerBound, n))
    }

    private func refill(_ now: Double) {
        tokens = min(budget, tokens + (now - refilledAt) * duty)
        refilledAt = now
    }

    /// Seconds to wait before a request of this cost may be sent (0: now).
    public func delay(for cost: Double, now: Double = monotonicNow()) -> Double {
        refill(now)
        let c = min(cost, budget)
        return tokens >= c ? 0 : (c - tokens) / duty
    }

    /// A request of this cost was sent.
    public func spend(_ cost: Double, now: Double = monotonicNow()) {
        refill(now)
        tokens -= min(cost, budget)
    }

    /// A reply arrived `rtt` seconds after its request was sent.
    public func observe(_ kind: Kind, units: Int, rtt: Double) {
        let server = max(0, rtt - baseRTT)
        observed += 1
        lastServerTime = server
        maxServerTime = max(maxServerTime, server)
        if server > budget { overBudget += 1 }
        let sample = min(1e-3, max(1e-8, server / Double(max(1, units))))
        let old = perUnit[kind.rawValue]
        // Up quickly (over budget hurts the application), down slowly.
        let a = sample > old ? 0.5 : 0.15
        perUnit[kind.rawValue] = old + a * (sample - old)
    }

    /// Time for a PING to measure the round trip again (about once a second).
    public func pingDue(now: Double = monotonicNow()) -> Bool { now - lastPing >= 1 }

    public func pingSent(now: Double = monotonicNow()) { lastPing = now }

    /// A PING's round trip: the baseline is the minimum of the last eight.
    public func observePing(_ rtt: Double) {
        pings.append(rtt)
        if pings.count > 8 { pings.removeFirst() }
        baseRTT = pings.min() ?? rtt
    }
}
