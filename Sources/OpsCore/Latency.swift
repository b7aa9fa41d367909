import Foundation
import Synchronization
import RedisProtocol
import RedisClient

/// Round-trip statistics of one 15-second window, as `redis-cli --latency-history` reports.
public struct LatencyWindow: Sendable, Equatable {
    public var start: Double
    public var n: Int
    public var min: Double
    public var avg: Double
    public var p99: Double
    public var max: Double
}

/// One node's round trips (seconds): the window being filled and the last `keep` windows.
public struct LatencyHistory: Sendable, Equatable {
    public static let window = 15.0
    public static let keep = 20
    public private(set) var windows: [LatencyWindow] = []
    public private(set) var last: Double?
    public private(set) var lastAt: Double = 0
    public private(set) var error: String?
    var current: [Double] = []
    var currentStart: Double = 0
    public init() {}

    static func stats(_ xs: [Double], start: Double) -> LatencyWindow? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        let rank = Swift.max(1, Int((0.99 * Double(s.count)).rounded(.up)))
        return LatencyWindow(start: start, n: s.count, min: s[0], avg: s.reduce(0, +) / Double(s.count), p99: s[rank - 1], max: s[s.count - 1])
    }

    public mutating func add(_ rtt: Double?, error: String? = nil, at t: Double) {
        if current.isEmpty && currentStart == 0 { currentStart = t }
        if t - currentStart >= Self.window {
            if let w = Self.stats(current, start: currentStart) { windows.append(w) }
            if windows.count > Self.keep { windows.removeFirst(windows.count - Self.keep) }
            current.removeAll()
            currentStart = t
        }
        lastAt = t
        self.error = error
        guard let r = rtt else { return }
        last = r
        current.append(r)
    }

    /// The window being filled, so far.
    public var currentWindow: LatencyWindow? { Self.stats(current, start: currentStart) }
}

/// One PING a second to every node, on a connection of its own per node (never queued behind
/// the console's work, so the figure is the network and the server, not the tool).
public final class LatencyProbe: @unchecked Sendable {
    public struct Sample: Sendable, Equatable {
        public var node: String
        public var rtt: Double?
        public var error: String?
        public init(node: String, rtt: Double?, error: String?) { self.node = node; self.rtt = rtt; self.error = error }
    }
    private let stopping = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let targets: [(String, ConnectionConfig)]
    private let sink: @Sendable ([Sample], Double) -> Void
    public let interval: Double

    public init(nodes: NodeSet, interval: Double = 1, sink: @escaping @Sendable ([Sample], Double) -> Void) {
        if nodes.isCluster, let t = nodes.topology {
            targets = t.shards.flatMap { [$0.primary] + $0.replicas }.map { ($0.description, nodes.config(for: $0)) }
        } else {
            targets = [(Endpoint(host: nodes.config.host, port: nodes.config.port).description, nodes.config)]
        }
        self.sink = sink
        self.interval = interval
    }

    public func start() {
        started.store(true, ordering: .relaxed)
        Thread.detachNewThread { [self] in
            var conns: [String: RedisConnection] = [:]
            while !stopping.load(ordering: .relaxed) {
                let t0 = monotonicNow()
                var out: [Sample] = []
                for (name, cfg) in targets {
                    do {
                        let c: RedisConnection
                        if let k = conns[name], !k.isBroken { c = k } else { c = try RedisConnection(cfg); conns[name] = c }
                        let s = monotonicNow()
                        let r = try c.call([Bytes(utf8: "PING")])
                        if let e = r.errorReply { out.append(Sample(node: name, rtt: nil, error: e.message)) }
                        else { out.append(Sample(node: name, rtt: monotonicNow() - s, error: nil)) }
                    } catch {
                        conns[name]?.close(); conns[name] = nil
                        out.append(Sample(node: name, rtt: nil, error: (error as? RedisError)?.description ?? "\(error)"))
                    }
                }
                sink(out, wallClockNow())
                let left = interval - (monotonicNow() - t0)
                var slept = 0.0
                while left - slept > 0, !stopping.load(ordering: .relaxed) { usleep(50_000); slept += 0.05 }
            }
            for c in conns.values { c.close() }
            done.signal()
        }
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        if started.load(ordering: .relaxed) { done.wait() }
    }
}
