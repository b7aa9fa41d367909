#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import RedisProtocol

/// One connection with many requests in flight: each request (a flight of commands) goes
/// out when the caller sends it, the replies are matched to requests in order as they
/// arrive, and each request's reply time teaches the connection's `Pacer`. Round trips,
/// not keys, are the cost through a tunnel: a lane keeps the pipe full instead of waiting.
/// Used by one thread.
public final class Lane<Tag> {
    public let conn: RedisConnection
    public let pacer: Pacer
    /// The pacer's own requests, sent between the caller's.
    private enum Control { case ping, stats }
    private struct Flight {
        var tag: Tag?          // nil: one of the pacer's
        var control: Control?
        var count: Int
        var sentAt: Double
        var kind: Pacer.Kind?
        var units: Int
    }
    private var inflight = Deque<Flight>()
    private var partial: [RESPValue] = []
    /// Most requests in flight at once.
    public var maxInFlight = 64

    public init(_ conn: RedisConnection, pacer: Pacer) {
        self.conn = conn
        self.pacer = pacer
        // The handshake just measured the round trip: the first PING can wait its turn.
        if conn.handshakeRTT > 0 { pacer.observePing(conn.handshakeRTT); pacer.pingSent() }

    }

    /// Requests sent whose replies have not all arrived (PINGs included).
    public var outstanding: Int { inflight.count }
    /// When the oldest request still waiting was sent.
    public var oldestSentAt: Double? { inflight.first?.sentAt }
    public var isIdle: Bool { inflight.isEmpty && ready.isEmpty }
    public var hasRoom: Bool { inflight.count < maxInFlight }

    /// Sends a request now (the caller asked the pacer whether it may). `kind` nil: the
    /// reply time teaches nothing (a read of a few keys, say).
    public func send(_ commands: [[Bytes]], tag: Tag, kind: Pacer.Kind?, units: Int) throws {
        precondition(!commands.isEmpty)
        let now = monotonicNow()
        // The pacer's own requests go first: what it counts as sent must be what the server
        // will have served by the time it answers the next INFO.
        try sendControlIfDue(now)
        if let k = kind { pacer.sent(k, units: units, calls: commands.count, now: now) }
        try conn.send(commands)
        inflight.append(Flight(tag: tag, control: nil, count: commands.count, sentAt: now, kind: kind, units: units))
    }

    private func sendControlIfDue(_ now: Double) throws {
        if pacer.pingDue(now: now) {
            pacer.pingSent(now: now)
            try conn.send([[Bytes(utf8: "PING")]])
            inflight.append(Flight(tag: nil, control: .ping, count: 1, sentAt: now, kind: nil, units: 0))
        }
        if pacer.statsDue(now: now) {
            pacer.statsSent(now: now)
            try conn.send([[Bytes(utf8: "INFO"), Bytes(utf8: "commandstats")]])
            inflight.append(Flight(tag: nil, control: .stats, count: 1, sentAt: now, kind: nil, units: 0))
        }
    }

    /// Flights whose replies are all here, not yet handed to the caller.
    private var ready: [(tag: Tag, replies: [RESPValue])] = []
    /// A failure met while pumping, thrown by the next `completed()`.
    private var pumpFailure: Error?

    /// Reads what has arrived (without waiting) and stamps each request whose replies are now
    /// complete. Cheap: a caller busy with one reply calls it for its other lanes, so the time
    /// a reply waited for the caller is not counted as the server's.
    public func pump() {
        guard pumpFailure == nil, !inflight.isEmpty else { return }
        do {
            let replies = try conn.availableReplies()
            guard !replies.isEmpty else { return }
            let now = monotonicNow()
            var i = 0
            while i < replies.count, let head = inflight.first {
                let need = head.count - partial.count
                let take = min(need, replies.count - i)
                partial.append(contentsOf: replies[i..<(i + take)])
                i += take
                guard partial.count == head.count else { break }
                inflight.removeFirst()
                let rtt = now - head.sentAt
                if let tag = head.tag {
                    if let k = head.kind { pacer.observe(k, units: head.units, calls: head.count, rtt: rtt) }
                    ready.append((tag, partial))
                } else if head.control == .stats {
                    pacer.observeStats(partial.first.flatMap { $0.errorReply == nil ? $0.string : nil })
                } else {
                    pacer.observePing(rtt)
                }
                partial = []
            }
            if i < replies.count {
                conn.close()
                throw RedisError.protocolViolation("more replies than requests")
            }
        } catch {
            pumpFailure = error
        }
    }

    /// The requests whose replies are all here now, in order (without waiting). A failure is
    /// thrown once the requests completed before it are taken.
    public func completed() throws -> [(tag: Tag, replies: [RESPValue])] {
        pump()
        if !ready.isEmpty {
            defer { ready = [] }
            return ready
        }
        if let e = pumpFailure { pumpFailure = nil; throw e }
        return []
    }

    /// The requests whose replies never came (after a failure), oldest first; the lane is
    /// empty afterwards.
    public func abandon() -> [Tag] {
        let tags = ready.map(\.tag) + inflight.compactMap(\.tag)
        inflight.removeAll()
        ready = []
        partial = []
        pumpFailure = nil
        return tags
    }

    /// Waits until one of the lanes has replies to read, or `deadline` (monotonic) passes.
    public static func wait(_ lanes: [Lane], until deadline: Double) {
        // Replies already taken off a socket by `pump()`, or inside OpenSSL, are invisible to poll.
        if lanes.contains(where: { !$0.ready.isEmpty || $0.conn.hasBufferedInput }) { return }
        var fds = lanes.map { pollfd(fd: $0.conn.fd, events: Int16(POLLIN), revents: 0) }
        let ms = Int32(max(0, min(1000, (deadline - monotonicNow()) * 1000)).rounded(.up))
        _ = poll(&fds, nfds_t(fds.count), ms)
    }
}
