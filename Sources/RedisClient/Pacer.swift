#if canImport(Glibc)
import Glibc
#endif

/// Keeps what the tool sends to one server inside a latency budget measured on the
/// server's side, never by the distance to the operator.
///
/// - **Server time per unit** (a SCAN's COUNT, one key unlinked, one read) is learned per kind
///   of request. The server's own accounting comes first: `INFO commandstats` (microseconds
///   and calls per command), sampled about twice a second, gives the exact time each call
///   took on the server whatever the network or the client is doing. Where INFO is refused,
///   the estimate is a reply's time minus the path's round trip (the minimum of recent
///   PINGs; the first measure is the handshake's) — an upper bound, so on the safe side.
/// - **Sizing**: SCAN's COUNT and a write's batch are chosen so one command takes at most
///   ~80 % of the budget (`--max-latency-ms`) on the server: `units(_:)`.
/// - **A token bucket of server time** for those commands: they keep the server busy at most
///   `duty` of the time, in bursts no longer than the budget, however many are in flight —
///   through a 50 ms tunnel dozens of requests stay in flight. Small reads (TYPE, PTTL…) are
///   not held back: Redis serves a pipeline 16 KB at a time, between other clients' commands.
public final class Pacer {
    public enum Kind: Int, CaseIterable, Sendable { case scan, read, write }

    /// The longest any single command of ours may take on the server (seconds).
    public let budget: Double
    /// The share of the server's time the sized commands may take.
    public let duty: Double
    /// The round trip without server time: the minimum of recent PINGs.
    public private(set) var baseRTT: Double
    private var pings: [Double] = []
    private var lastPing = -Double.infinity
    private var tokens: Double
    private var refilledAt: Double
    /// Estimated server seconds per unit, per kind.
    private var perUnit: [Double]
    /// Kinds whose estimate comes from the server's own accounting.
    private var measured: [Bool] = [false, false, false]
    /// INFO commandstats: refused (nil) or not; the last sample's counters; what we sent since.
    private var statsAllowed = true
    private var lastStatsAt = -Double.infinity
    private var lastStats: [String: (calls: Double, usec: Double)] = [:]
    private var unitsSince: [Double] = [0, 0, 0]
    private var callsSince: [Double] = [0, 0, 0]
    /// What was sent between the previous INFO and the one in flight: exactly what the
    /// server's counters will have counted between the two (a connection is served in order).
    private var unitsInWindow: [Double] = [0, 0, 0]
    private var callsInWindow: [Double] = [0, 0, 0]
    /// Requests observed (for the benchmark and tests).
    public private(set) var observed = 0
    /// The server time of the last sized command observed (per call), the longest, and how
    /// many exceeded the budget.
    public private(set) var lastServerTime = 0.0
    public private(set) var maxServerTime = 0.0
    public private(set) var overBudget = 0

    /// The commands each kind sends, as INFO commandstats names them.
    static let commands: [Kind: [String]] = [
        .scan: ["scan"],
        .read: ["type", "pttl", "memory|usage", "get", "exists"],
        .write: ["unlink", "del", "expire", "persist"],
    ]

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

    /// What it has learned, for a benchmark's or a test's eyes.
    public var summary: String {
        let src = measured.map { $0 ? "server" : "rtt" }
        return String(format: "base RTT %.3f ms · per unit: scan %.3f µs (%@), read %.3f µs (%@), write %.3f µs (%@) · observed %d · max %.3f ms · over budget %d",
                      baseRTT * 1000, perUnit[0] * 1e6, src[0], perUnit[1] * 1e6, src[1], perUnit[2] * 1e6, src[2], observed, maxServerTime * 1000, overBudget)
    }

    /// Estimated server time of a request.
    public func estimate(_ kind: Kind, units: Int) -> Double { perUnit[kind.rawValue] * Double(max(1, units)) }

    /// How many units fit in one command: half the budget on average for writes, a quarter
    /// for SCAN. A SCAN's time varies several-fold with what it walks (a table being rehashed
    /// is walked twice, empty stretches and expired keys cost too): measured on 1.1M keys
    /// with SLOWLOG at the budget, a half-budget COUNT put 50-98 SCANs over 2 ms per 100k-key
    /// invalidation, a quarter 19-36, for the same time.
    public func units(_ kind: Kind, limits: ClosedRange<Int>) -> Int {
        let share = kind == .scan ? 0.25 : 0.5
        let n = Int((budget * share) / perUnit[kind.rawValue])
        return min(limits.upperBound, max(limits.lowerBound, n))
    }

