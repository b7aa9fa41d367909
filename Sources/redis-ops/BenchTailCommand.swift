import ArgumentParser
import Foundation
import Synchronization
import RedisClient
import RedisProtocol
import OpsCore
import ConsoleUI

/// Measures the console's tail without a terminal: the same subscriber worker, inbox, ring
/// buffer, reducer and renderer as the console (a 120x40 grid at 30 fps), driven for a
/// fixed time. Used by scripts/bench.sh; prints one JSON object.
struct BenchTailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-tail", abstract: "Benchmark the console's live tail (for scripts/bench.sh).", shouldDisplay: false)

    @OptionGroup var connection: ConnectionOptionGroup
    @Option(name: .long) var channel: String = "bench:flood"
    @Option(name: .long) var seconds: Double = 12
    @Option(name: .long) var buffer: Int = 10_000

    final class Counter: SubscriberSink, Sendable {
        let inbox: TailInbox
        let disconnects = Atomic<Int>(0)
        init(_ i: TailInbox) { inbox = i }
        func deliver(_ m: [ReceivedMessage]) { inbox.deliver(m) }
        func notice(_ n: SubscriberNotice) {
            if case .disconnected = n { disconnects.add(1, ordering: .relaxed) }
            inbox.notice(n)
        }
    }

    func run() throws {
        let opts = try connection.resolve()
        let inbox = TailInbox(capacity: buffer)
        let sink = Counter(inbox)
        let worker = SubscriptionWorker(config: opts.config, channels: [Bytes(utf8: channel)], patterns: [], sink: sink)
        worker.start()
        var tail = ChannelTail(capacity: buffer)
        var state = AppState(width: 120, height: 40, now: wallClockNow(),
                             session: SessionInfo(endpoint: opts.config.endpoint, tls: opts.isTLS, user: nil, prefix: opts.prefix, readOnly: false))
        state.subscriptions = [Subscription(name: Bytes(utf8: channel), isPattern: false, active: true)]
        let start = monotonicNow()
        var frames = 0
        var checksum = 0
        while monotonicNow() - start < seconds {
            usleep(33_000)
            state.now = wallClockNow()
            _ = tail.absorb(inbox.take(), now: state.now)
            _ = Reducer.reduce(&state, .tailChanged, tail: tail)
            let grid = Screen.render(state, tail: tail)
            checksum &+= grid.cells.count
            frames += 1
        }
        worker.stop()
        _ = tail.absorb(inbox.take(), now: wallClockNow())
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let out = JSON.object([
            ("received", .int(Int64(tail.received))), ("dropped", .int(0)), ("evicted_from_ring", .int(Int64(tail.evicted))),
            ("disconnects", .int(Int64(sink.disconnects.load(ordering: .relaxed)))),
            ("peak_rss_kb", .int(Int64(usage.ru_maxrss))), ("frames", .int(Int64(frames))),
        ])
        Output.line(out.serialized())
        _ = checksum
    }
}
