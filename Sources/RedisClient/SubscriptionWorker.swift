#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import RedisProtocol

/// What the worker reports besides messages.
public enum SubscriberNotice: Sendable, Equatable {
    case connected(endpoint: String)
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
    private let pipeFDs: (Int32, Int32)
    private let finished = DispatchSemaphore(value: 0)
    private let backoffBase: Double
    private let backoffCap: Double
    /// Idle time before a PING health check, and how long to wait for its answer.
    private let pingAfter: Double
    private let pingTimeout: Double

    public init(config: ConnectionConfig, channels: [Bytes], patterns: [Bytes], sink: any SubscriberSink,
                backoffBase: Double = 0.2, backoffCap: Double = 10, pingAfter: Double = 15, pingTimeout: Double = 10) {
        self.config = config
        self.sink = sink
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.pingAfter = pingAfter
        self.pingTimeout = pingTimeout
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        pipeFDs = (fds[0], fds[1])
        control.withLock {
            $0.channels = Self.unique(channels)
            $0.patterns = Self.unique(patterns)
        }
    }

    private static func unique(_ xs: [Bytes]) -> [Bytes] {
        var seen = Set<Bytes>(); return xs.filter { seen.insert($0).inserted }
    }

    public func start() {
        let t = Thread { [self] in self.run(); self.finished.signal() }
        t.name = "redis-ops-subscriber"
        t.start()
    }

    /// Stops the worker and waits for its thread to finish.
    public func stop() {
        control.withLock { $0.stopping = true }
        poke()
        finished.wait()
        close(pipeFDs.0); close(pipeFDs.1)
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

    private func poke() {
        var b: UInt8 = 1
        _ = write(pipeFDs.1, &b, 1)
    }

    private func drainPipe() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(pipeFDs.0, &buf, 64) > 0 {}
    }

    private var stopping: Bool { control.withLock { $0.stopping } }

    /// Sleeps up to `seconds`, waking early if stopped. Returns false when stopping.
    private func pause(_ seconds: Double) -> Bool {
        let end = monotonicNow() + seconds
        while !stopping {
            let left = end - monotonicNow()
            if left <= 0 { return true }
            var p = pollfd(fd: pipeFDs.0, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32(min(left, 1.0) * 1000) + 1)
            drainPipe()
        }
        return false
    }

    private func run() {
        var backoff = Backoff(base: backoffBase, cap: backoffCap)
        var lostAt: Double? = nil
        var lostReason = ""
        while !stopping {
            let sub: Subscriber
            do {
                sub = try Subscriber(config)
            } catch let e as RedisError {
                if !e.isTransient {
                    sink.notice(.fatal(reason: e.description))
                    _ = pause(.infinity)
                    return
                }
                if lostAt == nil { lostAt = wallClockNow(); lostReason = e.description }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: e.description, retryIn: d))
                if !pause(d) { return }
                continue
            } catch {
                sink.notice(.fatal(reason: "\(error)"))
                return
            }
            // Resubscribe to exactly what is wanted now.
            let (chs, pats) = control.withLock { c -> ([Bytes], [Bytes]) in c.ops.removeAll(); return (c.channels, c.patterns) }
            do {
                try sub.subscribe(chs)
                try sub.psubscribe(pats)
            } catch {
                if lostAt == nil { lostAt = wallClockNow() }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: "\(error)", retryIn: d))
                sub.close()
                if !pause(d) { return }
                continue
            }
            sink.notice(.connected(endpoint: config.endpoint))
            if let t = lostAt { sink.notice(.gap(from: t, to: wallClockNow(), reason: lostReason)); lostAt = nil }
            let err = pump(sub, backoff: &backoff)
            sub.close()
            if stopping { return }
            if let err {
                lostAt = wallClockNow()
                lostReason = err.text
                if case .fatal = err { return }
                let d = backoff.nextDelay()
                sink.notice(.disconnected(reason: err.text, retryIn: d))
                if !pause(d) { return }
            }
        }
    }

    private enum PumpEnd { case transient(String), fatal(String)
        var text: String { switch self { case .transient(let s), .fatal(let s): return s } }
    }

    /// Reads until the connection fails or the worker stops.
    private func pump(_ sub: Subscriber, backoff: inout Backoff) -> PumpEnd? {
        var events: [PubSubEvent] = []
        events.reserveCapacity(4096)
        var batch: [ReceivedMessage] = []
        batch.reserveCapacity(4096)
        var lastData = monotonicNow()
        var pingSentAt: Double? = nil
        var healthy = false
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
            } catch { return .transient("\(error)") }

            if !sub.connection.transport.hasBufferedInput {
                var fds = [pollfd(fd: sub.fd, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: pipeFDs.0, events: Int16(POLLIN), revents: 0)]
                let wait = pingSentAt.map { $0 + pingTimeout - monotonicNow() } ?? (lastData + pingAfter - monotonicNow())
                let r = poll(&fds, 2, Int32(max(0, min(wait, 1.0)) * 1000) + 1)
                if fds[1].revents != 0 { drainPipe() }
                if r <= 0 || fds[0].revents == 0 {
                    let now = monotonicNow()
                    if let s = pingSentAt, now - s > pingTimeout {
                        return .transient("no answer to PING within \(Int(pingTimeout)) s")
                    }
                    if pingSentAt == nil && now - lastData > pingAfter {
                        do { try sub.ping() } catch { return .transient("\(error)") }
                        pingSentAt = now
                    }
                    continue
                }
            }
            events.removeAll(keepingCapacity: true)
            do {
                try sub.read(timeout: 0, messages: &batch, events: &events, now: wallClockNow)
            } catch let e as RedisError {
                flush(&batch)
                return .transient(e.description)
            } catch {
                flush(&batch)
                return .transient("\(error)")
            }
            if events.isEmpty && batch.isEmpty { continue }
            lastData = monotonicNow()
            pingSentAt = nil
            if !batch.isEmpty && !healthy { healthy = true; backoff.reset() }
            for ev in events {
                switch ev {
                case .message(let ch, let pat, let payload):
                    batch.append(ReceivedMessage(channel: ch, pattern: pat, payload: payload, receivedAt: wallClockNow()))
                case .subscribed(let n, let p, _):
                    if !healthy { healthy = true; backoff.reset() }
                    flush(&batch); sink.notice(.subscribed(name: n, isPattern: p))
                case .unsubscribed(let n, let p, _):
                    flush(&batch); sink.notice(.unsubscribed(name: n, isPattern: p))
                case .pong:
                    if !healthy { healthy = true; backoff.reset() }
                case .refused(let n, let p, let e):
                    if e.kind == .noAuth || e.kind == .wrongPass {
                        flush(&batch); sink.notice(.fatal(reason: e.message)); return .fatal(e.message)
                    }
                    if let n {
                        control.withLock { c in
                            if p { c.patterns.removeAll { $0 == n } } else { c.channels.removeAll { $0 == n } }
                        }
                    }
                    flush(&batch); sink.notice(.refused(name: n, isPattern: p, reason: e.message))
                }
            }
            flush(&batch)
        }
        return nil
    }

    private func flush(_ batch: inout [ReceivedMessage]) {
        if batch.isEmpty { return }
        sink.deliver(batch)
        batch.removeAll(keepingCapacity: true)
    }
}
