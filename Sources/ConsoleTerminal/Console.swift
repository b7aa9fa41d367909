import Foundation
import Synchronization
import RedisProtocol
import RedisClient
import OpsCore
import ConsoleUI
#if canImport(Glibc)
import Glibc
#endif

/// A self-pipe that wakes the input loop; wake-ups coalesce.
final class WakePipe: Sendable {
    let readFD: Int32
    let writeFD: Int32
    private let pending = Atomic<Bool>(false)
    init() {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        readFD = fds[0]; writeFD = fds[1]
    }
    func wake() {
        if pending.exchange(true, ordering: .acquiringAndReleasing) { return }
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }
    func drain() {
        pending.store(false, ordering: .releasing)
        var buf = [UInt8](repeating: 0, count: 256)
        while read(readFD, &buf, 256) > 0 {}
    }
}

/// The view on screen, read by background jobs that only work for it.
final class CurrentView: Sendable {
    private let raw = Atomic<Int>(ViewID.events.rawValue)
    func set(_ v: ViewID) { raw.store(v.rawValue, ordering: .relaxed) }
    func get() -> Int { raw.load(ordering: .relaxed) }
}

final class CancelFlag: Sendable {
    private let raw = Atomic<Bool>(false)
    func set(_ v: Bool) { raw.store(v, ordering: .relaxed) }
    var isSet: Bool { raw.load(ordering: .relaxed) }
}

/// The servers behind the command connection (every primary in cluster mode), rebuilt
/// when the worker reconnects. Used on the command worker's thread only.
final class NodeCache: @unchecked Sendable {
    private var conn: RedisConnection?
    private var cached: NodeSet?
    func nodes(for c: RedisConnection) throws -> NodeSet {
        if let n = cached, conn === c { return n }
        cached?.close()
        let n = try NodeSet(seed: c)
        conn = c
        cached = n
        return n
    }
}

final class KnownCounters: Sendable {
    let state = Mutex<(keys: [Bytes], lastFull: Double)>(([], 0))
}

/// Events from worker threads, waiting for the input loop.
final class Inbox: Sendable {
    private let events = Mutex<[AppEvent]>([])
    func post(_ evs: [AppEvent]) { events.withLock { $0 += evs } }
    func take() -> [AppEvent] { events.withLock { e in let out = e; e.removeAll(); return out } }
}

/// Signals that end the console cleanly (Ctrl-C, SIGTERM, SIGHUP), via a pipe.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1
private func onQuitSignal(_ sig: Int32) {
    var b = UInt8(truncatingIfNeeded: sig)
    _ = write(signalPipeWrite, &b, 1)
}

public struct ConsoleSettings: Sendable {
    public var options: ConnectionOptions
    public var channels: [Bytes]
    public var patterns: [Bytes]
    public var bufferSize: Int
    public var schema: KeySchema
    public init(options: ConnectionOptions, channels: [Bytes], patterns: [Bytes], bufferSize: Int = 10_000, schema: KeySchema? = nil) {
        self.options = options; self.channels = channels; self.patterns = patterns; self.bufferSize = bufferSize
        self.schema = schema ?? KeySchema(prefix: options.prefix)
    }
}

/// The interactive console: one thread owns ncurses and runs one poll() loop over
/// stdin, a wake pipe (subscriber and command workers) and a signal pipe.
public final class Console {
    let settings: ConsoleSettings
    let wake = WakePipe()
    let store: TailStore
    let inbox = Inbox()

    let nodeCache = NodeCache()

    public init(_ settings: ConsoleSettings) {
        self.settings = settings
        let w = wake
        store = TailStore(capacity: settings.bufferSize, wake: { w.wake() })
    }

