import Foundation
import Synchronization
import RedisProtocol
import RedisClient
import OpsCore
import ConsoleUI
#if canImport(Glibc)
import Glibc
#endif

/// A self-pipe that wakes the input loop; wake-ups coalesce. The pipe is read *before*
/// the flag is cleared, and the inboxes are read *after*: a wake-up racing a drain either
/// leaves a byte in the pipe (a spurious wake) or finds its event already posted, never
/// neither — so no wake-up is ever lost.
public final class WakePipe: Sendable {
    public let readFD: Int32
    let writeFD: Int32
    private let pending = Atomic<Bool>(false)
    public init() {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        readFD = fds[0]; writeFD = fds[1]
    }
    deinit { close(readFD); close(writeFD) }

    /// Call after the event is posted.
    public func wake() {
        if pending.exchange(true, ordering: .acquiringAndReleasing) { return }
        var b: UInt8 = 1
        _ = write(writeFD, &b, 1)
    }

    /// Call before taking the posted events.
    public func drain() {
        var buf = [UInt8](repeating: 0, count: 256)
        while read(readFD, &buf, 256) > 0 {}
        pending.store(false, ordering: .sequentiallyConsistent)
    }
}

/// Events from worker threads, waiting for the input loop.
public final class Inbox: Sendable {
    private let events = Mutex<[AppEvent]>([])
    public init() {}
    public func post(_ evs: [AppEvent]) { events.withLock { $0 += evs } }
    public func take() -> [AppEvent] { events.withLock { e in let out = e; e.removeAll(); return out } }
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
    /// Sharded channels (SSUBSCRIBE), each on the node that owns its slot.
    public var shardChannels: [Bytes] = []
    public var bufferSize: Int
    public var schema: KeySchema
    public var audit: AuditLog
    public var colour: Bool
    public var replicaReads: Bool
    public init(options: ConnectionOptions, channels: [Bytes], patterns: [Bytes], bufferSize: Int = 10_000, schema: KeySchema? = nil,
                audit: AuditLog? = nil, colour: Bool = true, replicaReads: Bool = false) {
        self.options = options; self.channels = channels; self.patterns = patterns; self.bufferSize = bufferSize
        self.schema = schema ?? KeySchema(prefix: options.prefix)
        self.audit = audit ?? AuditLog.resolve(explicit: nil, environment: ProcessInfo.processInfo.environment)
        self.colour = colour
        self.replicaReads = replicaReads
    }
}

/// Where the console draws and reads keys: ncurses on a terminal, or nothing at all (the
/// benchmark drives the same loop headless).
public protocol TerminalBackend: AnyObject {
    var size: (width: Int, height: Int) { get }
    /// A descriptor poll() watches for input (-1: none).
    var inputFD: Int32 { get }
    func readKey() -> KeyInput?
    func draw(_ g: CellGrid)
    func invalidate()
    func shutdown()
}

public enum KeyInput: Sendable { case key(Key), resize, ignored }

/// Counts the loop keeps, for the benchmark.
public struct ConsoleMeter: Sendable {
    public var frames = 0
    public var renderSeconds = 0.0
    public var reduceSeconds = 0.0
    public var events = 0
    public var keys = 0
    /// Time from a key's arrival to its frame being drawn, per key.
    public var keyToFrame: [Double] = []
}

/// The interactive console: one thread owns the terminal and runs one poll() loop over
/// the keyboard, a wake pipe (subscriber and workers) and a signal pipe. The subscriber's
/// thread only fills a bounded inbox; the ring buffer, the reducer and the renderer belong
/// to this thread, so drawing never holds a lock the subscriber needs.
public final class Console {
    /// Signals that end the console cleanly, the terminal restored (Ctrl-C, kill, a closed
    /// terminal, Ctrl-\\).
    static let quitSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
    public let settings: ConsoleSettings
    let wake = WakePipe()
    let inbox = Inbox()
    let tailInbox: TailInbox
    var tail: ChannelTail
    public private(set) var meter = ConsoleMeter()
    /// Set by the benchmark: called after each frame with the state and the grid.
    /// Set by the benchmark: called after each frame with the state, the grid and the
    /// seconds the frame took to render and draw.
    public var onFrame: ((AppState, CellGrid, Double) -> Void)?

