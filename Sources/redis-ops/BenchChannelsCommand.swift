import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI
import ConsoleTerminal

/// A long session on a pattern that brings a great many channels: the console (headless,
/// the channels pane open) while messages go to `--channels` distinct channels for
/// `--minutes`. Every `--every` seconds: the console's RSS, the channels pane's frame time,
/// channels heard and counted. Used by scripts/bench.sh (soak); NDJSON on stdout.
struct BenchChannelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-channels",
                                                    abstract: "Soak benchmark: many distinct channels for minutes (for scripts/bench.sh).", shouldDisplay: false)

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long, help: "Distinct channels published to.") var channels: Int = 1_000_000
    @Option(name: .long, help: "Minutes of traffic.") var minutes: Double = 10
    @Option(name: .long, help: "Messages per second (approximately).") var rate: Double = 5_000
    @Option(name: .long, help: "Seconds between reports.") var every: Double = 30

    final class Frames: Sendable {
        let stats = Mutex<(frames: Int, seconds: Double, worst: Double, heard: Int, counted: Int)>((0, 0, 0, 0, 0))
    }

    func emit(_ fields: [(String, JSON)]) { Output.line(JSON.object(fields).serialized()); Output.flush() }

    static func rssKB() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8), let pages = Int(s.split(separator: " ")[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    func run() throws {
        let (opts, schema) = try connection.resolveWithSchema()
        let term = HeadlessTerminal(width: 120, height: 40)
        var settings = ConsoleSettings(options: opts, channels: [], patterns: [Bytes(utf8: "soak:*:events")], schema: schema,
                                       audit: AuditLog(path: NSTemporaryDirectory() + "/redis-ops-bench-audit-\(getpid()).log"))
        settings.colour = false
        let console = Console(settings)
        let frames = Frames()
        console.onFrame = { st, _, took in
            // Only frames with the channels pane on screen count.
            guard st.events.pane == .channels else { return }
            frames.stats.withLock { $0.frames += 1; $0.seconds += took; $0.worst = max($0.worst, took) }
        }
        let finished = DispatchSemaphore(value: 0)
        nonisolated(unsafe) let owned = console
        Thread.detachNewThread { try? owned.run(on: term, installSignals: false); finished.signal() }
        usleep(500_000)
        term.press(.char("1"))
        term.press(.char("c"))

        let stop = Atomic<Bool>(false)
        let published = Atomic<Int>(0)
        let cfg = opts.config
        let n = channels, perSecond = rate
        Thread.detachNewThread {
            guard let c = try? RedisConnection(cfg) else { return }
            var i = 0
            let batch = 100
            let t0 = monotonicNow()
            while !stop.load(ordering: .relaxed) {
                var cmds: [[Bytes]] = []
                for _ in 0..<batch {
                    cmds.append([Bytes(utf8: "PUBLISH"), Bytes(utf8: "soak:\(i % n):events"), Bytes(utf8: #"{"type":"member.added","n":\#(i)}"#)])
                    i += 1
                }
                _ = try? c.pipeline(cmds)
                published.add(batch, ordering: .relaxed)
                // Keep to the rate.
                let ahead = Double(i) / perSecond - (monotonicNow() - t0)
                if ahead > 0 { usleep(UInt32(min(1, ahead) * 1_000_000)) }
            }
        }
        let start = monotonicNow()
        var last = start
        let end = start + minutes * 60
        while monotonicNow() < end {
            usleep(UInt32(min(every, max(0.1, end - monotonicNow())) * 1_000_000))
            let now = monotonicNow()
            let f = frames.stats.withLock { s -> (Int, Double, Double) in defer { s.frames = 0; s.seconds = 0; s.worst = 0 }; return (s.frames, s.seconds, s.worst) }
            emit([("measure", .string("soak")), ("minutes", .double(((now - start) / 60 * 10).rounded() / 10)),
                  ("published", .int(Int64(published.load(ordering: .relaxed)))), ("rss_mb", .double(Double(Self.rssKB()) / 1024)),
                  ("pane_frames", .int(Int64(f.0))), ("pane_frame_ms_avg", .double(f.0 > 0 ? (f.1 / Double(f.0) * 1000 * 100).rounded() / 100 : 0)),
                  ("pane_frame_ms_max", .double((f.2 * 1000 * 100).rounded() / 100)), ("interval_s", .double((now - last).rounded()))])
            last = now
        }
        stop.store(true, ordering: .relaxed)
        term.press(.char("q"))
        _ = finished.wait(timeout: .now() + 10)
    }
}
