#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import RedisProtocol

/// Sharded pub/sub (Redis 7 `SSUBSCRIBE`): a message published with `SPUBLISH` reaches only
/// the nodes of its channel's shard, so each channel is subscribed on the node that owns its
/// slot — one connection per node, on one thread. When a slot moves (resharding, failover)
/// the server ends the subscription (`sunsubscribe`) or the node goes away: the channel is
/// subscribed again on its new owner, and a gap says what may have been lost. The same sink
/// and notices as `SubscriptionWorker`, so the tail and the console use either.
public final class ShardSubscriptionWorker: Sendable {
    private struct Control {
        var channels: [Bytes] = []
        var ops: [(Bytes, Bool)] = []   // (channel, subscribe?)
        var stopping = false
    }

    private let config: ConnectionConfig
    private let sink: any SubscriberSink
    private let control = Mutex(Control())
    private let thread = WorkerThread()
    private let backoffBase: Double, backoffCap: Double
    private let pingAfter: Double, pingTimeout: Double

    /// A refused password ends the worker instead of being retried slowly.
    private let exitOnAuthFailure: Bool

    public init(config: ConnectionConfig, channels: [Bytes], sink: any SubscriberSink,
                backoffBase: Double = 0.2, backoffCap: Double = 10, pingAfter: Double = 2, pingTimeout: Double = 3,
                exitOnAuthFailure: Bool = false) {
        self.exitOnAuthFailure = exitOnAuthFailure
        self.config = config
        self.sink = sink
        self.backoffBase = backoffBase; self.backoffCap = backoffCap
        self.pingAfter = pingAfter; self.pingTimeout = pingTimeout
        var seen = Set<Bytes>()
        let unique = channels.filter { seen.insert($0).inserted }
        control.withLock { $0.channels = unique }
    }

    public var channels: [Bytes] { control.withLock { $0.channels } }

    public func start() {
        thread.start(name: "redis-ops-shard-subscriber") { [self] in self.run() }
    }

    public func stop() {
        control.withLock { $0.stopping = true }
        poke()
        thread.join()
    }

    public func subscribe(_ channel: Bytes) {
        control.withLock { c in if !c.channels.contains(channel) { c.channels.append(channel); c.ops.append((channel, true)) } }
        poke()
    }

    public func unsubscribe(_ channel: Bytes) {
        control.withLock { c in c.channels.removeAll { $0 == channel }; c.ops.append((channel, false)) }
        poke()
    }

    private func poke() { thread.poke() }
    private func drainPipe() { thread.drain() }
    private var stopping: Bool { control.withLock { $0.stopping } }

    /// One node's subscriber connection and what it carries.
    private final class Link {
        let endpoint: Endpoint
        let sub: Subscriber
        /// Channels asked for here, and those the node confirmed.
        var asked = Set<Bytes>()
        var confirmed = Set<Bytes>()
        var lastData = monotonicNow()
        var pingSentAt: Double?
        /// The last moment it was known to be receiving (wall clock).
        var alive = wallClockNow()
        init(_ ep: Endpoint, _ sub: Subscriber) { endpoint = ep; self.sub = sub }
    }

    /// A channel waiting to be (re)subscribed, with the gap it will close.
    private struct Waiting {
        var since: Double?          // nil: a first subscription, nothing was lost
        var reason: String
        var redirect: Endpoint?     // where MOVED said it lives
        var notBefore: Double = 0   // backoff after a failed attempt
    }