    public init(_ settings: ConsoleSettings) {
        self.settings = settings
        let w = wake
        tailInbox = TailInbox(capacity: settings.bufferSize, wake: { w.wake() })
        tail = ChannelTail(capacity: settings.bufferSize)
    }

    /// Runs on a real terminal (ncurses) until the operator quits.
    public func run() throws {
        do {
            let term = try Terminal(colour: settings.colour)
            defer { term.shutdown() }
            try run(on: term)
        }
        if let n = exitNote { FileHandle.standardError.write(Data((n + "\n").utf8)) }
    }

    /// Said on stderr once the terminal is restored (what was put back on exit).
    public private(set) var exitNote: String?

    public func run(on term: TerminalBackend, installSignals: Bool = true) throws {
        var sigFDs: [Int32] = [-1, -1]
        if installSignals {
            _ = pipe(&sigFDs)
            _ = fcntl(sigFDs[0], F_SETFL, fcntl(sigFDs[0], F_GETFL) | O_NONBLOCK)
            signalPipeWrite = sigFDs[1]
            for s in Console.quitSignals { signal(s, onQuitSignal) }
        }
        defer {
            if installSignals {
                for s in Console.quitSignals { signal(s, SIG_DFL) }
                close(sigFDs[0]); close(sigFDs[1])
            }
        }

        let o = settings.options
        var session = SessionInfo(endpoint: o.config.endpoint, tls: o.isTLS, insecure: o.insecure, user: o.config.user,
                                  prefix: o.prefix, readOnly: o.readOnly)
        session.colour = settings.colour
        session.tlsBecause = o.config.tls?.because
        let (w0, h0) = term.size
        var state = AppState(width: w0, height: h0, now: wallClockNow(), session: session)
        state.schema = settings.schema
        state.auditPath = settings.audit.path
        state.subscriptions = settings.channels.map { Subscription(name: $0, isPattern: false) }
            + settings.patterns.map { Subscription(name: $0, isPattern: true) }
            + settings.shardChannels.map { Subscription(name: $0, isPattern: false, isShard: true) }
        if o.insecure {
            state.flash = Flash(text: "TLS certificate verification is OFF (--insecure)", level: .warning, until: state.now + 15)
        }

        let inbox = self.inbox, wake = self.wake
        let post: @Sendable ([AppEvent]) -> Void = { evs in
            if evs.isEmpty { return }
            inbox.post(evs)
            wake.wake()
        }
        // The header's role: INFO replication every few seconds on the interactive connection.
        let roleJob = Worker.Job(tag: "role", run: { ctx in
            var r = try ServerRole.read(ctx.nodes.seed())
            r.cluster = ClusterShape(ctx.nodes)
            return [.serverRole(r)]
        }, onError: { e in
            if case .server? = e as? RedisError { return [.serverRole(nil)] }  // INFO not permitted: the header says less
            return []
        })
        let interactive = Worker(name: "interactive", config: o.config, replicaReads: settings.replicaReads, periodic: [(5, roleJob)],
                                 post: post, onLink: { post([.commandLink($0)]) })
        let bulk = Worker(name: "bulk", config: o.config, replicaReads: settings.replicaReads, post: post)
        // Rate limits and Locks read their whole set on their own worker: a first reading
        // never waits behind a Keys scan of a million keys (as `ratelimits` headless does not).
        let boards = Worker(name: "boards", config: o.config, replicaReads: settings.replicaReads, post: post)
        // Pattern writes and their dry runs: never queued behind a background rescan.
        let writer = Worker(name: "writer", config: o.config, replicaReads: settings.replicaReads, post: post)
        let subscriber = SubscriptionWorker(config: o.config, channels: settings.channels, patterns: settings.patterns, sink: tailInbox)
        let effects = EffectRunner(settings: settings, interactive: interactive, bulk: bulk, boards: boards, writer: writer, subscriber: subscriber,
                                   tailInbox: tailInbox, post: post)
        interactive.start()
        bulk.start()
        boards.start()
        writer.start()
        subscriber.start()
        defer {
            effects.stop()
            subscriber.stop()
            writer.stop()
            boards.stop()
            bulk.stop()
            interactive.stop()
        }

        var lastRender = 0.0
        var dirty = true
        var urgent = true
        var keyTimes: [Double] = []
        var nextTick = monotonicNow() + 1
        var fds = [pollfd(fd: term.inputFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: sigFDs[0], events: Int16(POLLIN), revents: 0)]

        // A console killed after `:notify on` left a note: say so, and offer to put it back.
        let marker = effects.notifyMarker
        if let text = try? String(contentsOfFile: marker, encoding: .utf8), let j = JSONParser.parse(Bytes(utf8: text)),
           j.field("server")?.scalarText == o.summary, let back = j.field("restore")?.scalarText {
            state.activity.restore = back
            state.flash = Flash(text: "a console that turned keyspace notifications on was stopped before it put notify-keyspace-events back to '\(back)': :notify off (or quitting) puts it back",
                                level: .warning, until: state.now + 15, view: nil)
        }
        func apply(_ ev: AppEvent) {
            let t0 = monotonicNow()
            let restoreBefore = state.activity.restore
            defer {
                if state.activity.restore != restoreBefore {
                    if let back = state.activity.restore {
                        let note = JSON.object([("server", .string(o.summary)), ("restore", .string(back))]).serialized()
                        let fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
                        if fd >= 0 { _ = note.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }; close(fd) }
                    } else {
                        unlink(marker)
                    }
                }
            }
            let out = Reducer.reduce(&state, ev, tail: tail)
            meter.reduceSeconds += monotonicNow() - t0
            meter.events += 1
            for e in out { effects.perform(e, tail: tail) }
        }