    private func refill(_ now: Double) {
        tokens = min(budget, tokens + (now - refilledAt) * duty)
        refilledAt = now
    }

    /// Seconds to wait before a request of this kind and cost may be sent (0: now).
    public func delay(_ kind: Kind, cost: Double, now: Double = monotonicNow()) -> Double {
        if kind == .read { return 0 }
        refill(now)
        let c = min(cost, budget)
        return tokens >= c ? 0 : (c - tokens) / duty
    }

    /// A request was sent: `calls` commands carrying `units` units.
    public func sent(_ kind: Kind, units: Int, calls: Int, now: Double = monotonicNow()) {
        unitsSince[kind.rawValue] += Double(units)
        callsSince[kind.rawValue] += Double(max(1, calls))
        if kind == .read { return }
        refill(now)
        tokens -= min(estimate(kind, units: units), budget)
    }

    /// The least a reply's time may teach per unit: a reply as fast as a PING does not make a
    /// command free (its server time hides in the round trip's jitter).
    static let roundTripFloor: [Double] = [0.5e-6, 0.3e-6, 1e-6]

    private func learn(_ kind: Kind, perUnit sample: Double, floor: Double = 1e-8) {
        let s = min(1e-3, max(floor, sample))
        let old = perUnit[kind.rawValue]
        // Up quickly (over budget hurts the application), down slowly.
        let a = s > old ? 0.5 : 0.15
        perUnit[kind.rawValue] = old + a * (s - old)
    }

    /// A reply arrived `rtt` seconds after its request (of `calls` commands) was sent.
    public func observe(_ kind: Kind, units: Int, calls: Int = 1, rtt: Double) {
        observed += 1
        // Reads are not sized by an estimate (nor paced); the server's figures, once in, rule.
        guard kind != .read, !measured[kind.rawValue] else { return }
        let server = max(0, rtt - baseRTT)
        if kind != .read {
            let perCall = server / Double(max(1, calls))
            lastServerTime = perCall
            maxServerTime = max(maxServerTime, perCall)
            if perCall > budget { overBudget += 1 }
        }
        learn(kind, perUnit: server / Double(max(1, units)), floor: Self.roundTripFloor[kind.rawValue])
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

    /// Time to read the server's own accounting again (about twice a second while allowed;
    /// quickly at first, so the exact figures replace the round-trip estimate early).
    public func statsDue(now: Double = monotonicNow()) -> Bool {
        statsAllowed && now - lastStatsAt >= (statsSamples < 4 ? 0.1 : 0.5)
    }
    private var statsSamples = 0

    public func statsSent(now: Double = monotonicNow()) {
        lastStatsAt = now
        unitsInWindow = unitsSince; callsInWindow = callsSince
        unitsSince = [0, 0, 0]; callsSince = [0, 0, 0]
    }

    /// INFO commandstats (nil: refused — then the round-trip estimate stays).
    public func observeStats(_ text: String?) {
        guard let text else { statsAllowed = false; return }
        statsSamples += 1
        var now: [String: (calls: Double, usec: Double)] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) where line.hasPrefix("cmdstat_") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[line.index(line.startIndex, offsetBy: 8)..<colon])
            var calls = 0.0, usec = 0.0
            for f in line[line.index(after: colon)...].split(separator: ",") {
                let kv = f.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let v = Double(kv[1]) else { continue }
                if kv[0] == "calls" { calls = v } else if kv[0] == "usec" { usec = v }
            }
            now[name] = (calls, usec)
        }
        defer { lastStats = now }
        guard !lastStats.isEmpty else { return }
        for kind in Kind.allCases {
            let i = kind.rawValue
            guard callsInWindow[i] > 0, unitsInWindow[i] > 0 else { continue }
            var dCalls = 0.0, dUsec = 0.0
            for c in Self.commands[kind] ?? [] {
                guard let a = now[c] else { continue }
                let b = lastStats[c] ?? (0, 0)
                dCalls += max(0, a.calls - b.calls)
                dUsec += max(0, a.usec - b.usec)
            }
            guard dCalls > 0 else { continue }
            let perCall = dUsec / dCalls / 1e6
            let unitsPerCall = unitsInWindow[i] / callsInWindow[i]
            // The first exact figure replaces the round-trip guess outright.
            if !measured[i] { perUnit[i] = min(1e-3, max(1e-8, perCall / max(1, unitsPerCall))) }
            measured[i] = true
            if kind != .read {
                lastServerTime = perCall
                maxServerTime = max(maxServerTime, perCall)
                if perCall > budget { overBudget += 1 }
            }
            learn(kind, perUnit: perCall / max(1, unitsPerCall))
        }
    }
}
