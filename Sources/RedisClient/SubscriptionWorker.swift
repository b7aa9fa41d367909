#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import RedisProtocol

/// Which server a connection reached (from INFO, read before subscribing): behind a DNS
/// name or a load balancer, the same endpoint can lead to another node after a failover.
public struct NodeIdentity: Sendable, Equatable {
    public var runID: String
    /// The port the node itself listens on (not the endpoint's).
    public var port: Int
    /// master or slave.
    public var role: String?
    public init(runID: String, port: Int, role: String?) { self.runID = runID; self.port = port; self.role = role }
}

/// What the worker reports besides messages.
public enum SubscriberNotice: Sendable, Equatable {
    case connected(endpoint: String, node: NodeIdentity?)
    case subscribed(name: Bytes, isPattern: Bool)
    case unsubscribed(name: Bytes, isPattern: Bool)
    /// The connection dropped; the worker retries after `retryIn` seconds.
    case disconnected(reason: String, retryIn: Double)
    /// Reconnected and resubscribed: messages published between these times may have been
    /// lost. `from` is the last moment the subscriber was known to be receiving.
    case gap(from: Double, to: Double, reason: String)
    /// The server refused one subscription (e.g. NOPERM): it is dropped, not retried.
    case refused(name: Bytes?, isPattern: Bool, reason: String)
    /// A permanent failure (wrong password, untrusted certificate): no more retries.
    case fatal(reason: String)
}

/// Receives what the worker produces, on the worker's thread. Must not block for long.
public protocol SubscriberSink: Sendable {
    func deliver(_ messages: [ReceivedMessage])
    func notice(_ notice: SubscriberNotice)
}

public func wallClockNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Owns a subscriber connection on its own thread: drains the socket continuously
/// (whatever the screen is doing), reconnects with capped, jittered backoff,
/// resubscribes to exactly the same channels and patterns, and reports gaps.
public final class SubscriptionWorker: Sendable {
    private struct Control {
        var channels: [Bytes] = []
        var patterns: [Bytes] = []
        var ops: [Op] = []
        var stopping = false
    }
    private enum Op { case sub(Bytes, Bool), unsub(Bytes, Bool) }

    private let config: ConnectionConfig
    private let sink: any SubscriberSink
    private let control = Mutex(Control())
    private let thread = WorkerThread()
    private let backoffBase: Double
    private let backoffCap: Double
    /// Quiet time before a PING health check, and how long to wait for its answer: a hung
    /// server is noticed within `pingAfter + pingTimeout` seconds.
    private let pingAfter: Double
    private let pingTimeout: Double
    /// A refused password ends the worker (`.fatal`) instead of being retried slowly.
    private let exitOnAuthFailure: Bool

    public init(config: ConnectionConfig, channels: [Bytes], patterns: [Bytes], sink: any SubscriberSink,
                backoffBase: Double = 0.2, backoffCap: Double = 10, pingAfter: Double = 2, pingTimeout: Double = 3,
                exitOnAuthFailure: Bool = false) {
        self.exitOnAuthFailure = exitOnAuthFailure
        self.config = config
        self.sink = sink
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.pingAfter = pingAfter
        self.pingTimeout = pingTimeout
        control.withLock {
            $0.channels = Self.unique(channels)
            $0.patterns = Self.unique(patterns)
        }
    }

    private static func unique(_ xs: [Bytes]) -> [Bytes] {
        var seen = Set<Bytes>(); return xs.filter { seen.insert($0).inserted }
    }

    public func start() {
        thread.start(name: "redis-ops-subscriber") { [self] in self.run() }
    }

    /// Stops the worker and waits for its thread to finish.
    public func stop() {
        control.withLock { $0.stopping = true }
        poke()
        thread.join()
    }

    public var channels: [Bytes] { control.withLock { $0.channels } }
    public var patterns: [Bytes] { control.withLock { $0.patterns } }

    public func subscribe(_ name: Bytes, pattern: Bool) {
        control.withLock { c in
            if pattern { if !c.patterns.contains(name) { c.patterns.append(name); c.ops.append(.sub(name, true)) } }
            else { if !c.channels.contains(name) { c.channels.append(name); c.ops.append(.sub(name, false)) } }
        }
        poke()
    }

    public func unsubscribe(_ name: Bytes, pattern: Bool) {
        control.withLock { c in
            if pattern { c.patterns.removeAll { $0 == name } } else { c.channels.removeAll { $0 == name } }
            c.ops.append(.unsub(name, pattern))
        }
        poke()
    }