        apply(.tick(wallClockNow()))
        while !state.quitting {
            let now = monotonicNow()
            var timeout = max(0, nextTick - now)
            if dirty { timeout = urgent ? 0 : min(timeout, max(0, lastRender + 1.0 / 15 - now)) }
            for i in fds.indices { fds[i].revents = 0 }
            let r = poll(&fds, 3, Int32(timeout * 1000))
            if r < 0 && errno != EINTR { break }
            if fds[2].revents != 0 { state.quitting = true; break }
            if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 && term.inputFD >= 0 { break }
            // Keys (and resizes: a resize interrupts poll and get_wch reports it).
            while let k = term.readKey() {
                switch k {
                case .key(let key):
                    keyTimes.append(monotonicNow())
                    meter.keys += 1
                    apply(.key(key))
                case .resize:
                    let (w, h) = term.size
                    term.invalidate()
                    apply(.resize(width: w, height: h))
                case .ignored: continue
                }
                dirty = true
                urgent = true
                if state.quitting { break }
            }
            if state.quitting { break }
            // Drain first, then take: see WakePipe.
            if fds[1].revents != 0 { wake.drain() }
            let evs = inbox.take()
            if !evs.isEmpty {
                for ev in evs { apply(ev) }
                dirty = true
            }
            let taken = tailInbox.take()
            if !taken.items.isEmpty || !taken.dropped.isEmpty {
                let notices = tail.absorb(taken, now: wallClockNow())
                for n in notices { apply(.tail(n)) }
                apply(.tailChanged)
                // New messages change the screen only where the tail is shown.
                if state.view == .events || !notices.isEmpty { dirty = true }
            }
            let t = monotonicNow()
            if t >= nextTick {
                apply(.tick(wallClockNow()))
                nextTick = t + 1
                dirty = true
            }
            if dirty && (urgent || t - lastRender >= 1.0 / 15) {
                let r0 = monotonicNow()
                let grid = Screen.render(state, tail: tail, now: wallClockNow())
                term.draw(grid)
                let r1 = monotonicNow()
                meter.renderSeconds += r1 - r0
                meter.frames += 1
                for kt in keyTimes { meter.keyToFrame.append(r1 - kt) }
                keyTimes.removeAll()
                onFrame?(state, grid, r1 - r0)
                lastRender = r1
                dirty = false
                urgent = false
            }
        }
        if let back = state.activity.restore {
            let current: String? = { if case .on(let v) = state.activity.notify { return v }; return nil }()
            if let why = effects.restoreNotifications(back, current: current) {
                exitNote = "redis-ops: could not put notify-keyspace-events back to '\(back)': \(why); set it by hand (CONFIG SET notify-keyspace-events '\(back)')"
            } else {
                exitNote = "redis-ops: notify-keyspace-events put back to '\(back)' (audited)"
            }
        }
    }
}

