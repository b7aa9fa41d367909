import Foundation
import Synchronization
import RedisProtocol
import RedisClient
import ConsoleUI

/// The console's command connection, on its own thread: jobs run in order; results
/// come back as events through the inbox (and a wake-up of the input loop). It
/// reconnects with capped, jittered backoff; a write job is never queued while
/// disconnected: it fails at once with a clear message.
public final class CommandWorker: Sendable {
    public struct Job: Sendable {
        public var isWrite: Bool
        public var run: @Sendable (RedisConnection) throws -> [AppEvent]
        public var onError: @Sendable (RedisError) -> [AppEvent]
        public init(isWrite: Bool = false, run: @escaping @Sendable (RedisConnection) throws -> [AppEvent],
                    onError: @escaping @Sendable (RedisError) -> [AppEvent] = { [.failed($0.description)] }) {
            self.isWrite = isWrite; self.run = run; self.onError = onError
        }
    }
    private struct State {
        var jobs: [Job] = []
        var stopping = false
        var connected = false
    }
    private let config: ConnectionConfig
    private let state = Mutex(State())
    private let signal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let post: @Sendable ([AppEvent]) -> Void
    /// Jobs run every `interval` seconds while connected (refreshing views).
    private let periodic: [(interval: Double, job: Job)]

    public init(config: ConnectionConfig, periodic: [(Double, Job)] = [], post: @escaping @Sendable ([AppEvent]) -> Void) {
        self.config = config
        self.post = post
        self.periodic = periodic.map { (interval: $0.0, job: $0.1) }
    }

    public func start() {
        let t = Thread { [self] in self.run(); self.finished.signal() }
        t.name = "redis-ops-command"
        t.start()
    }

    public func stop() {
        state.withLock { $0.stopping = true }
        signal.signal()
        finished.wait()
    }

    public func submit(_ job: Job) {
        let refuse = state.withLock { s -> Bool in
            if job.isWrite && !s.connected { return true }
            s.jobs.append(job)
            return false
        }
        if refuse {
            post(job.onError(.closed("not connected to the server — nothing was changed")))
            return
        }
        signal.signal()
    }

    private func run() {
        var conn: RedisConnection?
        var backoff = Backoff(base: 0.2, cap: 10)
        var nextRetry = 0.0
        var due = periodic.map { _ in 0.0 }
        while !state.withLock({ $0.stopping }) {
            let now = monotonicNow()
            if conn == nil && now >= nextRetry {
                do {
                    conn = try RedisConnection(config)
                    backoff.reset()
                    state.withLock { $0.connected = true }
                    post([.commandLink(.connected)])
                } catch let e as RedisError {
                    if !e.isTransient {
                        post([.commandLink(.failed(e.description)), .failed(e.description)])
                        nextRetry = .infinity
                    } else {
                        let d = backoff.nextDelay()
                        nextRetry = now + d
                        post([.commandLink(.reconnecting("\(e.description) — retrying in \(String(format: "%.1f", d)) s"))])
                    }
                } catch {}
            }
            // Queued jobs first, then periodic ones that are due.
            var jobs = state.withLock { s -> [Job] in let j = s.jobs; s.jobs.removeAll(); return j }
            if let c = conn {
                for (i, p) in periodic.enumerated() where now >= due[i] {
                    jobs.append(p.job)
                    due[i] = now + p.interval
                }
                for job in jobs {
                    do {
                        post(try job.run(c))
                    } catch let e as RedisError {
                        post(job.onError(e))
                        if c.isBroken {
                            conn = nil
                            state.withLock { $0.connected = false }
                            nextRetry = monotonicNow() + backoff.nextDelay()
                            post([.commandLink(.reconnecting(e.description))])
                            break
                        }
                    } catch {
                        post([.failed("\(error)")])
                    }
                }
            } else {
                for job in jobs { post(job.onError(.closed("not connected to the server — nothing was changed"))) }
            }
            var wait = 1.0
            if conn == nil { wait = max(0.01, min(wait, nextRetry - monotonicNow())) }
            else if let soonest = due.min() { wait = max(0.01, min(wait, soonest - monotonicNow())) }
            _ = signal.wait(timeout: .now() + wait)
        }
        conn?.close()
    }
}
