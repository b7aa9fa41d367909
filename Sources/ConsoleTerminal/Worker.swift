import Foundation
import Synchronization
import RedisProtocol
import RedisClient
import OpsCore
import ConsoleUI
#if canImport(Glibc)
import Glibc
#endif

/// What a job is given: the worker's servers, its cancellation, and a way to report early.
public struct WorkerContext {
    public let nodes: NodeSet
    public let cancelled: @Sendable () -> Bool
    public let post: @Sendable ([AppEvent]) -> Void
}

/// A thread with its own connection(s) to the server, running jobs in order. Results go
/// back as events through `post` (the console's inbox plus a wake-up). It reconnects with
/// capped, jittered backoff, re-resolving the host name each time; a write is never queued
/// while disconnected: it fails at once with a clear message.
public final class Worker: Sendable {
    public struct Job: Sendable {
        /// A newer job with the same tag cancels this one (a new scan supersedes the old).
        public var tag: String?
        public var isWrite: Bool
        public var run: @Sendable (WorkerContext) throws -> [AppEvent]
        public var onError: @Sendable (Error) -> [AppEvent]
        /// What to report when the job is cancelled before it started (nothing was done).
        public var onCancelledBeforeStart: @Sendable () -> [AppEvent]
        public init(tag: String? = nil, isWrite: Bool = false, run: @escaping @Sendable (WorkerContext) throws -> [AppEvent],
                    onError: @escaping @Sendable (Error) -> [AppEvent] = { [.notice("\($0)", .error)] },
                    onCancelledBeforeStart: @escaping @Sendable () -> [AppEvent] = { [] }) {
            self.tag = tag; self.isWrite = isWrite; self.run = run; self.onError = onError
            self.onCancelledBeforeStart = onCancelledBeforeStart
        }
    }

    final class Cancel: Sendable {
        let flag = Atomic<Bool>(false)
    }

    private struct State {
        var jobs: [(Job, Cancel)] = []
        var running: (tag: String?, cancel: Cancel)?
        var stopping = false
        var connected = false
    }

    public let name: String
    private let config: ConnectionConfig
    private let replicaReads: Bool
    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let post: @Sendable ([AppEvent]) -> Void
    /// Reports connection changes (the console's header).
    private let onLink: @Sendable (LinkState) -> Void
    private let periodic: [(interval: Double, job: Job)]

    public init(name: String, config: ConnectionConfig, replicaReads: Bool = false, periodic: [(Double, Job)] = [],
                post: @escaping @Sendable ([AppEvent]) -> Void, onLink: @escaping @Sendable (LinkState) -> Void = { _ in }) {
        self.name = name
        self.config = config
        self.replicaReads = replicaReads
        self.post = post
        self.onLink = onLink
        self.periodic = periodic.map { (interval: $0.0, job: $0.1) }
    }

    public func start() {
        let t = Thread { [self] in self.run(); self.finished.signal() }
        t.name = "redis-ops-\(name)"
        t.start()
    }

    public func stop() {
        state.withLock { s in
            s.stopping = true
            s.running?.cancel.flag.store(true, ordering: .relaxed)
            for (_, c) in s.jobs { c.flag.store(true, ordering: .relaxed) }
        }
        signal.signal()
        finished.wait()
    }

    public func submit(_ job: Job) {
        let refuse = state.withLock { s -> Bool in
            if job.isWrite && !s.connected { return true }
            if let tag = job.tag {
                if s.running?.tag == tag { s.running?.cancel.flag.store(true, ordering: .relaxed) }
                s.jobs.removeAll { $0.0.tag == tag }
            }
            s.jobs.append((job, Cancel()))
            return false
        }
        if refuse {
            post(job.onError(RedisError.closed("not connected to the server — nothing was changed")))
            return
        }
        signal.signal()
    }

    /// Cancels the running job with this tag (it stops at its next check and reports what
    /// it did) and drops queued ones, which report that they never started.
    public func cancel(tag: String) {
        let dropped = state.withLock { s -> [Job] in
            if s.running?.tag == tag { s.running?.cancel.flag.store(true, ordering: .relaxed) }
            let out = s.jobs.filter { $0.0.tag == tag }.map(\.0)
            s.jobs.removeAll { $0.0.tag == tag }
            return out
        }
        for j in dropped { post(j.onCancelledBeforeStart()) }
    }