/// Carries out the console's effects: each maps onto one OpsCore service, run on a worker.
/// The CLI subcommands call the same services; nothing here is a flow of its own.
final class EffectRunner {
    let settings: ConsoleSettings
    let interactive: Worker
    let bulk: Worker
    let boards: Worker
    let writer: Worker
    let subscriber: SubscriptionWorker
    let post: @Sendable ([AppEvent]) -> Void
    private var serverReads = 0
    /// Sharded channels get their own worker (connections to the nodes owning their slots),
    /// made when the first one is asked for.
    private let tailInbox: TailInbox
    private(set) var shardSubscriber: ShardSubscriptionWorker?

    init(settings: ConsoleSettings, interactive: Worker, bulk: Worker, boards: Worker, writer: Worker, subscriber: SubscriptionWorker, tailInbox: TailInbox,
         post: @escaping @Sendable ([AppEvent]) -> Void) {
        self.settings = settings; self.interactive = interactive; self.bulk = bulk; self.boards = boards; self.writer = writer; self.subscriber = subscriber; self.post = post
        self.tailInbox = tailInbox
        if !settings.shardChannels.isEmpty { startShards(settings.shardChannels) }
    }

    private func startShards(_ channels: [Bytes]) {
        let w = ShardSubscriptionWorker(config: settings.options.config, channels: channels, sink: tailInbox.shardSink)
        w.start()
        shardSubscriber = w
    }

    func stop() {
        shardSubscriber?.stop()
        activity.m.withLock { $0?.stop(); $0 = nil }
        latencyProbe.m.withLock { $0?.stop(); $0 = nil }
    }

    /// Keyspace notifications, counted on connections of their own (one per primary) from
    /// the moment the Activity view is first opened until the console exits.
    private let activity = ActivityBox()
    private let latencyProbe = ProbeBox()
    final class ProbeBox: Sendable { let m = Mutex<LatencyProbe?>(nil) }
    final class ActivityBox: Sendable { let m = Mutex<KeyspaceActivity?>(nil) }

    /// Where a pending "put notify-keyspace-events back" is remembered, so a console killed
    /// before it could restore the value is noticed by the next one.
    var notifyMarker: String { settings.audit.path + ".notify-restore" }

    /// Puts `notify-keyspace-events` back as it was before `:notify on` (audited), on exit.
    func restoreNotifications(_ value: String, current: String?) -> String? {
        do {
            let nodes = try NodeSet(config: settings.options.config, replicaReads: false)
            let session = WriteSession(nodes: nodes, schema: schema, context: writeContext())
            let req = WriteRequest(action: .config(parameter: KeyspaceNotifications.parameter, value: value, previous: current))
            let r = try session.execute(WritePlan(request: req, keys: []))
            if let e = r.error { return e }
            if r.unknown > 0 { return "no reply to CONFIG SET: whether it was put back is unknown" }
            unlink(notifyMarker)
            return nil
        } catch {
            return Self.message(error)
        }
    }

    var schema: KeySchema { settings.schema }

    func writeContext() -> WriteContext {
        let o = settings.options
        return WriteContext(server: o.summary, aclUser: o.config.user, readOnly: o.readOnly, audit: settings.audit)
    }

    static func message(_ e: Error) -> String { (e as? RedisError)?.description ?? "\(e)" }

