import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI
import ConsoleTerminal

/// Drives the real console (its loop, workers, reducer and renderer) headless against a
/// production-sized server, with events flowing, and measures what an operator feels and
/// what the server pays. Used by scripts/bench.sh; prints one JSON object per measurement.
struct BenchConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-console", abstract: "Benchmark the console at scale (for scripts/bench.sh).", shouldDisplay: false)

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Seconds each view is watched idle.") var seconds: Double = 10
    @Option(name: .long, help: "Events per second published meanwhile.") var rate: Double = 20
    @Option(name: .long, help: "A filter that matches a handful of keys.") var filter: String = "workspace:12345"
    @Option(name: .long, help: "Keys for the Esc-during-invalidation measurement (0: skip).") var invalidationKeys: Int = 300_000

    /// What the bench thread sees of the console: the state of the last frame.
    final class Frames: Sendable {
        let last = Mutex<(state: AppState?, frames: Int)>((nil, 0))
    }

    func emit(_ fields: [(String, JSON)]) { Output.line(JSON.object(fields).serialized()); Output.flush() }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let term = HeadlessTerminal(width: 120, height: 40)
        var settings = ConsoleSettings(options: opts, channels: [], patterns: [Bytes(utf8: schema.eventsPattern)], schema: schema,
                                       audit: AuditLog(path: NSTemporaryDirectory() + "/redis-ops-bench-audit-\(getpid()).log"))
        settings.colour = false
        let console = Console(settings)
        let frames = Frames()
        console.onFrame = { st, _, _ in frames.last.withLock { $0.state = st; $0.frames += 1 } }
        let finished = DispatchSemaphore(value: 0)
        // The console belongs to its own thread from here on, as in the real program.
        nonisolated(unsafe) let owned = console
        Thread.detachNewThread { try? owned.run(on: term, installSignals: false); finished.signal() }

        // Events always arriving, on another connection, like the application.
        let stop = Atomic<Bool>(false)
        let published = Atomic<Int>(0)
        /// CPU seconds the publisher thread (the bench's, not the console's) has used.
        let publisherCPU = Atomic<Int>(0)
        let cfg = opts.config
        let interval = 1 / max(1, rate)
        Thread.detachNewThread {
            guard let c = try? RedisConnection(cfg) else { return }
            var n = 0
            while !stop.load(ordering: .relaxed) {
                n += 1
                _ = try? c.pipeline([[Bytes(utf8: "PUBLISH"), Bytes(utf8: "workspace:\(n % 500):events"),
                                      Bytes(utf8: #"{"type":"member.added","workspaceId":\#(n % 500),"userId":"u\#(n)"}"#)]])
                published.add(1, ordering: .relaxed)
                publisherCPU.store(Int(threadCPU() * 1e6), ordering: .relaxed)
                usleep(UInt32(interval * 1_000_000))
            }
        }
        defer { stop.store(true, ordering: .relaxed) }
        let admin = try RedisConnection(opts.config)

        func state() -> AppState? { frames.last.withLock { $0.state } }
        /// Seconds until a frame satisfies `cond` (nil on timeout).
        func waitFrame(_ timeout: Double = 30, _ cond: (AppState) -> Bool) -> Double? {
            let t0 = monotonicNow()
            while monotonicNow() - t0 < timeout {
                if let s = state(), cond(s) { return monotonicNow() - t0 }
                usleep(2_000)
            }
            return nil
        }
        func cpu() -> Double {
            var u = rusage()
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
        }
        func commands() -> (total: Int, publish: Int) {
            let text = (try? admin.call("INFO", "commandstats").string) ?? ""
            var total = 0, publish = 0
            for line in text.replyLines where line.hasPrefix("cmdstat_") {
                guard let c = line.range(of: "calls="), let end = line[c.upperBound...].firstIndex(of: ",") else { continue }
                let n = Int(line[c.upperBound..<end]) ?? 0
                total += n
                if line.hasPrefix("cmdstat_publish:") { publish = n }
            }
            return (total, publish)
        }
        func ms(_ s: Double?) -> JSON { s.map { .double(($0 * 1000).rounded() / 1) } ?? .null }

        _ = waitFrame(10) { $0.session.command == .connected }
        let dbsize = Int(try admin.call("DBSIZE").int ?? 0)

        // Keys: first rows, then the whole scan (and the process CPU it cost: the listing on
        // the worker plus the UI thread taking its snapshots).
        // The console's own threads only: the bench's (this one, polling for frames, and the
        // publisher's) are taken off.
        func consoleCPU() -> Double { cpu() - threadCPU() - Double(publisherCPU.load(ordering: .relaxed)) / 1e6 }
        let cpu0 = consoleCPU()
        term.press(.char("2"))
        let firstRows = waitFrame(30) { $0.keys.visibleCount > 0 }
        let fullScan = waitFrame(120) { $0.keys.snapshot?.done == true }.map { $0 + (firstRows ?? 0) }
        let scanCPU = consoleCPU() - cpu0
        let matched = state()?.keys.snapshot?.window.matched ?? 0
        emit([("measure", .string("keys first rows")), ("dbsize", .int(Int64(dbsize))), ("first_rows_ms", ms(firstRows)),
              ("full_scan_ms", ms(fullScan)), ("keys_matched", .int(Int64(matched))), ("scan_cpu_s", .double((scanCPU * 100).rounded() / 100))])

        // Key press to frame, one press at a time.
        var lat: [Double] = []
        for i in 0..<60 {
            let before = state()?.keys.cursor ?? 0
            let t0 = monotonicNow()
            term.press(i < 30 ? .down : .up)
            if waitFrame(2, { $0.keys.cursor != before }) != nil { lat.append(monotonicNow() - t0) }
        }
        lat.sort()
        emit([("measure", .string("key press to frame (j/k in Keys)")), ("presses", .int(Int64(lat.count))),
              ("p50_ms", ms(lat.isEmpty ? nil : lat[lat.count / 2])), ("max_ms", ms(lat.last))])

        // A filter finds every matching key on the server.
        term.press(.char("/"))
        var typing: [Double] = []
        for c in filter {
            let t0 = monotonicNow()
            let want = (state()?.prompt?.text ?? "") + String(c)
            term.press(.char(c))
            if waitFrame(2, { $0.prompt?.text == want }) != nil { typing.append(monotonicNow() - t0) }
        }
        let tf = monotonicNow()
        term.press(.enter)
        let found = waitFrame(60) { $0.keys.snapshot?.filter == filter && $0.keys.snapshot?.done == true && !$0.keys.scanning }
        let filtered = state()?.keys.snapshot?.window.matched ?? -1
        var truthCount = 0
        var sc = KeyScanner(match: KeyFilter(filter, schema: schema).match, count: 1000)
        while let page = try sc.next(on: admin) { truthCount += page.count }
        emit([("measure", .string("filter on the server")), ("filter", .string(filter)), ("found", .int(Int64(filtered))),
              ("on_the_server", .int(Int64(truthCount))), ("ms", ms(found.map { _ in monotonicNow() - tf })),
              ("typing_max_ms", ms(typing.max()))])

        // An EXPIRE made elsewhere shows on a visible row.
        if let s = state(), s.keys.visibleCount > 0 {
            let k = s.keys.visible(0).key
            let t0 = monotonicNow()
            _ = try admin.call([Bytes(utf8: "EXPIRE"), k, Bytes(utf8: "12345")])
            let seen = waitFrame(15) { st in
                st.keys.visibleCount > 0 && (0..<st.keys.visibleCount).contains { i in
                    let r = st.keys.visible(i)
                    if r.key == k, case .expiresIn(let ms)? = r.ttl { return ms > 12_000_000 }
                    return false
                }
            }
            emit([("measure", .string("freshness: EXPIRE elsewhere, seen on screen")), ("ms", ms(seen.map { _ in monotonicNow() - t0 }))])
        }
        term.press(.escape)
        _ = waitFrame(120) { $0.keys.filter.isEmpty && $0.keys.snapshot?.done == true && !$0.keys.scanning }

        // Each view, idle: the console's CPU and what it costs the server.
        for (v, key) in [(ViewID.events, "1"), (.keys, "2"), (.rateLimits, "3"), (.locks, "4"), (.server, "5")] {
            term.press(.char(Character(key)))
            // Let the view load what it needs first (a full reading of every counter, say).
            _ = waitFrame(120) { s in
                switch v {
                case .rateLimits: return s.rateLimits.board.loaded && !s.rateLimits.board.scanning
                case .locks: return s.locks.board.loaded && !s.locks.board.scanning
                case .server: return s.server.reading != nil
                case .keys: return s.keys.snapshot?.done == true
                default: return true
                }
            }
            usleep(1_500_000)
            func fullReading(_ st: AppState?) -> (at: Double, cost: Int, every: Double)? {
                guard let st else { return nil }
                switch v {
                case .rateLimits: return (st.rateLimits.board.lastFull, st.rateLimits.board.fullCost, RateLimitBoard.rescanInterval(commands: st.rateLimits.board.fullCost))
                case .locks: return (st.locks.board.lastFull, st.locks.board.fullCost, LockBoard.rescanInterval(commands: st.locks.board.fullCost, least: 5, most: 60))
                case .keys: return st.keys.snapshot.map { ($0.finishedAt ?? 0, $0.stats.commands, KeyBrowser.rescanInterval(commands: $0.stats.commands)) }
                default: return nil
                }
            }
            let before = fullReading(state())
            let c0 = cpu(), k0 = commands(), t0 = monotonicNow(), p0 = published.load(ordering: .relaxed)
            let f0 = frames.last.withLock { $0.frames }
            usleep(UInt32(seconds * 1_000_000))
            let c1 = cpu(), k1 = commands(), t1 = monotonicNow(), p1 = published.load(ordering: .relaxed)
            let f1 = frames.last.withLock { $0.frames }
            let after = fullReading(state())
            let wall = t1 - t0
            // Commands of the console alone: all of them but the publisher's and our own INFO.
            var measured = Double((k1.total - k0.total) - (k1.publish - k0.publish) - 1)
            // A full reading that fell inside the window is counted at its average pace instead.
            if let b = before, let a = after, a.at != b.at { measured -= Double(a.cost) }
            let amortized = after.map { Double($0.cost) / $0.every } ?? 0
            emit([("measure", .string("idle view")), ("view", .string(v.title)), ("cpu_percent", .double(((c1 - c0) / wall * 1000).rounded() / 10)),
                  ("events_per_s", .double((Double(p1 - p0) / wall * 10).rounded() / 10)), ("frames_per_s", .double((Double(f1 - f0) / wall * 10).rounded() / 10)),
                  ("server_commands_per_s_on_screen", .double((max(0, measured) / wall).rounded())),
                  ("full_reading_every_s", after.map { .double($0.every.rounded()) } ?? .null),
                  ("full_reading_commands", after.map { .int(Int64($0.cost)) } ?? .null),
                  ("server_commands_per_s_total", .double((max(0, measured) / wall + amortized).rounded()))])
        }

        // Esc during a big invalidation stops it within one batch.
        if invalidationKeys > 0 {
            var cmds: [[Bytes]] = []
            for i in 0..<invalidationKeys {
                cmds.append([Bytes(utf8: "SET"), schema.fullKey(Bytes(utf8: "benchinv:\(i)")), Bytes(utf8: "x")])
                if cmds.count == 10_000 { _ = try admin.pipeline(cmds); cmds.removeAll() }
            }
            if !cmds.isEmpty { _ = try admin.pipeline(cmds) }
            term.press(.char("2"))
            term.press(.char("D"))
            term.type("benchinv:*")
            term.press(.enter)
            _ = waitFrame(120) { if case .confirming? = $0.write?.phase { return true }; return false }
            term.type(String(invalidationKeys))
            term.press(.enter)
            _ = waitFrame(30) { if case .running(_, let p)? = $0.write?.phase { return p.done > 20_000 }; return false }
            var batch = 0
            if case .running(_, let p)? = state()?.write?.phase { batch = p.batch }
            func expired() -> Int { Int(ServerInfo(text: (try? admin.call("INFO", "stats").string) ?? "").int("expired_keys") ?? 0) }
            let e0 = expired()
            let left0 = Int(try admin.call("DBSIZE").int ?? 0)
            let t0 = monotonicNow()
            term.press(.escape)
            let stopped = waitFrame(30) { if case .done? = $0.write?.phase { return true }; return false }
            var report: WriteReport?
            if case .done(let r)? = state()?.write?.phase { report = r }
            let left1 = Int(try admin.call("DBSIZE").int ?? 0)
            // What the server deleted after Esc: the drop in DBSIZE less the keys that expired meanwhile.
            let after = left0 - left1 - (expired() - e0)
            emit([("measure", .string("Esc during an invalidation")), ("keys", .int(Int64(invalidationKeys))),
                  ("deleted_in_total", .int(Int64(report?.deleted ?? -1))), ("cancelled", .bool(report?.cancelled ?? false)),
                  ("deleted_after_esc", .int(Int64(after))), ("batch_at_esc", .int(Int64(batch))),
                  ("stopped_after_ms", ms(stopped.map { _ in monotonicNow() - t0 }))])
            term.press(.escape)
            // Clean up what is left of them.
            var rest = KeyScanner(match: schema.fullGlob("benchinv:*"), count: 1000)
            while let page = try rest.next(on: admin) { if !page.isEmpty { _ = try admin.call([Bytes(utf8: "UNLINK")] + page) } }
        }

        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        emit([("measure", .string("memory")), ("peak_rss_mb", .double(Double(usage.ru_maxrss) / 1024))])
        term.press(.char("q"))
        _ = finished.wait(timeout: .now() + 10)
    }
}

/// CPU seconds the calling thread has used.
func threadCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