    private func run() {
        var nodes: NodeSet?
        var auth = AuthRetry()
        var links: [Endpoint: Link] = [:]
        var owner: [Bytes: Endpoint] = [:]
        var waiting: [Bytes: Waiting] = [:]
        var backoff = Backoff(base: backoffBase, cap: backoffCap)
        for ch in channels { waiting[ch] = Waiting(since: nil, reason: "") }
        var events: [PubSubEvent] = []
        var batch: [ReceivedMessage] = []

        func flush() { if !batch.isEmpty { sink.deliver(batch); batch.removeAll(keepingCapacity: true) } }

        /// A node failed: everything it carried waits for its new owner.
        func drop(_ link: Link, _ why: String) {
            flush()
            link.sub.close()
            links[link.endpoint] = nil
            let retry = backoff.nextDelay()
            sink.notice(.disconnected(reason: "\(link.endpoint): \(why)", retryIn: retry))
            for ch in link.asked where owner[ch] == link.endpoint {
                owner[ch] = nil
                waiting[ch] = Waiting(since: link.alive, reason: "\(link.endpoint): \(why)", notBefore: monotonicNow() + retry)
            }
            try? nodes?.refresh()
        }

        /// Where a channel lives now: MOVED's answer, else the slot map, else the endpoint named.
        func home(of ch: Bytes, _ w: Waiting) -> Endpoint {
            if let r = w.redirect { return r }
            if let n = nodes, n.isCluster, let ep = n.topology?.primary(forSlot: hashSlot(ch)) { return ep }
            return Endpoint(host: config.host, port: config.port)
        }

        func link(to ep: Endpoint) throws -> Link {
            if let l = links[ep] { return l }
            let cfg = nodes?.config(for: ep) ?? config
            let l = Link(ep, try Subscriber(cfg))
            links[ep] = l
            sink.notice(.connected(endpoint: ep.description, node: nil))
            return l
        }

        while !stopping {
            // Subscription changes from other threads.
            let ops = control.withLock { c -> [(Bytes, Bool)] in let o = c.ops; c.ops.removeAll(); return o }
            for (ch, on) in ops {
                if on { waiting[ch] = Waiting(since: nil, reason: "") }
                else {
                    waiting[ch] = nil
                    if let ep = owner[ch], let l = links[ep] {
                        l.asked.remove(ch)
                        try? l.sub.sunsubscribe(ch)
                    } else {
                        sink.notice(.unsubscribed(name: ch, isPattern: false))
                    }
                    owner[ch] = nil
                }
            }
            // The slot map, once and after failures.
            if nodes == nil && !waiting.isEmpty {
                do { nodes = try NodeSet(config: config); auth.succeeded() } catch let e as RedisError {
                    if case .auth = e, let src = config.credentials, !exitOnAuthFailure {
                        // Refused (a rotated password?): read again, tried slowly, at once when new.
                        auth.refused(version: src.version)
                        sink.notice(.disconnected(reason: "\(e.description) — \(auth.message(src))", retryIn: auth.secondsLeft()))
                        while !stopping && !auth.due(version: src.version) {
                            if !pause(1) { return }
                            src.reread()
                        }
                        continue
                    }
                    if !e.isTransient { sink.notice(.fatal(reason: e.description)); return }
                    let d = backoff.nextDelay()
                    sink.notice(.disconnected(reason: e.description, retryIn: d))
                    if !pause(d) { return }
                    continue
                } catch { sink.notice(.fatal(reason: "\(error)")); return }
            }
            // Channels waiting for a home.
            let now = monotonicNow()
            for (ch, w) in waiting where w.notBefore <= now && owner[ch] == nil {
                let ep = home(of: ch, w)
                do {
                    let l = try link(to: ep)
                    try l.sub.ssubscribe(ch)
                    l.asked.insert(ch)
                    owner[ch] = ep
                    waiting[ch]?.redirect = nil
                } catch {
                    if let l = links[ep] { drop(l, "\(error)") } else {
                        let d = backoff.nextDelay()
                        waiting[ch]?.notBefore = monotonicNow() + d
                        waiting[ch]?.redirect = nil
                        sink.notice(.disconnected(reason: "\(ep): \(error)", retryIn: d))
                        try? nodes?.refresh()
                    }
                }
            }
            // Close links that carry nothing.
            for (ep, l) in links where l.asked.isEmpty { l.sub.close(); links[ep] = nil }

            // Wait for data on any link (or a control poke, or a health check due).
            let all = Array(links.values)
            var fds = all.map { pollfd(fd: $0.sub.fd, events: Int16(POLLIN), revents: 0) }
            fds.append(pollfd(fd: thread.doorbell, events: Int16(POLLIN), revents: 0))
            var wait = 1.0
            for l in all { wait = min(wait, l.pingSentAt.map { $0 + pingTimeout - now } ?? (l.lastData + pingAfter - now)) }
            if waiting.contains(where: { owner[$0.key] == nil }) { wait = min(wait, 0.1) }
            let buffered = all.contains { $0.sub.connection.transport.hasBufferedInput }
            _ = poll(&fds, nfds_t(fds.count), buffered ? 0 : Int32(max(0, wait) * 1000) + 1)
            if fds.last!.revents != 0 { drainPipe() }
            for (i, l) in all.enumerated() where links[l.endpoint] === l {
                let t = monotonicNow()
                if fds[i].revents == 0 && !l.sub.connection.transport.hasBufferedInput {
                    if let s = l.pingSentAt, t - s > pingTimeout {
                        drop(l, "no answer to PING within \(formatSeconds(pingTimeout)) (the node hangs, or the network dropped the connection)")
                    } else if l.pingSentAt == nil && t - l.lastData > pingAfter {
                        do { try l.sub.ping(); l.pingSentAt = t } catch { drop(l, "\(error)") }
                    }
                    continue
                }
                events.removeAll(keepingCapacity: true)
                do {
                    try l.sub.read(timeout: 0, messages: &batch, events: &events, now: wallClockNow)
                } catch {
                    drop(l, "\(error)")
                    continue
                }
                l.lastData = monotonicNow()
                l.pingSentAt = nil
                if let last = batch.last { l.alive = last.receivedAt; backoff.reset() }
                for ev in events {
                    switch ev {
                    case .message(let ch, _, let payload):
                        batch.append(ReceivedMessage(channel: ch, pattern: nil, payload: payload, receivedAt: wallClockNow()))
                    case .shardSubscribed(let ch, _):
                        flush()
                        l.confirmed.insert(ch)
                        l.alive = wallClockNow()
                        backoff.reset()
                        if let w = waiting.removeValue(forKey: ch), let from = w.since {
                            sink.notice(.gap(from: from, to: wallClockNow(), reason: "\(ch.lossyString): \(w.reason); subscribed again on \(l.endpoint)"))
                        }
                        sink.notice(.subscribed(name: ch, isPattern: false))
                    case .shardUnsubscribed(let ch, _):
                        flush()
                        l.asked.remove(ch)
                        l.confirmed.remove(ch)
                        if owner[ch] == l.endpoint { owner[ch] = nil }
                        if control.withLock({ $0.channels.contains(ch) }) {
                            // Not asked for: the slot moved away from this node.
                            waiting[ch] = Waiting(since: wallClockNow(), reason: "its slot moved away from \(l.endpoint) (resharding or failover)")
                            try? nodes?.refresh()
                        } else {
                            sink.notice(.unsubscribed(name: ch, isPattern: false))
                        }
                    case .pong:
                        l.alive = wallClockNow()
                    case .refused(let name, _, let e):
                        guard let ch = name else { continue }
                        l.asked.remove(ch)
                        if owner[ch] == l.endpoint { owner[ch] = nil }
                        if let r = Redirect(e) {
                            // The slot map was out of date: go where the node says.
                            var w = waiting[ch] ?? Waiting(since: nil, reason: "")
                            w.redirect = r.endpoint(fallbackHost: l.endpoint.host)
                            waiting[ch] = w
                            try? nodes?.refresh()
                        } else if e.kind == .noAuth || e.kind == .wrongPass {
                            sink.notice(.fatal(reason: e.message)); flush(); return
                        } else {
                            waiting[ch] = nil
                            control.withLock { $0.channels.removeAll { $0 == ch } }
                            sink.notice(.refused(name: ch, isPattern: false, reason: e.message))
                        }
                    case .subscribed, .unsubscribed:
                        break
                    }
                }
                flush()
            }
        }
        for l in links.values { l.sub.close() }
    }

    private func pause(_ seconds: Double) -> Bool { thread.pause(seconds) { !stopping } }
}