    func perform(_ e: Effect, tail: ChannelTail) {
        let schema = self.schema
        let post = self.post
        switch e {
        case .quit:
            break
        case .startActivity:
            let box = activity
            interactive.submit(Worker.Job(tag: "activity", run: { ctx in
                try ctx.nodes.refresh()
                let (value, error) = KeyspaceActivity.notificationSetting(ctx.nodes)
                if let v = value, !KeyspaceNotifications.missing(v).isEmpty { return [.activityNotify(value: v, error: nil)] }
                box.m.withLock { a in
                    if a == nil {
                        let k = KeyspaceActivity(nodes: ctx.nodes, schema: schema)
                        k.start()
                        a = k
                    }
                }
                return [.activityNotify(value: value, error: error)]
            }, onError: { [.notice("keyspace notifications: \(Self.message($0))", .warning)] }))
        case .startLatency:
            let box = latencyProbe
            interactive.submit(Worker.Job(tag: "latency", run: { ctx in
                try ctx.nodes.refresh()
                box.m.withLock { p in
                    guard p == nil else { return }
                    let probe = LatencyProbe(nodes: ctx.nodes) { samples, at in post([.latency(samples, at: at)]) }
                    probe.start()
                    p = probe
                }
                return []
            }, onError: { [.notice("latency probe: \(Self.message($0))", .warning)] }))
        case .readActivity:
            if let snap = activity.m.withLock({ $0?.tally.snapshot(at: wallClockNow()) }) { post([.activity(snap)]) }
        case .subscribe(let name, let p):
            subscriber.subscribe(name, pattern: p)
        case .unsubscribe(let name, let p):
            subscriber.unsubscribe(name, pattern: p)
        case .subscribeShard(let name):
            if let w = shardSubscriber { w.subscribe(name) } else { startShards([name]) }
        case .unsubscribeShard(let name):
            shardSubscriber?.unsubscribe(name)
        case .export(let path, let what):
            export(path, what, tail)
        case .scanKeys(let gen, let filter, let sort):
            bulk.submit(Worker.Job(tag: "keys", run: { ctx in
                let browser = KeyBrowser(nodes: ctx.nodes, schema: schema)
                let snap = try browser.scan(filter: filter, sort: sort, cancelled: ctx.cancelled) { s in ctx.post([.keysSnapshot(generation: gen, s)]) }
                return [.keysSnapshot(generation: gen, snap)]
            }, onError: { [.keysFailed(generation: gen, Self.message($0))] }))
        case .refreshKeys(let keys):
            interactive.submit(Worker.Job(tag: "keys-refresh", run: { ctx in
                [.keysRefreshed(try KeyBrowser(nodes: ctx.nodes, schema: schema).refresh(keys))]
            }, onError: { [.keysRefreshFailed(Self.message($0))] }))
        case .inspect(let key, let cursor):
            interactive.submit(Worker.Job(tag: "inspect", run: { ctx in
                [.inspected(try KeyInspector.inspect(key, cursor: cursor, nodes: ctx.nodes), appended: cursor != nil)]
            }, onError: { [.inspectFailed(key, Self.message($0))] }))
        case .scanRateLimits(let match):
            boards.submit(Worker.Job(tag: match == nil ? "ratelimits" : "ratelimits-search", run: { ctx in
                [.rateLimits(try RateLimitBoard(nodes: ctx.nodes, schema: schema).scan(match: match, cancelled: ctx.cancelled))]
            }, onError: { [.rateLimitsFailed(Self.message($0))] }))
        case .refreshRateLimits(let keys):
            interactive.submit(Worker.Job(tag: "ratelimits-refresh", run: { ctx in
                [.rateLimitsRefreshed(try RateLimitBoard(nodes: ctx.nodes, schema: schema).refresh(keys), at: wallClockNow())]
            }, onError: { [.rateLimitsFailed(Self.message($0))] }))
        case .scanLocks:
            boards.submit(Worker.Job(tag: "locks", run: { ctx in
                [.locks(try LockBoard(nodes: ctx.nodes, schema: schema).scan(cancelled: ctx.cancelled))]
            }, onError: { [.locksFailed(Self.message($0))] }))
        case .refreshLocks(let keys):
            interactive.submit(Worker.Job(tag: "locks-refresh", run: { ctx in
                [.locksRefreshed(try LockBoard(nodes: ctx.nodes, schema: schema).refresh(keys))]
            }, onError: { [.locksFailed(Self.message($0))] }))
        case .readServer:
            serverReads += 1
            // CLIENT LIST costs the server O(clients): every fifth reading (10 s).
            let clients = serverReads % 5 == 1
            interactive.submit(Worker.Job(tag: "server", run: { ctx in
                var r = try ServerReading.read(ctx.nodes.seed(), clients: clients)
                // A cluster: one slow log, merged from every node (one SLOWLOG GET per node).
                if ctx.nodes.isCluster {
                    let (entries, errors) = SlowlogEntry.merged(ctx.nodes)
                    if !entries.isEmpty || errors.isEmpty { r.slowlog = entries; r.slowlogError = nil }
                    else { r.slowlogError = errors.first }
                }
                // A cluster: every node's INFO, with CLIENT LIST's cadence (O(nodes)).
                if clients, ctx.nodes.isCluster {
                    do { r.cluster = try ClusterNodes.read(ctx.nodes) } catch { r.clusterError = Self.message(error) }
                    r.clusterAt = wallClockNow()
                }
                return [.server(r)]
            }, onError: { [.serverFailed(Self.message($0))] }))
        case .readListeners(let channels, let patterns, let shardChannels):
            interactive.submit(Worker.Job(tag: "listeners", run: { ctx in
                [.listeners(try Listeners.read(ctx.nodes, channels: channels, patterns: patterns, shardChannels: shardChannels))]
            }, onError: { [.notice("who listens: \(Self.message($0))", .warning)] }))
        case .plan(let id, let req):
            let context = writeContext()
            writer.submit(Worker.Job(tag: "write-\(id)", run: { ctx in
                let session = WriteSession(nodes: ctx.nodes, schema: schema, context: context)
                var last = 0.0
                let plan = try session.plan(req, progress: { n in
                    let t = monotonicNow()
                    if t - last > 0.1 { last = t; ctx.post([.planProgress(id: id, n)]) }
                }, cancelled: ctx.cancelled)
                // The console's dry run is a dry run like the CLI's: recorded.
                let r = session.recordDryRun(plan)
                var out: [AppEvent] = [.planned(id: id, plan)]
                if let e = r.auditError { out.append(.notice("the dry run could not be recorded: \(e)", .error)) }
                return out
            }, onError: { [.writeFailed(id: id, Self.message($0))] }, onCancelledBeforeStart: { [.writeCancelled(id: id)] }))
        case .execute(let id, let plan):
            let context = writeContext()
            // One key goes on the interactive connection (it need not wait behind a long job).
            let small = plan.request.glob == nil && plan.keys.count <= 10
            let job = Worker.Job(tag: "write-\(id)", isWrite: true, run: { ctx in
                let session = WriteSession(nodes: ctx.nodes, schema: schema, context: context)
                var last = 0.0
                let report: WriteReport
                do {
                    report = try session.execute(plan, cancelled: ctx.cancelled) { p in
                        let t = monotonicNow()
                        if t - last > 0.1 || p.done == p.total { last = t; ctx.post([.writeProgress(id: id, p)]) }
                    }
                } catch let e as AuditUnavailable {
                    return [.writeRefused(id: id, e.description)]
                }
                var out: [AppEvent] = [.written(id: id, report)]
                if let e = report.auditError { out.append(.notice("the outcome could not be recorded in the audit log: \(e)", .error)) }
                // READONLY: the node was demoted (a failover). Connect again through the endpoint,
                // which leads to the new primary, and show the change at once; the operator re-runs.
                if report.error?.hasPrefix("READONLY") == true {
                    ctx.nodes.close()
                    out.append(.serverRole(try? ServerRole.read(ctx.nodes.seed())))
                }
                return out
            }, onError: { [.writeFailed(id: id, "\(Self.message($0))")] }, onCancelledBeforeStart: { [.writeCancelled(id: id)] })
            (small ? interactive : writer).submit(job)
        case .cancelWrite(let id):
            writer.cancel(tag: "write-\(id)")
            interactive.cancel(tag: "write-\(id)")
        case .runDoctor:
            // Its own thread and connections: a step that waits out a timeout must not hold
            // up the views' workers. The overlay allows one walk at a time.
            let options = settings.options, prefix = schema.prefix
            let post = self.post
            Thread.detachNewThread {
                _ = Doctor.run(options, prefix: prefix, readOnly: options.readOnly) { step in post([.doctorStep(step)]) }
                post([.doctorDone])
            }
        case .readAudit:
            let log = settings.audit
            post([.audit(log.recent(), path: log.path)])
        case .complete(let text):
            interactive.submit(Worker.Job(tag: "complete", run: { ctx in
                let arg = CommandLineArgs.completionArgument(text)
                let full = schema.relative(Bytes(utf8: arg)) != nil ? Bytes(utf8: arg) : schema.prefix + Bytes(utf8: arg)
                return [.completions(prefix: text, try Completion.keys(startingWith: full, nodes: ctx.nodes))]
            }, onError: { [.notice("completion failed: \(Self.message($0))", .warning)] }))
        case .lookupCounter(let key):
            interactive.submit(Worker.Job(tag: "lookup", run: { ctx in
                let c = try RateLimitBoard(nodes: ctx.nodes, schema: schema).refresh([key]).first
                return [.counterLookedUp(key: key, c?.isGone == true ? nil : c)]
            }, onError: { [.notice("cannot read \(Escaper.string(key)): \(Self.message($0))", .error)] }))
        case .lookupLock(let key):
            interactive.submit(Worker.Job(tag: "lookup", run: { ctx in
                let l = try LockBoard(nodes: ctx.nodes, schema: schema).refresh([key]).first
                return [.lockLookedUp(key: key, l?.isGone == true ? nil : l)]
            }, onError: { [.notice("cannot read \(Escaper.string(key)): \(Self.message($0))", .error)] }))
        case .lookup(let key, let purpose):
            interactive.submit(Worker.Job(tag: "lookup", run: { ctx in
                if case .ttl = purpose {
                    // One pipelined trip that also reads the value's first bytes, for its age.
                    let v = try KeyInspector.inspect(key, nodes: ctx.nodes)
                    let info = KeyInfo(key: key, type: v.type, ttl: v.ttl, bytes: v.bytes, kind: schema.kind(of: key), readAt: v.readAt)
                    return [.lookedUp(key: key, found: info, purpose: purpose,
                                      updatedAt: CacheAge.updatedAt(v.string, field: schema.updatedAtField))]
                }
                let info = try KeyBrowser(nodes: ctx.nodes, schema: schema).refresh([key]).first
                return [.lookedUp(key: key, found: info, purpose: purpose)]
            }, onError: { [.notice("cannot read \(Escaper.string(key)): \(Self.message($0))", .error)] }))
        }
    }

    func export(_ path: String, _ what: TailExport, _ tail: ChannelTail) {
        var out = Bytes()
        var n = 0
        switch what {
        case .buffer(let filter, let upTo):
            for entry in tail.entries(upTo: upTo, filter: filter) {
                guard let m = entry.message else { continue }
                TailJSON.line(m, truncatedFrom: entry.originalSize, into: &out)
                n += 1
            }
        case .message(let seq):
            if seq >= tail.oldestSeq, seq < tail.nextSeq, let m = tail[seq - tail.oldestSeq].message {
                TailJSON.line(m, truncatedFrom: tail[seq - tail.oldestSeq].originalSize, into: &out)
                n = 1
            }
        }
        do {
            try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic)
            post([.notice("wrote \(n) message\(n == 1 ? "" : "s") to \(path)", .info)])
        } catch {
            post([.notice("cannot write \(path): \((error as NSError).localizedDescription)", .error)])
        }
    }
}

/// The argument of a command line being completed (`key work` → `work`).
enum CommandLineArgs {
    static func completionArgument(_ text: String) -> String {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let sp = t.firstIndex(of: " ") { return t[t.index(after: sp)...].trimmingCharacters(in: .whitespaces) }
        return t
    }
}