    private func run() {
        var nodes: NodeSet?
        var backoff = Backoff(base: 0.2, cap: 10)
        var nextRetry = 0.0
        var auth = AuthRetry()
        let source = config.credentials
        var due = periodic.map { _ in 0.0 }
        while !state.withLock({ $0.stopping }) {
            let now = monotonicNow()
            // Refused: the password's source is read again (a rotated token shows up in the
            // file, or from the command); a new password is tried at once, the same one slowly.
            if nodes == nil, auth.isRefused, let src = source {
                src.reread()
                nextRetry = auth.due(version: src.version) ? now : now + auth.secondsLeft()
                onLink(.reconnecting(auth.message(src)))
            }
            if nodes == nil && now >= nextRetry {
                do {
                    nodes = try NodeSet(config: config, replicaReads: replicaReads)
                    backoff.reset()
                    auth.succeeded()
                    state.withLock { $0.connected = true }
                    onLink(.connected)
                } catch let e as RedisError {
                    if case .auth = e, source != nil {
                        auth.refused(version: source?.version ?? 0)
                        nextRetry = now + auth.secondsLeft()
                        onLink(.reconnecting(auth.message(source)))
                    } else if !e.isTransient {
                        onLink(.failed(e.description))
                        nextRetry = now + 30
                    } else {
                        let d = backoff.nextDelay()
                        nextRetry = now + d
                        onLink(.reconnecting("\(e.description) — retrying in \(String(format: "%.1f", d)) s"))
                    }
                } catch {}
            }
            var jobs: [(Job, Cancel)] = []
            if nodes != nil {
                for (i, p) in periodic.enumerated() where now >= due[i] {
                    jobs.append((p.job, Cancel()))
                    due[i] = now + p.interval
                }
            }
            // Queued jobs, one at a time (a newer one may cancel the next meanwhile).
            while !state.withLock({ $0.stopping }) {
                let next: (Job, Cancel)? = state.withLock { s in
                    if let first = jobs.first { jobs.removeFirst(); s.running = (first.0.tag, first.1); return first }
                    guard !s.jobs.isEmpty else { s.running = nil; return nil }
                    let j = s.jobs.removeFirst()
                    s.running = (j.0.tag, j.1)
                    return j
                }
                guard let (job, cancel) = next else { break }
                guard let n = nodes else {
                    post(job.onError(RedisError.closed("not connected to the server\(job.isWrite ? " — nothing was changed" : "")")))
                    continue
                }
                if cancel.flag.load(ordering: .relaxed) { post(job.onCancelledBeforeStart()); continue }
                let ctx = WorkerContext(nodes: n, cancelled: { cancel.flag.load(ordering: .relaxed) }, post: post)
                do {
                    let evs = try job.run(ctx)
                    if !cancel.flag.load(ordering: .relaxed) || job.isWrite { post(evs) }
                } catch is ScanCancelled {
                } catch {
                    if !cancel.flag.load(ordering: .relaxed) { post(job.onError(error)) }
                    if Self.lostConnection(error), (try? n.seed().call([Bytes(utf8: "PING")])) == nil {
                        // The server is gone: start again (re-resolving the name) after a pause.
                        n.close()
                        nodes = nil
                        state.withLock { $0.connected = false }
                        nextRetry = monotonicNow() + backoff.nextDelay()
                        onLink(.reconnecting("\(error)"))
                        break
                    }
                }
            }
            state.withLock { $0.running = nil }
            var wait = 1.0
            if nodes == nil { wait = max(0.01, min(wait, nextRetry - monotonicNow())) }
            else if let soonest = due.min() { wait = max(0.01, min(wait, soonest - monotonicNow())) }
            _ = signal.wait(timeout: .now() + wait)
        }
        nodes?.close()
    }

    /// The connection may be gone (the one classification: a failover), so it is checked.
    static func lostConnection(_ e: Error) -> Bool {
        guard let r = e as? RedisError else { return false }
        return r.disposition == .failover
    }
}