    public func run() throws {
        var sigFDs: [Int32] = [0, 0]
        _ = pipe(&sigFDs)
        _ = fcntl(sigFDs[0], F_SETFL, fcntl(sigFDs[0], F_GETFL) | O_NONBLOCK)
        signalPipeWrite = sigFDs[1]
        for s in [SIGINT, SIGTERM, SIGHUP] { signal(s, onQuitSignal) }
        defer {
            for s in [SIGINT, SIGTERM, SIGHUP] { signal(s, SIG_DFL) }
            close(sigFDs[0]); close(sigFDs[1])
        }

        let o = settings.options
        let term = try Terminal()
        defer { term.shutdown() }

        var session = SessionInfo(endpoint: o.config.endpoint, tls: o.isTLS, insecure: o.insecure, user: o.config.user,
                                  prefix: o.prefix, readOnly: o.readOnly)
        session.command = .connecting
        let (w0, h0) = term.size
        var state = AppState(width: w0, height: h0, now: wallClockNow(), session: session)
        state.schema = settings.schema
        state.subscriptions = settings.channels.map { Subscription(name: $0, isPattern: false) }
            + settings.patterns.map { Subscription(name: $0, isPattern: true) }
        if o.insecure {
            state.flash = Flash(text: "TLS certificate verification is OFF (--insecure)", level: .warning, until: state.now + 15)
        }

        let inbox = self.inbox, wake = self.wake
        let post: @Sendable ([AppEvent]) -> Void = { evs in
            if evs.isEmpty { return }
            inbox.post(evs)
            wake.wake()
        }
        let infoJob = CommandWorker.Job(run: { c in
            let r = try c.call("INFO", "replication")
            return [.serverInfo(role: ServerInfo(text: r.string ?? "")["role"])]
        }, onError: { e in
            if case .server = e { return [.serverInfo(role: nil)] }  // INFO not permitted: the header says less
            return []
        })
        let viewNow = CurrentView()
        let rateJob = Self.rateLimitsJob(settings.schema, view: viewNow, nodes: nodeCache)
        let serverJob = Self.serverJob(view: viewNow)
        let locksJob = Self.locksJob(settings.schema, view: viewNow, nodes: nodeCache)
        let commands = CommandWorker(config: o.config, periodic: [(5, infoJob), (1, rateJob), (2, serverJob), (2, locksJob)], post: post)
        let subscriber = SubscriptionWorker(config: o.config, channels: settings.channels, patterns: settings.patterns, sink: store)
        commands.start()
        subscriber.start()
        defer {
            subscriber.stop()
            commands.stop()
        }

        var lastRender = 0.0
        var dirty = true
        var nextTick = monotonicNow() + 1
        var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: sigFDs[0], events: Int16(POLLIN), revents: 0)]

        func apply(_ ev: AppEvent) {
            let before = state.view
            let effects = store.tail.withLock { t in Reducer.reduce(&state, ev, tail: t) }
            dirty = true
            for e in effects { perform(e, &state, subscriber: subscriber, commands: commands, post: post) }
            if state.view != before {
                viewNow.set(state.view)
                // Show the new view's data at once rather than at the next period.
                if state.view == .rateLimits { commands.submit(rateJob) }
                if state.view == .server { commands.submit(serverJob) }
                if state.view == .locks { commands.submit(locksJob) }
            }
        }

        while !state.quitting {
            let now = monotonicNow()
            var timeout = max(0, nextTick - now)
            if dirty { timeout = min(timeout, max(0, lastRender + 1.0 / 30 - now)) }
            for i in fds.indices { fds[i].revents = 0 }
            let r = poll(&fds, 3, Int32(timeout * 1000))
            if r < 0 && errno != EINTR { break }
            if fds[2].revents != 0 { state.quitting = true; break }
            if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 { break }
            // Keys (and resizes: a resize interrupts poll and get_wch reports it).
            while let k = term.readKey() {
                switch k {
                case .key(let key): apply(.key(key))
                case .resize:
                    let (w, h) = term.size
                    term.invalidate()
                    apply(.resize(width: w, height: h))
                case .ignored: break
                }
                if state.quitting { break }
            }
            if fds[1].revents != 0 {
                wake.drain()
                let evs = inbox.take()
                for ev in evs { apply(ev) }
                for n in store.takeNotices() { apply(.subscriber(n)) }
                apply(.tailChanged)
            }
            let t = monotonicNow()
            if t >= nextTick {
                apply(.tick(wallClockNow()))
                nextTick = t + 1
            }
            if dirty && t - lastRender >= 1.0 / 30 {
                let grid = store.tail.withLock { tail in Screen.render(state, tail: tail) }
                term.draw(grid)
                lastRender = t
                dirty = false
            }
        }
    }

    /// Rate limits: a full rescan every 10 s, otherwise the known counters re-read in one pipeline.
    static func rateLimitsJob(_ schema: KeySchema, view: CurrentView, nodes: NodeCache) -> CommandWorker.Job {
        let reader = RateLimitReader(schema: schema)
        let known = KnownCounters()
        return CommandWorker.Job(run: { c in
            guard view.get() == ViewID.rateLimits.rawValue else { return [] }
            let now = wallClockNow()
            let (keys, lastFull) = known.state.withLock { ($0.keys, $0.lastFull) }
            let full = keys.isEmpty || now - lastFull >= 10
            let ns = try nodes.nodes(for: c)
            var list = full ? try reader.scanAll(ns) : try reader.read(Array(keys.prefix(5000)), ns)
            list.sort(by: RateLimitCounter.ordered)
            known.state.withLock { k in
                if full { k.keys = list.map(\.key); k.lastFull = now }
            }
            return [.rateLimits(list, full: full, at: now)]
        }, onError: { e in [.rateLimitsFailed(e.description)] })
    }

    /// Server: INFO (and SLOWLOG where allowed) every 2 s while the view is open.
    static func serverJob(view: CurrentView) -> CommandWorker.Job {
        CommandWorker.Job(run: { c in
            guard view.get() == ViewID.server.rawValue else { return [] }
            let (ov, extra) = try ServerOverview.fetch(c, alongWith: [[Bytes(utf8: "SLOWLOG"), Bytes(utf8: "GET"), Bytes(utf8: "10")]])
            var out: [AppEvent] = [.serverSample(ServerSample(at: wallClockNow(), overview: ov))]
            let sl = extra[0]
            if let e = sl.errorReply { out.append(.slowlog(nil, error: e.message)) }
            else { out.append(.slowlog(SlowlogEntry.parse(sl), error: nil)) }
            return out
        })
    }

    static func locksJob(_ schema: KeySchema, view: CurrentView, nodes: NodeCache) -> CommandWorker.Job {
        CommandWorker.Job(run: { c in
            guard view.get() == ViewID.locks.rawValue else { return [] }
            return [.locks(try LockRow.read(schema: schema, nodes: nodes.nodes(for: c)), at: wallClockNow())]
        }, onError: { e in [.locksFailed(e.description)] })
    }

    let cancelInvalidation = CancelFlag()

    var audit: AuditLog {
        let env = ProcessInfo.processInfo.environment
        return AuditLog(path: AuditLog.defaultPath(environment: env), channel: env["REDIS_OPS_AUDIT_CHANNEL"].flatMap { $0.isEmpty ? nil : $0 })
    }

    /// One step of the key browser, one round trip: the metadata of the page found by the
    /// previous SCAN and the next SCAN (DBSIZE of every node with the first one). It queues
    /// the next step itself, moving on to the next primary in cluster mode.
    static func scanStep(_ scanner: KeyScanner, node: Int, pending: [Bytes], _ fetcher: MetadataFetcher, session: Int, schema: KeySchema,
                         nodes: NodeCache, commands: CommandWorker, post: @escaping @Sendable ([AppEvent]) -> Void, scanned: Int, first: Bool) {
        let job = CommandWorker.Job(run: { c in
            let all = try nodes.nodes(for: c).scanNodes()
            var estimate: Int? = nil
            if first && all.count > 1 {
                var n = 0
                for conn in all.dropFirst() { n += Int(try conn.call("DBSIZE").int ?? 0) }
                estimate = n
            }
            let conn = all[min(node, all.count - 1)]
            var (cmds, meta) = fetcher.commands(for: pending)
            if first { cmds.append([Bytes(utf8: "DBSIZE")]) }
            // At most 200,000 keys are kept: past that, only the last page's metadata is fetched.
            let capped = scanned >= 200_000
            let scan = capped ? nil : scanner.nextCommand
            if let sc = scan { cmds.append(sc) }
            let replies = try conn.pipeline(cmds)
            if first, let n = replies[meta.replyCount].int { estimate = (estimate ?? 0) + Int(n) }
            let metas = fetcher.parse(meta, replies.prefix(meta.replyCount))
            let found = scan != nil ? try scanner.consume(replies[replies.count - 1]) : []
            let total = scanned + found.count
            var done = false
            if !found.isEmpty || (!capped && !scanner.done) {
                Self.scanStep(scanner, node: node, pending: found, fetcher, session: session, schema: schema, nodes: nodes,
                              commands: commands, post: post, scanned: total, first: false)
            } else if !capped && node + 1 < all.count {
                Self.scanStep(KeyScanner(match: schema.fullGlob("*"), count: 1000), node: node + 1, pending: [], fetcher, session: session,
                              schema: schema, nodes: nodes, commands: commands, post: post, scanned: total, first: false)
            } else {
                done = true
            }
            return [.keysPage(metas, scanned: total, done: done, estimate: estimate, session: session, at: wallClockNow())]
        }, onError: { e in [.keysFailed(e.description)] })
        commands.submit(job)
    }

    func perform(_ e: Effect, _ state: inout AppState, subscriber: SubscriptionWorker, commands: CommandWorker,
                 post: @escaping @Sendable ([AppEvent]) -> Void) {
        let o = settings.options
        let schema = settings.schema
        switch e {
        case .scanKeys(let session):
            Self.scanStep(KeyScanner(match: schema.fullGlob("*"), count: 1000), node: 0, pending: [], MetadataFetcher(), session: session, schema: schema,
                          nodes: nodeCache, commands: commands, post: post, scanned: 0, first: true)
        case .inspect(let key, let cursor):
            let nodes = nodeCache
            commands.submit(CommandWorker.Job(run: { c in [.inspected(try KeyInspector.inspect(key, cursor: cursor, nodes: nodes.nodes(for: c)))] },
                                              onError: { e in [.failed("cannot inspect \(Escaper.string(key)): \(e.description)")] }))
        case .deleteKey(let key):
            guard !o.readOnly else { post([.failed("read-only mode: nothing was deleted")]); return }
            let audit = self.audit
            let nodes = nodeCache
            commands.submit(CommandWorker.Job(isWrite: true, run: { c in
                let r = try nodes.nodes(for: c).node(forKey: key).call([Bytes(utf8: "UNLINK"), key])
                var rep = InvalidationReport(matched: 1)
                rep.deleted = r.int == 1 ? 1 : 0
                rep.alreadyGone = 1 - rep.deleted
                try? audit.append(audit.record(server: o.summary, aclUser: o.config.user, what: InvalidationRequest(keys: [key]), report: rep), publishOn: c)
                return [.deleted(key: key, existed: r.int == 1)]
            }, onError: { e in [.failed("delete of \(Escaper.string(key)) failed: \(e.description) — nothing was deleted")] }))
        case .planInvalidation(let glob):
            cancelInvalidation.set(false)
            let cancel = cancelInvalidation
            let nodes = nodeCache
            commands.submit(CommandWorker.Job(run: { c in
                let plan = try Invalidator(schema: schema).plan(InvalidationRequest(glob: glob), nodes: nodes.nodes(for: c),
                                                                progress: { n in post([.invalidationPlanning(found: n)]) },
                                                                cancelled: { cancel.isSet })
                return cancel.isSet ? [] : [.invalidationPlanned(plan)]
            }, onError: { e in [.invalidationFailed(e.description)] }))
        case .executeInvalidation(let plan):
            guard !o.readOnly else { post([.invalidationFailed("read-only mode: nothing was deleted")]); return }
            cancelInvalidation.set(false)
            let cancel = cancelInvalidation
            let audit = self.audit
            let nodes = nodeCache
            commands.submit(CommandWorker.Job(isWrite: true, run: { c in
                var last = 0.0
                let rep = Invalidator(schema: schema).execute(plan, nodes: try nodes.nodes(for: c), cancelled: { cancel.isSet }, progress: { p in
                    let t = monotonicNow()
                    if t - last > 0.1 || p.done == p.total { last = t; post([.invalidationProgress(p)]) }
                })
                try? audit.append(audit.record(server: o.summary, aclUser: o.config.user, what: plan.request, report: rep), publishOn: c)
                return [.invalidationDone(rep)]
            }, onError: { e in [.invalidationFailed("\(e.description) — nothing was deleted")] }))
        case .cancelInvalidation:
            cancelInvalidation.set(true)
        case .resetCounter(let key):
            guard !settings.options.readOnly else {
                post([.failed("read-only mode: nothing was changed")])
                return
            }
            let nodes = nodeCache
            commands.submit(CommandWorker.Job(isWrite: true, run: { c in
                let r = try nodes.nodes(for: c).node(forKey: key).call([Bytes(utf8: "DEL"), key])
                return [.deleted(key: key, existed: r.int == 1)]
            }, onError: { e in [.failed("reset of \(Escaper.string(key)) failed: \(e.description)")] }))
        case .quit:
            state.quitting = true
        case .subscribe(let name, let p):
            subscriber.subscribe(name, pattern: p)
        case .unsubscribe(let name, let p):
            subscriber.unsubscribe(name, pattern: p)
        case .writeTail(let path, let filter, let upTo):
            let entries = store.tail.withLock { $0.entries(upTo: upTo, filter: filter) }
            do {
                var out = Bytes()
                var n = 0
                for entry in entries {
                    guard let m = entry.message else { continue }
                    TailJSON.line(m, truncatedFrom: entry.originalSize, into: &out)
                    n += 1
                }
                try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic)
                post([.wrote(path: path, count: n)])
            } catch {
                post([.failed("cannot write \(path): \((error as NSError).localizedDescription)")])
            }
        }
    }
}