    private func poke() { thread.poke() }
    private func drainPipe() { thread.drain() }

    private var stopping: Bool { control.withLock { $0.stopping } }

    /// Sleeps up to `seconds`, waking early if stopped. Returns false when stopping.
    private func pause(_ seconds: Double) -> Bool { thread.pause(seconds) { !stopping } }

    /// What was read at connect time, to tell later why the connection went.
    private struct Baseline {
        var node: NodeIdentity?
        /// INFO stats client_output_buffer_limit_disconnections (Redis 7.2+).
        var outputBufferDrops: Int64?
        /// CONFIG GET client-output-buffer-limit, the pubsub class ("33554432 8388608 60").
        var pubsubLimit: String?
    }

    /// INFO server, replication and stats, and CONFIG GET client-output-buffer-limit, in one
    /// round trip before subscribing (what the user may not run is simply unknown).
    private func baseline(_ c: RedisConnection) -> Baseline {
        let b = { (s: String) in Bytes(utf8: s) }
        guard let r = try? c.pipeline([[b("INFO"), b("server")], [b("INFO"), b("replication")], [b("INFO"), b("stats")],
                                       [b("CONFIG"), b("GET"), b("client-output-buffer-limit")]]) else { return Baseline() }
        func field(_ v: RESPValue, _ name: String) -> String? {
            for line in (v.errorReply == nil ? v.string ?? "" : "").split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
                if line.hasPrefix(name + ":") { return String(line.dropFirst(name.count + 1)) }
            }
            return nil
        }
        var out = Baseline()
        if let id = field(r[0], "run_id"), let port = field(r[0], "tcp_port").flatMap({ Int($0) }) {
            out.node = NodeIdentity(runID: id, port: port, role: field(r[1], "role"))
        }
        out.outputBufferDrops = field(r[2], "client_output_buffer_limit_disconnections").flatMap { Int64($0) }
        if let a = r[3].array, a.count >= 2, let text = a[1].string, let range = text.range(of: "pubsub ") {
            out.pubsubLimit = String(text[range.upperBound...].prefix { $0 != "\n" }).split(separator: " ").prefix(3).joined(separator: " ")
        }
        return out
    }

    static func bytesText(_ s: Substring) -> String {
        guard let n = Double(s) else { return String(s) }
        if n >= Double(1 << 20) { return String(format: "%.0f MB", n / Double(1 << 20)) }
        if n >= 1024 { return String(format: "%.0f KB", n / 1024) }
        return "\(Int(n)) B"
    }

    /// Why the last connection went, as well as it can be known now that we are back.
    private func explain(_ end: PumpEnd, before: Baseline, now: Baseline) -> String {
        var why = end.text
        guard end.serverClosed else { return why }
        if let a = before.node?.runID, let b = now.node?.runID, a != b {
            return why + " — the server restarted or this is another node (its run id changed)"
        }
        let limit = now.pubsubLimit ?? before.pubsubLimit
        let limitText: String = {
            guard let l = limit else { return "client-output-buffer-limit pubsub (its value could not be read: CONFIG is not permitted)" }
            let p = l.split(separator: " ")
            guard p.count == 3 else { return "client-output-buffer-limit pubsub \(l)" }
            return "client-output-buffer-limit pubsub \(p[0]) \(p[1]) \(p[2]) (\(Self.bytesText(p[0])) at once, or \(Self.bytesText(p[1])) for \(p[2]) s)"
        }()
        if let d0 = before.outputBufferDrops, let d1 = now.outputBufferDrops, d1 > d0 {
            why += " — the server dropped the subscriber: its output buffer went over \(limitText); it fell behind the publishers"
        } else if end.recentRate >= 1000 || end.recentBytes >= 1 << 20 {
            why += String(format: " while %.0f messages/s were arriving — most likely the subscriber fell behind and went over ", end.recentRate) + limitText
                + "; raise the limit, subscribe to fewer channels, or read from a closer host"
        } else {
            // Redis before 7.2 does not count output-buffer disconnections: name every cause.
            why += " (CLIENT KILL, a timeout, a restart, or the subscriber going over \(limitText))"
        }
        return why
    }

    private func run() {
        var backoff = Backoff(base: backoffBase, cap: backoffCap)
        // When messages may have been lost: since the last moment we were known to be receiving.
        var gapSince: Double? = nil
        var gapEnd: PumpEnd? = nil
        var before = Baseline()
        var auth = AuthRetry()
        while !stopping {
            let sub: Subscriber
            do {
                sub = try Subscriber(config)
                auth.succeeded()
            } catch let e as RedisError {
                if case .auth = e, let src = config.credentials, !exitOnAuthFailure {
                    // The password was refused (rotated?): its source is read again and tried
                    // at most every 5 s (growing to 60 s), at once when it gives a new one.
                    auth.refused(version: src.version)
                    if gapEnd == nil { gapEnd = PumpEnd(text: e.description) }
                    if gapSince == nil { gapSince = wallClockNow() }
                    sink.notice(.disconnected(reason: "\(e.description) — \(auth.message(src))", retryIn: auth.secondsLeft()))
                    while !stopping && !auth.due(version: src.version) {
                        if !pause(1) { return }
                        src.reread()
                    }
                    continue
                }
                if !e.isTransient {
                    sink.notice(.fatal(reason: e.description))
                    _ = pause(.infinity)
                    return
                }
                if gapEnd == nil { gapEnd = PumpEnd(text: e.description) }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: e.description, retryIn: d))
                if !pause(d) { return }
                continue
            } catch {
                sink.notice(.fatal(reason: "\(error)"))
                return
            }
            let now = baseline(sub.connection)
            var reason: String? = nil
            if gapSince != nil, let end = gapEnd { reason = explain(end, before: before, now: now) }
            before = now
            // Resubscribe to exactly what is wanted now.
            let (chs, pats) = control.withLock { c -> ([Bytes], [Bytes]) in c.ops.removeAll(); return (c.channels, c.patterns) }
            do {
                try sub.subscribe(chs)
                try sub.psubscribe(pats)
            } catch {
                if gapEnd == nil { gapEnd = PumpEnd(text: "\(error)") }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: "\(error)", retryIn: d))
                sub.close()
                if !pause(d) { return }
                continue
            }
            sink.notice(.connected(endpoint: config.endpoint, node: now.node))
            let pending = gapSince.map { (from: $0, reason: reason ?? gapEnd?.text ?? "reconnected") }
            let (end, alive) = pump(sub, backoff: &backoff, expecting: chs.count + pats.count, gap: pending)
            sub.close()
            if stopping { return }
            if let end {
                // A gap only if the last one was closed (the worker got back to receiving).
                gapSince = alive ?? gapSince ?? wallClockNow()
                gapEnd = end
                if end.fatal { return }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: end.text, retryIn: d))
                if !pause(d) { return }
            }
        }
    }

    private struct PumpEnd {
        var text: String
        var fatal = false
        /// The server closed the connection (as opposed to a hang or a network error).
        var serverClosed = false
        /// Messages per second, and bytes, in the two seconds before the end.
        var recentRate = 0.0
        var recentBytes = 0
    }

    /// Reads until the connection fails or the worker stops. Returns why it ended (nil:
    /// stopped) and the last moment it was known to be receiving (a message or a PONG).
    /// A pending gap is reported once every subscription is confirmed again.
    private func pump(_ sub: Subscriber, backoff: inout Backoff, expecting: Int,
                      gap: (from: Double, reason: String)?) -> (PumpEnd?, Double?) {
        var events: [PubSubEvent] = []
        events.reserveCapacity(4096)
        var batch: [ReceivedMessage] = []
        batch.reserveCapacity(4096)
        var lastData = monotonicNow()
        var alive: Double? = nil
        var pingSentAt: Double? = nil
        var healthy = false
        var pendingGap = gap
        var confirmed = 0
        // Messages and bytes per half second over the last two seconds (why a close happened).
        var window = [(t: Double, n: Int, bytes: Int)]()
        func recent() -> (Double, Int) {
            let t = monotonicNow()
            let w = window.filter { t - $0.t <= 2 }
            return (Double(w.reduce(0) { $0 + $1.n }) / 2, w.reduce(0) { $0 + $1.bytes })
        }
        func ended(_ text: String, serverClosed: Bool = false, fatal: Bool = false) -> (PumpEnd?, Double?) {
            flush(&batch)
            let (rate, bytes) = recent()
            return (PumpEnd(text: text, fatal: fatal, serverClosed: serverClosed, recentRate: rate, recentBytes: bytes), alive)
        }
        if pendingGap != nil && expecting == 0 {
            sink.notice(.gap(from: pendingGap!.from, to: wallClockNow(), reason: pendingGap!.reason))
            pendingGap = nil
        }
        while !stopping {
            // Apply subscription changes asked for from other threads.
            let ops = control.withLock { c -> [Op] in let o = c.ops; c.ops.removeAll(); return o }
            do {
                for op in ops {
                    switch op {
                    case .sub(let n, let p): if p { try sub.psubscribe([n]) } else { try sub.subscribe([n]) }
                    case .unsub(let n, let p): if p { try sub.punsubscribe([n]) } else { try sub.unsubscribe([n]) }
                    }
                }
            } catch { return ended("\(error)") }

            if !sub.connection.transport.hasBufferedInput {
                var fds = [pollfd(fd: sub.fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: thread.doorbell, events: Int16(POLLIN), revents: 0)]
                let wait = pingSentAt.map { $0 + pingTimeout - monotonicNow() } ?? (lastData + pingAfter - monotonicNow())
                let r = poll(&fds, 2, Int32(max(0, min(wait, 1.0)) * 1000) + 1)
                if fds[1].revents != 0 { drainPipe() }
                if r <= 0 || fds[0].revents == 0 {
                    let now = monotonicNow()
                    if let s = pingSentAt, now - s > pingTimeout {
                        return ended("no answer to PING within \(formatSeconds(pingTimeout)) (the server hangs, or the network dropped the connection)")
                    }
                    // A quiet connection is asked whether it is still there.
                    if pingSentAt == nil && now - lastData > pingAfter {
                        do { try sub.ping() } catch { return ended("\(error)") }
                        pingSentAt = now
                    }
                    continue
                }
            }
            events.removeAll(keepingCapacity: true)
            do {
                try sub.read(timeout: 0, messages: &batch, events: &events, now: wallClockNow)
            } catch let e as RedisError {
                if case .closed(let m) = e, m.contains("closed the connection") { return ended(e.description, serverClosed: true) }
                return ended(e.description)
            } catch {
                return ended("\(error)")
            }
            if events.isEmpty && batch.isEmpty { continue }
            lastData = monotonicNow()
            pingSentAt = nil
            if !batch.isEmpty {
                alive = batch.last!.receivedAt
                let bytes = batch.reduce(0) { $0 + $1.payload.count }
                if let last = window.last, lastData - last.t < 0.5 {
                    window[window.count - 1].n += batch.count
                    window[window.count - 1].bytes += bytes
                } else {
                    window.append((lastData, batch.count, bytes))
                    if window.count > 8 { window.removeFirst() }
                }
                if !healthy { healthy = true; backoff.reset() }
            }
            for ev in events {
                switch ev {
                case .message(let ch, let pat, let payload):
                    batch.append(ReceivedMessage(channel: ch, pattern: pat, payload: payload, receivedAt: wallClockNow()))
                case .subscribed(let n, let p, _):
                    if !healthy { healthy = true; backoff.reset() }
                    flush(&batch); sink.notice(.subscribed(name: n, isPattern: p))
                    confirmed += 1
                    if confirmed >= expecting, let g = pendingGap {
                        sink.notice(.gap(from: g.from, to: wallClockNow(), reason: g.reason))
                        pendingGap = nil
                    }
                case .unsubscribed(let n, let p, _):
                    flush(&batch); sink.notice(.unsubscribed(name: n, isPattern: p))
                case .shardSubscribed, .shardUnsubscribed:
                    break   // not sent on this connection (ShardSubscriptionWorker's)
                case .pong:
                    alive = wallClockNow()
                    if !healthy { healthy = true; backoff.reset() }
                case .refused(let n, let p, let e):
                    if e.kind == .noAuth || e.kind == .wrongPass {
                        sink.notice(.fatal(reason: e.message))
                        return ended(e.message, fatal: true)
                    }
                    if let n {
                        control.withLock { c in
                            if p { c.patterns.removeAll { $0 == n } } else { c.channels.removeAll { $0 == n } }
                        }
                    }
                    confirmed += 1
                    flush(&batch); sink.notice(.refused(name: n, isPattern: p, reason: e.message))
                }
            }
            flush(&batch)
        }
        return (nil, alive)
    }

    private func flush(_ batch: inout [ReceivedMessage]) {
        if batch.isEmpty { return }
        sink.deliver(batch)
        batch.removeAll(keepingCapacity: true)
    }
}
